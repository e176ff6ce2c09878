//! The seam through which the kernel touches a task's memory.
//!
//! Addresses passed in system calls are *allegations* from the task: every
//! access goes through [`UserMemory`], which checks them. Native tasks use
//! [`NativeMemory`]; guest tasks will plug their address space in here.

use std::collections::BTreeMap;

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

/// A task's memory as the kernel sees it. `Any` lets the guest scheduler
/// reach the address space behind a guest task's memory.
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
/// 4 KiB pages, all readable and writable. Untouched pages cost nothing.
pub struct NativeMemory {
    backing: BackingId,
    pages: BTreeMap<u64, Box<[u8; PAGE_SIZE as usize]>>,
}

impl NativeMemory {
    /// An empty memory whose pages are identified by `backing`.
    pub fn new(backing: BackingId) -> Self {
        NativeMemory {
            backing,
            pages: BTreeMap::new(),
        }
    }

    /// Number of pages touched by writes.
    pub fn touched_pages(&self) -> usize {
        self.pages.len()
    }

    fn check_range(addr: u64, len: usize, write: bool) -> Result<(), UserFault> {
        match addr.checked_add(len as u64) {
            Some(end) if end <= ADDRESS_SPACE_SIZE => Ok(()),
            _ => Err(UserFault { addr, write }),
        }
    }
}

impl UserMemory for NativeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), UserFault> {
        Self::check_range(addr, buf.len(), false)?;
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let (page, off) = (a / PAGE_SIZE, (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.pages.get(&page) {
                Some(p) => buf[done..done + n].copy_from_slice(&p[off..off + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), UserFault> {
        Self::check_range(addr, data.len(), true)?;
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let (page, off) = (a / PAGE_SIZE, (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(data.len() - done);
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| Box::new([0; PAGE_SIZE as usize]));
            p[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), UserFault> {
        let len = usize::try_from(len).map_err(|_| UserFault { addr, write })?;
        Self::check_range(addr, len, write)
    }

    fn futex_key(&self, addr: u64) -> Result<FutexKey, UserFault> {
        if !addr.is_multiple_of(4) {
            return Err(UserFault { addr, write: false });
        }
        Self::check_range(addr, 4, false)?;
        Ok(FutexKey {
            backing: self.backing,
            page: addr / PAGE_SIZE,
            offset: (addr % PAGE_SIZE) as u32,
        })
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
