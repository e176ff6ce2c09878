//! The address space of a task: the primary area (memory 0 of the module) at
//! address 0 and further areas above it, with its layout operations
//! (create, grow, destroy, map shared). Accesses are in `access.rs`,
//! snapshots and restore in `snapshot.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::area::{Area, Backing};
use super::cache::AccessCache;
use super::flags::{AreaFlags, MemLimits};
use super::lazy::{PageSource, Pending};
use super::page_table::Page;
use super::shared::{BackingId, SharedBacking};
use super::store::PageStore;
use super::{ADDRESS_SPACE_SIZE, MmError, PAGE_SIZE, WASM_PAGE_SIZE};

/// Wasm pages in the whole 4 GiB space.
pub(crate) const MAX_WASM_PAGES: u32 = (ADDRESS_SPACE_SIZE / WASM_PAGE_SIZE) as u32;

/// A sparse 32-bit address space of areas backed by copy-on-write pages.
///
/// Untouched pages read as zero and cost no memory. The primary area is kept
/// apart from the others so that the interpreter's loads and stores to it
/// take one bounds check and two table lookups.
#[derive(Debug)]
pub struct AddressSpace {
    pub(crate) limits: MemLimits,
    /// Size of the primary area in bytes (0 without one).
    pub(crate) primary_len: u64,
    /// The primary area's pages: read it freely, but mutate it only through
    /// [`AddressSpace::primary_mut`] (or a store through `cache`).
    pub(crate) primary: PageStore,
    /// The last primary pages loaded from and stored to (see `cache.rs`).
    pub(crate) cache: AccessCache,
    pub(crate) has_primary: bool,
    pub(crate) primary_max_pages: u32,
    /// The primary area's identity (`identity.rs`).
    pub(crate) primary_id: u64,
    /// Further areas by base address; none overlaps another or the primary.
    pub(crate) areas: BTreeMap<u64, Area>,
    /// Sum of the sizes of all areas, primary included.
    pub(crate) mapped_bytes: u64,
    /// Set once a store of the space got pending pages (lazy restore):
    /// loads through `&mut` then fault them in (`load_mut`).
    pub(crate) lazy: bool,
}

/// Which area an address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    Primary,
    Area(u64),
}

/// What a page is, for keying futexes: the same physical page gives the same
/// key whichever space or base it is reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageKey {
    /// A page private to the space, by its page-aligned address.
    Private {
        /// Page-aligned address in the space.
        page_addr: u64,
    },
    /// A page of a shared backing.
    Shared {
        /// The backing.
        backing: BackingId,
        /// Page index within the backing.
        page_index: u64,
    },
}

impl AddressSpace {
    /// An empty space: no area, every access faults.
    pub fn new(limits: MemLimits) -> AddressSpace {
        AddressSpace {
            limits,
            primary_len: 0,
            primary: PageStore::default(),
            cache: AccessCache::default(),
            has_primary: false,
            primary_max_pages: 0,
            primary_id: super::identity::new_area_id(),
            areas: BTreeMap::new(),
            mapped_bytes: 0,
            lazy: false,
        }
    }

    /// The primary area's pages for any change other than a cached store:
    /// forgets the access cache first, since the change may copy, replace,
    /// release or clean the cached pages.
    #[inline]
    pub(crate) fn primary_mut(&mut self) -> &mut PageStore {
        self.cache.clear();
        &mut self.primary
    }

    /// The space's limits.
    pub fn limits(&self) -> MemLimits {
        self.limits
    }

    /// Memory 0 of the module: the primary area at address 0, in wasm pages.
    /// `max_wasm_pages` of `None` means the whole 4 GiB (65536 pages).
    pub fn create_primary(
        &mut self,
        initial_wasm_pages: u32,
        max_wasm_pages: Option<u32>,
    ) -> Result<(), MmError> {
        if self.has_primary {
            return Err(MmError::PrimaryExists);
        }
        let max = max_wasm_pages.unwrap_or(MAX_WASM_PAGES).min(MAX_WASM_PAGES);
        if initial_wasm_pages > max {
            return Err(MmError::BadPrimarySize {
                initial: initial_wasm_pages,
                max,
            });
        }
        let size = u64::from(initial_wasm_pages) * WASM_PAGE_SIZE;
        if let Some((&base, _)) = self.areas.range(..size).next() {
            return Err(MmError::Overlap {
                base: 0,
                size,
                existing: base,
            });
        }
        self.charge(size)?;
        self.has_primary = true;
        self.primary_len = size;
        self.primary_max_pages = max;
        Ok(())
    }

