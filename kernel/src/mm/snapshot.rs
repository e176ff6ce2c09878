//! Snapshots of an address space (copy-on-write page references taken in
//! O(areas + leaves), not O(pages)), dirty tracking since the last
//! checkpoint, and restore (recreating areas and installing pages).

use std::sync::Arc;

use super::area::{Area, Backing};
use super::flags::{AreaFlags, MemLimits};
use super::lazy::{LostPage, Pending};
use super::page_table::{Page, PageTable};
use super::shared::{BackingId, SharedBacking};
use super::space::{AddressSpace, Region};
use super::store::PageStore;
use super::{MmError, PAGE_SIZE, WASM_PAGE_SIZE};

/// What kind of area a snapshot entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaKind {
    /// Memory 0 of the module, at base 0, growable up to the maximum.
    Primary {
        /// Maximum size in wasm pages.
        max_wasm_pages: u32,
    },
    /// An anonymous area of its own.
    Anonymous,
    /// A mapping of a shared backing (the same backing id in two snapshots
    /// means the areas share their pages).
    Shared {
        /// The backing's identity.
        backing: BackingId,
    },
}

/// One area of a [`SpaceSnapshot`], holding its pages by reference.
#[derive(Clone, Debug)]
pub struct AreaSnapshot {
    /// Base address in the space.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Access flags.
    pub flags: AreaFlags,
    /// Primary, anonymous or shared (with the backing's identity).
    pub kind: AreaKind,
    pages: PageTable,
    /// Pages still pending in a lazy restore's image at the snapshot (their
    /// slots in `pages` are empty).
    pending: Option<Pending>,
}

impl AreaSnapshot {
    /// The materialised pages as (page index within the area, page),
    /// ascending, without copying. Pages never written are absent (they
    /// are zero), and so are pages still pending: see
    /// [`stored_pages`](Self::stored_pages) for every page with content.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &Arc<Page>)> + '_ {
        self.pages.iter()
    }

    /// Every page that may hold content, ascending: the materialised ones
    /// by reference, and those still pending read from their source (an
    /// all-zero one among them is skipped). A page the source cannot give
    /// ends the walk with its error.
    pub fn stored_pages(&self) -> impl Iterator<Item = Result<(u64, Arc<Page>), LostPage>> + '_ {
        let mut resident = self.pages.iter().peekable();
        let mut pending = self.pending.iter().flat_map(|p| p.iter()).peekable();
        std::iter::from_fn(move || {
            loop {
                let take_pending = match (resident.peek(), pending.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((r, _)), Some(p)) => p < r,
                };
                if !take_pending {
                    return resident.next().map(|(i, page)| Ok((i, Arc::clone(page))));
                }
                let index = pending.next()?;
                let p = self.pending.as_ref()?;
                match p.read(index) {
                    Ok(page) if page.iter().all(|&b| b == 0) => continue,
                    Ok(page) => return Some(Ok((index, page))),
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }

    /// The bytes of page `index` of the area (zeros if never written; a
    /// pending page read from its source).
    pub fn page(&self, index: u64) -> Result<std::borrow::Cow<'_, Page>, LostPage> {
        super::lazy::page_bytes(&self.pages, self.pending.as_ref(), index)
    }

    /// Number of materialised pages.
    pub fn resident_pages(&self) -> u64 {
        self.pages.resident_pages()
    }

    /// The pages still pending in a lazy restore's image, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }
}

/// An immutable view of every area and page of a space at one instant.
///
/// Taking it costs one reference-count increment per 2 MiB leaf of the page
/// tables; the space runs on and copies a page only when it writes one the
/// snapshot still holds. The snapshot is `Send + Sync`, so an image writer
/// can stream it from another thread.
#[derive(Clone, Debug)]
pub struct SpaceSnapshot {
    /// The areas in ascending base order (primary first when present).
    pub areas: Vec<AreaSnapshot>,
}

impl SpaceSnapshot {
    /// Reads bytes at `addr` as they were when the snapshot was taken, or
    /// `None` if part of the range was not mapped (or a pending page of it
    /// is lost).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.checked_add(done as u64)?;
            let area = self
                .areas
                .iter()
                .find(|a| at >= a.base && at - a.base < a.size)?;
            let off = at - area.base;
            let in_page = (off % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page)
                .min(buf.len() - done)
                .min((area.size - off) as usize);
            let page = area.page(off / PAGE_SIZE).ok()?;
            buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
            done += n;
        }
        Some(())
    }
}

impl AddressSpace {
    /// Takes copy-on-write references to every page of every area (see
    /// [`SpaceSnapshot`]). Shared backings are locked one at a time while
    /// their tables are cloned.
    pub fn snapshot(&self) -> SpaceSnapshot {
        // The pages become shared: a cached store would write into the
        // snapshot, and a store must mark its page dirty again.
        self.cache.clear();
        let primary = self.has_primary.then(|| AreaSnapshot {
            base: 0,
            size: self.primary_len,
            flags: AreaFlags::RW,
            kind: AreaKind::Primary {
                max_wasm_pages: self.primary_max_pages,
            },
            pages: self.primary.table.clone(),
            pending: self.primary.pending.as_deref().cloned(),
        });
        let others = self.areas.iter().map(|(&base, area)| {
            let (kind, pages, pending) = match &area.backing {
                Backing::Anonymous(store) => (
                    AreaKind::Anonymous,
                    store.table.clone(),
                    store.pending.as_deref().cloned(),
                ),
                Backing::Shared(shared) => {
                    let store = shared.lock();
                    (
                        AreaKind::Shared {
                            backing: shared.id(),
                        },
                        store.table.clone(),
                        store.pending.as_deref().cloned(),
                    )
                }
            };
            AreaSnapshot {
                base,
                size: area.size,
                flags: area.flags,
                kind,
                pages,
                pending,
            }
        });
        SpaceSnapshot {
            areas: primary.into_iter().chain(others).collect(),
        }
    }

