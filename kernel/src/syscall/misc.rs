//! System calls other than IPC: identity, the kernel log, time and futexes.

use super::{ABI_REVISION, ABI_VERSION, FOREVER, SyscallCtx, SyscallOutcome, WaitReason};
use crate::ipc::Errno;
use crate::kernel::{Kernel, LogLine};
use crate::task::memory::read_vec;

use SyscallOutcome::Done;

/// Longest log line (bytes).
pub const MAX_LOG: u64 = 4096;

/// `abi_version() -> ABI_VERSION`
pub(super) fn sys_abi_version(_k: &mut Kernel, _cx: &SyscallCtx) -> SyscallOutcome {
    Done(i64::from(ABI_VERSION))
}

/// `abi_revision() -> ABI_REVISION` (since revision 2): how a guest learns
/// the revision without changing what `abi_version` returns to older ones.
pub(super) fn sys_abi_revision(_k: &mut Kernel, _cx: &SyscallCtx) -> SyscallOutcome {
    Done(i64::from(ABI_REVISION))
}

/// `log(ptr, len) -> 0`
pub(super) fn sys_log(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let (ptr, len) = (cx.arg(0), cx.arg(1));
    if len > MAX_LOG {
        return Done(Errno::Limit.as_result());
    }
    let Some(t) = k.tasks.get(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    let Ok(bytes) = read_vec(t.memory.as_ref(), ptr, len) else {
        return Done(Errno::Fault.as_result());
    };
    let time = k.now();
    k.log.push(LogLine {
        time,
        task: cx.task,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    });
    Done(0)
}

/// `task_id() -> id` (as the task's id view shows it)
pub(super) fn sys_task_id(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    Done(k.task_id_seen_by(cx.task, cx.task) as i64)
}

/// `thread_id() -> id` (as the task's id view shows it)
pub(super) fn sys_thread_id(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    Done(k.thread_id_seen(cx.thread) as i64)
}

/// `clock_now() -> ns`
pub(super) fn sys_clock_now(k: &mut Kernel, _cx: &SyscallCtx) -> SyscallOutcome {
    Done(i64::try_from(k.now()).unwrap_or(i64::MAX))
}

/// `sleep(ns) -> 0`
pub(super) fn sys_sleep(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let now = k.now();
    let ns = cx.arg(0);
    let deadline = cx.deadline(now, ns);
    match deadline {
        Some(d) if d <= now => Done(0),
        _ if ns == 0 => Done(0),
        _ => SyscallOutcome::Block {
            reason: WaitReason::Sleep,
            deadline,
        },
    }
}

/// `futex_wait(addr, expected, timeout_ns) -> 0`
pub(super) fn sys_futex_wait(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let (addr, expected, timeout) = (cx.arg(0), cx.arg(1) as u32, cx.arg(2));
    let Some(t) = k.tasks.get(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    let Ok(key) = t.memory.futex_key(addr) else {
        return Done(Errno::Fault.as_result());
    };
    let mut word = [0u8; 4];
    if t.memory.read(addr, &mut word).is_err() {
        return Done(Errno::Fault.as_result());
    }
    if u32::from_le_bytes(word) != expected {
        return Done(Errno::Again.as_result());
    }
    let now = k.now();
    let deadline = cx.deadline(now, timeout);
    if timeout == 0 || deadline.is_some_and(|d| d <= now) {
        return Done(Errno::Timeout.as_result());
    }
    debug_assert!(timeout == FOREVER || deadline.is_some());
    SyscallOutcome::Block {
        reason: WaitReason::Futex(key),
        deadline,
    }
}

/// `futex_wake(addr, count) -> number woken`
pub(super) fn sys_futex_wake(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let (addr, count) = (cx.arg(0), cx.arg(1));
    let Some(t) = k.tasks.get(&cx.task) else {
        return Done(Errno::NoEntry.as_result());
    };
    let Ok(key) = t.memory.futex_key(addr) else {
        return Done(Errno::Fault.as_result());
    };
    let woken = k.futexes.take(key, count);
    for th in &woken {
        k.wake(*th, Some(0));
    }
    Done(woken.len() as i64)
}
