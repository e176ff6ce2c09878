//! Loads, stores and bulk operations on an address space.
//!
//! Every access is checked against the areas and their flags before any byte
//! moves: a faulting access changes nothing and reports the lowest address
//! it was refused at. Accesses wholly inside one page of the primary area
//! take an inlined fast path (the interpreter's hot path); everything else
//! goes through the region walk.

use super::PAGE_SIZE;
use super::area::Area;
use super::cache::Entries;
use super::fault::Fault;
use super::space::{AddressSpace, Region};
use super::store::Lost;

/// The fault of a lost page met by an access at `at` in the region based
/// at `base` (the page's first byte, or `at` if that is lower).
fn lost(base: u64, at: u64) -> impl Fn(Lost) -> Fault {
    move |l| Fault::Lost {
        addr: (base + l.off).max(at),
    }
}

const PAGE_MASK: u64 = PAGE_SIZE - 1;

/// Bytes moved per step of `copy_within`.
const COPY_CHUNK: usize = PAGE_SIZE as usize;

impl AddressSpace {
    /// Loads `N` bytes (little-endian order as stored) from `addr`.
    #[inline(always)]
    pub fn load<const N: usize>(&self, addr: u64) -> Result<[u8; N], Fault> {
        // Safety: the entries are the cache's, taken just now, and `&self`
        // excludes every other use of the space meanwhile.
        match unsafe { self.cache.entries().load::<N>(addr) } {
            Some(bytes) => Ok(bytes),
            None => self.load_uncached(addr),
        }
    }

    /// A copy of the access cache's entries, for loads and stores that
    /// hold the space's exclusive borrow and use nothing else of it
    /// meanwhile ([`Entries`]).
    #[inline(always)]
    pub(crate) fn cache_entries(&self) -> Entries {
        self.cache.entries()
    }

    /// [`load`](Self::load) past the cache: fills it on a primary-area
    /// access within one page, else walks the regions.
    #[inline(never)]
    pub(crate) fn load_uncached<const N: usize>(&self, addr: u64) -> Result<[u8; N], Fault> {
        let off = (addr & PAGE_MASK) as usize;
        let index = addr / PAGE_SIZE;
        if off + N <= PAGE_SIZE as usize
            && addr
                .checked_add(N as u64)
                .is_some_and(|end| end <= self.primary_len)
            && !self.primary.is_pending(index)
        {
            let page = match self.cache.recall_read(index) {
                Some(page) => page,
                None => {
                    let page = self.primary.table.page_ptr(index);
                    self.cache.set_read(index, page);
                    page
                }
            };
            // Safety: `page_ptr` has just returned the live bytes of the
            // page, or the cache has kept them (its invariant); `off + N` is
            // within the page.
            return Ok(unsafe {
                page.cast::<u8>()
                    .add(off)
                    .cast::<[u8; N]>()
                    .read_unaligned()
            });
        }
        self.load_slow(addr)
    }

    /// [`load`](Self::load) for the holder of `&mut`: a page still
    /// pending in a lazy restore's image is loaded and installed first
    /// (the interpreter's slow path), so later loads find it in the table.
    #[inline(always)]
    pub fn load_mut<const N: usize>(&mut self, addr: u64) -> Result<[u8; N], Fault> {
        if self.lazy {
            self.fault_in(addr, N as u64)?;
        }
        self.load(addr)
    }

    /// Loads and installs the pending pages of `[addr, addr + len)` that
    /// are mapped (unmapped parts are left for the access to refuse).
    #[inline(never)]
    pub(crate) fn fault_in(&mut self, addr: u64, len: u64) -> Result<(), Fault> {
        let end = addr.saturating_add(len.max(1));
        let mut at = addr;
        while at < end {
            let Some((region, region_end, _)) = self.region_bounds(at) else {
                return Ok(());
            };
            let n = region_end.min(end) - at;
            match region {
                Region::Primary => {
                    // Through `primary_mut` (which forgets the access
                    // cache) only when a page of the range is pending.
                    let mut pages = at / PAGE_SIZE..=(at + n - 1) / PAGE_SIZE;
                    if pages.any(|p| self.primary.is_pending(p)) {
                        self.primary_mut()
                            .fault_in_range(at, n, false)
                            .map_err(lost(0, at))?;
                    }
                }
                Region::Area(base) => {
                    self.area_mut(base, at)?
                        .fault_in(at - base, n)
                        .map_err(lost(base, at))?;
                }
            }
            at += n;
        }
        Ok(())
    }

