//! A task's phone table: slots numbered from 0, the lowest free slot taken
//! first, so hanging up leaves holes that later connections fill.

use serde::{Deserialize, Serialize};

use super::call::{ConnId, PhoneId};
use crate::task::TaskId;

/// Most phones one task may hold.
pub const MAX_PHONES: usize = 64;

/// One occupied phone slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phone {
    /// Reserved by a CONNECT_ME_TO in flight.
    Connecting,
    /// Connected to `callee`'s answerbox, known there as `conn`.
    Connected { callee: TaskId, conn: ConnId },
    /// The callee hung up or died: calls fail with EHANGUP until the owner
    /// hangs up too (which frees the slot).
    Slammed { callee: TaskId, conn: ConnId },
}

/// The slots; `None` is a hole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneTable {
    slots: Vec<Option<Phone>>,
}

impl PhoneTable {
    /// Takes the lowest free slot; `None` when all [`MAX_PHONES`] are used.
    pub fn alloc(&mut self, phone: Phone) -> Option<PhoneId> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(phone);
            return Some(PhoneId(i as u32));
        }
        if self.slots.len() >= MAX_PHONES {
            return None;
        }
        self.slots.push(Some(phone));
        Some(PhoneId((self.slots.len() - 1) as u32))
    }

    pub fn get(&self, id: PhoneId) -> Option<&Phone> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: PhoneId) -> Option<&mut Phone> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// Frees a slot (a hole if it is not the last); returns what it held.
    pub fn free(&mut self, id: PhoneId) -> Option<Phone> {
        let taken = self.slots.get_mut(id.0 as usize).and_then(Option::take);
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        taken
    }

    /// Occupied slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (PhoneId, &Phone)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (PhoneId(i as u32), p)))
    }

    /// The table with holes, as a snapshot sees it.
    pub fn slots(&self) -> &[Option<Phone>] {
        &self.slots
    }

    /// Puts `phone` into exactly slot `id` (restore); fails if occupied or
    /// out of range.
    pub fn insert_at(&mut self, id: PhoneId, phone: Phone) -> Result<(), Phone> {
        let i = id.0 as usize;
        if i >= MAX_PHONES {
            return Err(phone);
        }
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if self.slots[i].is_some() {
            return Err(phone);
        }
        self.slots[i] = Some(phone);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: u64) -> Phone {
        Phone::Connected {
            callee: TaskId(t),
            conn: ConnId(t),
        }
    }

    #[test]
    fn lowest_free_first_with_holes() {
        let mut t = PhoneTable::default();
        assert_eq!(t.alloc(p(1)), Some(PhoneId(0)));
        assert_eq!(t.alloc(p(2)), Some(PhoneId(1)));
        assert_eq!(t.alloc(p(3)), Some(PhoneId(2)));
        assert!(t.free(PhoneId(1)).is_some());
        assert_eq!(t.slots().len(), 3);
        assert!(t.slots()[1].is_none());
        assert_eq!(t.alloc(p(4)), Some(PhoneId(1)));
        assert_eq!(t.alloc(p(5)), Some(PhoneId(3)));
        t.free(PhoneId(3));
        t.free(PhoneId(2));
        assert_eq!(t.slots().len(), 2);
        for _ in 2..MAX_PHONES {
            assert!(t.alloc(p(9)).is_some());
        }
        assert_eq!(t.alloc(p(9)), None);
        assert!(t.insert_at(PhoneId(0), p(1)).is_err());
    }
}
