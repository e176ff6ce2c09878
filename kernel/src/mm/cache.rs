//! The access cache of an address space: the last page of the primary area
//! loaded from and the last one stored to, so that the interpreter's loads
//! and stores to the same page skip the page-table walk, the copy-on-write
//! check and the dirty-bit update.
//!
//! What an entry guarantees, as long as it is set:
//!
//! - read entry `(index, ptr)`: `ptr` points at the bytes page `index` of
//!   the primary area reads as now: the page held by slot `index` of the
//!   primary page table, or [`ZERO_PAGE`](super::ZERO_PAGE) if the slot is
//!   empty. Page `index` lies wholly inside the primary area.
//! - write entry `(index, ptr)`: additionally, the slot's page is held by
//!   nothing but the primary page table (no snapshot shares it) and its dirty
//!   bit is set, so a store needs no copy and no bookkeeping.
//!
//! Behind the two entries sit the earlier write entries, one per slot of a
//! direct-mapped table indexed by page index ([`VICTIMS`] slots: every page
//! of an area up to 2 MiB). A load or store that misses the last entry
//! looks there before it walks the page table, so a loop that sweeps a
//! few hundred pages over and over (a sieve's strides) pays neither the
//! walk nor its reference-count checks again. A slot guarantees what a
//! write entry does, while its generation is the cache's.
//!
//! The address space keeps these true by clearing the cache whenever
//! anything else could change the primary area's pages, sharing or dirty
//! bits: every mutation except a store through a write entry goes through
//! `AddressSpace::primary_mut`, which clears it, and `snapshot()` (which
//! takes `&self`) clears it before cloning page references. Clearing
//! empties both entries and starts a new generation, which retires every
//! slot at once. The primary area never shrinks, so a cached page stays
//! inside it.

use std::cell::Cell;

use super::PAGE_SIZE;
use super::page_table::Page;

/// No page: a base that no access matches. An access address is below
/// 2^33 (a 32-bit base plus a 32-bit offset), so its distance from this
/// base, wrapped, is at least 2^63 (see [`Entry::at`]).
const NONE: u64 = 1 << 63;

/// One cached page: the address of its first byte in the primary area
/// (its index times the page size) and where its bytes are.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    base: u64,
    page: *mut Page,
}

const EMPTY: Entry = Entry {
    base: NONE,
    page: std::ptr::null_mut(),
};

impl Entry {
    /// Where the `N` bytes at `addr` are, if they lie in this entry's page:
    /// one subtraction and one comparison for both the page and the bounds.
    #[inline(always)]
    fn at<const N: usize>(self, addr: u64) -> Option<*mut u8> {
        let off = addr.wrapping_sub(self.base);
        // Safety (of the `add`): `off + N <= PAGE_SIZE`, so the pointer
        // stays inside the page (or one past its last byte when N is 0).
        (off <= PAGE_SIZE - N as u64).then(|| unsafe { self.page.cast::<u8>().add(off as usize) })
    }
}

/// A copy of the read and write entries, for the holder of an address
/// space's exclusive borrow to access memory without reaching into the
/// space (the interpreter keeps one beside its registers).
#[derive(Clone, Copy)]
pub(crate) struct Entries {
    read: Entry,
    write: Entry,
}

impl Entries {
    /// No entry: every access misses.
    pub(crate) const EMPTY: Entries = Entries {
        read: EMPTY,
        write: EMPTY,
    };

    /// The `N` bytes at `addr`, if they lie in the read entry's page.
    ///
    /// # Safety
    /// The copy was taken from the cache of an address space
    /// ([`AddressSpace::cache_entries`](super::AddressSpace::cache_entries))
    /// that nothing has used since, except this copy's own loads and stores.
    #[inline(always)]
    pub(crate) unsafe fn load<const N: usize>(&self, addr: u64) -> Option<[u8; N]> {
        let bytes = self.read.at::<N>(addr)?;
        // Safety: the entries are still the space's (the caller's
        // contract), so the read entry points at the live bytes of its page
        // (the cache's invariant), and `at` returned the place of `N` bytes
        // inside it.
        Some(unsafe { bytes.cast::<[u8; N]>().read_unaligned() })
    }

    /// Stores `bytes` at `addr` and returns true, if they lie in the write
    /// entry's page; else false, having changed nothing.
    ///
    /// # Safety
    /// As for [`load`](Self::load); besides, the caller holds the space's
    /// exclusive borrow.
    #[inline(always)]
    pub(crate) unsafe fn store<const N: usize>(&self, addr: u64, bytes: [u8; N]) -> bool {
        let Some(place) = self.write.at::<N>(addr) else {
            return false;
        };
        // Safety: the entries are still the space's and no one else uses
        // the space (the caller's contract), so the write entry points at
        // its page, held by the page table alone and already dirty (the
        // cache's invariant); `at` returned the place of `N` bytes inside.
        unsafe { place.cast::<[u8; N]>().write_unaligned(bytes) };
        true
    }
}

