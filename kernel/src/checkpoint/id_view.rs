//! The per-task id view: which task and thread ids a task sees.
//!
//! The kernel hands ids to a task in three places: `task_id`, `thread_id`
//! and the sender word of a call event from `ipc_wait`. A task restored
//! from an image runs under new kernel ids but must keep seeing the ids it
//! saw before. Every task therefore has an [`IdView`]: a translation
//! between the ids it sees and the kernel's real ids, separately for tasks
//! and threads.
//!
//! - A task that was never restored has an empty view: it sees real ids
//!   (identity), but every task id the kernel shows it is remembered, so
//!   that a checkpoint can record every task id the task has learned from
//!   the kernel (and what it refers to).
//! - At restore the view is rebuilt from the image: each seen id is bound to
//!   the new real id of what it referred to (a task of the checkpoint set,
//!   a cooperative service by its persistent id, or a task outside the set).
//! - A real id that collides with an id the task already sees for something
//!   else (after a reboot the kernel starts counting again) is shown under
//!   an alias from `ALIAS_BASE` on, which no kernel counter reaches.
//!
//! Ids a task passes to another task inside call arguments are plain words
//! and are not translated; tasks of one checkpoint set agree on each other's
//! ids because each member's view binds the same seen id to the same task.

use std::collections::BTreeMap;

use crate::kernel::Kernel;
use crate::task::{TaskId, ThreadId};

/// First alias id (ids from kernel counters stay far below).
pub const ALIAS_BASE: u64 = 1 << 62;

/// A bijection between seen and real ids of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation<R: Ord + Copy> {
    seen_to_real: BTreeMap<u64, R>,
    real_to_seen: BTreeMap<R, u64>,
}

impl<R: Ord + Copy> Default for Translation<R> {
    fn default() -> Self {
        Translation {
            seen_to_real: BTreeMap::new(),
            real_to_seen: BTreeMap::new(),
        }
    }
}

impl<R: Ord + Copy> Translation<R> {
    /// Binds `seen` to `real`. Returns false (changing nothing) if either
    /// side is bound to something else already.
    pub fn bind(&mut self, seen: u64, real: R) -> bool {
        match (self.seen_to_real.get(&seen), self.real_to_seen.get(&real)) {
            (None, None) => {
                self.seen_to_real.insert(seen, real);
                self.real_to_seen.insert(real, seen);
                true
            }
            (Some(r), Some(s)) => *r == real && *s == seen,
            _ => false,
        }
    }

    /// The id the task sees for `real` (`identity` is `real` as a number),
    /// binding it (under an alias if that number is taken) on first sight.
    pub fn show(&mut self, real: R, identity: u64) -> u64 {
        if let Some(s) = self.real_to_seen.get(&real) {
            return *s;
        }
        let seen = if self.seen_to_real.contains_key(&identity) {
            let next = self
                .seen_to_real
                .range(ALIAS_BASE..)
                .next_back()
                .map_or(ALIAS_BASE, |(s, _)| s + 1);
            next.max(ALIAS_BASE)
        } else {
            identity
        };
        self.bind(seen, real);
        seen
    }

    /// The id the task would see for `real` without binding anything.
    pub fn peek(&self, real: R, identity: u64) -> u64 {
        match self.real_to_seen.get(&real) {
            Some(s) => *s,
            None if !self.seen_to_real.contains_key(&identity) => identity,
            // Would get an alias; report the next free one.
            None => self
                .seen_to_real
                .range(ALIAS_BASE..)
                .next_back()
                .map_or(ALIAS_BASE, |(s, _)| s + 1),
        }
    }

    /// The real id behind a seen one, if bound.
    pub fn real(&self, seen: u64) -> Option<R> {
        self.seen_to_real.get(&seen).copied()
    }

    /// Every binding, by seen id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, R)> + '_ {
        self.seen_to_real.iter().map(|(s, r)| (*s, *r))
    }

    /// Drops the binding of `real`, if any.
    pub fn unbind_real(&mut self, real: R) {
        if let Some(s) = self.real_to_seen.remove(&real) {
            self.seen_to_real.remove(&s);
        }
    }
}

/// The ids one task sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdView {
    pub tasks: Translation<TaskId>,
    pub threads: Translation<ThreadId>,
    /// For a restored task, the thread id domain of its checkpoint set:
    /// the counter its new threads take their seen ids from, continuing
    /// the thread counter of the kernel the image was taken in (shared by
    /// every task restored from one image, as that kernel's counter was).
    /// `None`: new threads are seen under their real ids.
    pub domain: Option<u64>,
}