    #[inline(never)]
    fn load_slow<const N: usize>(&self, addr: u64) -> Result<[u8; N], Fault> {
        let mut out = [0u8; N];
        self.read(addr, &mut out)?;
        Ok(out)
    }

    /// Stores `bytes` at `addr`.
    #[inline(always)]
    pub fn store<const N: usize>(&mut self, addr: u64, bytes: [u8; N]) -> Result<(), Fault> {
        // Safety: the entries are the cache's, taken just now, and `&mut
        // self` excludes every other use of the space meanwhile.
        if unsafe { self.cache.entries().store::<N>(addr, bytes) } {
            return Ok(());
        }
        self.store_uncached(addr, bytes)
    }

    /// [`store`](Self::store) past the cache: fills it on a primary-area
    /// access within one page, else walks the regions.
    #[inline(never)]
    pub(crate) fn store_uncached<const N: usize>(
        &mut self,
        addr: u64,
        bytes: [u8; N],
    ) -> Result<(), Fault> {
        let off = (addr & PAGE_MASK) as usize;
        let index = addr / PAGE_SIZE;
        if off + N <= PAGE_SIZE as usize
            && addr
                .checked_add(N as u64)
                .is_some_and(|end| end <= self.primary_len)
        {
            let page = match self.cache.recall(index) {
                Some(page) => page,
                None => {
                    if self.primary.is_pending(index) {
                        self.primary_mut().fault_in(index).map_err(lost(0, addr))?;
                    }
                    let page = self.primary.unique_page_ptr(index);
                    self.cache.set_write_kept(index, page);
                    page
                }
            };
            // Safety: the page is private to the table and dirty, either
            // kept so by the cache (its invariant) or made so just now by
            // `unique_page_ptr`; `off + N` is within it.
            unsafe {
                page.cast::<u8>()
                    .add(off)
                    .cast::<[u8; N]>()
                    .write_unaligned(bytes)
            };
            return Ok(());
        }
        self.store_slow(addr, bytes)
    }

    #[inline(never)]
    fn store_slow<const N: usize>(&mut self, addr: u64, bytes: [u8; N]) -> Result<(), Fault> {
        self.write(addr, &bytes)
    }

