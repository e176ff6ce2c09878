//! Deadlines of threads blocked with a timeout, ordered by (deadline,
//! thread) so that simultaneous expiries fire in a fixed order.

use std::collections::BTreeSet;

use crate::task::ThreadId;

#[derive(Debug, Default)]
pub struct Timeouts {
    set: BTreeSet<(u64, ThreadId)>,
}

impl Timeouts {
    pub fn insert(&mut self, deadline: u64, thread: ThreadId) {
        self.set.insert((deadline, thread));
    }

    pub fn remove(&mut self, deadline: u64, thread: ThreadId) {
        self.set.remove(&(deadline, thread));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<u64> {
        self.set.first().map(|(d, _)| *d)
    }

    /// Removes and returns every entry with deadline <= `now`, in order.
    pub fn expire(&mut self, now: u64) -> Vec<(u64, ThreadId)> {
        let mut out = Vec::new();
        while let Some(first) = self.set.first().copied() {
            if first.0 > now {
                break;
            }
            self.set.remove(&first);
            out.push(first);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_order() {
        let mut t = Timeouts::default();
        t.insert(30, ThreadId(1));
        t.insert(10, ThreadId(2));
        t.insert(10, ThreadId(1));
        assert_eq!(t.next(), Some(10));
        assert_eq!(t.expire(10), vec![(10, ThreadId(1)), (10, ThreadId(2))]);
        t.remove(30, ThreadId(1));
        assert_eq!(t.expire(100), vec![]);
    }
}
