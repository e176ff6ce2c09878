//! A task's answerbox: the queues of thesis Fig. 3.1.
//!
//! - `calls`: sent to this task, not yet fetched by its user space;
//! - `dispatched`: fetched, not yet answered (by receiver-side id);
//! - `answers`: answers to this task's asynchronous calls, not yet fetched;
//! - `notifications`: kernel events, fetched first;
//! - `waiters`: threads blocked in `ipc_wait`, first come first served.

use std::collections::{BTreeMap, VecDeque};

use super::call::{Answer, CallKey, Notification, RxCallId};
use crate::task::ThreadId;

#[derive(Debug, Default)]
pub struct Answerbox {
    pub calls: VecDeque<CallKey>,
    pub dispatched: BTreeMap<RxCallId, CallKey>,
    pub answers: VecDeque<Answer>,
    pub notifications: VecDeque<Notification>,
    pub waiters: VecDeque<ThreadId>,
}

impl Answerbox {
    /// Whether `ipc_wait` would return something now.
    pub fn has_event(&self) -> bool {
        !self.notifications.is_empty() || !self.answers.is_empty() || !self.calls.is_empty()
    }
}
