//! The kernel supplement of 1.1 images: the kernel-side task state that
//! the task record has no field for, as the 1.1 kernel stored it.
//!
//! Since format 1.2 this state is a record of the format, the
//! [`snapfmt::KernelTaskState`] in `tasks/<task id>.spk`
//! (`snapfmt/FORMAT.md` section 5.1), which [`capture`](super::capture)
//! builds and [`Capture::write`](super::Capture::write) writes. Kernels of
//! format 1.1 stored it instead as an entry of the manifest's
//! `options.extra`: key [`extra_key`]`(task id)` = `kernel.task.<task id>`,
//! value the lowercase hex of the postcard encoding of [`TaskSupplement`]
//! (whose first field is its own version, [`SUPPLEMENT_VERSION`]). This
//! module keeps that layout and its decoder so that [`restore`](super::restore)
//! still reads images written by those kernels: it converts a supplement
//! into the record ([`TaskSupplement::into_state`]). Nothing writes the
//! entry any more except [`Capture::write_v1_1_supplements`](super::Capture::write_v1_1_supplements),
//! kept to test that path.

use serde::{Deserialize, Serialize};
use snapfmt::exec::Value;
use snapfmt::{KernelTaskState, Peer};

use crate::task::IdCounters;

/// Version of [`TaskSupplement`]'s layout.
pub const SUPPLEMENT_VERSION: u32 = 1;

/// The `options.extra` key of a task's supplement.
pub fn extra_key(task_id: u64) -> String {
    format!("kernel.task.{task_id}")
}

/// The kernel state of `task_id` as a 1.1 kernel stored it in the
/// manifest's `options.extra`, as a record.
pub fn state_from_extra(
    extra: &std::collections::BTreeMap<String, String>,
    task_id: u64,
) -> Result<KernelTaskState, SupplementError> {
    TaskSupplement::decode(extra, task_id).map(|s| s.into_state(task_id))
}

/// Kernel-side task state beyond the task record, in the 1.1 layout.
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
    #[error("no kernel state record, and manifest options.extra has no {0:?}")]
    Missing(String),
    #[error("{key}: not lowercase hex")]
    Hex { key: String },
    #[error("{key}: {reason}")]
    Decode { key: String, reason: String },
    #[error("{key}: supplement version {found}, this kernel reads {SUPPLEMENT_VERSION}")]
    Version { key: String, found: u32 },
}

impl TaskSupplement {
    /// The supplement of a kernel state record (the 1.1 layout of the same
    /// content), for writing images as a 1.1 kernel did.
    pub fn of_state(k: &KernelTaskState) -> TaskSupplement {
        TaskSupplement {
            version: SUPPLEMENT_VERSION,
            counters: k.counters,
            phones: k
                .phones
                .iter()
                .map(|p| {
                    let state = match p.state {
                        snapfmt::PhoneState::Connecting => PhoneState::Connecting,
                        snapfmt::PhoneState::Slammed => PhoneState::Slammed,
                    };
                    (p.slot, state)
                })
                .collect(),
            calls: k
                .calls
                .iter()
                .map(|c| match c {
                    snapfmt::CallDetail::Answer => CallDetail::Answer,
                    snapfmt::CallDetail::Call(p) => CallDetail::Call {
                        caller: p.caller.clone(),
                        receiver: p.receiver.clone(),
                        caller_phone: p.caller_phone,
                        conn: p.conn,
                        forwarded_by: p.forwarded_by.clone(),
                        answer_ptr: p.answer_ptr,
                        read: p.read.map(|r| (r.dst, r.room)),
                        connect: p.connect.as_ref().map(|c| match c {
                            snapfmt::ConnectDetail::MeTo { phone, conn } => ConnectDetail::MeTo {
                                phone: *phone,
                                conn: *conn,
                            },
                            snapfmt::ConnectDetail::ToReceiver {
                                target,
                                conn,
                                phone,
                            } => ConnectDetail::ToReceiver {
                                target: target.clone(),
                                conn: *conn,
                                phone: *phone,
                            },
                        }),
                        discard_answer: p.discard_answer,
                        offer_revoked: p.offer_revoked,
                    },
                })
                .collect(),
            notifications: k.notifications.iter().map(|n| (n.method, n.args)).collect(),
            threads: k
                .threads
                .iter()
                .map(|t| ThreadDetail {
                    seen_id: t.seen_id,
                    index: t.index,
                    remaining_ns: t.remaining_ns,
                    then: t.then.as_ref().map(|e| (e.func_index, e.args.clone())),
                    blocked: t.asleep,
                })
                .collect(),
        }
    }

