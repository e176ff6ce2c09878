//! The area half of the native task API: native tasks (services such as the
//! console or the checkpointer) create areas and share them with guest
//! tasks, or have guests' areas shared in, through the same system calls
//! and IPC methods a guest uses (`as_area_create`, `IPC_M_SHARE_OUT`,
//! `IPC_M_SHARE_IN`).
//!
//! A native task's areas lie below
//! [`NATIVE_AREA_END`](super::memory::NATIVE_AREA_END) and are always
//! mappings of shared backings; their bytes are read and written with
//! [`NativeTask::mem_read`] / [`NativeTask::mem_write`], and futexes on
//! them meet those of every other task mapping the same pages.

use std::task::Poll;

use crate::ipc::method::{IPC_M_SHARE_IN, IPC_M_SHARE_OUT};
use crate::ipc::{CallId, EOK, Errno, PhoneId, RxCallId};
use crate::kernel::{Kernel, KernelError};
use crate::mm::AreaFlags;
use crate::syscall::Sysno;

use super::native::{NativeError, NativeTask};

impl NativeTask {
    /// Creates an area of `size` zero bytes at `base` (page aligned, below
    /// [`NATIVE_AREA_END`](super::memory::NATIVE_AREA_END)).
    pub fn area_create(
        &self,
        k: &mut Kernel,
        base: u64,
        size: u64,
        flags: AreaFlags,
    ) -> Result<(), NativeError> {
        let a = [base, size, u64::from(flags.bits())];
        self.nonblocking(k, Sysno::AsAreaCreate, &a).map(|_| ())
    }

    /// Removes the area at `base` from this task (other tasks mapping its
    /// pages keep them).
    pub fn area_destroy(&self, k: &mut Kernel, base: u64) -> Result<(), NativeError> {
        self.nonblocking(k, Sysno::AsAreaDestroy, &[base])
            .map(|_| ())
    }

    /// Size of this task's area at `base`.
    fn area_size(&self, k: &Kernel, base: u64) -> Result<u64, NativeError> {
        let t = k.task(self.id()).ok_or(KernelError::NoTask(self.id()))?;
        t.memory
            .areas()
            .into_iter()
            .find(|a| a.base == base)
            .map(|a| a.size)
            .ok_or(NativeError::Errno(Errno::NoEntry))
    }

    /// Offers the area at `base` through `phone` (asynchronously), granting
    /// `flags`; `arg` is ARG4 for the protocol.
    pub fn share_out_start(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        base: u64,
        flags: AreaFlags,
        arg: u64,
    ) -> Result<CallId, NativeError> {
        let size = self.area_size(k, base)?;
        let a = [base, size, u64::from(flags.bits()), arg, 0];
        self.call_async(k, phone, IPC_M_SHARE_OUT, a)
    }

    /// Offers the area at `base` synchronously: once answered, the base at
    /// which the receiver mapped it.
    pub fn share_out(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        base: u64,
        flags: AreaFlags,
        arg: u64,
    ) -> Result<Poll<u64>, NativeError> {
        let size = self.area_size(k, base)?;
        let a = [base, size, u64::from(flags.bits()), arg, 0];
        match self.call_sync(k, phone, IPC_M_SHARE_OUT, a)? {
            Poll::Pending => Ok(Poll::Pending),
            Poll::Ready(ans) if ans.retval == EOK => Ok(Poll::Ready(ans.args[0])),
            Poll::Ready(ans) => Err(ans.errno().unwrap_or(Errno::Invalid).into()),
        }
    }

    /// Asks, through `phone`, for an area of `size` bytes to be mapped at
    /// `dst` with `flags`; `arg` is ARG4 for the protocol. Ready once the
    /// area is mapped.
    #[allow(clippy::too_many_arguments)]
    pub fn share_in(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        dst: u64,
        size: u64,
        flags: AreaFlags,
        arg: u64,
    ) -> Result<Poll<()>, NativeError> {
        let a = [dst, size, u64::from(flags.bits()), arg, 0];
        match self.call_sync(k, phone, IPC_M_SHARE_IN, a)? {
            Poll::Pending => Ok(Poll::Pending),
            Poll::Ready(ans) if ans.retval == EOK => Ok(Poll::Ready(())),
            Poll::Ready(ans) => Err(ans.errno().unwrap_or(Errno::Invalid).into()),
        }
    }

    /// Accepts a dispatched IPC_M_SHARE_OUT by mapping the offered area at
    /// `dst` of this task.
    pub fn accept_share_out(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        dst: u64,
    ) -> Result<(), NativeError> {
        self.answer(k, call, EOK, [dst, 0, 0, 0, 0])
    }

    /// Answers a dispatched IPC_M_SHARE_IN with this task's area at `src`.
    pub fn answer_share_in(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        src: u64,
    ) -> Result<(), NativeError> {
        self.answer(k, call, EOK, [src, 0, 0, 0, 0])
    }
}
