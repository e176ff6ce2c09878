//! Native tasks: Rust code that is a task, with an answerbox, phones and
//! memory, so that services are ordinary tasks.
//!
//! A [`NativeTask`] is a handle on one thread of a native task. Every
//! operation is a real system call through [`Kernel::syscall`], with
//! arguments and buffers placed in the task's own [`NativeMemory`]
//! (in a per-thread scratch region), exactly as a guest would. No OS
//! threads are involved: a blocking operation returns [`Poll::Pending`]
//! and the owner calls it again (the same call, with the same arguments)
//! once the thread is runnable: this *is* the reissue of a restartable
//! system call.
//!
//! Areas and their sharing with guests are in `native_areas`.
//!
//! [`NativeMemory`]: super::NativeMemory

use std::task::Poll;

use crate::ipc::method::{IPC_M_DATA_READ, IPC_M_DATA_WRITE};
use crate::ipc::{CallId, EOK, EVENT_BYTES, Errno, Event, PhoneId, RxCallId};
use crate::kernel::{Kernel, KernelError};
use crate::syscall::{SyscallReturn, Sysno};
use crate::task::memory::read_vec;
use crate::task::{TaskId, TaskPolicy, ThreadId, ThreadState};

/// Start of the scratch regions of native threads.
pub const SCRATCH_BASE: u64 = 0x8000_0000;
/// Size of one thread's scratch region.
pub const SCRATCH_STRIDE: u64 = 32 << 20;
/// Native threads per task that have a scratch region.
pub const MAX_NATIVE_THREADS: u64 = 64;
const EVENT_OFF: u64 = 0;
const ANSWER_OFF: u64 = 128;
const DATA_OFF: u64 = 4096;
/// Largest data buffer a native thread can move in one operation.
pub const MAX_NATIVE_DATA: u64 = SCRATCH_STRIDE - DATA_OFF;

/// What a native operation can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    /// The kernel refused the request itself (misuse of the API).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The system call failed with this errno.
    #[error(transparent)]
    Errno(#[from] Errno),
}

/// An answer as a synchronous caller receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncAnswer {
    pub retval: u64,
    pub args: [u64; 5],
}

impl SyncAnswer {
    /// The error the answer carries, if its return value is one.
    pub fn errno(&self) -> Option<Errno> {
        Errno::from_result(self.retval as i64)
    }
}

/// A handle on one thread of a native task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeTask {
    task: TaskId,
    thread: ThreadId,
    scratch: u64,
}

fn check(v: i64) -> Result<u64, NativeError> {
    if v < 0 {
        Err(Errno::from_result(v).unwrap_or(Errno::Invalid).into())
    } else {
        Ok(v as u64)
    }
}

impl Kernel {
    /// Creates a native task with one thread and returns its handle.
    pub fn spawn_native(&mut self, name: &str, policy: TaskPolicy) -> NativeTask {
        let task = self.create_native_task(name, policy);
        self.native_handle(task)
    }

    /// Creates a native task whose memory is `memory` (e.g. one shared
    /// with another task) with one thread, and returns its handle.
    pub fn spawn_native_with_memory(
        &mut self,
        name: &str,
        policy: TaskPolicy,
        memory: Box<dyn crate::task::UserMemory>,
    ) -> NativeTask {
        let task = self.create_task(name, policy, crate::task::TaskKind::Native, memory);
        self.native_handle(task)
    }

    fn native_handle(&mut self, task: TaskId) -> NativeTask {
        let thread = self.create_thread(task).expect("task just created");
        NativeTask {
            task,
            thread,
            scratch: SCRATCH_BASE,
        }
    }
}

impl NativeTask {
    /// A handle on an existing thread of a native task (e.g. one created
    /// by [`Kernel::import_tasks`]).
    pub fn attach(k: &Kernel, thread: ThreadId) -> Result<NativeTask, KernelError> {
        let th = k.thread(thread).ok_or(KernelError::NoThread(thread))?;
        let native = k
            .task(th.task)
            .is_some_and(|t| t.kind == crate::task::TaskKind::Native);
        if !native || th.index >= MAX_NATIVE_THREADS {
            return Err(KernelError::NoThread(thread));
        }
        Ok(NativeTask {
            task: th.task,
            thread,
            scratch: SCRATCH_BASE + th.index * SCRATCH_STRIDE,
        })
    }

    pub fn id(&self) -> TaskId {
        self.task
    }

    pub fn thread(&self) -> ThreadId {
        self.thread
    }

    /// A handle on a new thread of the same task.
    pub fn new_thread(&self, k: &mut Kernel) -> Result<NativeTask, KernelError> {
        let thread = k.create_thread(self.task)?;
        let index = k.thread(thread).map_or(0, |t| t.index);
        if index >= MAX_NATIVE_THREADS {
            return Err(KernelError::NoThread(thread));
        }
        Ok(NativeTask {
            task: self.task,
            thread,
            scratch: SCRATCH_BASE + index * SCRATCH_STRIDE,
        })
    }

