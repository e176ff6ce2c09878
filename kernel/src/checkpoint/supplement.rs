//! The kernel supplement: the part of a task's kernel-side state that the
//! format 1.0 task record has no field for.
//!
//! Format 1.0 cannot grow a record by a field within its major version
//! (`snapfmt/FORMAT.md`, "Growing the format"), but it lets a minor give
//! meaning to an entry of the manifest's `options.extra` map. The kernel
//! stores one entry per checkpointed task, key
//! [`extra_key`]`(task id)` = `kernel.task.<task id>`, value the lowercase
//! hex of the postcard encoding of [`TaskSupplement`] (whose first field is
//! its own version, [`SUPPLEMENT_VERSION`]). Everything the record *can*
//! say is said by the record (threads with their execution state, phones,
//! pending calls with buffers, areas with their sharing, the id view); the
//! supplement adds only:
//!
//! - the task's id counters (sender-side call ids, receiver-side call ids,
//!   connection ids), so ids continue exactly where they were;
//! - phone slots whose state a `PhoneSlot` cannot express (reserved by a
//!   connection request in flight, slammed by the callee);
//! - per pending call (parallel to `TaskRecord::calls`): both parties, the
//!   connection it arrived on, the original sender's phone, the forwarders,
//!   where a synchronous answer goes, a data-read request's destination,
//!   a connection being made, and whether the answer is discarded;
//! - notifications not yet fetched;
//! - per thread (parallel to `TaskRecord::threads`): the id the task sees
//!   for it, its index, the time left to the deadline of its system call,
//!   whether it was asleep in that call, and the entry still to run after
//!   the start function.

use serde::{Deserialize, Serialize};
use snapfmt::Peer;
use snapfmt::exec::Value;

use crate::task::IdCounters;

/// Version of [`TaskSupplement`]'s layout.
pub const SUPPLEMENT_VERSION: u32 = 1;

/// The `options.extra` key of a task's supplement.
pub fn extra_key(task_id: u64) -> String {
    format!("kernel.task.{task_id}")
}

/// Kernel-side task state beyond the 1.0 task record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSupplement {
    /// [`SUPPLEMENT_VERSION`].
    pub version: u32,
    pub counters: IdCounters,
    /// Slots (by index) whose state is more than free or connected.
    pub phones: Vec<(u32, PhoneState)>,
    /// One entry per `TaskRecord::calls` entry, same order.
    pub calls: Vec<CallDetail>,
    /// Undelivered notifications: method and five arguments.
    pub notifications: Vec<(u64, [u64; 5])>,
    /// One entry per `TaskRecord::threads` entry, same order.
    pub threads: Vec<ThreadDetail>,
}

/// A phone slot's state beyond the record's `PhoneSlot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneState {
    /// Reserved by a CONNECT_ME_TO in flight (recorded as `Free`).
    Connecting,
    /// The callee hung up (recorded as `Connected`): calls fail with
    /// EHANGUP until the owner hangs up too.
    Slammed,
}

/// What the kernel knows about one pending call beyond `PendingCall`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallDetail {
    /// A call (any queue but `UndeliveredAnswer`).
    Call {
        /// The original sender (who gets the answer).
        caller: Peer,
        /// The task holding the call now.
        receiver: Peer,
        /// The sender's phone; `None` for calls made by the kernel.
        caller_phone: Option<u32>,
        /// Receiver-side id of the connection it arrived on.
        conn: u64,
        /// Tasks that forwarded it, in order.
        forwarded_by: Vec<Peer>,
        /// Where the six answer words of a synchronous call go.
        answer_ptr: Option<u64>,
        /// A data-read request: destination and room in the sender.
        read: Option<(u64, u64)>,
        /// A connection being made by this call.
        connect: Option<ConnectDetail>,
        /// The answer goes nowhere (kernel-made calls, dead callers).
        discard_answer: bool,
        /// A share-out offer whose area was destroyed (`as_area_destroy`):
        /// accepting it maps nothing.
        #[serde(default)]
        offer_revoked: bool,
    },
    /// An undelivered answer (nothing beyond the record).
    Answer,
}

