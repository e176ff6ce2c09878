//! The seam through which the kernel touches a task's memory.
//!
//! Addresses passed in system calls are *allegations* from the task: every
//! access goes through [`UserMemory`], which checks them. Native tasks use
//! [`NativeMemory`]; guest tasks plug their address space in
//! ([`GuestMemory`](crate::guest::GuestMemory)).
//!
//! Besides bytes, the seam carries *areas* (thesis 3.3): creating and
//! destroying them, sharing one (it becomes a [`SharedBacking`] that other
//! memories map) and listing them with their backing identity, which is
//! what share-in / share-out and the checkpointer's sharing query use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ipc::Errno;
use crate::mm::{self, AreaFlags, MmError, SharedBacking};
use crate::sched::futex::{BackingId, FutexKey};

/// Page size of the kernel (4 KiB).
pub const PAGE_SIZE: u64 = 4096;
/// Size of a task's address space (32 bits).
pub const ADDRESS_SPACE_SIZE: u64 = 1 << 32;

/// A memory access the task's memory refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("memory fault at {addr:#x} ({} access)", if *write { "write" } else { "read" })]
pub struct UserFault {
    pub addr: u64,
    pub write: bool,
}

/// One area of a task's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaInfo {
    pub base: u64,
    pub size: u64,
    pub flags: AreaFlags,
    /// The shared backing the area maps, or `None` for private memory (a
    /// guest's primary area, an anonymous area never shared).
    pub backing: Option<mm::BackingId>,
    /// Memory 0 of a guest's module: grown by `memory.grow`, never shared.
    pub primary: bool,
}

/// A change to a memory's areas that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AreaError {
    #[error(transparent)]
    Mm(#[from] MmError),
    /// This kind of memory has no areas (a test double).
    #[error("this memory has no areas")]
    NoAreas,
}

impl AreaError {
    /// The errno a task sees for it.
    pub fn errno(&self) -> Errno {
        match self {
            AreaError::Mm(MmError::NotFound { .. }) => Errno::NoEntry,
            AreaError::Mm(MmError::Overlap { .. }) => Errno::AddrInUse,
            AreaError::Mm(MmError::LimitExceeded { .. }) => Errno::Limit,
            AreaError::Mm(
                MmError::PrimaryExists | MmError::NoPrimary | MmError::PrimaryNotDestroyable,
            )
            | AreaError::NoAreas => Errno::NotSupported,
            AreaError::Mm(_) => Errno::Invalid,
        }
    }
}

/// The futex key of a word in a page of a shared backing: the same for
/// every memory mapping it (whatever the base), and apart from private
/// keys (the backing id is moved into the upper half of the id space).
pub fn shared_futex_key(backing: mm::BackingId, page_index: u64, offset: u32) -> FutexKey {
    FutexKey {
        backing: BackingId(backing.0 | SHARED_BACKING_BIT),
        page: page_index,
        offset,
    }
}

/// Bit set on futex backing ids derived from shared backings.
const SHARED_BACKING_BIT: u64 = 1 << 63;

/// A task's memory as the kernel sees it. `Any` lets the guest scheduler
/// reach the address space behind a guest task's memory.
///
/// The area operations default to [`AreaError::NoAreas`], for memories
/// without areas.
pub trait UserMemory: std::any::Any + Send {
    /// Reads `buf.len()` bytes at `addr`; on a fault nothing is read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), UserFault>;
    /// Writes `data` at `addr`; on a fault nothing is written.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), UserFault>;
    /// Checks that `[addr, addr+len)` may be read (or written): done
    /// before an operation that must not half-happen.
    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), UserFault>;
    /// The futex identity of the (4-byte aligned) word at `addr`: the
    /// backing page, so that shared futexes meet across tasks.
    fn futex_key(&self, addr: u64) -> Result<FutexKey, UserFault>;

    /// The areas, ascending by base.
    fn areas(&self) -> Vec<AreaInfo> {
        Vec::new()
    }

    /// Whether an area of `size` bytes could be created or mapped at `base`
    /// now. Changes nothing.
    fn check_new_area(&self, _base: u64, _size: u64) -> Result<(), AreaError> {
        Err(AreaError::NoAreas)
    }

    /// Creates an area of zero pages at `base`. `id` names it if the memory
    /// makes it shared from the start (native memory does).
    fn create_area(
        &mut self,
        _base: u64,
        _size: u64,
        _flags: AreaFlags,
        _id: mm::BackingId,
    ) -> Result<(), AreaError> {
        Err(AreaError::NoAreas)
    }

    /// Removes the area starting at `base` (other mappings of its backing
    /// live on).
    fn destroy_area(&mut self, _base: u64) -> Result<(), AreaError> {
        Err(AreaError::NoAreas)
    }

    /// The area starting at `base` as a shared backing with its flags; a
    /// private area becomes shared in place under `new_id`.
    fn share_area(
        &mut self,
        _base: u64,
        _new_id: mm::BackingId,
    ) -> Result<(SharedBacking, AreaFlags), AreaError> {
        Err(AreaError::NoAreas)
    }

    /// Maps the whole of `backing` at `base` with `flags`.
    fn map_shared(
        &mut self,
        _base: u64,
        _backing: &SharedBacking,
        _flags: AreaFlags,
    ) -> Result<(), AreaError> {
        Err(AreaError::NoAreas)
    }

    /// The shared backing the area at `base` maps, if it is shared (a
    /// restore reshares it with restored tasks).
    fn shared_backing(&self, _base: u64) -> Option<SharedBacking> {
        None
    }
}