/// The read and write entries (see the module documentation).
pub(crate) struct AccessCache {
    read: Cell<Entry>,
    write: Cell<Entry>,
    /// Earlier write entries: the last one of page `index` in slot
    /// `index % VICTIMS` (empty until the first one is kept).
    victims: Vec<Victim>,
    /// The generation of the slots that are valid now.
    generation: Cell<u64>,
}

/// Slots of earlier write entries.
const VICTIMS: usize = 512;

/// An earlier write entry and the generation it belongs to.
#[derive(Clone, Copy)]
struct Victim {
    entry: Entry,
    generation: u64,
}

// Safety: the pointers point into pages owned by the address space's own
// primary page table (or into the immutable static zero page), and the write
// entry only into pages no one else holds. Moving the space to another
// thread moves the ownership of those pages with it; nothing here is
// reachable from another thread. `AccessCache` is not `Sync` (it holds
// `Cell`s), so `&AddressSpace` cannot be shared between threads either.
unsafe impl Send for AccessCache {}

impl Default for AccessCache {
    fn default() -> Self {
        AccessCache {
            read: Cell::new(EMPTY),
            write: Cell::new(EMPTY),
            victims: Vec::new(),
            generation: Cell::new(0),
        }
    }
}

impl std::fmt::Debug for AccessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCache")
            .field("read", &(self.read.get().base / PAGE_SIZE))
            .field("write", &(self.write.get().base / PAGE_SIZE))
            .finish()
    }
}

impl AccessCache {
    /// A copy of both entries.
    #[inline(always)]
    pub(crate) fn entries(&self) -> Entries {
        Entries {
            read: self.read.get(),
            write: self.write.get(),
        }
    }

    /// Forgets both entries and every earlier write entry.
    #[inline]
    pub(crate) fn clear(&self) {
        self.read.set(EMPTY);
        self.write.set(EMPTY);
        self.generation.set(self.generation.get() + 1);
    }

    /// The earlier write entry of page `index`, if one is kept and still
    /// valid: made the last entry for writing (and reading), and returned.
    #[inline]
    pub(crate) fn recall(&self, index: u64) -> Option<*mut Page> {
        let page = self.kept(index)?;
        self.set_write(index, page);
        Some(page)
    }

    /// Like [`recall`](Self::recall) for a load: made the last entry for
    /// reading only, so that a loop reading one page and writing another
    /// (a copy) keeps its write entry.
    #[inline]
    pub(crate) fn recall_read(&self, index: u64) -> Option<*const Page> {
        let page = self.kept(index)?.cast_const();
        self.set_read(index, page);
        Some(page)
    }

    /// The earlier write entry of page `index`, if one is kept and valid.
    #[inline]
    fn kept(&self, index: u64) -> Option<*mut Page> {
        let v = self.victims.get(index as usize % VICTIMS)?;
        let valid = v.generation == self.generation.get() && v.entry.base == index * PAGE_SIZE;
        valid.then_some(v.entry.page)
    }

    /// Caches `page` as page `index` of the primary area, unshared and
    /// dirty, like [`set_write`](Self::set_write), and keeps it as page
    /// `index`'s earlier write entry too.
    pub(crate) fn set_write_kept(&mut self, index: u64, page: *mut Page) {
        self.set_write(index, page);
        if self.victims.is_empty() {
            self.victims = vec![
                Victim {
                    entry: EMPTY,
                    generation: 0,
                };
                VICTIMS
            ];
        }
        self.victims[index as usize % VICTIMS] = Victim {
            entry: Entry {
                base: index * PAGE_SIZE,
                page,
            },
            generation: self.generation.get(),
        };
    }

    /// Caches `page` as the bytes page `index` of the primary area reads as.
    /// The caller upholds the read-entry guarantee of the module docs.
    #[inline]
    pub(crate) fn set_read(&self, index: u64, page: *const Page) {
        self.read.set(Entry {
            base: index * PAGE_SIZE,
            page: page.cast_mut(),
        });
    }

    /// Caches `page` as page `index` of the primary area, unshared and
    /// dirty, for both reading and writing. The caller upholds the
    /// write-entry guarantee of the module docs.
    #[inline]
    pub(crate) fn set_write(&self, index: u64, page: *mut Page) {
        let base = index * PAGE_SIZE;
        self.read.set(Entry { base, page });
        self.write.set(Entry { base, page });
    }
}
