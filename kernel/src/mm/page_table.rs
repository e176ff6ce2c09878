//! A persistent two-level page table of copy-on-write 4 KiB pages.
//!
//! The root is a vector of leaves, each leaf holds [`LEAF_PAGES`] page slots,
//! and a slot is either empty (the page reads as zero and costs nothing) or an
//! `Arc` of the page's bytes. Leaves and pages are reference counted, so
//! cloning a table costs one reference-count increment per *leaf* (512 for
//! 1 GiB of memory) and yields an immutable view that shares every page with
//! the live table. A write to the live table copies a leaf or page only while
//! such a clone still holds it ([`Arc::make_mut`]).
//!
//! The root grows lazily up to the highest leaf ever touched, so a large but
//! untouched area costs no memory.

use std::sync::Arc;

use super::PAGE_SIZE;

/// The bytes of one 4 KiB page.
pub type Page = [u8; PAGE_SIZE as usize];

/// log2 of the number of page slots of one leaf.
pub(crate) const LEAF_SHIFT: u32 = 9;
/// Page slots per leaf: one leaf maps 2 MiB.
pub const LEAF_PAGES: usize = 1 << LEAF_SHIFT;
const LEAF_MASK: u64 = LEAF_PAGES as u64 - 1;

type Leaf = [Option<Arc<Page>>; LEAF_PAGES];

/// An all-zero page, for callers that want bytes rather than `None`.
pub static ZERO_PAGE: Page = [0; PAGE_SIZE as usize];

/// A fresh leaf with every slot empty.
fn empty_leaf() -> Arc<Leaf> {
    Arc::new([const { None }; LEAF_PAGES])
}

/// A fresh page of zeros.
pub(crate) fn zeroed_page() -> Arc<Page> {
    Arc::new([0; PAGE_SIZE as usize])
}

/// A sparse table from page index to page (see the module documentation).
#[derive(Clone, Default)]
pub struct PageTable {
    leaves: Vec<Option<Arc<Leaf>>>,
    /// Number of non-empty slots (materialised pages).
    resident: u64,
}

impl PageTable {
    /// An empty table: every page reads as zero.
    pub fn new() -> PageTable {
        PageTable::default()
    }

    /// The page at `index`, or `None` if it is a zero page never written.
    #[inline(always)]
    pub fn get(&self, index: u64) -> Option<&Arc<Page>> {
        match self.leaves.get((index >> LEAF_SHIFT) as usize) {
            Some(Some(leaf)) => leaf[(index & LEAF_MASK) as usize].as_ref(),
            _ => None,
        }
    }

    /// The bytes of the page at `index` (zeros if never written).
    #[inline(always)]
    pub fn bytes(&self, index: u64) -> &Page {
        match self.get(index) {
            Some(page) => page,
            None => &ZERO_PAGE,
        }
    }

    /// Where the bytes of page `index` are (the static zero page if it was
    /// never written), for reading only. The pointer stays valid while the
    /// slot keeps its page.
    #[inline]
    pub(crate) fn page_ptr(&self, index: u64) -> *const Page {
        match self.get(index) {
            // `Arc::as_ptr` keeps the allocation's own provenance.
            Some(page) => Arc::as_ptr(page),
            None => &ZERO_PAGE,
        }
    }

    /// Like [`PageTable::get_mut`], but returns where the page (now
    /// materialised and held by this table alone) is. Writing through the
    /// pointer is sound while the slot keeps this page and no clone of the
    /// table shares it.
    #[inline]
    pub(crate) fn unique_page_ptr(&mut self, index: u64) -> *mut Page {
        let leaf_index = (index >> LEAF_SHIFT) as usize;
        if leaf_index >= self.leaves.len() {
            self.leaves.resize(leaf_index + 1, None);
        }
        let leaf = Arc::make_mut(self.leaves[leaf_index].get_or_insert_with(empty_leaf));
        let slot = &mut leaf[(index & LEAF_MASK) as usize];
        if slot.is_none() {
            self.resident += 1;
        }
        let page = slot.get_or_insert_with(zeroed_page);
        Arc::make_mut(page);
        // The pointer carries the allocation's provenance (not that of a
        // reference), so later reads through the table do not invalidate it.
        Arc::as_ptr(page).cast_mut()
    }

    /// The page at `index` for writing: materialised if empty, copied first
    /// if a snapshot still shares it (and its leaf likewise).
    #[inline(always)]
    pub fn get_mut(&mut self, index: u64) -> &mut Page {
        let leaf_index = (index >> LEAF_SHIFT) as usize;
        if leaf_index >= self.leaves.len() {
            self.leaves.resize(leaf_index + 1, None);
        }
        let leaf = Arc::make_mut(self.leaves[leaf_index].get_or_insert_with(empty_leaf));
        let slot = &mut leaf[(index & LEAF_MASK) as usize];
        if slot.is_none() {
            self.resident += 1;
        }
        Arc::make_mut(slot.get_or_insert_with(zeroed_page))
    }

    /// Installs `page` at `index`, replacing what was there. An all-zero page
    /// is stored as an empty slot.
    pub fn set(&mut self, index: u64, page: Option<Arc<Page>>) {
        let page = page.filter(|p| p.iter().any(|&b| b != 0));
        let leaf_index = (index >> LEAF_SHIFT) as usize;
        if page.is_none() && !matches!(self.leaves.get(leaf_index), Some(Some(_))) {
            return;
        }
        if leaf_index >= self.leaves.len() {
            self.leaves.resize(leaf_index + 1, None);
        }
        let leaf = Arc::make_mut(self.leaves[leaf_index].get_or_insert_with(empty_leaf));
        let slot = &mut leaf[(index & LEAF_MASK) as usize];
        match (slot.is_some(), page.is_some()) {
            (false, true) => self.resident += 1,
            (true, false) => self.resident -= 1,
            _ => {}
        }
        *slot = page;
    }

    /// Number of materialised (non-zero-slot) pages.
    pub fn resident_pages(&self) -> u64 {
        self.resident
    }

    /// Bytes of bookkeeping: the root and the allocated leaves.
    pub fn metadata_bytes(&self) -> u64 {
        let leaves = self.leaves.iter().flatten().count() as u64;
        (self.leaves.capacity() * std::mem::size_of::<Option<Arc<Leaf>>>()) as u64
            + leaves * std::mem::size_of::<Leaf>() as u64
    }

    /// The materialised pages in ascending index order, by reference.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Arc<Page>)> + '_ {
        self.leaves
            .iter()
            .enumerate()
            .filter_map(|(li, leaf)| leaf.as_ref().map(|leaf| (li, leaf)))
            .flat_map(|(li, leaf)| {
                leaf.iter().enumerate().filter_map(move |(pi, page)| {
                    page.as_ref()
                        .map(|page| (((li as u64) << LEAF_SHIFT) | pi as u64, page))
                })
            })
    }
}

impl std::fmt::Debug for PageTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTable")
            .field("leaves", &self.leaves.len())
            .field("resident", &self.resident)
            .finish()
    }
}
