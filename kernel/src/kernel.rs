//! The [`Kernel`] object: owner of every task, thread, call, futex queue and
//! the clock, in ordered maps so that nothing observable depends on hash
//! order or addresses.
//!
//! Entry points: [`Kernel::syscall`] (the system call entry of every
//! thread), task and thread creation, [`Kernel::kill_task`], time
//! ([`Kernel::advance_time`]), and, in other modules, the IPC operations
//! (`ipc`), stop/go (`task::stop`), export/import (`task::image`) and the
//! native task API (`task::native`).
//!
//! # Seams for the layers still to come
//!
//! - **Guest threads.** A guest task is created with
//!   [`Kernel::create_task`] (`TaskKind::Guest`) and a memory implementing
//!   [`UserMemory`] over its address space (`check` maps to
//!   `AddressSpace::check_range`, `futex_key` to the backing object of the
//!   page). When the machine stops a thread at a host call (an import of
//!   module `"spartan"`), the runner calls [`Kernel::syscall`] with
//!   `Sysno::from_name(import)` and the arguments widened to `u64`: `Done`
//!   pushes the result and resumes; `Blocked` leaves the thread suspended
//!   *in* the host call, and once [`Kernel::runnable_threads`] lists it the
//!   runner issues the same call again (this is the reissue; a snapshot of
//!   that thread is "about to issue it again").
//! - **Scheduling by fuel.** [`crate::sched::sim::Simulation`] shows the
//!   loop for native programs: pick a runnable thread with the seeded
//!   entropy, run it, advance virtual time, jump to the next deadline when
//!   idle. The fuel scheduler replaces "run one step" with "run one fuel
//!   slice".
//! - **Checkpoint.** [`Kernel::stop_task`], then [`Kernel::export_task`]
//!   (IPC state and each thread's serde `SyscallState`); at restore,
//!   [`Kernel::import_tasks`] creates stopped tasks, after which memory and
//!   execution state are filled in and [`Kernel::resume_task`] runs them.
//!   Conversion into `snapfmt` records is left to that layer. Sharing:
//!   [`Kernel::task_areas`] lists each area with its backing identity and
//!   every other mapping of it; [`Kernel::reshare_area`] maps it again at
//!   restore from a task that lived on (`ipc::share`).
//! - **Live mode.** With `ClockMode::RealTime` the clock moves by itself;
//!   the driver calls [`Kernel::advance_time`]`(0)` to fire due timeouts,
//!   and `Kernel::idle` when nothing can run: it sleeps until the next
//!   deadline or until another host thread rings the `Kernel::waker`
//!   (how outside input gets the kernel's attention).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ipc::audit::Audit;
use crate::ipc::{Answerbox, Call, CallKey, PhoneTable};
use crate::sched::clock::{Clock, RealClock, VirtualClock};
use crate::sched::entropy::Entropy;
use crate::sched::futex::{BackingId, FutexTable};
use crate::sched::timeout::Timeouts;
use crate::syscall::{
    self, PendingSyscall, SyscallCtx, SyscallOutcome, SyscallReturn, SyscallState, Sysno,
    WaitReason,
};
use crate::task::{
    IdCounters, NativeMemory, Task, TaskId, TaskKind, TaskPolicy, Thread, ThreadId, ThreadState,
    UserMemory,
};

/// How time passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// Virtual time, advanced by the scheduler: reproducible.
    Simulation,
    /// Host monotonic time: the live system.
    RealTime,
}

/// How to build a kernel.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Seed of every random choice (scheduling in simulation).
    pub seed: u64,
    pub clock: ClockMode,
    /// Keep the exactly-once ledger of calls and check invariants after
    /// every system call in debug builds. The ledger grows with every call
    /// made: for tests and simulations, not for a long-lived live system.
    pub audit: bool,
    /// Record every executed system call in [`Kernel::trace`].
    pub trace: bool,
}

