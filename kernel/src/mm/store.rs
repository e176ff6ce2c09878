//! The bytes of one backing: a [`PageTable`] plus its [`DirtyBits`], with
//! byte-range operations at offsets relative to the backing's start.
//!
//! Nothing here checks bounds or flags: the address space does that before
//! calling in, so every offset reaching this module is inside the backing.

use std::sync::Arc;

use super::PAGE_SIZE;
use super::dirty::DirtyBits;
use super::page_table::{Page, PageTable};

const PAGE: usize = PAGE_SIZE as usize;

/// The pages and dirty bits of an anonymous area or a shared backing.
#[derive(Clone, Debug, Default)]
pub struct PageStore {
    pub(crate) table: PageTable,
    pub(crate) dirty: DirtyBits,
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
    /// Copies `buf.len()` bytes starting at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) {
        for (page, at, n, done) in pieces(off, buf.len() as u64) {
            let done = done as usize;
            buf[done..done + n].copy_from_slice(&self.table.bytes(page)[at..at + n]);
        }
    }

    /// Writes `data` at `off`, marking the pages dirty.
    pub fn write(&mut self, off: u64, data: &[u8]) {
        for (page, at, n, done) in pieces(off, data.len() as u64) {
            let done = done as usize;
            self.page_mut(page)[at..at + n].copy_from_slice(&data[done..done + n]);
        }
    }

    /// Sets `len` bytes at `off` to `byte`. Whole pages filled with zero
    /// become zero pages again and release their memory.
    pub fn fill(&mut self, off: u64, byte: u8, len: u64) {
        for (page, at, n, _) in pieces(off, len) {
            if byte == 0 && n == PAGE {
                self.table.set(page, None);
                self.dirty.set(page);
            } else if byte == 0 && self.table.get(page).is_none() {
                // Zeros over a zero page change nothing but still count as a write.
                self.dirty.set(page);
            } else {
                self.page_mut(page)[at..at + n].fill(byte);
            }
        }
    }

    /// The page at `index` for writing, marked dirty.
    #[inline(always)]
    pub fn page_mut(&mut self, index: u64) -> &mut Page {
        self.dirty.set(index);
        self.table.get_mut(index)
    }

    /// Like [`PageStore::page_mut`], but returns where the page (marked
    /// dirty, materialised and held by this store alone) is: see
    /// [`PageTable::unique_page_ptr`].
    #[inline]
    pub(crate) fn unique_page_ptr(&mut self, index: u64) -> *mut Page {
        self.dirty.set(index);
        self.table.unique_page_ptr(index)
    }

    /// Installs a page at `index` without marking it dirty (restore).
    pub fn install(&mut self, index: u64, page: Option<Arc<Page>>) {
        self.table.set(index, page);
    }

    /// Bytes of bookkeeping (page table and dirty bits).
    pub fn metadata_bytes(&self) -> u64 {
        self.table.metadata_bytes() + self.dirty.metadata_bytes()
    }
}