/// Reads a whole range into a new vector.
pub fn read_vec(mem: &dyn UserMemory, addr: u64, len: u64) -> Result<Vec<u8>, UserFault> {
    let end = addr.checked_add(len).filter(|e| *e <= ADDRESS_SPACE_SIZE);
    if end.is_none() {
        return Err(UserFault { addr, write: false });
    }
    let len = usize::try_from(len).map_err(|_| UserFault { addr, write: false })?;
    let mut buf = vec![0; len];
    mem.read(addr, &mut buf)?;
    Ok(buf)
}

/// The memory of a native task: a sparse 32-bit space of zero-initialised
/// 4 KiB pages, all readable and writable, plus *areas* below
/// [`NATIVE_AREA_END`] that map shared backings (created by the task or
/// shared in from others). An area covers the private pages below it.
/// Untouched pages cost nothing.
pub struct NativeMemory {
    backing: BackingId,
    pages: BTreeMap<u64, Box<[u8; PAGE_SIZE as usize]>>,
    areas: BTreeMap<u64, NativeArea>,
}

/// An area of a native memory: always a mapping of a shared backing.
struct NativeArea {
    backing: SharedBacking,
    flags: AreaFlags,
}

/// Native areas lie below this address; above it are the threads'
/// scratch regions ([`SCRATCH_BASE`](super::native::SCRATCH_BASE)).
pub const NATIVE_AREA_END: u64 = super::native::SCRATCH_BASE;

impl NativeMemory {
    /// An empty memory whose pages are identified by `backing`.
    pub fn new(backing: BackingId) -> Self {
        NativeMemory {
            backing,
            pages: BTreeMap::new(),
            areas: BTreeMap::new(),
        }
    }

    /// Number of private pages touched by writes.
    pub fn touched_pages(&self) -> usize {
        self.pages.len()
    }

    fn check_range(addr: u64, len: usize, write: bool) -> Result<(), UserFault> {
        match addr.checked_add(len as u64) {
            Some(end) if end <= ADDRESS_SPACE_SIZE => Ok(()),
            _ => Err(UserFault { addr, write }),
        }
    }

    /// The area containing `addr`, with its base.
    fn area_of(&self, addr: u64) -> Option<(u64, &NativeArea)> {
        let (&base, a) = self.areas.range(..=addr).next_back()?;
        (addr - base < a.backing.size()).then_some((base, a))
    }

    /// Checks the range and the flags of every area it touches.
    fn check_access(&self, addr: u64, len: usize, write: bool) -> Result<(), UserFault> {
        Self::check_range(addr, len, write)?;
        let end = addr + len as u64;
        let mut at = addr;
        while at < end {
            let next_page = (at / PAGE_SIZE + 1) * PAGE_SIZE;
            if let Some((_, a)) = self.area_of(at) {
                let ok = if write {
                    a.flags.writable()
                } else {
                    a.flags.readable()
                };
                if !ok {
                    return Err(UserFault { addr: at, write });
                }
            }
            at = next_page;
        }
        Ok(())
    }
}

