//! [`GuestMemory`]: a guest task's [`AddressSpace`] seen through the
//! kernel's [`UserMemory`] seam.
//!
//! Futex keys follow the backing of the page: a private page is keyed by
//! the task's own backing identity and its page address; a page of a shared
//! backing by that backing's id (moved into the upper half of the id space,
//! so that mm's backing ids and the kernel's counter never meet) and its
//! index in the backing, so tasks sharing the page meet in one queue.

use crate::mm::{AddressSpace, Fault, PageKey};
use crate::sched::futex::{BackingId, FutexKey};
use crate::task::memory::PAGE_SIZE;
use crate::task::{UserFault, UserMemory};

/// Bit set on futex backing ids derived from mm's shared backings.
const SHARED_BACKING_BIT: u64 = 1 << 63;

/// The memory of a guest task.
pub struct GuestMemory {
    /// The task's address space (memory 0 of its module is the primary area).
    pub space: AddressSpace,
    /// Identity of the task's private pages, for futex keys.
    backing: BackingId,
}

impl GuestMemory {
    pub fn new(space: AddressSpace, backing: BackingId) -> Self {
        GuestMemory { space, backing }
    }
}

fn user_fault(f: Fault, write: bool) -> UserFault {
    UserFault {
        addr: f.addr(),
        write,
    }
}

impl UserMemory for GuestMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), UserFault> {
        self.space.read(addr, buf).map_err(|f| user_fault(f, false))
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), UserFault> {
        self.space
            .write(addr, data)
            .map_err(|f| user_fault(f, true))
    }

    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), UserFault> {
        self.space
            .check_range(addr, len, write)
            .map_err(|f| user_fault(f, write))
    }

    fn futex_key(&self, addr: u64) -> Result<FutexKey, UserFault> {
        let fault = UserFault { addr, write: false };
        if !addr.is_multiple_of(4) {
            return Err(fault);
        }
        self.space
            .check_range(addr, 4, false)
            .map_err(|f| user_fault(f, false))?;
        let offset = (addr % PAGE_SIZE) as u32;
        match self.space.page_key(addr).ok_or(fault)? {
            PageKey::Private { page_addr } => Ok(FutexKey {
                backing: self.backing,
                page: page_addr / PAGE_SIZE,
                offset,
            }),
            PageKey::Shared {
                backing,
                page_index,
            } => Ok(FutexKey {
                backing: BackingId(backing.0 | SHARED_BACKING_BIT),
                page: page_index,
                offset,
            }),
        }
    }
}
