//! Futexes: wait queues keyed by the backing page of the futex word.
//!
//! A [`FutexKey`] names the *backing* of a word (the identity of the memory
//! object, the page in it and the offset), not a task's address, so two
//! tasks that share the page meet in the same queue. The kernel keeps no
//! futex state besides the queues: the counter lives in user memory, and
//! `futex_wait` sleeps only while the word still holds the expected value,
//! so a restarted wait cannot miss a wakeup that changed the word.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

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

/// The queues of sleeping threads, FIFO per key.
#[derive(Debug, Default)]
pub struct FutexTable {
    queues: BTreeMap<FutexKey, VecDeque<ThreadId>>,
}

impl FutexTable {
    pub fn enqueue(&mut self, key: FutexKey, thread: ThreadId) {
        self.queues.entry(key).or_default().push_back(thread);
    }

    /// Removes `thread` from the queue of `key`; whether it was there.
    pub fn remove(&mut self, key: FutexKey, thread: ThreadId) -> bool {
        let Some(q) = self.queues.get_mut(&key) else {
            return false;
        };
        let before = q.len();
        q.retain(|t| *t != thread);
        let removed = q.len() != before;
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
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(q.len());
        let woken: Vec<ThreadId> = q.drain(..n).collect();
        if q.is_empty() {
            self.queues.remove(&key);
        }
        woken
    }

    /// The sleepers of `key`, oldest first.
    pub fn sleepers(&self, key: FutexKey) -> Vec<ThreadId> {
        self.queues
            .get(&key)
            .map_or_else(Vec::new, |q| q.iter().copied().collect())
    }

    /// Number of sleepers on `key`.
    pub fn waiters(&self, key: FutexKey) -> usize {
        self.queues.get(&key).map_or(0, VecDeque::len)
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
        for i in 1..=3 {
            t.enqueue(k1, ThreadId(i));
        }
        t.enqueue(k2, ThreadId(9));
        assert!(t.remove(k1, ThreadId(2)));
        assert!(!t.remove(k1, ThreadId(2)));
        assert_eq!(t.take(k1, 5), vec![ThreadId(1), ThreadId(3)]);
        assert_eq!(t.waiters(k1), 0);
        assert_eq!(t.take(k2, 0), vec![]);
        assert_eq!(t.waiters(k2), 1);
    }
}