    /// Whether the thread may run now (not blocked, not stopped).
    pub fn is_runnable(&self, k: &Kernel) -> bool {
        k.thread(self.thread)
            .is_some_and(|t| t.state == ThreadState::Runnable)
    }

    /// Issues (or reissues) a raw system call.
    pub fn syscall(
        &self,
        k: &mut Kernel,
        nr: Sysno,
        args: &[u64],
    ) -> Result<SyscallReturn, KernelError> {
        k.syscall(self.thread, nr as u32, args)
    }

    pub(crate) fn nonblocking(
        &self,
        k: &mut Kernel,
        nr: Sysno,
        args: &[u64],
    ) -> Result<u64, NativeError> {
        match self.syscall(k, nr, args)? {
            SyscallReturn::Done(v) => check(v),
            // These calls never block; a kernel that says otherwise is wrong.
            SyscallReturn::Blocked => Err(Errno::Invalid.into()),
        }
    }

    /// Reads the task's own memory.
    pub fn mem_read(&self, k: &Kernel, addr: u64, len: u64) -> Result<Vec<u8>, NativeError> {
        let t = k.task(self.task).ok_or(KernelError::NoTask(self.task))?;
        read_vec(t.memory.as_ref(), addr, len).map_err(|_| Errno::Fault.into())
    }

    /// Writes the task's own memory.
    pub fn mem_write(&self, k: &mut Kernel, addr: u64, data: &[u8]) -> Result<(), NativeError> {
        let t = k
            .tasks
            .get_mut(&self.task)
            .ok_or(KernelError::NoTask(self.task))?;
        t.memory.write(addr, data).map_err(|_| Errno::Fault.into())
    }

    fn stage(&self, k: &mut Kernel, data: &[u8]) -> Result<u64, NativeError> {
        if data.len() as u64 > MAX_NATIVE_DATA {
            return Err(Errno::Limit.into());
        }
        self.mem_write(k, self.scratch + DATA_OFF, data)?;
        Ok(self.scratch + DATA_OFF)
    }

    /// Appends a line to the kernel log.
    pub fn log(&self, k: &mut Kernel, text: &str) -> Result<(), NativeError> {
        let ptr = self.stage(k, text.as_bytes())?;
        self.nonblocking(k, Sysno::Log, &[ptr, text.len() as u64])?;
        Ok(())
    }

    /// Sends an asynchronous call; the answer arrives through [`wait`](Self::wait).
    pub fn call_async(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        method: u64,
        args: [u64; 5],
    ) -> Result<CallId, NativeError> {
        let mut a = vec![u64::from(phone.0), method];
        a.extend_from_slice(&args);
        self.nonblocking(k, Sysno::IpcCallAsync, &a).map(CallId)
    }

