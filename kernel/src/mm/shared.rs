//! Shared backings: page stores mapped by areas of several address spaces
//! (share-in / share-out), where a write through one mapping is visible
//! through every other.
//!
//! A backing has a stable identity, [`BackingId`], chosen by the kernel, so
//! that a page of it is named by (backing id, page index) whatever the base
//! of the area mapping it: futexes are keyed that way and images record the
//! sharing that way.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::page_table::{Page, PageTable};
use super::store::PageStore;
use super::{ADDRESS_SPACE_SIZE, MmError, PAGE_SIZE};

/// The identity of a shared backing, unique within one kernel (and kept
/// across checkpoint and restore).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackingId(pub u64);

impl std::fmt::Display for BackingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A page store that several areas in different spaces can map. Cloning the
/// handle does not copy the pages: every clone is the same backing.
#[derive(Clone)]
pub struct SharedBacking {
    inner: Arc<Inner>,
}

struct Inner {
    id: BackingId,
    size: u64,
    store: Mutex<PageStore>,
}

impl SharedBacking {
    /// A new backing of `size` bytes (page aligned, at most 4 GiB), all zero.
    pub fn new(id: BackingId, size: u64) -> Result<SharedBacking, MmError> {
        if size == 0 || size > ADDRESS_SPACE_SIZE {
            return Err(MmError::OutOfRange { base: 0, size });
        }
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned { base: 0, size });
        }
        Ok(SharedBacking {
            inner: Arc::new(Inner {
                id,
                size,
                store: Mutex::new(PageStore::default()),
            }),
        })
    }

    /// A backing of `size` bytes that takes over `store`'s pages and dirty
    /// bits (an anonymous area becoming shared when it is first shared).
    pub(crate) fn from_store(
        id: BackingId,
        size: u64,
        store: PageStore,
    ) -> Result<SharedBacking, MmError> {
        let b = SharedBacking::new(id, size)?;
        *b.lock() = store;
        Ok(b)
    }

    /// The backing's identity.
    pub fn id(&self) -> BackingId {
        self.inner.id
    }

    /// The backing's size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// True if both handles name the same backing object.
    pub fn same_backing(&self, other: &SharedBacking) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Number of areas (in all spaces) and other handles holding the backing.
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Copy-on-write references to every page (the backing runs on).
    pub fn page_refs(&self) -> PageTable {
        self.lock().table.clone()
    }

    /// Installs a page at `index` without marking it dirty (restore).
    /// Out-of-range indices are refused.
    pub fn restore_page(&self, index: u64, page: &Page) -> Result<(), MmError> {
        self.install_page(index, Arc::new(*page))
    }

    /// Like [`SharedBacking::restore_page`] but shares the given page.
    pub fn install_page(&self, index: u64, page: Arc<Page>) -> Result<(), MmError> {
        if index >= self.inner.size / PAGE_SIZE {
            return Err(MmError::NotMapped {
                addr: index.saturating_mul(PAGE_SIZE),
            });
        }
        self.lock().install(index, Some(page));
        Ok(())
    }

    /// Locks the store. A poisoned lock is taken over: the store's own
    /// operations cannot leave it half-updated in a way that matters.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PageStore> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SharedBacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBacking")
            .field("id", &self.inner.id)
            .field("size", &self.inner.size)
            .finish()
    }
}