impl Kernel {
    /// The id `viewer` sees for task `real` (remembered in its view).
    pub fn task_id_seen_by(&mut self, viewer: TaskId, real: TaskId) -> u64 {
        match self.tasks.get_mut(&viewer) {
            Some(t) => t.id_view.tasks.show(real, real.0),
            None => real.0,
        }
    }

    /// The id `viewer` would see for task `real`, without remembering it.
    pub fn peek_task_id_seen_by(&self, viewer: TaskId, real: TaskId) -> u64 {
        match self.tasks.get(&viewer) {
            Some(t) => t.id_view.tasks.peek(real, real.0),
            None => real.0,
        }
    }

    /// The task `viewer` means by the id `seen`: its binding, or the task
    /// with that real id.
    pub fn task_meant_by(&self, viewer: TaskId, seen: u64) -> TaskId {
        self.tasks
            .get(&viewer)
            .and_then(|t| t.id_view.tasks.real(seen))
            .unwrap_or(TaskId(seen))
    }

    /// The id the threads of `thread`'s task see for it.
    pub fn thread_id_seen(&mut self, thread: ThreadId) -> u64 {
        let Some(task) = self.threads.get(&thread).map(|t| t.task) else {
            return thread.0;
        };
        match self.tasks.get_mut(&task) {
            Some(t) => t.id_view.threads.show(thread, thread.0),
            None => thread.0,
        }
    }

    /// [`Kernel::thread_id_seen`] without remembering anything.
    pub fn peek_thread_id_seen(&self, thread: ThreadId) -> u64 {
        let view = self
            .threads
            .get(&thread)
            .and_then(|th| self.tasks.get(&th.task));
        match view {
            Some(t) => t.id_view.threads.peek(thread, thread.0),
            None => thread.0,
        }
    }

    /// The id `task` sees for its new thread `real` (`thread_create`'s
    /// result): the next id of its thread id domain if it has one (so ids
    /// go on after a restore as they would have in the kernel the image
    /// was taken in), else its real id (under an alias if the task sees
    /// that number for another thread).
    pub fn new_thread_id_seen(&mut self, task: TaskId, real: ThreadId) -> u64 {
        let Some(t) = self.tasks.get_mut(&task) else {
            return real.0;
        };
        if let Some(d) = t.id_view.domain
            && let Some(next) = self.id_domains.get_mut(&d)
        {
            let seen = *next;
            if t.id_view.threads.bind(seen, real) {
                *next = next.saturating_add(1);
                return seen;
            }
        }
        t.id_view.threads.show(real, real.0)
    }

    /// The thread of `task` it means by the id `seen`.
    pub fn thread_meant_by(&self, task: TaskId, seen: u64) -> ThreadId {
        self.tasks
            .get(&task)
            .and_then(|t| t.id_view.threads.real(seen))
            .unwrap_or(ThreadId(seen))
    }

    /// A new thread id domain whose next seen id is `next`.
    pub(crate) fn new_id_domain(&mut self, next: u64) -> u64 {
        let d = self.id_domains.last_key_value().map_or(1, |(d, _)| d + 1);
        self.id_domains.insert(d, next);
        d
    }

    /// The next seen id a new thread of `task` gets (what a checkpoint
    /// records for the set, so that a restore continues it).
    pub fn next_thread_id_seen(&self, task: TaskId) -> u64 {
        self.tasks
            .get(&task)
            .and_then(|t| t.id_view.domain)
            .and_then(|d| self.id_domains.get(&d).copied())
            .unwrap_or(self.next_thread)
    }

    /// The view of `task`.
    pub fn id_view(&self, task: TaskId) -> Option<&IdView> {
        self.tasks.get(&task).map(|t| &t.id_view)
    }

    /// Replaces the view of `task` (restore).
    pub(crate) fn set_id_view(&mut self, task: TaskId, view: IdView) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.id_view = view;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_until_restored_then_bound_and_aliased() {
        let mut t: Translation<TaskId> = Translation::default();
        assert_eq!(t.show(TaskId(3), 3), 3);
        assert_eq!(t.real(3), Some(TaskId(3)));
        // Restored view: seen 5 is task 9; the real task 5 gets an alias.
        let mut r: Translation<TaskId> = Translation::default();
        assert!(r.bind(5, TaskId(9)));
        assert!(!r.bind(5, TaskId(10)));
        assert_eq!(r.show(TaskId(9), 9), 5);
        assert_eq!(r.peek(TaskId(5), 5), ALIAS_BASE);
        assert_eq!(r.show(TaskId(5), 5), ALIAS_BASE);
        assert_eq!(r.show(TaskId(6), 6), 6);
        assert!(r.bind(ALIAS_BASE + 7, TaskId(11)));
        assert_eq!(r.show(TaskId(12), 5), ALIAS_BASE + 8);
        assert_eq!(r.real(ALIAS_BASE), Some(TaskId(5)));
    }
}
