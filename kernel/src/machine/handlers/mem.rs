//! The address space as the handlers hold it: beside it, a copy of its
//! access cache's entries (`mm/cache.rs`), which the fast paths of loads
//! and stores read from the context directly instead of through the space.
//! That saves a dependent load on every access.
//!
//! The copy is sound to use while the entries are still the space's, so
//! [`Mem`] keeps the two together. Its fields are private to this module.
//! [`Mem::space`] empties the copy before it lends out the space, because
//! any use of the space may change its cache. An empty copy makes every
//! access miss and take the slow path, which goes through the space.
//! [`Mem::refresh`] takes a new copy; the driver loop calls it between
//! handlers, and every handler that uses the space continues through the
//! driver or stops.

use crate::mm::{AddressSpace, Entries};

/// An address space and a copy of its cache entries (module docs).
pub(crate) struct Mem<'a> {
    space: &'a mut AddressSpace,
    /// The space's cache entries, or [`Entries::EMPTY`] after the space
    /// was lent out.
    copy: Entries,
}

impl<'a> Mem<'a> {
    /// Holds `space` with a copy of its entries.
    pub(crate) fn new(space: &'a mut AddressSpace) -> Mem<'a> {
        let copy = space.cache_entries();
        Mem { space, copy }
    }

    /// The space, for anything but the cached fast paths. Empties the copy
    /// first, since any use of the space may change its cache.
    #[inline(always)]
    pub(crate) fn space(&mut self) -> &mut AddressSpace {
        self.copy = Entries::EMPTY;
        self.space
    }

    /// Takes a new copy of the space's entries.
    #[inline(always)]
    pub(crate) fn refresh(&mut self) {
        self.copy = self.space.cache_entries();
    }

    /// The `N` bytes at `addr`, if they lie in the page the copy holds for
    /// reading; `None` says nothing about the access.
    #[inline(always)]
    pub(crate) fn load_cached<const N: usize>(&self, addr: u64) -> Option<[u8; N]> {
        // Safety: the copy is empty, or was taken from `space` and nothing
        // has used the space since (it is lent out only by `space`, which
        // empties the copy), except this copy's own loads and stores.
        unsafe { self.copy.load::<N>(addr) }
    }

    /// Stores `bytes` at `addr` and returns true, if they lie in the page
    /// the copy holds for writing; false changes nothing and says nothing
    /// about the access.
    #[inline(always)]
    pub(crate) fn store_cached<const N: usize>(&mut self, addr: u64, bytes: [u8; N]) -> bool {
        // Safety: as in `load_cached`; `&mut self` holds the space's
        // exclusive borrow.
        unsafe { self.copy.store::<N>(addr, bytes) }
    }
}
