//! Thread system calls of guest tasks.
//!
//! The kernel keeps the thread objects; the machine state of a guest thread
//! belongs to the fuel scheduler (`guest::sched`), which checks the entry
//! of `thread_create` and builds the new thread's machine state *before*
//! issuing the call (a bad entry is refused with `EINVAL` without reaching
//! here), and installs it under the id this call returns.

use super::{SyscallCtx, SyscallOutcome};
use crate::ipc::Errno;
use crate::kernel::Kernel;
use crate::task::{TaskKind, ThreadState};

use SyscallOutcome::Done;

/// Most live threads a guest task may have.
pub const MAX_GUEST_THREADS: usize = 64;

/// `thread_create(entry, arg) -> thread id` (the id the task sees for the
/// new thread, as `thread_id` in it will return)
pub(super) fn sys_thread_create(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let Some(t) = k.tasks.get(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    if t.kind != TaskKind::Guest {
        return Done(Errno::NotSupported.as_result());
    }
    let live = t
        .threads
        .iter()
        .filter(|id| {
            k.threads
                .get(id)
                .is_some_and(|th| th.state != ThreadState::Exited)
        })
        .count();
    if live >= MAX_GUEST_THREADS {
        return Done(Errno::Limit.as_result());
    }
    match k.create_thread(cx.task) {
        Ok(id) => Done(k.new_thread_id_seen(cx.task, id) as i64),
        Err(_) => Done(Errno::NoEntry.as_result()),
    }
}

/// `thread_exit() -> never returns`
pub(super) fn sys_thread_exit(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    k.end_thread(cx.thread);
    Done(0)
}
