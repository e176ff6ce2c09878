//! The IPC system calls. Each reads or writes only the calling task's own
//! memory; the IPC operations (`crate::ipc`) do the rest.

use super::{SyscallCtx, SyscallOutcome, WaitReason};
use crate::ipc::method::{IPC_M_DATA_READ, IPC_M_DATA_WRITE};
use crate::ipc::{CallBuffer, EOK, EVENT_BYTES, Errno, PhoneId, RxCallId, SyncWaiter};
use crate::kernel::Kernel;
use crate::task::TaskId;
use crate::task::memory::read_vec;

use SyscallOutcome::Done;

/// Largest buffer of one data write or read (16 MiB).
pub const MAX_DATA: u64 = 16 << 20;

fn fail(e: Errno) -> SyscallOutcome {
    Done(e.as_result())
}

fn phone_arg(v: u64) -> Result<PhoneId, Errno> {
    u32::try_from(v).map(PhoneId).map_err(|_| Errno::NoEntry)
}

fn five(cx: &SyscallCtx, from: usize) -> [u64; 5] {
    let mut a = [0u64; 5];
    a.copy_from_slice(&cx.args[from..from + 5]);
    a
}

/// The buffer of a call about to be sent, read from the caller's memory.
fn call_buffer(
    k: &Kernel,
    task: TaskId,
    method: u64,
    args: &[u64; 5],
) -> Result<CallBuffer, Errno> {
    match method {
        IPC_M_DATA_WRITE => {
            if args[1] > MAX_DATA {
                return Err(Errno::Limit);
            }
            let t = k.tasks.get(&task).ok_or(Errno::NoEntry)?;
            let bytes = read_vec(t.memory.as_ref(), args[0], args[1]).map_err(|_| Errno::Fault)?;
            Ok(CallBuffer::Write(bytes))
        }
        IPC_M_DATA_READ => {
            if args[1] > MAX_DATA {
                return Err(Errno::Limit);
            }
            Ok(CallBuffer::Read {
                dst: args[0],
                room: args[1],
            })
        }
        _ => Ok(CallBuffer::None),
    }
}

/// `ipc_call_async(phone, method, a1..a5) -> call id`
pub(super) fn sys_ipc_call_async(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let sent = phone_arg(cx.arg(0)).and_then(|phone| {
        let (method, args) = (cx.arg(1), five(cx, 2));
        let buffer = call_buffer(k, cx.task, method, &args)?;
        k.ipc_send(cx.task, phone, method, args, buffer, None)
    });
    match sent {
        Ok(id) => Done(id.0 as i64),
        Err(e) => fail(e),
    }
}

/// `ipc_call_sync(phone, method, a1..a5, answer_ptr) -> retval`
pub(super) fn sys_ipc_call_sync(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let Some(th) = k.threads.get(&cx.thread) else {
        return fail(Errno::NoEntry);
    };
    if let Some(id) = th.sys.active_sync_call {
        // Reissued after a stop: the call was sent already (thesis 5.4.8).
        return SyscallOutcome::Block {
            reason: WaitReason::SyncAnswer(id),
            deadline: None,
        };
    }
    let answer_ptr = cx.arg(7);
    let Some(t) = k.tasks.get(&cx.task) else {
        return fail(Errno::NoEntry);
    };
    if t.memory.check(answer_ptr, 48, true).is_err() {
        return fail(Errno::Fault);
    }
    let sent = phone_arg(cx.arg(0)).and_then(|phone| {
        let (method, args) = (cx.arg(1), five(cx, 2));
        let buffer = call_buffer(k, cx.task, method, &args)?;
        let waiter = SyncWaiter {
            thread: cx.thread,
            answer_ptr,
        };
        k.ipc_send(cx.task, phone, method, args, buffer, Some(waiter))
    });
    match sent {
        Ok(id) => {
            if let Some(th) = k.threads.get_mut(&cx.thread) {
                th.sys.active_sync_call = Some(id);
            }
            SyscallOutcome::Block {
                reason: WaitReason::SyncAnswer(id),
                deadline: None,
            }
        }
        Err(e) => fail(e),
    }
}