    /// Reads `buf.len()` bytes at `addr`; on a fault `buf` is unspecified.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let len = buf.len() as u64;
        if self.in_primary(addr, len) {
            return self.primary.read(addr, buf).map_err(lost(0, addr));
        }
        self.check_range(addr, len, false)?;
        let mut done = 0u64;
        while done < len {
            let at = addr + done;
            let (region, end, _) = self.region_bounds(at).ok_or(Fault::Unmapped { addr: at })?;
            let n = (end - at).min(len - done);
            let piece = &mut buf[done as usize..(done + n) as usize];
            match region {
                Region::Primary => self.primary.read(at, piece).map_err(lost(0, at))?,
                Region::Area(base) => self
                    .area(base, at)?
                    .read(at - base, piece)
                    .map_err(lost(base, at))?,
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at `addr`; on a fault nothing is written.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let len = data.len() as u64;
        if self.in_primary(addr, len) {
            return self.primary_mut().write(addr, data).map_err(lost(0, addr));
        }
        self.check_range(addr, len, true)?;
        if self.lazy {
            // A lost page in a later region must leave the earlier unwritten.
            self.fault_in(addr, len)?;
        }
        let mut done = 0u64;
        while done < len {
            let at = addr + done;
            let (region, end, _) = self.region_bounds(at).ok_or(Fault::Unmapped { addr: at })?;
            let n = (end - at).min(len - done);
            let piece = &data[done as usize..(done + n) as usize];
            match region {
                Region::Primary => self.primary_mut().write(at, piece).map_err(lost(0, at))?,
                Region::Area(base) => self
                    .area_mut(base, at)?
                    .write(at - base, piece)
                    .map_err(lost(base, at))?,
            }
            done += n;
        }
        Ok(())
    }

    /// Sets `len` bytes at `addr` to `byte` (memory.fill); on a fault
    /// nothing is written.
    pub fn fill(&mut self, addr: u64, byte: u8, len: u64) -> Result<(), Fault> {
        if self.in_primary(addr, len) {
            return self
                .primary_mut()
                .fill(addr, byte, len)
                .map_err(lost(0, addr));
        }
        self.check_range(addr, len, true)?;
        if self.lazy {
            self.fault_in(addr, len)?;
        }
        let mut done = 0u64;
        while done < len {
            let at = addr + done;
            let (region, end, _) = self.region_bounds(at).ok_or(Fault::Unmapped { addr: at })?;
            let n = (end - at).min(len - done);
            match region {
                Region::Primary => self.primary_mut().fill(at, byte, n).map_err(lost(0, at))?,
                Region::Area(base) => self
                    .area_mut(base, at)?
                    .fill(at - base, byte, n)
                    .map_err(lost(base, at))?,
            }
            done += n;
        }
        Ok(())
    }

    /// Copies `len` bytes from `src` to `dst` with memmove semantics
    /// (overlap allowed); on a fault nothing is written.
    pub fn copy_within(&mut self, dst: u64, src: u64, len: u64) -> Result<(), Fault> {
        self.check_range(src, len, false)?;
        self.check_range(dst, len, true)?;
        if self.lazy && len > 0 {
            // Every page in first, so that a lost one stops the copy
            // before anything is written.
            self.fault_in(src, len)?;
            self.fault_in(dst, len)?;
        }
        let mut buf = [0u8; COPY_CHUNK];
        let mut step = |space: &mut AddressSpace, done: u64, n: u64| -> Result<(), Fault> {
            let piece = &mut buf[..n as usize];
            space.read(src + done, piece)?;
            space.write(dst + done, piece)
        };
        if dst <= src {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(COPY_CHUNK as u64);
                step(self, done, n)?;
                done += n;
            }
        } else {
            let mut left = len;
            while left > 0 {
                let n = left.min(COPY_CHUNK as u64);
                left -= n;
                step(self, left, n)?;
            }
        }
        Ok(())
    }

    /// Checks that `[addr, addr + len)` is mapped and permits the access
    /// (a store if `write`). A zero-length range is accepted at any address
    /// inside an area or at the end of one (wasm's rule for bulk operations
    /// at the end of memory).
    pub fn check_range(&self, addr: u64, len: u64, write: bool) -> Result<(), Fault> {
        if len == 0 {
            let at_end = (self.has_primary && addr == self.primary_len)
                || addr
                    .checked_sub(1)
                    .and_then(|a| self.region_bounds(a))
                    .is_some_and(|(_, end, _)| end == addr);
            return if at_end || self.region(addr).is_some() {
                Ok(())
            } else {
                Err(Fault::Unmapped { addr })
            };
        }
        let end = addr.saturating_add(len);
        let mut at = addr;
        while at < end {
            let (_, area_end, flags) =
                self.region_bounds(at).ok_or(Fault::Unmapped { addr: at })?;
            let permitted = if write {
                flags.writable()
            } else {
                flags.readable()
            };
            if !permitted {
                return Err(Fault::Protection { addr: at, write });
            }
            at = area_end;
        }
        Ok(())
    }

    /// True if `[addr, addr + len)` lies inside the primary area.
    #[inline]
    fn in_primary(&self, addr: u64, len: u64) -> bool {
        addr.checked_add(len)
            .is_some_and(|end| end <= self.primary_len)
    }

    fn area(&self, base: u64, at: u64) -> Result<&Area, Fault> {
        self.areas.get(&base).ok_or(Fault::Unmapped { addr: at })
    }

    fn area_mut(&mut self, base: u64, at: u64) -> Result<&mut Area, Fault> {
        self.areas
            .get_mut(&base)
            .ok_or(Fault::Unmapped { addr: at })
    }
}
