//! A task's answerbox: the queues of thesis Fig. 3.1.
//!
//! - `calls`: sent to this task, not yet fetched by its user space;
//! - `dispatched`: fetched, not yet answered (by receiver-side id);
//! - `answers`: answers to this task's asynchronous calls, not yet fetched;
//! - `notifications`: kernel events, fetched first;
//! - `waiters`: threads blocked in `ipc_wait`, first come first served (by
//!   wait sequence number, so the order survives stops and checkpoints).

use std::collections::{BTreeMap, VecDeque};

use crate::sched::waitq::WaitQueue;

use super::call::{Answer, CallKey, Notification, RxCallId};

#[derive(Debug, Default)]
pub struct Answerbox {
    pub calls: VecDeque<CallKey>,
    pub dispatched: BTreeMap<RxCallId, CallKey>,
    pub answers: VecDeque<Answer>,
    pub notifications: VecDeque<Notification>,
    pub waiters: WaitQueue,
}

impl Answerbox {
    /// Whether `ipc_wait` would return something now.
    pub fn has_event(&self) -> bool {
        !self.notifications.is_empty() || !self.answers.is_empty() || !self.calls.is_empty()
    }
}
