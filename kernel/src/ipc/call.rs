//! Calls, answers and notifications, and the ids that name them.
//!
//! A call is six words (method + five arguments). It is named by the
//! sender with a sender-side [`CallId`] (from the sender's counter) and by
//! its current receiver with a receiver-side [`RxCallId`] (from the
//! receiver's counter, renewed when the call is forwarded). The kernel
//! itself files calls under a [`CallKey`] from a global counter; the key is
//! never shown to tasks.

use serde::{Deserialize, Serialize};

use crate::task::{TaskId, ThreadId};

/// Sender-side id of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId(pub u64);

/// Receiver-side id of a call (what the receiver answers or forwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RxCallId(pub u64);

/// Receiver-side id of a connection (a phone as its callee knows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// A phone slot of a task, numbered from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PhoneId(pub u32);

/// Kernel-internal name of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallKey(pub u64);

/// Data attached to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallBuffer {
    None,
    /// IPC_M_DATA_WRITE: the bytes, copied from the sender at send time.
    Write(Vec<u8>),
    /// IPC_M_DATA_READ: where in the sender the answer's bytes go.
    Read {
        dst: u64,
        room: u64,
    },
}

/// A phone the kernel sets up as part of a connection method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectInfo {
    /// CONNECT_ME_TO: the sender's reserved slot; `conn` is the receiver-side
    /// id the current receiver would give the connection.
    MeTo { phone: PhoneId, conn: ConnId },
    /// CONNECT_TO_ME / CONNECTION_CLONE: the receiver gets a phone to
    /// `target` (id `conn` there); `phone` is set once delivered.
    ToReceiver {
        target: TaskId,
        conn: ConnId,
        phone: Option<PhoneId>,
    },
}

/// The thread that waits for the answer of a synchronous call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncWaiter {
    pub thread: ThreadId,
    /// Where in the caller the answer's six words go.
    pub answer_ptr: u64,
}

/// An unanswered call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub key: CallKey,
    pub method: u64,
    pub args: [u64; 5],
    /// The original sender (who gets the answer).
    pub caller: TaskId,
    /// The sender's phone it was sent through; `None` for calls the kernel
    /// sends on a task's behalf (IPC_M_PHONE_HUNGUP).
    pub caller_phone: Option<PhoneId>,
    pub call_id: CallId,
    /// Current receiver and its id for the call.
    pub receiver: TaskId,
    pub rx_id: RxCallId,
    /// Receiver-side id of the connection it arrived on.
    pub conn: ConnId,
    /// Tasks that forwarded it, in order.
    pub forwarded_by: Vec<TaskId>,
    /// Whether the receiver's user space has fetched it.
    pub dispatched: bool,
    pub sync: Option<SyncWaiter>,
    pub buffer: CallBuffer,
    pub connect: Option<ConnectInfo>,
    /// Answer goes nowhere (kernel-generated calls, dead callers).
    pub discard_answer: bool,
    /// IPC_M_SHARE_OUT only: the offered area was destroyed after the call
    /// was sent. The offer is bound to that area, not to its base, so an
    /// `EOK` answer fails on the caller's side (`ENOENT`) even if another
    /// area starts at the same base by then (`ipc::share`).
    #[serde(default)]
    pub offer_revoked: bool,
}

/// An answer waiting in the caller's answerbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub call_id: CallId,
    pub retval: u64,
    pub args: [u64; 5],
}

/// A kernel-to-task event that needs no answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub method: u64,
    pub args: [u64; 5],
}

/// What `ipc_wait` hands to a task, in its wire form of ten words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Call {
        rx_id: RxCallId,
        conn: ConnId,
        sender: TaskId,
        method: u64,
        args: [u64; 5],
    },
    Answer(Answer),
    Notification(Notification),
}

/// Size of an event record in bytes (ten little-endian u64 words).
pub const EVENT_BYTES: usize = 80;
/// Event kinds (word 0 of the record and `ipc_wait`'s result).
pub const EVENT_CALL: u64 = 1;
pub const EVENT_ANSWER: u64 = 2;
pub const EVENT_NOTIFICATION: u64 = 3;

impl Event {
    /// The ten words: kind, id, conn, sender, method/retval, five args.
    pub fn to_words(&self) -> [u64; 10] {
        let (kind, id, conn, sender, m, args) = match self {
            Event::Call {
                rx_id,
                conn,
                sender,
                method,
                args,
            } => (EVENT_CALL, rx_id.0, conn.0, sender.0, *method, *args),
            Event::Answer(a) => (EVENT_ANSWER, a.call_id.0, 0, 0, a.retval, a.args),
            Event::Notification(n) => (EVENT_NOTIFICATION, 0, 0, 0, n.method, n.args),
        };
        let mut w = [0u64; 10];
        w[..5].copy_from_slice(&[kind, id, conn, sender, m]);
        w[5..].copy_from_slice(&args);
        w
    }

    /// Decodes ten words; `None` for an unknown kind.
    pub fn from_words(w: &[u64; 10]) -> Option<Event> {
        let mut args = [0u64; 5];
        args.copy_from_slice(&w[5..]);
        match w[0] {
            EVENT_CALL => Some(Event::Call {
                rx_id: RxCallId(w[1]),
                conn: ConnId(w[2]),
                sender: TaskId(w[3]),
                method: w[4],
                args,
            }),
            EVENT_ANSWER => Some(Event::Answer(Answer {
                call_id: CallId(w[1]),
                retval: w[4],
                args,
            })),
            EVENT_NOTIFICATION => Some(Event::Notification(Notification { method: w[4], args })),
            _ => None,
        }
    }

    /// The record as bytes.
    pub fn to_bytes(&self) -> [u8; EVENT_BYTES] {
        let mut b = [0u8; EVENT_BYTES];
        for (i, w) in self.to_words().iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// Decodes a record.
    pub fn from_bytes(b: &[u8; EVENT_BYTES]) -> Option<Event> {
        let mut w = [0u64; 10];
        for (i, chunk) in b.chunks_exact(8).enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(chunk);
            w[i] = u64::from_le_bytes(x);
        }
        Event::from_words(&w)
    }
}
