//! The system call layer.
//!
//! Every system call has one signature:
//!
//! ```text
//! fn sys_x(k: &mut Kernel, cx: &SyscallCtx) -> SyscallOutcome
//! ```
//!
//! [`Kernel::syscall`](crate::kernel::Kernel::syscall) decodes the number
//! ([`Sysno`]), checks the arity, and either finishes a call whose wakeup
//! already delivered a result (thesis 5.3.6) or runs the function. A
//! function returns [`SyscallOutcome::Done`] with the call's single `i64`
//! result (negative = `-errno`), or [`SyscallOutcome::Block`]: the thread
//! sleeps and, once woken, *reissues* the same call with the same
//! arguments. Waking either leaves the result to the reissue (the call is
//! restartable) or stores it in [`SyscallState::completed`], which the
//! reissue returns at once. A synchronous call already sent is remembered
//! in [`SyscallState::active_sync_call`], so its reissue waits for the same
//! answer instead of sending again (thesis 5.4.8).
//!
//! Calls are the imports of WebAssembly module `"spartan"`; `kernel/ABI.md`
//! documents each one.

mod area;
mod ipc;
mod misc;
pub mod state;
mod thread;

use serde::{Deserialize, Serialize};

pub use state::{PendingSyscall, SyscallState};

use crate::ipc::CallId;
use crate::kernel::Kernel;
use crate::sched::futex::FutexKey;
use crate::task::{TaskId, ThreadId};

/// Version of the system call ABI: raised by an incompatible change (a
/// name, number, signature or documented behaviour of an existing call).
pub const ABI_VERSION: u32 = 1;

/// Revision within [`ABI_VERSION`]: raised by compatible additions (new
/// calls, errnos, methods; a refusal that becomes a feature). A module
/// linked against revision `r` links against every later revision of the
/// same version; a module importing a newer call is refused at load time.
/// Guests read it with `abi_revision` (call 18, since revision 2);
/// `abi_version` keeps returning the version alone.
pub const ABI_REVISION: u32 = 2;

pub use thread::MAX_GUEST_THREADS;

/// Name of the WebAssembly module the system calls are imported from.
pub const IMPORT_MODULE: &str = "spartan";

/// Timeout value meaning "wait forever".
pub const FOREVER: u64 = u64::MAX;

/// The system calls, by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum Sysno {
    AbiVersion = 0,
    Log = 1,
    TaskId = 2,
    ThreadId = 3,
    ClockNow = 4,
    Sleep = 5,
    IpcCallAsync = 6,
    IpcCallSync = 7,
    IpcWait = 8,
    IpcAnswer = 9,
    IpcForward = 10,
    IpcHangup = 11,
    FutexWait = 12,
    FutexWake = 13,
    AsAreaCreate = 14,
    AsAreaDestroy = 15,
    ThreadCreate = 16,
    ThreadExit = 17,
    AbiRevision = 18,
}

/// Parameter types of an import, as WebAssembly value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmTy {
    I32,
    I64,
}

use WasmTy::{I32, I64};

impl Sysno {
    pub const ALL: [Sysno; 19] = [
        Sysno::AbiVersion,
        Sysno::Log,
        Sysno::TaskId,
        Sysno::ThreadId,
        Sysno::ClockNow,
        Sysno::Sleep,
        Sysno::IpcCallAsync,
        Sysno::IpcCallSync,
        Sysno::IpcWait,
        Sysno::IpcAnswer,
        Sysno::IpcForward,
        Sysno::IpcHangup,
        Sysno::FutexWait,
        Sysno::FutexWake,
        Sysno::AsAreaCreate,
        Sysno::AsAreaDestroy,
        Sysno::ThreadCreate,
        Sysno::ThreadExit,
        Sysno::AbiRevision,
    ];