    /// Page-aligned addresses of the pages written since the last
    /// [`AddressSpace::clear_dirty`], ascending. A write through another
    /// space to a shared backing mapped here counts too.
    pub fn dirty_pages(&self) -> impl Iterator<Item = u64> + use<> {
        let mut out: Vec<u64> = self.primary.dirty.iter().map(|i| i * PAGE_SIZE).collect();
        for (&base, area) in &self.areas {
            match &area.backing {
                Backing::Anonymous(store) => {
                    out.extend(store.dirty.iter().map(|i| base + i * PAGE_SIZE));
                }
                Backing::Shared(shared) => {
                    out.extend(shared.lock().dirty.iter().map(|i| base + i * PAGE_SIZE));
                }
            }
        }
        out.into_iter()
    }

    /// Clears every dirty bit (after a checkpoint), including those of the
    /// shared backings this space maps.
    pub fn clear_dirty(&mut self) {
        self.primary_mut().dirty.clear();
        for area in self.areas.values_mut() {
            match &mut area.backing {
                Backing::Anonymous(store) => store.dirty.clear(),
                Backing::Shared(shared) => shared.lock().dirty.clear(),
            }
        }
    }

    /// Installs a copy of `page` at the page-aligned `addr` without marking
    /// it dirty, whatever the area's flags (restore). An all-zero page
    /// releases the slot.
    pub fn restore_page(&mut self, addr: u64, page: &Page) -> Result<(), MmError> {
        self.install_page(addr, Arc::new(*page))
    }

    /// Like [`AddressSpace::restore_page`] but shares the given page
    /// (copy-on-write) instead of copying it.
    pub fn install_page(&mut self, addr: u64, page: Arc<Page>) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned {
                base: addr,
                size: PAGE_SIZE,
            });
        }
        match self.region(addr).ok_or(MmError::NotMapped { addr })? {
            Region::Primary => self.primary_mut().install(addr / PAGE_SIZE, Some(page)),
            Region::Area(base) => {
                let area = self
                    .areas
                    .get_mut(&base)
                    .ok_or(MmError::NotMapped { addr })?;
                let index = (addr - base) / PAGE_SIZE;
                match &mut area.backing {
                    Backing::Anonymous(store) => store.install(index, Some(page)),
                    Backing::Shared(shared) => shared.lock().install(index, Some(page)),
                }
            }
        }
        Ok(())
    }

    /// Recreates a space from a snapshot, sharing its pages copy-on-write
    /// (no page is copied; dirty bits start clear). Shared areas are mapped
    /// to the backings `shared` returns for their ids; an id it does not
    /// know gets a fresh backing holding the snapshot's pages.
    pub fn from_snapshot(
        limits: MemLimits,
        snapshot: &SpaceSnapshot,
        mut shared: impl FnMut(BackingId) -> Option<SharedBacking>,
    ) -> Result<AddressSpace, MmError> {
        let mut space = AddressSpace::new(limits);
        for area in &snapshot.areas {
            match area.kind {
                AreaKind::Primary { max_wasm_pages } => {
                    let pages = u32::try_from(area.size / WASM_PAGE_SIZE).map_err(|_| {
                        MmError::OutOfRange {
                            base: 0,
                            size: area.size,
                        }
                    })?;
                    space.create_primary(pages, Some(max_wasm_pages))?;
                    *space.primary_mut() = PageStore {
                        table: area.pages.clone(),
                        dirty: Default::default(),
                        pending: area.pending.clone().map(Box::new),
                    };
                }
                AreaKind::Anonymous => {
                    space.create_area(area.base, area.size, area.flags)?;
                    if let Some(Area {
                        backing: Backing::Anonymous(store),
                        ..
                    }) = space.areas.get_mut(&area.base)
                    {
                        store.table = area.pages.clone();
                        store.pending = area.pending.clone().map(Box::new);
                    }
                }
                AreaKind::Shared { backing } => {
                    let handle = match shared(backing) {
                        Some(handle) => handle,
                        None => {
                            let fresh = SharedBacking::new(backing, area.size)?;
                            for (index, page) in area.pages() {
                                fresh.install_page(index, page.clone())?;
                            }
                            if let Some(p) = &area.pending {
                                fresh.lock().set_pending(p.clone());
                            }
                            fresh
                        }
                    };
                    space.map_shared(area.base, &handle, area.flags)?;
                }
            }
        }
        space.lazy = snapshot.areas.iter().any(|a| a.pending.is_some());
        Ok(space)
    }
}