/// A connection a call in flight is making.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectDetail {
    /// CONNECT_ME_TO: the sender's reserved slot and the connection id the
    /// current receiver gives it.
    MeTo { phone: u32, conn: u64 },
    /// CONNECT_TO_ME / CONNECTION_CLONE: the receiver gets a phone to
    /// `target`, known there as `conn`, in slot `phone` once delivered.
    ToReceiver {
        target: Peer,
        conn: u64,
        phone: Option<u32>,
    },
}

/// What the kernel knows about one thread beyond `ThreadContext`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadDetail {
    /// The id the thread's task sees for it (`thread_id`).
    pub seen_id: u64,
    /// Index of the thread within its task.
    pub index: u64,
    /// Nanoseconds from the checkpoint to the deadline of the system call
    /// in progress; `None` without a deadline.
    pub remaining_ns: Option<u64>,
    /// Function index and arguments of the entry to run once the start
    /// function returns.
    pub then: Option<(u32, Vec<Value>)>,
    /// The thread was asleep in its system call when the task was stopped
    /// (not woken and waiting to reissue it): a restore puts it back to
    /// sleep in the same wait instead of letting it run.
    pub blocked: bool,
}

/// Why a supplement cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SupplementError {
    #[error("manifest options.extra has no {0:?}")]
    Missing(String),
    #[error("{key}: not lowercase hex")]
    Hex { key: String },
    #[error("{key}: {reason}")]
    Decode { key: String, reason: String },
    #[error("{key}: supplement version {found}, this kernel reads {SUPPLEMENT_VERSION}")]
    Version { key: String, found: u32 },
}

impl TaskSupplement {
    /// The `options.extra` value. (Encoding into a vector cannot fail for
    /// these plain types; an empty value would be refused on decode.)
    pub fn encode(&self) -> String {
        hex::encode(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Reads and checks the supplement of `task_id` from an extra map.
    pub fn decode(
        extra: &std::collections::BTreeMap<String, String>,
        task_id: u64,
    ) -> Result<TaskSupplement, SupplementError> {
        let key = extra_key(task_id);
        let text = extra
            .get(&key)
            .ok_or_else(|| SupplementError::Missing(key.clone()))?;
        let bytes = hex::decode(text).map_err(|_| SupplementError::Hex { key: key.clone() })?;
        // The version leads, so another layout is named as such.
        if let Ok((found, _)) = postcard::take_from_bytes::<u32>(&bytes)
            && found != SUPPLEMENT_VERSION
        {
            return Err(SupplementError::Version { key, found });
        }
        let s: TaskSupplement =
            postcard::from_bytes(&bytes).map_err(|e| SupplementError::Decode {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        if s.version != SUPPLEMENT_VERSION {
            return Err(SupplementError::Version {
                key,
                found: s.version,
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample() -> TaskSupplement {
        TaskSupplement {
            version: SUPPLEMENT_VERSION,
            counters: IdCounters::default(),
            phones: vec![(2, PhoneState::Slammed)],
            calls: vec![CallDetail::Answer],
            notifications: vec![(7, [1, 2, 3, 4, 5])],
            threads: vec![ThreadDetail {
                seen_id: 4,
                index: 0,
                remaining_ns: Some(9),
                then: None,
                blocked: true,
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_values_by_key() {
        let mut extra = BTreeMap::new();
        extra.insert(extra_key(3), sample().encode());
        assert_eq!(TaskSupplement::decode(&extra, 3), Ok(sample()));
        assert!(matches!(
            TaskSupplement::decode(&extra, 4),
            Err(SupplementError::Missing(k)) if k == "kernel.task.4"
        ));
        extra.insert(extra_key(3), "zz".into());
        assert!(matches!(
            TaskSupplement::decode(&extra, 3),
            Err(SupplementError::Hex { .. })
        ));
        let mut v2 = sample();
        v2.version = 2;
        extra.insert(extra_key(3), v2.encode());
        assert!(matches!(
            TaskSupplement::decode(&extra, 3),
            Err(SupplementError::Version { found: 2, .. })
        ));
        let enc = sample().encode();
        extra.insert(extra_key(3), enc[..enc.len() - 4].to_string());
        assert!(matches!(
            TaskSupplement::decode(&extra, 3),
            Err(SupplementError::Decode { .. })
        ));
    }
}