    /// True once [`AddressSpace::create_primary`] succeeded.
    pub fn has_primary(&self) -> bool {
        self.has_primary
    }

    /// Current size of the primary area in wasm pages (0 without one).
    pub fn primary_wasm_pages(&self) -> u32 {
        (self.primary_len / WASM_PAGE_SIZE) as u32
    }

    /// The primary area's maximum in wasm pages (0 without one).
    pub fn primary_max_wasm_pages(&self) -> u32 {
        self.primary_max_pages
    }

    /// memory.grow: `Some(old size in wasm pages)`, or `None` (the -1 result)
    /// when there is no primary area or growing would pass its maximum, the
    /// space's limits, or the base of another area above it.
    pub fn grow_primary(&mut self, delta_wasm_pages: u32) -> Option<u32> {
        if !self.has_primary {
            return None;
        }
        let old = self.primary_wasm_pages();
        let new = old.checked_add(delta_wasm_pages)?;
        if new > self.primary_max_pages {
            return None;
        }
        let new_len = u64::from(new) * WASM_PAGE_SIZE;
        if self.areas.range(..new_len).next().is_some() {
            return None;
        }
        self.charge(new_len - self.primary_len).ok()?;
        self.primary_len = new_len;
        Some(old)
    }

    /// Creates an anonymous area above the primary one (`as_area_create`).
    /// `base` and `size` must be page aligned; the area must lie within the
    /// 4 GiB space and overlap nothing.
    pub fn create_area(&mut self, base: u64, size: u64, flags: AreaFlags) -> Result<(), MmError> {
        self.insert_area(
            base,
            Area {
                id: super::identity::new_area_id(),
                size,
                flags,
                backing: Backing::Anonymous(PageStore::default()),
            },
        )
    }

    /// Maps the whole of `backing` as an area at `base` with `flags`
    /// (share-in / share-out). Writes through any mapping are visible
    /// through every other.
    pub fn map_shared(
        &mut self,
        base: u64,
        backing: &SharedBacking,
        flags: AreaFlags,
    ) -> Result<(), MmError> {
        if backing.lock().pending.is_some() {
            self.lazy = true;
        }
        self.insert_area(
            base,
            Area {
                id: super::identity::new_area_id(),
                size: backing.size(),
                flags,
                backing: Backing::Shared(backing.clone()),
            },
        )
    }

    /// Removes the area starting at `base`, releasing its pages (a shared
    /// backing lives on while another area or handle holds it).
    pub fn destroy_area(&mut self, base: u64) -> Result<(), MmError> {
        let Some(area) = self.areas.remove(&base) else {
            return Err(if self.has_primary && base == 0 {
                MmError::PrimaryNotDestroyable
            } else {
                MmError::NotFound { base }
            });
        };
        self.mapped_bytes -= area.size;
        Ok(())
    }

    /// The shared backing mapped at `base`, if that area is shared.
    pub fn shared_backing(&self, base: u64) -> Option<&SharedBacking> {
        match &self.areas.get(&base)?.backing {
            Backing::Shared(shared) => Some(shared),
            Backing::Anonymous(_) => None,
        }
    }

    /// Base, size and flags of every area in ascending base order (the
    /// primary area first, as base 0, when present).
    pub fn areas(&self) -> Vec<(u64, u64, AreaFlags)> {
        let primary = self
            .has_primary
            .then_some((0, self.primary_len, AreaFlags::RW));
        primary
            .into_iter()
            .chain(self.areas.iter().map(|(&b, a)| (b, a.size, a.flags)))
            .collect()
    }

