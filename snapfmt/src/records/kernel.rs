//! The kernel state of one checkpointable task (since format 1.2): what
//! the kernel knows about the task beyond its [`TaskRecord`], stored in
//! `tasks/<task id>.spk` (kind 6, `FORMAT.md` section 5.1).
//!
//! Everything the task record can say is said there (threads with their
//! execution state, phones, pending calls with their buffers, areas, the
//! id view); this record adds the task's id counters, phone slots that
//! are more than free or connected, both parties and the connection
//! details of every pending call, undelivered notifications, and per
//! thread the id the task sees for it, its index, its deadline, whether it
//! was asleep, and the entry still to run. Its `calls` and `threads` are
//! parallel to the task record's. Kernels before 1.2 stored the same
//! content as a hex blob in the manifest's `options.extra`.
//!
//! [`TaskRecord`]: super::TaskRecord

use super::common::Peer;
use crate::exec::Value;
use serde::{Deserialize, Serialize};

/// Kernel-side state of one task beyond its task record.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTaskState {
    /// The task (its id at checkpoint time); must match the file name and
    /// name a checkpointable member with a task record.
    pub task_id: u64,
    /// The task's id counters: ids continue exactly where they were.
    pub counters: IdCounters,
    /// Phone slots whose state a `PhoneSlot` cannot express, sorted by
    /// slot, each slot at most once.
    pub phones: Vec<SpecialPhone>,
    /// One entry per `TaskRecord::calls` entry, in the same order.
    pub calls: Vec<CallDetail>,
    /// Notifications sent to the task and not yet fetched, oldest first.
    pub notifications: Vec<Notification>,
    /// One entry per `TaskRecord::threads` entry, in the same order.
    pub threads: Vec<ThreadDetail>,
}

/// The next value of each of a task's id counters (thesis 5.4.6). Every
/// counter starts at 1; 0 means "none".
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCounters {
    /// Sender-side ids of calls the task sends.
    pub next_call_id: u64,
    /// Receiver-side ids of calls arriving in the task's answerbox.
    pub next_rx_call_id: u64,
    /// Receiver-side ids of connections to the task's answerbox.
    pub next_conn_id: u64,
}

impl Default for IdCounters {
    fn default() -> Self {
        IdCounters {
            next_call_id: 1,
            next_rx_call_id: 1,
            next_conn_id: 1,
        }
    }
}

/// A phone slot in a state beyond `PhoneSlot`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialPhone {
    /// The slot (phone id), below the task record's phone table length.
    pub slot: u32,
    pub state: PhoneState,
}

/// The special state of a phone slot.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneState {
    /// Reserved by a connection request in flight (`CONNECT_ME_TO`); the
    /// task record has the slot `Free`.
    Connecting,
    /// The callee hung up; the task record has the slot `Connected`.
    /// Calls through it fail until the owner hangs up too.
    Slammed,
}

/// What the kernel knows about one pending call beyond `PendingCall`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallDetail {
    /// A call (a `PendingCall` of any queue but `UndeliveredAnswer`).
    Call(CallParties),
    /// An undelivered answer (its `PendingCall` says everything).
    Answer,
}

/// Both parties of a call and how it travels.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallParties {
    /// The original sender, who gets the answer.
    pub caller: Peer,
    /// The task holding the call now (after any forwarding).
    pub receiver: Peer,
    /// The original sender's phone; `None` for calls made by the kernel.
    pub caller_phone: Option<u32>,
    /// Receiver-side id of the connection the call arrived on.
    pub conn: u64,
    /// The tasks that forwarded it, in order.
    pub forwarded_by: Vec<Peer>,
    /// Where in the sender's memory the six answer words of a synchronous
    /// call go.
    pub answer_ptr: Option<u64>,
    /// A data-read request: where the data goes in the sender.
    pub read: Option<ReadRequest>,
    /// A connection this call is making.
    pub connect: Option<ConnectDetail>,
    /// The answer goes nowhere (calls made by the kernel, dead callers).
    pub discard_answer: bool,
    /// A share-out offer whose area was destroyed: accepting it maps
    /// nothing.
    pub offer_revoked: bool,
}

/// The destination of a data-read request in the sender's memory.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// Address of the destination buffer.
    pub dst: u64,
    /// Its size in bytes.
    pub room: u64,
}

/// A connection a call in flight is making.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectDetail {
    /// `CONNECT_ME_TO`: the sender's reserved slot, and the connection id
    /// the current receiver gives the new connection.
    MeTo { phone: u32, conn: u64 },
    /// `CONNECT_TO_ME` or `CONNECTION_CLONE`: the receiver gets a phone to
    /// `target`, known there as `conn`, in slot `phone` once delivered.
    ToReceiver {
        target: Peer,
        conn: u64,
        phone: Option<u32>,
    },
}

/// A notification not yet fetched: method and five arguments.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub method: u64,
    pub args: [u64; 5],
}

/// What the kernel knows about one thread beyond `ThreadContext`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadDetail {
    /// The id the task sees for this thread.
    pub seen_id: u64,
    /// The thread's index within its task.
    pub index: u64,
    /// Nanoseconds from the checkpoint to the deadline of the system call
    /// in progress; `None` without a deadline.
    pub remaining_ns: Option<u64>,
    /// The thread was asleep in its system call when the task was
    /// stopped: a restore puts it back to sleep in the same wait.
    pub asleep: bool,
    /// The entry to run once the start function returns.
    pub then: Option<EntryCall>,
}

/// A function to call, with its arguments.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryCall {
    /// Index in the module's function index space.
    pub func_index: u32,
    pub args: Vec<Value>,
}
