//! The phone table and pending calls of a task (thesis 5.4.7, 5.4.8).

use super::common::Peer;
use serde::{Deserialize, Serialize};

/// One slot of the phone table; the slot's index is the phone's
/// sender-side id. `Free` slots are holes that restore must recreate.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneSlot {
    Free,
    Connected(Phone),
}

/// A connected phone.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// The task or service at the other end.
    pub peer: Peer,
    /// The id the callee knows this connection by.
    pub receiver_side_id: u64,
}

/// Which queue a pending call was found in.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CallQueue {
    /// Sent by this task (asynchronously), not answered yet.
    Sent,
    /// Sent by this task and forwarded by the receiver to a third task.
    Forwarded,
    /// An answer to this task's call, not yet delivered to its user space.
    UndeliveredAnswer,
    /// Received by this task, delivered to user space, not answered yet.
    Dispatched,
    /// Received by this task, not yet delivered to user space.
    Undispatched,
    /// A synchronous call sent by one of this task's threads, not answered.
    Synchronous,
}

/// One pending call or answer.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCall {
    pub queue: CallQueue,
    /// The id the sender knows the call by.
    pub sender_side_id: u64,
    /// The id the receiver knows the call by.
    pub receiver_side_id: u64,
    /// The sender's phone the call went through (sent, forwarded and
    /// synchronous calls).
    pub phone: Option<u32>,
    /// The other party: the receiver of a sent call, the sender of a
    /// received one.
    pub peer: Peer,
    /// Method (or return value, for an answer) and five arguments.
    pub words: [u64; 6],
    /// The sending thread (synchronous calls).
    pub thread: Option<u64>,
    /// Data travelling with the call, if any.
    pub buffer: Option<CallBuffer>,
}

/// A buffer attached to a call.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBuffer {
    pub kind: BufferKind,
    pub bytes: Vec<u8>,
}

/// What a call buffer carries.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufferKind {
    /// Data sent with a data-write call.
    DataWrite,
    /// Data answered to a data-read call, not yet copied.
    DataRead,
}
