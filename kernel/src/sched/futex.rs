//! Futexes: wait queues keyed by the backing page of the futex word.
//!
//! A [`FutexKey`] names the *backing* of a word (the identity of the memory
//! object, the page in it and the offset), not a task's address, so two
//! tasks that share the page meet in the same queue. The kernel keeps no
//! futex state besides the queues: the counter lives in user memory, and
//! `futex_wait` sleeps only while the word still holds the expected value,
//! so a restarted wait cannot miss a wakeup that changed the word.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::waitq::WaitQueue;
use crate::task::ThreadId;

/// Identity of a memory object that backs pages (a native task's memory,
/// later an address space's anonymous or shared memory object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackingId(pub u64);

/// The identity of a futex word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FutexKey {
    pub backing: BackingId,
    /// Page index within the backing object.
    pub page: u64,
    /// Byte offset within the page.
    pub offset: u32,
}

/// The queues of sleeping threads per key, oldest sleeper first (by wait
/// sequence number, `sched::waitq`).
#[derive(Debug, Default)]
pub struct FutexTable {
    queues: BTreeMap<FutexKey, WaitQueue>,
}

impl FutexTable {
    /// Puts `thread`, asleep with wait sequence number `seq`, in the queue
    /// of `key` at its place.
    pub fn enqueue(&mut self, key: FutexKey, seq: u64, thread: ThreadId) {
        self.queues.entry(key).or_default().insert(seq, thread);
    }

    /// Removes `thread` (asleep with `seq`) from the queue of `key`;
    /// whether it was there.
    pub fn remove(&mut self, key: FutexKey, seq: u64, thread: ThreadId) -> bool {
        let Some(q) = self.queues.get_mut(&key) else {
            return false;
        };
        let removed = q.remove(seq, thread);
        if q.is_empty() {
            self.queues.remove(&key);
        }
        removed
    }

    /// Takes up to `n` sleepers of `key`, oldest first.
    pub fn take(&mut self, key: FutexKey, n: u64) -> Vec<ThreadId> {
        let Some(q) = self.queues.get_mut(&key) else {
            return Vec::new();
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let woken = q.take(n).into_iter().map(|(_, t)| t).collect();
        if q.is_empty() {
            self.queues.remove(&key);
        }
        woken
    }

    /// The sleepers of `key` with their wait sequence numbers, oldest
    /// first.
    pub fn sleepers(&self, key: FutexKey) -> Vec<(u64, ThreadId)> {
        self.queues
            .get(&key)
            .map_or_else(Vec::new, |q| q.iter().collect())
    }

    /// Number of sleepers on `key`.
    pub fn waiters(&self, key: FutexKey) -> usize {
        self.queues.get(&key).map_or(0, WaitQueue::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_per_key() {
        let k1 = FutexKey {
            backing: BackingId(1),
            page: 0,
            offset: 0,
        };
        let k2 = FutexKey { offset: 4, ..k1 };
        let mut t = FutexTable::default();
        // Thread 3 went to sleep first, then 2, then 1.
        for i in 1..=3 {
            t.enqueue(k1, 10 - i, ThreadId(i));
        }
        t.enqueue(k2, 20, ThreadId(9));
        assert!(t.remove(k1, 8, ThreadId(2)));
        assert!(!t.remove(k1, 8, ThreadId(2)));
        assert_eq!(t.take(k1, 5), vec![ThreadId(3), ThreadId(1)]);
        assert_eq!(t.waiters(k1), 0);
        assert_eq!(t.take(k2, 0), vec![]);
        assert_eq!(t.waiters(k2), 1);
    }
}