impl UserMemory for NativeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), UserFault> {
        self.check_access(addr, buf.len(), false)?;
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let (page, off) = (a / PAGE_SIZE, (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            if let Some((base, area)) = self.area_of(a) {
                // A page still pending in a lazy restore's image comes in
                // now; one that is lost faults like an unmapped one.
                area.backing
                    .lock()
                    .read_mut(a - base, &mut buf[done..done + n])
                    .map_err(|_| UserFault {
                        addr: a,
                        write: false,
                    })?;
            } else {
                match self.pages.get(&page) {
                    Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                    None => buf[done..done + n].fill(0),
                }
            }
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), UserFault> {
        self.check_access(addr, data.len(), true)?;
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let (page, off) = (a / PAGE_SIZE, (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(data.len() - done);
            if let Some((base, area)) = self.area_of(a) {
                area.backing
                    .lock()
                    .write(a - base, &data[done..done + n])
                    .map_err(|_| UserFault {
                        addr: a,
                        write: true,
                    })?;
            } else {
                let p = self
                    .pages
                    .entry(page)
                    .or_insert_with(|| Box::new([0; PAGE_SIZE as usize]));
                p[off..off + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        Ok(())
    }

    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), UserFault> {
        let len = usize::try_from(len).map_err(|_| UserFault { addr, write })?;
        self.check_access(addr, len, write)
    }

    fn futex_key(&self, addr: u64) -> Result<FutexKey, UserFault> {
        if !addr.is_multiple_of(4) {
            return Err(UserFault { addr, write: false });
        }
        self.check_access(addr, 4, false)?;
        let offset = (addr % PAGE_SIZE) as u32;
        if let Some((base, area)) = self.area_of(addr) {
            return Ok(shared_futex_key(
                area.backing.id(),
                (addr - base) / PAGE_SIZE,
                offset,
            ));
        }
        Ok(FutexKey {
            backing: self.backing,
            page: addr / PAGE_SIZE,
            offset,
        })
    }

    fn areas(&self) -> Vec<AreaInfo> {
        self.areas
            .iter()
            .map(|(&base, a)| AreaInfo {
                base,
                size: a.backing.size(),
                flags: a.flags,
                backing: Some(a.backing.id()),
                primary: false,
            })
            .collect()
    }

    fn check_new_area(&self, base: u64, size: u64) -> Result<(), AreaError> {
        if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned { base, size }.into());
        }
        let end = base
            .checked_add(size)
            .filter(|&end| size > 0 && end <= NATIVE_AREA_END)
            .ok_or(MmError::OutOfRange { base, size })?;
        if let Some((&b, a)) = self.areas.range(..end).next_back()
            && b + a.backing.size() > base
        {
            return Err(MmError::Overlap {
                base,
                size,
                existing: b,
            }
            .into());
        }
        Ok(())
    }

    fn create_area(
        &mut self,
        base: u64,
        size: u64,
        flags: AreaFlags,
        id: mm::BackingId,
    ) -> Result<(), AreaError> {
        self.check_new_area(base, size)?;
        let backing = SharedBacking::new(id, size)?;
        self.areas.insert(base, NativeArea { backing, flags });
        Ok(())
    }

    fn destroy_area(&mut self, base: u64) -> Result<(), AreaError> {
        self.areas
            .remove(&base)
            .map(|_| ())
            .ok_or(AreaError::Mm(MmError::NotFound { base }))
    }

    fn share_area(
        &mut self,
        base: u64,
        _new_id: mm::BackingId,
    ) -> Result<(SharedBacking, AreaFlags), AreaError> {
        let a = self
            .areas
            .get(&base)
            .ok_or(AreaError::Mm(MmError::NotFound { base }))?;
        Ok((a.backing.clone(), a.flags))
    }

    fn map_shared(
        &mut self,
        base: u64,
        backing: &SharedBacking,
        flags: AreaFlags,
    ) -> Result<(), AreaError> {
        self.check_new_area(base, backing.size())?;
        self.areas.insert(
            base,
            NativeArea {
                backing: backing.clone(),
                flags,
            },
        );
        Ok(())
    }

    fn shared_backing(&self, base: u64) -> Option<SharedBacking> {
        self.areas.get(&base).map(|a| a.backing.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_reads_zero_and_writes_cross_pages() {
        let mut m = NativeMemory::new(BackingId(1));
        let mut buf = [7u8; 8];
        m.read(0x1000, &mut buf).unwrap();
        assert_eq!(buf, [0; 8]);
        m.write(PAGE_SIZE - 2, &[1, 2, 3, 4]).unwrap();
        assert_eq!(m.touched_pages(), 2);
        assert_eq!(
            read_vec(&m, PAGE_SIZE - 3, 6).unwrap(),
            vec![0, 1, 2, 3, 4, 0]
        );
        assert!(m.write(ADDRESS_SPACE_SIZE - 1, &[1, 2]).is_err());
        assert!(m.futex_key(6).is_err());
        assert_eq!(m.futex_key(PAGE_SIZE + 8).unwrap().page, 1);
    }
}