impl KernelConfig {
    /// Simulation mode with auditing and tracing on.
    pub fn simulation(seed: u64) -> Self {
        KernelConfig {
            seed,
            clock: ClockMode::Simulation,
            audit: true,
            trace: true,
        }
    }
}

/// Misuse of the kernel's Rust API (never caused by a guest's arguments,
/// which are answered with errno values instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The task does not exist (never did, or died).
    #[error("no task {0:?}")]
    NoTask(TaskId),
    /// The thread does not exist or has exited.
    #[error("no thread {0:?}")]
    NoThread(ThreadId),
    /// The thread's task is stopped; it may not run now.
    #[error("thread {0:?} is stopped")]
    Stopped(ThreadId),
    /// The thread has a different system call in progress, which it must
    /// reissue first.
    #[error("thread {thread:?} must reissue system call {pending} before issuing {issued}")]
    SyscallMismatch {
        thread: ThreadId,
        pending: u32,
        issued: u32,
    },
    /// Unknown system call number.
    #[error(transparent)]
    BadSysno(#[from] syscall::BadSysno),
    /// The operation needs the task to be stopped first.
    #[error("task {0:?} is not stopped")]
    NotStopped(TaskId),
    /// The task's policy does not allow a transparent snapshot.
    #[error("task {0:?} is not checkpointable")]
    NotCheckpointable(TaskId),
    /// The phone table of the task is full.
    #[error("phone table of {0:?} is full")]
    PhonesFull(TaskId),
    /// The invariant checker found violations.
    #[error("kernel invariants violated: {0:?}")]
    Invariants(Vec<String>),
}

/// One executed system call, as recorded in the trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub time: u64,
    pub thread: ThreadId,
    pub number: u32,
    pub args: Vec<u64>,
    /// `Some(result)`, or `None` when the thread blocked.
    pub result: Option<i64>,
}

/// One line of the kernel log (the `log` system call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: u64,
    pub task: TaskId,
    pub text: String,
}

/// The kernel.
pub struct Kernel {
    pub(crate) tasks: BTreeMap<TaskId, Task>,
    pub(crate) threads: BTreeMap<ThreadId, Thread>,
    pub(crate) calls: BTreeMap<CallKey, Call>,
    pub(crate) futexes: FutexTable,
    pub(crate) timeouts: Timeouts,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) entropy: Entropy,
    pub(crate) audit: Option<Audit>,
    pub(crate) trace: Option<Vec<TraceEvent>>,
    pub(crate) log: Vec<LogLine>,
    next_task: u64,
    pub(crate) next_thread: u64,
    pub(crate) next_call_key: u64,
    next_backing: u64,
    /// Wait sequence numbers: every sleep takes the next one, and wait
    /// queues are ordered by them (`sched::waitq`).
    pub(crate) next_wait_seq: u64,
    /// Thread id domains of restored sets: domain -> the next seen id a
    /// new thread gets (`checkpoint::id_view`).
    pub(crate) id_domains: BTreeMap<u64, u64>,
    /// Checkpoint epochs and each task's dirty history (incremental
    /// images, `checkpoint::epochs`).
    pub(crate) epochs: crate::checkpoint::epochs::EpochBook,
}

impl Kernel {
    pub fn new(config: KernelConfig) -> Self {
        let clock: Box<dyn Clock> = match config.clock {
            ClockMode::Simulation => Box::new(VirtualClock::new(0)),
            ClockMode::RealTime => Box::new(RealClock::default()),
        };
        Kernel {
            tasks: BTreeMap::new(),
            threads: BTreeMap::new(),
            calls: BTreeMap::new(),
            futexes: FutexTable::default(),
            timeouts: Timeouts::default(),
            clock,
            entropy: Entropy::from_seed(config.seed),
            audit: config.audit.then(Audit::default),
            trace: config.trace.then(Vec::new),
            log: Vec::new(),
            next_task: 1,
            next_thread: 1,
            next_call_key: 1,
            next_backing: 1,
            next_wait_seq: 1,
            id_domains: BTreeMap::new(),
            epochs: crate::checkpoint::epochs::EpochBook::new(&config),
        }
    }

