//! Pages not loaded yet (lazy restore).
//!
//! A store restored lazily starts with every stored page *pending*: its slot
//! in the page table is empty and a bit in [`Pending`] says that the page's
//! bytes are still in a [`PageSource`] (the image it was restored from).
//! What a pending page reads as is the source's page, never zero:
//!
//! - a write, or a load through `&mut` (the interpreter's), *faults the page
//!   in*: reads it from the source (which reads, verifies and decompresses
//!   its chunk), installs it without marking it dirty, and clears its bit;
//! - a read through `&self` (system calls copying user memory, snapshots)
//!   copies the page through the source without installing it;
//! - a whole page filled with zeros is simply no longer pending;
//! - the kernel's background fill installs pages that are still pending,
//!   in order, between slices ([`PageStore::fill_pending`]).
//!
//! A page arrives with the same bytes whichever way it comes, so nothing a
//! task can observe depends on when the fill runs. A page the source cannot
//! give (its chunk fails verification, the image is gone) is *lost*: the
//! access faults with [`Fault::Lost`](super::Fault::Lost) and the kernel
//! ends the restore.

use std::borrow::Cow;
use std::sync::Arc;

use super::dirty::DirtyBits;
use super::page_table::{Page, PageTable};

/// A page the source could not give: the reason, for the kernel log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LostPage(pub String);

/// Where the pending pages of one store come from.
pub trait PageSource: Send + Sync + std::fmt::Debug {
    /// Reads page `index` of the store into `out` (every byte of it).
    fn read(&self, index: u64, out: &mut Page) -> Result<(), LostPage>;
}

/// The pending pages of a store and their source.
#[derive(Clone, Debug)]
pub struct Pending {
    source: Arc<dyn PageSource>,
    bits: DirtyBits,
    count: u64,
}

impl Pending {
    /// Pages `pages` (ascending or not; repeats count once) of `source`
    /// pending.
    pub fn new(source: Arc<dyn PageSource>, pages: impl IntoIterator<Item = u64>) -> Pending {
        Pending::from_ranges(source, pages.into_iter().map(|p| p..p + 1))
    }

    /// Pages in `ranges` (overlaps count once) of `source` pending, set a
    /// bitmap word at a time.
    pub fn from_ranges(
        source: Arc<dyn PageSource>,
        ranges: impl IntoIterator<Item = std::ops::Range<u64>>,
    ) -> Pending {
        let mut bits = DirtyBits::default();
        for r in ranges {
            bits.set_range(r);
        }
        let count = bits.count();
        Pending {
            source,
            bits,
            count,
        }
    }

    /// Whether page `index` is still pending.
    #[inline]
    pub fn contains(&self, index: u64) -> bool {
        self.bits.contains(index)
    }

    /// Number of pages still pending.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The pending page indices, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter()
    }

    /// Whether this is the pending state of `source` (the same object).
    pub fn is_from(&self, source: &dyn PageSource) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.source), source as *const dyn PageSource)
    }

    /// Reads pending page `index` from the source.
    pub fn read(&self, index: u64) -> Result<Arc<Page>, LostPage> {
        let mut page: Arc<Page> = Arc::new([0; super::PAGE_SIZE as usize]);
        let out = Arc::get_mut(&mut page).expect("a fresh page is unshared");
        self.source.read(index, out)?;
        Ok(page)
    }

    /// Marks page `index` no longer pending; true if it was.
    pub(crate) fn take(&mut self, index: u64) -> bool {
        if self.bits.remove(index) {
            self.count -= 1;
            true
        } else {
            false
        }
    }

    /// Bytes of bookkeeping.
    pub fn metadata_bytes(&self) -> u64 {
        self.bits.metadata_bytes()
    }
}

/// The bytes of page `index` of `table` with `pending` (a store's, or a
/// snapshot's): the table's, or for a page still pending, a copy read
/// from its source (not installed).
pub(crate) fn page_bytes<'a>(
    table: &'a PageTable,
    pending: Option<&Pending>,
    index: u64,
) -> Result<Cow<'a, Page>, LostPage> {
    match pending {
        Some(p) if p.contains(index) => p.read(index).map(|page| Cow::Owned(*page)),
        _ => Ok(Cow::Borrowed(table.bytes(index))),
    }
}
