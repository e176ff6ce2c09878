//! Area system calls: creating and destroying areas of the calling task's
//! memory (sharing them is IPC: `IPC_M_SHARE_OUT` / `IPC_M_SHARE_IN`).

use super::{SyscallCtx, SyscallOutcome};
use crate::ipc::Errno;
use crate::kernel::Kernel;
use crate::mm::AreaFlags;

use SyscallOutcome::Done;

/// `as_area_create(base, size, flags) -> 0`
pub(super) fn sys_as_area_create(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let (base, size) = (cx.arg(0), cx.arg(1));
    let Some(flags) = u32::try_from(cx.arg(2)).ok().and_then(AreaFlags::from_bits) else {
        return Done(Errno::Invalid.as_result());
    };
    let id = k.new_shared_backing_id();
    let Some(t) = k.tasks.get_mut(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    match t.memory.create_area(base, size, flags, id) {
        Ok(()) => Done(0),
        Err(e) => Done(e.errno().as_result()),
    }
}

/// `as_area_destroy(base) -> 0`; revokes the task's pending share-out
/// offers of that area.
pub(super) fn sys_as_area_destroy(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let base = cx.arg(0);
    let Some(t) = k.tasks.get_mut(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    match t.memory.destroy_area(base) {
        Ok(()) => {
            k.revoke_share_offers(cx.task, base);
            Done(0)
        }
        Err(e) => Done(e.errno().as_result()),
    }
}