    /// The import name in module `"spartan"`.
    pub fn name(self) -> &'static str {
        match self {
            Sysno::AbiVersion => "abi_version",
            Sysno::Log => "log",
            Sysno::TaskId => "task_id",
            Sysno::ThreadId => "thread_id",
            Sysno::ClockNow => "clock_now",
            Sysno::Sleep => "sleep",
            Sysno::IpcCallAsync => "ipc_call_async",
            Sysno::IpcCallSync => "ipc_call_sync",
            Sysno::IpcWait => "ipc_wait",
            Sysno::IpcAnswer => "ipc_answer",
            Sysno::IpcForward => "ipc_forward",
            Sysno::IpcHangup => "ipc_hangup",
            Sysno::FutexWait => "futex_wait",
            Sysno::FutexWake => "futex_wake",
            Sysno::AsAreaCreate => "as_area_create",
            Sysno::AsAreaDestroy => "as_area_destroy",
            Sysno::ThreadCreate => "thread_create",
            Sysno::ThreadExit => "thread_exit",
            Sysno::AbiRevision => "abi_revision",
        }
    }

    /// Parameter types of the import; every import returns one `i64`.
    pub fn params(self) -> &'static [WasmTy] {
        match self {
            Sysno::AbiVersion
            | Sysno::TaskId
            | Sysno::ThreadId
            | Sysno::ClockNow
            | Sysno::ThreadExit
            | Sysno::AbiRevision => &[],
            Sysno::Log => &[I32, I32],
            Sysno::Sleep => &[I64],
            Sysno::IpcCallAsync => &[I32, I64, I64, I64, I64, I64, I64],
            Sysno::IpcCallSync => &[I32, I64, I64, I64, I64, I64, I64, I32],
            Sysno::IpcWait => &[I32, I64],
            Sysno::IpcAnswer => &[I64, I64, I64, I64, I64, I64, I64],
            Sysno::IpcForward => &[I64, I32, I64, I64, I64, I32],
            Sysno::IpcHangup => &[I32],
            Sysno::FutexWait => &[I32, I32, I64],
            Sysno::FutexWake => &[I32, I32],
            Sysno::AsAreaCreate => &[I32, I64, I32],
            Sysno::AsAreaDestroy => &[I32],
            Sysno::ThreadCreate => &[I32, I64],
        }
    }

    /// Looks a call up by import name.
    pub fn from_name(name: &str) -> Option<Sysno> {
        Sysno::ALL.into_iter().find(|s| s.name() == name)
    }

    fn handler(self) -> SyscallFn {
        match self {
            Sysno::AbiVersion => misc::sys_abi_version,
            Sysno::Log => misc::sys_log,
            Sysno::TaskId => misc::sys_task_id,
            Sysno::ThreadId => misc::sys_thread_id,
            Sysno::ClockNow => misc::sys_clock_now,
            Sysno::Sleep => misc::sys_sleep,
            Sysno::IpcCallAsync => ipc::sys_ipc_call_async,
            Sysno::IpcCallSync => ipc::sys_ipc_call_sync,
            Sysno::IpcWait => ipc::sys_ipc_wait,
            Sysno::IpcAnswer => ipc::sys_ipc_answer,
            Sysno::IpcForward => ipc::sys_ipc_forward,
            Sysno::IpcHangup => ipc::sys_ipc_hangup,
            Sysno::FutexWait => misc::sys_futex_wait,
            Sysno::FutexWake => misc::sys_futex_wake,
            Sysno::AsAreaCreate => area::sys_as_area_create,
            Sysno::AsAreaDestroy => area::sys_as_area_destroy,
            Sysno::ThreadCreate => thread::sys_thread_create,
            Sysno::ThreadExit => thread::sys_thread_exit,
            Sysno::AbiRevision => misc::sys_abi_revision,
        }
    }
}

/// An unknown system call number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no system call number {0}")]
pub struct BadSysno(pub u32);

impl TryFrom<u32> for Sysno {
    type Error = BadSysno;
    fn try_from(n: u32) -> Result<Self, BadSysno> {
        Sysno::ALL
            .get(n as usize)
            .copied()
            .filter(|s| *s as u32 == n)
            .ok_or(BadSysno(n))
    }
}

/// Why a thread sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitReason {
    /// In `ipc_wait`, for anything to arrive in its task's answerbox.
    Answerbox,
    /// In `ipc_call_sync`, for the answer to its call.
    SyncAnswer(CallId),
    /// In `futex_wait`.
    Futex(FutexKey),
    /// In `sleep`.
    Sleep,
}

/// What a system call function decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallOutcome {
    /// Finished with this result.
    Done(i64),
    /// Sleep; reissue when woken. `deadline` is absolute virtual time.
    Block {
        reason: WaitReason,
        deadline: Option<u64>,
    },
}

/// What [`Kernel::syscall`](crate::kernel::Kernel::syscall) tells the
/// caller's runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallReturn {
    /// Finished; resume the thread with this result.
    Done(i64),
    /// The thread sleeps; run it again (reissuing the same call) once it is
    /// runnable.
    Blocked,
}

/// Everything a system call function knows about its invocation.
pub struct SyscallCtx<'a> {
    pub thread: ThreadId,
    pub task: TaskId,
    pub args: &'a [u64],
    /// The deadline of the first issue, when this is a reissue.
    pub prior_deadline: Option<Option<u64>>,
}

impl SyscallCtx<'_> {
    /// Argument `i` (arity is checked before the function runs).
    pub fn arg(&self, i: usize) -> u64 {
        self.args[i]
    }

    /// Whether this is a reissue after a wakeup or a stop.
    pub fn is_reissue(&self) -> bool {
        self.prior_deadline.is_some()
    }

    /// The absolute deadline for a relative timeout: fixed at the first
    /// issue and kept across reissues.
    pub fn deadline(&self, now: u64, timeout_ns: u64) -> Option<u64> {
        match self.prior_deadline {
            Some(d) => d,
            None if timeout_ns == FOREVER => None,
            None => Some(now.saturating_add(timeout_ns)),
        }
    }
}

type SyscallFn = fn(&mut Kernel, &SyscallCtx) -> SyscallOutcome;

/// Runs the function of `nr` (already checked) for `cx`.
pub(crate) fn dispatch(k: &mut Kernel, nr: Sysno, cx: &SyscallCtx) -> SyscallOutcome {
    (nr.handler())(k, cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_arities_agree() {
        for (i, s) in Sysno::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            assert_eq!(Sysno::try_from(i as u32), Ok(*s));
            assert_eq!(Sysno::from_name(s.name()), Some(*s));
        }
        assert_eq!(Sysno::try_from(19), Err(BadSysno(19)));
        assert_eq!(Sysno::IpcCallAsync.params().len(), 7);
    }
}
