//! Wait queues ordered by when each thread went to sleep.
//!
//! Every thread that blocks gets a *wait sequence number* from a kernel
//! counter ([`Kernel`](crate::kernel::Kernel)'s `next_wait_seq`); a queue
//! keeps its sleepers by that number, so "first come, first served" is a
//! property of the numbers, not of the moment a thread was put back in.
//! A stop takes a sleeping thread out of its queue and a resume (or a
//! restore, which gives the set's sleepers new numbers in their old order)
//! puts it back at exactly its old place: the order of `ipc_wait` waiters
//! and futex sleepers survives stops and checkpoints (`kernel/ABI.md`,
//! "Order guarantees").

use std::collections::BTreeMap;

use crate::task::ThreadId;

/// Sleepers of one queue, oldest (lowest sequence number) first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitQueue {
    by_seq: BTreeMap<u64, ThreadId>,
}

impl WaitQueue {
    /// Puts `thread` in at its place for `seq`.
    pub fn insert(&mut self, seq: u64, thread: ThreadId) {
        self.by_seq.insert(seq, thread);
    }

    /// Takes `thread` (asleep with `seq`) out; whether it was there.
    pub fn remove(&mut self, seq: u64, thread: ThreadId) -> bool {
        if self.by_seq.get(&seq) == Some(&thread) {
            self.by_seq.remove(&seq);
            return true;
        }
        false
    }

    /// The oldest sleeper.
    pub fn front(&self) -> Option<ThreadId> {
        self.by_seq.first_key_value().map(|(_, t)| *t)
    }

    /// Takes up to `n` sleepers, oldest first.
    pub fn take(&mut self, n: usize) -> Vec<(u64, ThreadId)> {
        let mut out = Vec::with_capacity(n.min(self.by_seq.len()));
        while out.len() < n {
            let Some(e) = self.by_seq.pop_first() else {
                break;
            };
            out.push(e);
        }
        out
    }

    /// The sleepers with their sequence numbers, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, ThreadId)> + '_ {
        self.by_seq.iter().map(|(s, t)| (*s, *t))
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_seq.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_sequence_whatever_the_insertion_order() {
        let mut q = WaitQueue::default();
        q.insert(7, ThreadId(1));
        q.insert(3, ThreadId(9));
        q.insert(5, ThreadId(4));
        assert_eq!(q.front(), Some(ThreadId(9)));
        assert!(!q.remove(5, ThreadId(1)));
        assert!(q.remove(5, ThreadId(4)));
        assert_eq!(q.take(5), vec![(3, ThreadId(9)), (7, ThreadId(1))]);
        assert!(q.is_empty());
    }
}