    /// Sum of the sizes of all areas (what the limits count).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped_bytes
    }

    /// Bytes of pages actually materialised by this space's anonymous
    /// memory (primary and anonymous areas). Pages shared with a snapshot
    /// count once. Shared backings are not counted: see
    /// [`AddressSpace::shared_resident_bytes`].
    pub fn resident_bytes(&self) -> u64 {
        let anon: u64 = self
            .areas
            .values()
            .filter_map(|a| match &a.backing {
                Backing::Anonymous(s) => Some(s.table.resident_pages()),
                Backing::Shared(_) => None,
            })
            .sum();
        (self.primary.table.resident_pages() + anon) * PAGE_SIZE
    }

    /// Bytes of pages materialised in the shared backings this space maps.
    pub fn shared_resident_bytes(&self) -> u64 {
        self.areas
            .values()
            .filter_map(|a| match &a.backing {
                Backing::Shared(s) => Some(s.lock().table.resident_pages() * PAGE_SIZE),
                Backing::Anonymous(_) => None,
            })
            .sum()
    }

    /// Approximate bytes of bookkeeping: the space itself, page tables and
    /// dirty bitmaps of its anonymous memory.
    pub fn metadata_bytes(&self) -> u64 {
        let areas: u64 = self
            .areas
            .values()
            .map(|a| {
                std::mem::size_of::<Area>() as u64
                    + 16
                    + match &a.backing {
                        Backing::Anonymous(s) => s.metadata_bytes(),
                        Backing::Shared(_) => 0,
                    }
            })
            .sum();
        std::mem::size_of::<AddressSpace>() as u64 + self.primary.metadata_bytes() + areas
    }

    /// The identity of the page holding `addr`, or `None` if unmapped.
    pub fn page_key(&self, addr: u64) -> Option<PageKey> {
        let page_addr = addr & !(PAGE_SIZE - 1);
        match self.region(addr)? {
            Region::Primary => Some(PageKey::Private { page_addr }),
            Region::Area(base) => match &self.areas.get(&base)?.backing {
                Backing::Anonymous(_) => Some(PageKey::Private { page_addr }),
                Backing::Shared(s) => Some(PageKey::Shared {
                    backing: s.id(),
                    page_index: (addr - base) / PAGE_SIZE,
                }),
            },
        }
    }

    /// The region containing `addr` with its end and flags.
    #[inline]
    pub(crate) fn region(&self, addr: u64) -> Option<Region> {
        self.region_bounds(addr).map(|(r, _, _)| r)
    }

    /// The region containing `addr`, its end address and its flags.
    pub(crate) fn region_bounds(&self, addr: u64) -> Option<(Region, u64, AreaFlags)> {
        if addr < self.primary_len {
            return Some((Region::Primary, self.primary_len, AreaFlags::RW));
        }
        let (&base, area) = self.areas.range(..=addr).next_back()?;
        (addr - base < area.size).then_some((Region::Area(base), base + area.size, area.flags))
    }

    /// Whether an area of `size` bytes could be created or mapped at
    /// `base` now: page aligned, inside the 4 GiB space, overlapping
    /// nothing, within the space's limit. Changes nothing.
    pub fn check_new_area(&self, base: u64, size: u64) -> Result<(), MmError> {
        if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned { base, size });
        }
        let end = base
            .checked_add(size)
            .filter(|&end| size > 0 && end <= ADDRESS_SPACE_SIZE)
            .ok_or(MmError::OutOfRange { base, size })?;
        if self.has_primary && base < self.primary_len {
            return Err(MmError::Overlap {
                base,
                size,
                existing: 0,
            });
        }
        if let Some((&b, a)) = self.areas.range(..end).next_back()
            && b + a.size > base
        {
            return Err(MmError::Overlap {
                base,
                size,
                existing: b,
            });
        }
        let requested = self.mapped_bytes.saturating_add(size);
        if requested > self.limits.max_bytes {
            return Err(MmError::LimitExceeded {
                limit: self.limits.max_bytes,
                requested,
            });
        }
        Ok(())
    }

    /// The area starting at `base` as a shared backing, with the area's
    /// flags. An anonymous area becomes shared in place: its pages and
    /// dirty bits move into a new backing named `new_id` (unused when the
    /// area is shared already). The primary area cannot be shared.
    pub fn share_area(
        &mut self,
        base: u64,
        new_id: BackingId,
    ) -> Result<(SharedBacking, AreaFlags), MmError> {
        let Some(area) = self.areas.get_mut(&base) else {
            return Err(if self.has_primary && base == 0 {
                MmError::PrimaryNotDestroyable
            } else {
                MmError::NotFound { base }
            });
        };
        let shared = match &mut area.backing {
            Backing::Shared(s) => s.clone(),
            Backing::Anonymous(store) => {
                let s = SharedBacking::from_store(new_id, area.size, std::mem::take(store))?;
                area.backing = Backing::Shared(s.clone());
                s
            }
        };
        Ok((shared, area.flags))
    }

    /// Base, size, flags and shared backing (if any) of every area in
    /// ascending base order, the primary area first (never shared).
    pub fn area_backings(&self) -> Vec<(u64, u64, AreaFlags, Option<BackingId>)> {
        let primary = self
            .has_primary
            .then_some((0, self.primary_len, AreaFlags::RW, None));
        primary
            .into_iter()
            .chain(self.areas.iter().map(|(&b, a)| {
                let id = match &a.backing {
                    Backing::Shared(s) => Some(s.id()),
                    Backing::Anonymous(_) => None,
                };
                (b, a.size, a.flags, id)
            }))
            .collect()
    }

    /// Makes the pages of `pending` pending in the area starting at `base`
    /// (lazy restore: their slots must be empty). For a shared area they
    /// are pending in the backing, for every space mapping it.
    pub fn set_pending(&mut self, base: u64, pending: Pending) -> Result<(), MmError> {
        if self.has_primary && base == 0 {
            self.primary_mut().set_pending(pending);
        } else {
            let area = self
                .areas
                .get_mut(&base)
                .ok_or(MmError::NotFound { base })?;
            match &mut area.backing {
                Backing::Anonymous(store) => store.set_pending(pending),
                Backing::Shared(shared) => shared.lock().set_pending(pending),
            }
        }
        self.lazy = true;
        Ok(())
    }

    /// Pages of the space's own stores (primary and anonymous areas) still
    /// pending, and those of the shared backings it maps.
    pub fn pending_pages(&self) -> (u64, u64) {
        let mut own = self.primary.pending_pages();
        let mut shared = 0;
        for a in self.areas.values() {
            match &a.backing {
                Backing::Anonymous(s) => own += s.pending_pages(),
                Backing::Shared(s) => shared += s.lock().pending_pages(),
            }
        }
        (own, shared)
    }

    /// The background fill of a lazy restore: installs `page` as page
    /// `index` of the area at `base` if it is still pending in `source`
    /// there; true if it was.
    pub fn fill_pending(
        &mut self,
        base: u64,
        source: &dyn PageSource,
        index: u64,
        page: Arc<Page>,
    ) -> bool {
        if self.has_primary && base == 0 {
            if !self.primary.is_pending(index) {
                return false;
            }
            return self.primary_mut().fill_pending(source, index, page);
        }
        match self.areas.get_mut(&base).map(|a| &mut a.backing) {
            Some(Backing::Anonymous(store)) => store.fill_pending(source, index, page),
            Some(Backing::Shared(shared)) => shared.lock().fill_pending(source, index, page),
            None => false,
        }
    }

    fn insert_area(&mut self, base: u64, area: Area) -> Result<(), MmError> {
        self.check_new_area(base, area.size)?;
        self.charge(area.size)?;
        self.areas.insert(base, area);
        Ok(())
    }

    /// Counts `bytes` more against the limit, or refuses.
    fn charge(&mut self, bytes: u64) -> Result<(), MmError> {
        let requested = self.mapped_bytes.saturating_add(bytes);
        if requested > self.limits.max_bytes {
            return Err(MmError::LimitExceeded {
                limit: self.limits.max_bytes,
                requested,
            });
        }
        self.mapped_bytes = requested;
        Ok(())
    }
}
