//! The bytes of one backing: a [`PageTable`] plus its [`DirtyBits`], with
//! byte-range operations at offsets relative to the backing's start.
//!
//! Nothing here checks bounds or flags: the address space does that before
//! calling in, so every offset reaching this module is inside the backing.
//!
//! A store restored lazily also has pages still pending in a source
//! (`lazy.rs`): reads copy them through the source, writes fault them in
//! first, and an access to a page the source cannot give fails with
//! [`Lost`] before anything is written.

use std::sync::Arc;

use super::PAGE_SIZE;
use super::dirty::DirtyBits;
use super::lazy::{PageSource, Pending, page_bytes};
use super::page_table::{Page, PageTable};

const PAGE: usize = PAGE_SIZE as usize;

/// The pages and dirty bits of an anonymous area or a shared backing.
#[derive(Clone, Debug, Default)]
pub struct PageStore {
    pub(crate) table: PageTable,
    pub(crate) dirty: DirtyBits,
    /// Pages whose bytes are still in a source (lazy restore); their
    /// slots are empty. `None` once every page is in.
    pub(crate) pending: Option<Box<Pending>>,
}

/// A page the store's source could not give: the offset of its first byte
/// in the store (the source keeps the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lost {
    pub(crate) off: u64,
}

/// Splits `[off, off + len)` into per-page pieces: (page index, offset in the
/// page, piece length, offset of the piece from `off`).
fn pieces(off: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize, u64)> {
    let mut done = 0u64;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = off + done;
        let in_page = (at % PAGE_SIZE) as usize;
        let n = (PAGE - in_page).min((len - done) as usize);
        let piece = (at / PAGE_SIZE, in_page, n, done);
        done += n as u64;
        Some(piece)
    })
}

impl PageStore {
    /// Whether page `index` is still pending in a source.
    #[inline]
    pub(crate) fn is_pending(&self, index: u64) -> bool {
        self.pending.as_ref().is_some_and(|p| p.contains(index))
    }

    /// Makes `pending`'s pages pending (their slots must be empty).
    pub(crate) fn set_pending(&mut self, pending: Pending) {
        self.pending = (pending.count() > 0).then(|| Box::new(pending));
    }

    /// Number of pages still pending.
    pub fn pending_pages(&self) -> u64 {
        self.pending.as_ref().map_or(0, |p| p.count())
    }

    /// Loads pending page `index` from its source and installs it, not
    /// dirty (nothing to do for a page that is not pending).
    pub(crate) fn fault_in(&mut self, index: u64) -> Result<(), Lost> {
        let Some(p) = self.pending.as_deref_mut() else {
            return Ok(());
        };
        if !p.contains(index) {
            return Ok(());
        }
        let page = p.read(index).map_err(|_| Lost {
            off: index * PAGE_SIZE,
        })?;
        self.install(index, Some(page));
        Ok(())
    }

    /// Page `index` is pending no longer (the state goes with the last).
    fn unpend(&mut self, index: u64) {
        if let Some(p) = self.pending.as_deref_mut() {
            p.take(index);
            if p.count() == 0 {
                self.pending = None;
            }
        }
    }

    /// The background fill: installs `page` at `index` if that page is
    /// still pending in `source` (a page written, zeroed or loaded since
    /// keeps what it has). Marks nothing dirty.
    pub(crate) fn fill_pending(
        &mut self,
        source: &dyn PageSource,
        index: u64,
        page: Arc<Page>,
    ) -> bool {
        let due = self
            .pending
            .as_ref()
            .is_some_and(|p| p.is_from(source) && p.contains(index));
        if due {
            self.install(index, Some(page));
        }
        due
    }

    /// Faults in every pending page of `[off, off + len)` (before a write,
    /// so that a lost page leaves the range unwritten). Whole pages are
    /// skipped when `whole_ok` (a zero fill replaces them entirely).
    pub(crate) fn fault_in_range(
        &mut self,
        off: u64,
        len: u64,
        whole_ok: bool,
    ) -> Result<(), Lost> {
        if self.pending.is_none() {
            return Ok(());
        }
        for (page, _, n, _) in pieces(off, len) {
            if !(whole_ok && n == PAGE) {
                self.fault_in(page)?;
            }
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes starting at `off` into `buf` (pending pages
    /// through their source, without installing them).
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Lost> {
        for (page, at, n, done) in pieces(off, buf.len() as u64) {
            let done = done as usize;
            let bytes =
                page_bytes(&self.table, self.pending.as_deref(), page).map_err(|_| Lost {
                    off: page * PAGE_SIZE,
                })?;
            buf[done..done + n].copy_from_slice(&bytes[at..at + n]);
        }
        Ok(())
    }

    /// Like [`read`](Self::read), but installs the pending pages it reads
    /// (a holder of `&mut`: a shared backing's lock).
    pub(crate) fn read_mut(&mut self, off: u64, buf: &mut [u8]) -> Result<(), Lost> {
        self.fault_in_range(off, buf.len() as u64, false)?;
        self.read(off, buf)
    }

    /// Writes `data` at `off`, marking the pages dirty.
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) -> Result<(), Lost> {
        self.fault_in_range(off, data.len() as u64, false)?;
        for (page, at, n, done) in pieces(off, data.len() as u64) {
            let done = done as usize;
            self.page_mut(page)[at..at + n].copy_from_slice(&data[done..done + n]);
        }
        Ok(())
    }

    /// Sets `len` bytes at `off` to `byte`. Whole pages filled with zero
    /// become zero pages again and release their memory.
    pub(crate) fn fill(&mut self, off: u64, byte: u8, len: u64) -> Result<(), Lost> {
        self.fault_in_range(off, len, byte == 0)?;
        for (page, at, n, _) in pieces(off, len) {
            if byte == 0 && n == PAGE {
                self.install(page, None);
                self.dirty.set(page);
            } else if byte == 0 && self.table.get(page).is_none() {
                // Zeros over a zero page change nothing but still count as a write.
                self.dirty.set(page);
            } else {
                self.page_mut(page)[at..at + n].fill(byte);
            }
        }
        Ok(())
    }

    /// The page at `index` for writing, marked dirty. The page must not be
    /// pending ([`fault_in`](Self::fault_in) first).
    #[inline(always)]
    pub(crate) fn page_mut(&mut self, index: u64) -> &mut Page {
        debug_assert!(
            !self.is_pending(index),
            "page {index} written while pending"
        );
        self.dirty.set(index);
        self.table.get_mut(index)
    }

    /// Like [`PageStore::page_mut`], but returns where the page (marked
    /// dirty, materialised and held by this store alone) is: see
    /// [`PageTable::unique_page_ptr`]. The page must not be pending.
    #[inline]
    pub(crate) fn unique_page_ptr(&mut self, index: u64) -> *mut Page {
        debug_assert!(
            !self.is_pending(index),
            "page {index} written while pending"
        );
        self.dirty.set(index);
        self.table.unique_page_ptr(index)
    }

    /// Installs a page at `index` without marking it dirty (restore); a
    /// pending page is pending no longer.
    pub fn install(&mut self, index: u64, page: Option<Arc<Page>>) {
        self.unpend(index);
        self.table.set(index, page);
    }

    /// Bytes of bookkeeping (page table and dirty bits).
    pub fn metadata_bytes(&self) -> u64 {
        self.table.metadata_bytes()
            + self.dirty.metadata_bytes()
            + self.pending.as_ref().map_or(0, |p| p.metadata_bytes())
    }
}
