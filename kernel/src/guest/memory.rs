//! [`GuestMemory`]: a guest task's [`AddressSpace`] seen through the
//! kernel's [`UserMemory`] seam.
//!
//! Futex keys follow the backing of the page: a private page is keyed by
//! the task's own backing identity and its page address; a page of a shared
//! backing by that backing's id (moved into the upper half of the id space,
//! so that mm's backing ids and the kernel's counter never meet) and its
//! index in the backing, so tasks sharing the page meet in one queue.
//! Areas are the address space's: anonymous when created, shared in place
//! when first shared.

use crate::mm::{self, AddressSpace, AreaFlags, Fault, PageKey, SharedBacking};
use crate::sched::futex::{BackingId, FutexKey};
use crate::task::memory::{AreaError, AreaInfo, PAGE_SIZE, shared_futex_key};
use crate::task::{UserFault, UserMemory};

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
            } => Ok(shared_futex_key(backing, page_index, offset)),
        }
    }

    fn areas(&self) -> Vec<AreaInfo> {
        self.space
            .area_backings()
            .into_iter()
            .map(|(base, size, flags, backing)| AreaInfo {
                base,
                size,
                flags,
                backing,
                primary: base == 0 && backing.is_none() && self.space.has_primary(),
            })
            .collect()
    }

    fn check_new_area(&self, base: u64, size: u64) -> Result<(), AreaError> {
        Ok(self.space.check_new_area(base, size)?)
    }

    fn create_area(
        &mut self,
        base: u64,
        size: u64,
        flags: AreaFlags,
        _id: mm::BackingId,
    ) -> Result<(), AreaError> {
        Ok(self.space.create_area(base, size, flags)?)
    }

    fn destroy_area(&mut self, base: u64) -> Result<(), AreaError> {
        Ok(self.space.destroy_area(base)?)
    }

    fn share_area(
        &mut self,
        base: u64,
        new_id: mm::BackingId,
    ) -> Result<(SharedBacking, AreaFlags), AreaError> {
        Ok(self.space.share_area(base, new_id)?)
    }

    fn map_shared(
        &mut self,
        base: u64,
        backing: &SharedBacking,
        flags: AreaFlags,
    ) -> Result<(), AreaError> {
        Ok(self.space.map_shared(base, backing, flags)?)
    }

    fn shared_backing(&self, base: u64) -> Option<SharedBacking> {
        self.space.shared_backing(base).cloned()
    }
}