/// `ipc_wait(event_ptr, timeout_ns) -> event kind`
pub(super) fn sys_ipc_wait(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let (ptr, timeout) = (cx.arg(0), cx.arg(1));
    let Some(t) = k.tasks.get(&cx.task) else {
        return fail(Errno::NoEntry);
    };
    if t.memory.check(ptr, EVENT_BYTES as u64, true).is_err() {
        return fail(Errno::Fault);
    }
    if let Some(mut ev) = k.ipc_fetch(cx.task) {
        if let crate::ipc::Event::Call { sender, .. } = &mut ev {
            *sender = TaskId(k.task_id_seen_by(cx.task, *sender));
        }
        let kind = ev.to_words()[0] as i64;
        let Some(t) = k.tasks.get_mut(&cx.task) else {
            return fail(Errno::NoEntry);
        };
        return match t.memory.write(ptr, &ev.to_bytes()) {
            Ok(()) => Done(kind),
            Err(_) => fail(Errno::Fault),
        };
    }
    let now = k.now();
    let deadline = cx.deadline(now, timeout);
    if timeout == 0 || deadline.is_some_and(|d| d <= now) {
        return fail(Errno::Timeout);
    }
    SyscallOutcome::Block {
        reason: WaitReason::Answerbox,
        deadline,
    }
}

/// `ipc_answer(call_id, retval, a1..a5) -> 0`
pub(super) fn sys_ipc_answer(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let rx = RxCallId(cx.arg(0));
    let (retval, mut args) = (cx.arg(1), five(cx, 2));
    let Some(call) = k.ipc_dispatched(cx.task, rx) else {
        return fail(Errno::NoEntry);
    };
    let (method, buffer) = (call.method, call.buffer.clone());
    let mut data = None;
    if retval == EOK {
        let Some(t) = k.tasks.get_mut(&cx.task) else {
            return fail(Errno::NoEntry);
        };
        match (method, buffer) {
            (IPC_M_DATA_WRITE, CallBuffer::Write(bytes)) => {
                let n = (bytes.len() as u64).min(args[1]) as usize;
                if t.memory.write(args[0], &bytes[..n]).is_err() {
                    return fail(Errno::Fault);
                }
                args[1] = n as u64;
            }
            (IPC_M_DATA_READ, CallBuffer::Read { room, .. }) => {
                let n = args[1].min(room);
                match read_vec(t.memory.as_ref(), args[0], n) {
                    Ok(bytes) => data = Some(bytes),
                    Err(_) => return fail(Errno::Fault),
                }
            }
            _ => {}
        }
    }
    match k.ipc_answer(cx.task, rx, retval, args, data) {
        Ok(()) => Done(0),
        Err(e) => fail(e),
    }
}

/// `ipc_forward(call_id, phone, method, a1, a2, flags) -> 0`
pub(super) fn sys_ipc_forward(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    let phone = match phone_arg(cx.arg(1)) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let keep = cx.arg(5) & FORWARD_KEEP != 0;
    let rx = RxCallId(cx.arg(0));
    let rewrite = (!keep).then(|| (cx.arg(2), cx.arg(3), cx.arg(4)));
    match k.ipc_forward(cx.task, rx, phone, rewrite) {
        Ok(()) => Done(0),
        Err(e) => fail(e),
    }
}

/// Flag of `ipc_forward`: keep the call's method and arguments.
pub const FORWARD_KEEP: u64 = 1;

/// `ipc_hangup(phone) -> 0`
pub(super) fn sys_ipc_hangup(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome {
    match phone_arg(cx.arg(0)).and_then(|p| k.ipc_hangup(cx.task, p)) {
        Ok(()) => Done(0),
        Err(e) => fail(e),
    }
}