    /// A fresh backing identity (for memory objects and futex keys).
    pub fn new_backing(&mut self) -> BackingId {
        let b = BackingId(self.next_backing);
        self.next_backing += 1;
        b
    }

    /// A fresh identity for a shared backing (taken from the same counter
    /// as [`Kernel::new_backing`], so the two never name the same object).
    pub fn new_shared_backing_id(&mut self) -> crate::mm::BackingId {
        crate::mm::BackingId(self.new_backing().0)
    }

    /// Creates a task with no threads and an empty phone table.
    pub fn create_task(
        &mut self,
        name: &str,
        policy: TaskPolicy,
        kind: TaskKind,
        memory: Box<dyn UserMemory>,
    ) -> TaskId {
        let id = TaskId(self.next_task);
        self.next_task += 1;
        self.tasks.insert(
            id,
            Task {
                id,
                name: name.to_string(),
                policy,
                kind,
                threads: Default::default(),
                threads_created: 0,
                answerbox: Answerbox::default(),
                phones: PhoneTable::default(),
                out_calls: BTreeMap::new(),
                counters: IdCounters::default(),
                memory,
                stopped: false,
                id_view: Default::default(),
            },
        );
        id
    }

    /// Creates a native task with its own [`NativeMemory`].
    pub fn create_native_task(&mut self, name: &str, policy: TaskPolicy) -> TaskId {
        let backing = self.new_backing();
        self.create_task(
            name,
            policy,
            TaskKind::Native,
            Box::new(NativeMemory::new(backing)),
        )
    }

    /// Adds a thread to `task`; it is runnable (stopped if the task is).
    pub fn create_thread(&mut self, task: TaskId) -> Result<ThreadId, KernelError> {
        let t = self.tasks.get_mut(&task).ok_or(KernelError::NoTask(task))?;
        let id = ThreadId(self.next_thread);
        self.next_thread += 1;
        let index = t.threads_created;
        t.threads_created += 1;
        t.threads.insert(id);
        let state = if t.stopped {
            ThreadState::Stopped
        } else {
            ThreadState::Runnable
        };
        self.threads.insert(
            id,
            Thread {
                id,
                task,
                index,
                state,
                sys: SyscallState::default(),
                wait_seq: 0,
                resume_at: None,
            },
        );
        Ok(id)
    }

    /// Replaces a task's memory object and returns the old one (how a
    /// restore hands a task its recreated memory; tests of native tasks
    /// use it to carry memory across export and import).
    pub fn replace_memory(
        &mut self,
        task: TaskId,
        memory: Box<dyn UserMemory>,
    ) -> Result<Box<dyn UserMemory>, KernelError> {
        let t = self.tasks.get_mut(&task).ok_or(KernelError::NoTask(task))?;
        Ok(std::mem::replace(&mut t.memory, memory))
    }

    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    pub fn thread(&self, id: ThreadId) -> Option<&Thread> {
        self.threads.get(&id)
    }

    /// Threads ever created (exited ones included: ids are never reused).
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Live tasks in id order.
    pub fn task_ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// Threads that may run now, in id order.
    pub fn runnable_threads(&self) -> Vec<ThreadId> {
        self.threads
            .values()
            .filter(|t| t.state == ThreadState::Runnable)
            .map(|t| t.id)
            .collect()
    }

    /// Current time in nanoseconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Whether time is virtual (simulation): it moves only when advanced.
    pub fn clock_is_virtual(&self) -> bool {
        self.clock.is_virtual()
    }