    /// The kernel state record of task `task_id` this supplement stands for.
    pub fn into_state(self, task_id: u64) -> KernelTaskState {
        KernelTaskState {
            task_id,
            counters: self.counters,
            phones: self
                .phones
                .into_iter()
                .map(|(slot, state)| snapfmt::SpecialPhone {
                    slot,
                    state: match state {
                        PhoneState::Connecting => snapfmt::PhoneState::Connecting,
                        PhoneState::Slammed => snapfmt::PhoneState::Slammed,
                    },
                })
                .collect(),
            calls: self
                .calls
                .into_iter()
                .map(|c| match c {
                    CallDetail::Answer => snapfmt::CallDetail::Answer,
                    CallDetail::Call {
                        caller,
                        receiver,
                        caller_phone,
                        conn,
                        forwarded_by,
                        answer_ptr,
                        read,
                        connect,
                        discard_answer,
                        offer_revoked,
                    } => snapfmt::CallDetail::Call(snapfmt::CallParties {
                        caller,
                        receiver,
                        caller_phone,
                        conn,
                        forwarded_by,
                        answer_ptr,
                        read: read.map(|(dst, room)| snapfmt::ReadRequest { dst, room }),
                        connect: connect.map(|c| match c {
                            ConnectDetail::MeTo { phone, conn } => {
                                snapfmt::ConnectDetail::MeTo { phone, conn }
                            }
                            ConnectDetail::ToReceiver {
                                target,
                                conn,
                                phone,
                            } => snapfmt::ConnectDetail::ToReceiver {
                                target,
                                conn,
                                phone,
                            },
                        }),
                        discard_answer,
                        offer_revoked,
                    }),
                })
                .collect(),
            notifications: self
                .notifications
                .into_iter()
                .map(|(method, args)| snapfmt::Notification { method, args })
                .collect(),
            threads: self
                .threads
                .into_iter()
                .map(|t| snapfmt::ThreadDetail {
                    seen_id: t.seen_id,
                    index: t.index,
                    remaining_ns: t.remaining_ns,
                    asleep: t.blocked,
                    then: t
                        .then
                        .map(|(func_index, args)| snapfmt::EntryCall { func_index, args }),
                })
                .collect(),
        }
    }

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
    fn converts_to_the_record_and_back() {
        let mut s = sample();
        s.calls = vec![
            CallDetail::Answer,
            CallDetail::Call {
                caller: Peer::Task(1),
                receiver: Peer::Service("x".into()),
                caller_phone: Some(3),
                conn: 4,
                forwarded_by: vec![Peer::Outside(5)],
                answer_ptr: Some(6),
                read: Some((7, 8)),
                connect: Some(ConnectDetail::ToReceiver {
                    target: Peer::Task(2),
                    conn: 9,
                    phone: None,
                }),
                discard_answer: true,
                offer_revoked: true,
            },
        ];
        s.threads[0].then = Some((3, vec![Value::I64(1)]));
        let k = s.clone().into_state(3);
        assert_eq!(k.task_id, 3);
        assert!(k.threads[0].asleep);
        assert_eq!(TaskSupplement::of_state(&k), s);
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
