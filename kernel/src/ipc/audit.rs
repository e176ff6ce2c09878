//! The exactly-once ledger and the kernel's invariant checker.
//!
//! With auditing on, the kernel notes every call it creates and every
//! answer it gives. [`Kernel::check_invariants`] then verifies that no call
//! was answered twice, that no call vanished unanswered, that every live
//! call sits in exactly one queue, that `out_calls` lists exactly the live
//! calls of each sender, and that phones and waiting threads point at
//! things that exist. Debug builds run it after every system call.

use std::collections::{BTreeMap, BTreeSet};

use super::call::CallKey;
use super::phone::Phone;
use crate::kernel::{Kernel, KernelError};
use crate::syscall::WaitReason;
use crate::task::ThreadState;

/// How often each call was answered.
#[derive(Debug, Default)]
pub struct Audit {
    answers: BTreeMap<CallKey, u32>,
}

impl Audit {
    pub(crate) fn created(&mut self, key: CallKey) {
        self.answers.insert(key, 0);
    }

    pub(crate) fn answered(&mut self, key: CallKey) {
        let n = self.answers.entry(key).or_insert(0);
        *n += 1;
        debug_assert!(*n == 1, "call {key:?} answered {n} times");
    }

    /// Calls created so far.
    pub fn created_count(&self) -> usize {
        self.answers.len()
    }
}

impl Kernel {
    /// Checks the kernel's IPC invariants; returns every violation found.
    pub fn check_invariants(&self) -> Result<(), KernelError> {
        let mut v = Vec::new();
        if let Some(a) = &self.audit {
            for (key, n) in &a.answers {
                if *n > 1 {
                    v.push(format!("{key:?} answered {n} times"));
                }
                if *n == 0 && !self.calls.contains_key(key) {
                    v.push(format!("{key:?} vanished unanswered"));
                }
                if *n == 1 && self.calls.contains_key(key) {
                    v.push(format!("{key:?} answered but still live"));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (tid, t) in &self.tasks {
            for key in &t.answerbox.calls {
                if !seen.insert(*key) {
                    v.push(format!("{key:?} queued twice"));
                }
                match self.calls.get(key) {
                    Some(c) if c.receiver == *tid && !c.dispatched => {}
                    _ => v.push(format!(
                        "{key:?} in calls of {tid:?} but not undelivered there"
                    )),
                }
            }
            for (rx, key) in &t.answerbox.dispatched {
                if !seen.insert(*key) {
                    v.push(format!("{key:?} queued twice"));
                }
                match self.calls.get(key) {
                    Some(c) if c.receiver == *tid && c.dispatched && c.rx_id == *rx => {}
                    _ => v.push(format!(
                        "{key:?} in dispatched of {tid:?} but not delivered there"
                    )),
                }
            }
            for (id, key) in &t.out_calls {
                match self.calls.get(key) {
                    Some(c) if c.caller == *tid && c.call_id == *id && !c.discard_answer => {}
                    _ => v.push(format!("out_calls of {tid:?} lists {id:?} wrongly")),
                }
            }
            for (pid, p) in t.phones.iter() {
                if let Phone::Connected { callee, .. } = p
                    && !self.tasks.contains_key(callee)
                {
                    v.push(format!(
                        "{tid:?} phone {pid:?} connected to dead {callee:?}"
                    ));
                }
            }
        }
        for (key, c) in &self.calls {
            if !seen.contains(key) {
                v.push(format!("live {key:?} is in no queue"));
            }
            if !c.discard_answer {
                let listed = self
                    .tasks
                    .get(&c.caller)
                    .and_then(|t| t.out_calls.get(&c.call_id))
                    == Some(key);
                if !listed {
                    v.push(format!(
                        "live {key:?} missing from out_calls of {:?}",
                        c.caller
                    ));
                }
            }
        }
        for th in self.threads.values() {
            if let ThreadState::Blocked(WaitReason::SyncAnswer(id)) = th.state {
                let pending = self
                    .tasks
                    .get(&th.task)
                    .is_some_and(|t| t.out_calls.contains_key(&id));
                if !pending || th.sys.active_sync_call != Some(id) {
                    v.push(format!("{:?} waits for {id:?} which is not pending", th.id));
                }
            }
            if th.state != ThreadState::Exited && !self.tasks.contains_key(&th.task) {
                v.push(format!("{:?} alive in dead {:?}", th.id, th.task));
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Invariants(v))
        }
    }

    /// Calls not answered yet (test helper).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls created since boot (0 when auditing is off).
    pub fn calls_created(&self) -> usize {
        self.audit.as_ref().map_or(0, Audit::created_count)
    }
}