    /// The next deadline of a blocked thread, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timeouts.next()
    }

    /// Lets time pass and fires the timeouts that expired.
    pub fn advance_time(&mut self, ns: u64) {
        self.clock.advance(ns);
        self.fire_timeouts();
    }

    /// Moves virtual time to `t` (if later) and fires expired timeouts.
    pub fn advance_time_to(&mut self, t: u64) {
        self.clock.advance_to(t);
        self.fire_timeouts();
    }

    /// The seeded random source.
    pub fn entropy(&mut self) -> &mut Entropy {
        &mut self.entropy
    }

    /// Executed system calls so far (empty if tracing is off).
    pub fn trace(&self) -> &[TraceEvent] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// The kernel log.
    pub fn log(&self) -> &[LogLine] {
        &self.log
    }

    /// Takes the kernel log's lines so far, leaving it empty (a long-lived
    /// system drains it so that it does not grow without bound).
    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// The system call entry of every thread.
    ///
    /// A blocked thread may call again with the same call (polling): it
    /// gets `Blocked` until it is woken. A runnable thread with a call in
    /// progress must reissue exactly that call.
    pub fn syscall(
        &mut self,
        thread: ThreadId,
        number: u32,
        args: &[u64],
    ) -> Result<SyscallReturn, KernelError> {
        let nr = Sysno::try_from(number)?;
        let th = self
            .threads
            .get_mut(&thread)
            .ok_or(KernelError::NoThread(thread))?;
        let task = th.task;
        match &th.state {
            ThreadState::Exited => return Err(KernelError::NoThread(thread)),
            ThreadState::Stopped => return Err(KernelError::Stopped(thread)),
            ThreadState::Blocked(_) | ThreadState::Runnable => {}
        }
        let prior_deadline = match &th.sys.in_progress {
            Some(p) if p.number != number || p.args != args => {
                return Err(KernelError::SyscallMismatch {
                    thread,
                    pending: p.number,
                    issued: number,
                });
            }
            Some(p) => Some(p.deadline),
            None => None,
        };
        if matches!(th.state, ThreadState::Blocked(_)) {
            return Ok(SyscallReturn::Blocked);
        }
        if let Some(result) = th.sys.completed.take() {
            th.sys.in_progress = None;
            self.record(thread, number, args, Some(result));
            return Ok(SyscallReturn::Done(result));
        }
        if args.len() != nr.params().len() {
            self.record(
                thread,
                number,
                args,
                Some(crate::ipc::Errno::Invalid.as_result()),
            );
            return Ok(SyscallReturn::Done(crate::ipc::Errno::Invalid.as_result()));
        }
        let cx = SyscallCtx {
            thread,
            task,
            args,
            prior_deadline,
        };
        let outcome = syscall::dispatch(self, nr, &cx);
        let ret = match outcome {
            SyscallOutcome::Done(v) => {
                if let Some(th) = self.threads.get_mut(&thread) {
                    th.sys.in_progress = None;
                    th.resume_at = None;
                }
                self.record(thread, number, args, Some(v));
                SyscallReturn::Done(v)
            }
            SyscallOutcome::Block { reason, deadline } => {
                if let Some(th) = self.threads.get_mut(&thread) {
                    th.sys.in_progress = Some(PendingSyscall {
                        number,
                        args: args.to_vec(),
                        deadline,
                    });
                }
                self.block(thread, reason, deadline);
                self.record(thread, number, args, None);
                SyscallReturn::Blocked
            }
        };
        self.debug_check();
        Ok(ret)
    }

    fn record(&mut self, thread: ThreadId, number: u32, args: &[u64], result: Option<i64>) {
        let time = self.clock.now();
        if let Some(trace) = &mut self.trace {
            trace.push(TraceEvent {
                time,
                thread,
                number,
                args: args.to_vec(),
                result,
            });
        }
    }

    /// Puts `thread` to sleep on `reason`, behind every thread already
    /// asleep (it takes the next wait sequence number).
    /// A thread that a stop interrupted in its sleep and that sleeps again
    /// on its reissue goes back to its old place instead
    /// (`Thread::resume_at`).
    fn block(&mut self, thread: ThreadId, reason: WaitReason, deadline: Option<u64>) {
        let kept = self
            .threads
            .get_mut(&thread)
            .and_then(|t| t.resume_at.take());
        let seq = kept.unwrap_or_else(|| {
            let s = self.next_wait_seq;
            self.next_wait_seq += 1;
            s
        });
        self.sleep_at(thread, reason, deadline, seq);
    }

    /// Gives `thread` (not asleep now) the next wait sequence number, so
    /// that it goes back to sleep behind every thread asleep so far (a
    /// restore does this for the set's sleepers in their old order).
    pub(crate) fn renumber_sleep(&mut self, thread: ThreadId) {
        if let Some(th) = self.threads.get_mut(&thread) {
            th.wait_seq = self.next_wait_seq;
            self.next_wait_seq += 1;
        }
    }

    /// Puts `thread` to sleep on `reason` at the place of wait sequence
    /// number `seq` in its queue (a new sleep, or a sleep a stop
    /// interrupted, put back where it was).
    pub(crate) fn sleep_at(
        &mut self,
        thread: ThreadId,
        reason: WaitReason,
        deadline: Option<u64>,
        seq: u64,
    ) {
        let Some(th) = self.threads.get_mut(&thread) else {
            return;
        };
        th.state = ThreadState::Blocked(reason);
        th.wait_seq = seq;
        th.resume_at = None;
        let task = th.task;
        match reason {
            WaitReason::Answerbox => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.answerbox.waiters.insert(seq, thread);
                }
            }
            WaitReason::Futex(key) => self.futexes.enqueue(key, seq, thread),
            WaitReason::SyncAnswer(_) | WaitReason::Sleep => {}
        }
        if let Some(d) = deadline {
            self.timeouts.insert(d, thread);
        }
    }

    /// Takes `thread` off whatever it sleeps on (queues and timeout),
    /// leaving its system call state and its wait sequence number alone
    /// (a stop puts it back at the same place). Returns the reason it
    /// slept.
    pub(crate) fn cancel_wait(&mut self, thread: ThreadId) -> Option<WaitReason> {
        let th = self.threads.get(&thread)?;
        let ThreadState::Blocked(reason) = th.state else {
            return None;
        };
        let (task, seq) = (th.task, th.wait_seq);
        let deadline = th.sys.in_progress.as_ref().and_then(|p| p.deadline);
        match reason {
            WaitReason::Answerbox => {
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.answerbox.waiters.remove(seq, thread);
                }
            }
            WaitReason::Futex(key) => {
                self.futexes.remove(key, seq, thread);
            }
            WaitReason::SyncAnswer(_) | WaitReason::Sleep => {}
        }
        if let Some(d) = deadline {
            self.timeouts.remove(d, thread);
        }
        Some(reason)
    }

    /// Wakes `thread`: it leaves its wait and becomes runnable (or stays
    /// stopped). With `Some(result)`, the wakeup delivers the call's result
    /// (kept across a stop, thesis 5.3.6); with `None`, the reissue decides.
    pub(crate) fn wake(&mut self, thread: ThreadId, result: Option<i64>) {
        self.cancel_wait(thread);
        let Some(th) = self.threads.get_mut(&thread) else {
            return;
        };
        if th.state == ThreadState::Exited {
            return;
        }
        if result.is_some() {
            th.sys.completed = result;
        }
        if matches!(th.state, ThreadState::Blocked(_)) {
            th.state = ThreadState::Runnable;
        }
    }

    /// Wakes one thread waiting in `ipc_wait` on `task`'s answerbox.
    pub(crate) fn wake_answerbox(&mut self, task: TaskId) {
        let waiter = self
            .tasks
            .get_mut(&task)
            .and_then(|t| t.answerbox.waiters.front());
        if let Some(w) = waiter {
            self.wake(w, None);
        }
    }

    /// Wakes waiters of `task`'s answerbox for events that arrived while
    /// the task was stopped: as long as it holds more events than it has
    /// threads woken in `ipc_wait` and not yet returned, one more waiter,
    /// oldest first. (While a thread waits, every arrival wakes one, so in
    /// a task that was not stopped this wakes no one.)
    pub(crate) fn wake_for_stopped_events(&mut self, task: TaskId) {
        loop {
            let Some(t) = self.tasks.get(&task) else {
                return;
            };
            let b = &t.answerbox;
            let events = b.notifications.len() + b.answers.len() + b.calls.len();
            let woken = t
                .threads
                .iter()
                .filter_map(|id| self.threads.get(id))
                .filter(|th| {
                    th.state == ThreadState::Runnable
                        && th.sys.completed.is_none()
                        && th
                            .sys
                            .in_progress
                            .as_ref()
                            .is_some_and(|p| p.number == Sysno::IpcWait as u32)
                })
                .count();
            if woken >= events || b.waiters.is_empty() {
                return;
            }
            self.wake_answerbox(task);
        }
    }

    fn fire_timeouts(&mut self) {
        let now = self.clock.now();
        for (_, thread) in self.timeouts.expire(now) {
            let reason = self.threads.get(&thread).and_then(|t| match t.state {
                ThreadState::Blocked(r) => Some(r),
                _ => None,
            });
            let result = match reason {
                Some(WaitReason::Sleep) => 0,
                Some(_) => crate::ipc::Errno::Timeout.as_result(),
                None => continue,
            };
            self.wake(thread, Some(result));
        }
    }

    /// Ends one thread (its entry function returned): it leaves any wait
    /// and is marked exited; its id is never reused.
    pub fn exit_thread(&mut self, thread: ThreadId) -> Result<(), KernelError> {
        if !self.threads.contains_key(&thread) {
            return Err(KernelError::NoThread(thread));
        }
        self.end_thread(thread);
        self.debug_check();
        Ok(())
    }

    /// Marks `thread` exited, out of any wait (its id is never reused).
    pub(crate) fn end_thread(&mut self, thread: ThreadId) {
        self.cancel_wait(thread);
        if let Some(t) = self.threads.get_mut(&thread) {
            t.state = ThreadState::Exited;
            t.sys = SyscallState::default();
        }
    }

    /// Records a system call that its runner refused before it reached the
    /// kernel (a guest's `thread_create` with a bad entry) and returns the
    /// result to give the thread.
    pub fn refuse_syscall(
        &mut self,
        thread: ThreadId,
        number: u32,
        args: &[u64],
        errno: crate::ipc::Errno,
    ) -> i64 {
        let result = errno.as_result();
        self.record(thread, number, args, Some(result));
        result
    }

    /// Appends a line to the kernel log on behalf of `task` (the kernel's
    /// own reports, such as a guest's trap).
    pub fn log_line(&mut self, task: TaskId, text: String) {
        let time = self.clock.now();
        self.log.push(LogLine { time, task, text });
    }

    /// Ends a task: its calls are answered, its phones hung up, its threads
    /// gone. The id is never reused.
    pub fn kill_task(&mut self, task: TaskId) -> Result<(), KernelError> {
        if !self.tasks.contains_key(&task) {
            return Err(KernelError::NoTask(task));
        }
        let threads: Vec<ThreadId> = self.tasks[&task].threads.iter().copied().collect();
        for th in &threads {
            self.cancel_wait(*th);
            if let Some(t) = self.threads.get_mut(th) {
                t.state = ThreadState::Exited;
                t.sys = SyscallState::default();
            }
        }
        self.ipc_task_died(task);
        self.tasks.remove(&task);
        self.epochs.forget(task);
        self.debug_check();
        Ok(())
    }

    /// Runs the invariant checker in debug builds when auditing is on.
    pub(crate) fn debug_check(&self) {
        if cfg!(debug_assertions)
            && self.audit.is_some()
            && let Err(v) = self.check_invariants()
        {
            panic!("kernel invariant violated: {v:?}");
        }
    }
}