    /// Sends a synchronous call, or, once sent, waits for its answer.
    pub fn call_sync(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        method: u64,
        args: [u64; 5],
    ) -> Result<Poll<SyncAnswer>, NativeError> {
        let ptr = self.scratch + ANSWER_OFF;
        let mut a = vec![u64::from(phone.0), method];
        a.extend_from_slice(&args);
        a.push(ptr);
        let fresh = k
            .thread(self.thread)
            .is_some_and(|t| t.sys.in_progress.is_none());
        if fresh {
            self.mem_write(k, ptr, &[0; 48])?;
        }
        match self.syscall(k, Sysno::IpcCallSync, &a)? {
            SyscallReturn::Blocked => Ok(Poll::Pending),
            SyscallReturn::Done(v) => {
                let words = self.mem_read(k, ptr, 48)?;
                let word = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&words[i * 8..i * 8 + 8]);
                    u64::from_le_bytes(b)
                };
                if word(0) != v as u64 {
                    // Never sent (e.g. EHANGUP on the phone): the answer
                    // buffer is still as zeroed at the first issue.
                    return Err(Errno::from_result(v).unwrap_or(Errno::Invalid).into());
                }
                let mut args = [0u64; 5];
                for (i, a) in args.iter_mut().enumerate() {
                    *a = word(i + 1);
                }
                Ok(Poll::Ready(SyncAnswer {
                    retval: v as u64,
                    args,
                }))
            }
        }
    }

    /// Waits for the next event of the answerbox (`timeout_ns` 0 polls,
    /// [`FOREVER`](crate::syscall::FOREVER) waits forever).
    pub fn wait(&self, k: &mut Kernel, timeout_ns: u64) -> Result<Poll<Event>, NativeError> {
        let ptr = self.scratch + EVENT_OFF;
        match self.syscall(k, Sysno::IpcWait, &[ptr, timeout_ns])? {
            SyscallReturn::Blocked => Ok(Poll::Pending),
            SyscallReturn::Done(v) => {
                check(v)?;
                let bytes = self.mem_read(k, ptr, EVENT_BYTES as u64)?;
                let mut rec = [0u8; EVENT_BYTES];
                rec.copy_from_slice(&bytes);
                Event::from_bytes(&rec)
                    .map(Poll::Ready)
                    .ok_or(NativeError::Errno(Errno::Invalid))
            }
        }
    }

    /// Answers a dispatched call.
    pub fn answer(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        retval: u64,
        args: [u64; 5],
    ) -> Result<(), NativeError> {
        let mut a = vec![call.0, retval];
        a.extend_from_slice(&args);
        self.nonblocking(k, Sysno::IpcAnswer, &a).map(|_| ())
    }

    /// Forwards a dispatched call through `phone` (see
    /// [`Kernel::ipc_forward`]; `keep` forwards it unchanged).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        phone: PhoneId,
        method: u64,
        a1: u64,
        a2: u64,
        keep: bool,
    ) -> Result<(), NativeError> {
        let a = [call.0, u64::from(phone.0), method, a1, a2, u64::from(keep)];
        self.nonblocking(k, Sysno::IpcForward, &a).map(|_| ())
    }

    /// Hangs up a phone.
    pub fn hangup(&self, k: &mut Kernel, phone: PhoneId) -> Result<(), NativeError> {
        self.nonblocking(k, Sysno::IpcHangup, &[u64::from(phone.0)])
            .map(|_| ())
    }

    /// Starts an asynchronous IPC_M_DATA_WRITE of `data`.
    pub fn data_write_start(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        data: &[u8],
    ) -> Result<CallId, NativeError> {
        let src = self.stage(k, data)?;
        self.call_async(
            k,
            phone,
            IPC_M_DATA_WRITE,
            [src, data.len() as u64, 0, 0, 0],
        )
    }

    /// Starts an asynchronous IPC_M_DATA_READ into the task's memory at
    /// `dst` (at most `room` bytes).
    pub fn data_read_start(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        dst: u64,
        room: u64,
    ) -> Result<CallId, NativeError> {
        self.call_async(k, phone, IPC_M_DATA_READ, [dst, room, 0, 0, 0])
    }

    /// Synchronous IPC_M_DATA_READ of at most `room` bytes: the bytes read.
    pub fn data_read(
        &self,
        k: &mut Kernel,
        phone: PhoneId,
        room: u64,
    ) -> Result<Poll<Vec<u8>>, NativeError> {
        if room > MAX_NATIVE_DATA {
            return Err(Errno::Limit.into());
        }
        let dst = self.scratch + DATA_OFF;
        match self.call_sync(k, phone, IPC_M_DATA_READ, [dst, room, 0, 0, 0])? {
            Poll::Pending => Ok(Poll::Pending),
            Poll::Ready(a) if a.retval == EOK => self.mem_read(k, dst, a.args[1]).map(Poll::Ready),
            Poll::Ready(a) => Err(a.errno().unwrap_or(Errno::Invalid).into()),
        }
    }

    /// Accepts a dispatched IPC_M_DATA_WRITE (at most `room` bytes) and
    /// returns the bytes received.
    pub fn accept_data_write(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        room: u64,
    ) -> Result<Vec<u8>, NativeError> {
        let room = room.min(MAX_NATIVE_DATA);
        let len = k
            .ipc_dispatched(self.task, call)
            .map(|c| c.args[1])
            .ok_or(Errno::NoEntry)?;
        let dst = self.scratch + DATA_OFF;
        self.answer(k, call, EOK, [dst, room, 0, 0, 0])?;
        self.mem_read(k, dst, len.min(room))
    }

    /// Answers a dispatched IPC_M_DATA_READ with `data`.
    pub fn answer_data_read(
        &self,
        k: &mut Kernel,
        call: RxCallId,
        data: &[u8],
    ) -> Result<(), NativeError> {
        let src = self.stage(k, data)?;
        self.answer(k, call, EOK, [src, data.len() as u64, 0, 0, 0])
    }

    /// Sleeps while the word at `addr` holds `expected` (woken by
    /// [`futex_wake`](Self::futex_wake) or the timeout).
    pub fn futex_wait(
        &self,
        k: &mut Kernel,
        addr: u64,
        expected: u32,
        timeout_ns: u64,
    ) -> Result<Poll<()>, NativeError> {
        match self.syscall(
            k,
            Sysno::FutexWait,
            &[addr, u64::from(expected), timeout_ns],
        )? {
            SyscallReturn::Blocked => Ok(Poll::Pending),
            SyscallReturn::Done(v) => check(v).map(|_| Poll::Ready(())),
        }
    }

    /// Wakes up to `count` sleepers of the futex at `addr`.
    pub fn futex_wake(&self, k: &mut Kernel, addr: u64, count: u32) -> Result<u64, NativeError> {
        self.nonblocking(k, Sysno::FutexWake, &[addr, u64::from(count)])
    }

    /// Sleeps for `ns` nanoseconds of kernel time.
    pub fn sleep(&self, k: &mut Kernel, ns: u64) -> Result<Poll<()>, NativeError> {
        match self.syscall(k, Sysno::Sleep, &[ns])? {
            SyscallReturn::Blocked => Ok(Poll::Pending),
            SyscallReturn::Done(v) => check(v).map(|_| Poll::Ready(())),
        }
    }
}
