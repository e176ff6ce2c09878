//! The fuel scheduler: runs guest threads (and native programs) of one
//! kernel, round-robin in thread-id order, one fuel slice at a time.
//!
//! A guest thread's host call goes through [`Kernel::syscall`]: `Done(v)`
//! completes it and the thread runs on within its slice; `Blocked` leaves
//! the machine thread *in* the host call (`reissue_host_call`) and the
//! scheduler moves on. Once the kernel lists the thread as runnable again
//! the same call is issued again, so the kernel's restart, `completed` and
//! `active_sync_call` logic decides what it returns. A finished entry
//! function ends the thread (the last thread ends the task); a trap ends
//! the task with a line in the kernel log, answering its calls as a kill
//! does.
//!
//! Nothing depends on wall time or hash order: the order is thread-id
//! round robin, and in simulation mode the virtual clock advances by the
//! fuel used (`ns_per_fuel`); when nothing can run it jumps to the next
//! deadline ([`Kernel::idle`]; in live mode the host thread sleeps until
//! then, or until the kernel's waker is rung: `RunEnd::Woken`).

use std::any::Any;
use std::collections::BTreeMap;

use super::load::{LoadError, load};
use super::memory::GuestMemory;
use super::threads;
use crate::checkpoint::{LazyFill, PumpEnd};
use crate::ipc::Errno;
use crate::kernel::{Kernel, KernelError};
use crate::machine::{self, Export, Instance, Limits, Outcome, ThreadError, Value};
use crate::mm::{AddressSpace, MemLimits};
use crate::sched::clock::Idle;
use crate::sched::sim::{NativeProgram, RunEnd, Step};
use crate::syscall::{SyscallReturn, Sysno};
use crate::task::{TaskId, TaskKind, TaskPolicy, ThreadId, ThreadState};

/// Errors of spawning guest tasks and threads.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("thread: {0}")]
    Thread(#[from] ThreadError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("task {0:?} is not a guest task of this scheduler")]
    NotGuest(TaskId),
    #[error("thread {0:?} has no machine state in this scheduler")]
    NoRunner(ThreadId),
    #[error("thread {thread:?}: {error}")]
    State {
        thread: ThreadId,
        error: machine::StateError,
    },
}

/// Scheduler parameters.
#[derive(Clone, Copy, Debug)]
pub struct SchedConfig {
    /// Fuel (wasm instructions) per slice.
    pub slice_fuel: u64,
    /// Virtual nanoseconds per unit of fuel (simulation mode).
    pub ns_per_fuel: u64,
    /// Fuel charged for one step of a native program.
    pub native_step_fuel: u64,
    pub limits: Limits,
    pub mem_limits: MemLimits,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            slice_fuel: 10_000,
            ns_per_fuel: 1,
            native_step_fuel: 100,
            limits: Limits::default(),
            mem_limits: MemLimits::default(),
        }
    }
}

/// A guest task's machine-side state.
pub(super) struct GuestTask {
    pub(super) instance: Instance,
    pub(super) sysnos: Vec<Sysno>,
    /// The module as a WebAssembly binary (what an image bundles).
    pub(super) module: std::sync::Arc<[u8]>,
    /// How the task was started: entry export and its arguments.
    pub(super) args: Vec<String>,
}

/// A guest thread's machine-side state.
pub(super) struct GuestThread {
    pub(super) task: TaskId,
    pub(super) machine: machine::Thread,
    /// Entry to continue at after the start function finished.
    pub(super) then: Option<(u32, Vec<Value>)>,
}

pub(super) enum Runner {
    Guest(GuestThread),
    Native(Box<dyn NativeProgram>),
}

/// How a guest slice ended.
enum SliceEnd {
    /// The thread may run again (out of fuel or blocked).
    Continue,
    /// The thread's entry function returned.
    Finished,
    /// The task trapped (or the kernel refused it) and was killed.
    TaskKilled,
}

/// Counters of a scheduler's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    pub slices: u64,
    pub fuel: u64,
    pub host_calls: u64,
}

/// The fuel scheduler.
pub struct Scheduler {
    pub config: SchedConfig,
    pub(super) tasks: BTreeMap<TaskId, GuestTask>,
    pub(super) runners: BTreeMap<ThreadId, Runner>,
    pub(super) cursor: Option<ThreadId>,
    pub stats: SchedStats,
    /// Lazy restores whose pages are still coming in.
    lazy: Vec<LazyFill>,
}

/// The address space of a guest task, if `task` is one.
pub fn guest_space(k: &mut Kernel, task: TaskId) -> Option<&mut AddressSpace> {
    let t = k.tasks.get_mut(&task)?;
    let any: &mut dyn Any = t.memory.as_mut();
    any.downcast_mut::<GuestMemory>().map(|m| &mut m.space)
}

/// The address space of a guest task, read-only.
pub fn guest_space_ref(k: &Kernel, task: TaskId) -> Option<&AddressSpace> {
    let t = k.tasks.get(&task)?;
    let any: &dyn Any = t.memory.as_ref();
    any.downcast_ref::<GuestMemory>().map(|m| &m.space)
}

/// A host call argument widened to a system call word.
pub(crate) fn widen(v: &Value) -> u64 {
    match *v {
        Value::I32(x) => u64::from(x),
        Value::I64(x) | Value::F64(x) => x,
        Value::F32(x) => u64::from(x),
        Value::FuncRef(_) | Value::ExternRef(_) => 0,
    }
}

impl Scheduler {
    pub fn new(config: SchedConfig) -> Self {
        Scheduler {
            config,
            tasks: BTreeMap::new(),
            runners: BTreeMap::new(),
            cursor: None,
            stats: SchedStats::default(),
            lazy: Vec::new(),
        }
    }

    /// Creates a guest task from a module (`.wasm` or `.wat`) with one
    /// thread at exported function `entry` (after the start function, if
    /// the module has one).
    pub fn spawn_guest(
        &mut self,
        k: &mut Kernel,
        name: &str,
        policy: TaskPolicy,
        bytes: &[u8],
        entry: &str,
        args: &[Value],
    ) -> Result<(TaskId, ThreadId), GuestError> {
        // Images bundle the binary form; a text module is converted once
        // (if that fails, `load` reports the module's error).
        let binary: Vec<u8> = match wat::parse_bytes(bytes) {
            Ok(b) => b.into_owned(),
            Err(_) => bytes.to_vec(),
        };
        let loaded = load(&binary, &self.config.limits, self.config.mem_limits)?;
        let entry_idx = match loaded.instance.module().export(entry) {
            Some(Export::Func(f)) => f,
            _ => return Err(LoadError::NoEntry(entry.to_string()).into()),
        };
        let (first, then) = match loaded.instance.start_function() {
            Some(s) => {
                // Check the entry now, so a bad one fails the spawn.
                machine::Thread::new(&loaded.instance, entry_idx, args)?;
                (
                    machine::Thread::new(&loaded.instance, s, &[])?,
                    Some((entry_idx, args.to_vec())),
                )
            }
            None => (
                machine::Thread::new(&loaded.instance, entry_idx, args)?,
                None,
            ),
        };
        let backing = k.new_backing();
        let memory = Box::new(GuestMemory::new(loaded.space, backing));
        let task = k.create_task(name, policy, TaskKind::Guest, memory);
        let thread = k.create_thread(task)?;
        self.tasks.insert(
            task,
            GuestTask {
                instance: loaded.instance,
                sysnos: loaded.sysnos,
                module: binary.into(),
                args: std::iter::once(entry.to_string())
                    .chain(args.iter().map(|v| format!("{v:?}")))
                    .collect(),
            },
        );
        self.runners.insert(
            thread,
            Runner::Guest(GuestThread {
                task,
                machine: first,
                then,
            }),
        );
        Ok((task, thread))
    }

    /// Adds a thread to a guest task at exported function `entry`.
    pub fn spawn_thread(
        &mut self,
        k: &mut Kernel,
        task: TaskId,
        entry: &str,
        args: &[Value],
    ) -> Result<ThreadId, GuestError> {
        let gt = self.tasks.get(&task).ok_or(GuestError::NotGuest(task))?;
        let machine = machine::Thread::new(&gt.instance, entry, args)?;
        let thread = k.create_thread(task)?;
        self.runners.insert(
            thread,
            Runner::Guest(GuestThread {
                task,
                machine,
                then: None,
            }),
        );
        Ok(thread)
    }

    /// Adds a native program, scheduled in the same round robin.
    pub fn add_native(&mut self, program: Box<dyn NativeProgram>) {
        self.runners
            .insert(program.thread(), Runner::Native(program));
    }

    /// Threads still managed (not finished), in id order.
    pub fn threads(&self) -> Vec<ThreadId> {
        self.runners.keys().copied().collect()
    }

    /// Forgets threads and tasks the kernel no longer has (killed).
    fn reap(&mut self, k: &Kernel) {
        self.runners.retain(|id, _| {
            k.thread(*id)
                .is_some_and(|t| t.state != ThreadState::Exited)
        });
        self.tasks.retain(|id, _| k.task(*id).is_some());
    }

    /// Takes over the fill of a lazy restore (`checkpoint::lazy`).
    pub fn add_lazy_fill(&mut self, fill: LazyFill) {
        self.lazy.push(fill);
    }

    /// The lazy restores whose pages are still coming in.
    pub fn lazy_fills(&self) -> &[LazyFill] {
        &self.lazy
    }

    /// Between slices: installs what the lazy restores' fill threads have
    /// decoded, ends a restore that lost a page (its tasks are killed),
    /// and forgets the fills that are over. Returns what ended, in order.
    pub fn pump_lazy(&mut self, k: &mut Kernel) -> Vec<PumpEnd> {
        if self.lazy.is_empty() {
            return Vec::new();
        }
        let mut ended = Vec::new();
        self.lazy.retain_mut(|fill| match fill.pump(k) {
            PumpEnd::Running => true,
            end => {
                ended.push(end);
                false
            }
        });
        if ended.iter().any(|e| matches!(e, PumpEnd::Failed(_))) {
            self.reap(k);
        }
        ended
    }

    /// Runs at most `max_slices` slices.
    pub fn run(&mut self, k: &mut Kernel, max_slices: u64) -> RunEnd {
        for _ in 0..max_slices {
            self.pump_lazy(k);
            self.reap(k);
            if self.runners.is_empty() {
                return RunEnd::AllDone;
            }
            let runnable = k.runnable_threads();
            let ready = |id: &ThreadId| runnable.binary_search(id).is_ok();
            let after = self.cursor.and_then(|c| {
                self.runners
                    .range(c..)
                    .map(|(id, _)| *id)
                    .find(|id| *id != c && ready(id))
            });
            let pick = after.or_else(|| self.runners.keys().copied().find(|id| ready(id)));
            let Some(pick) = pick else {
                match k.idle() {
                    Idle::Deadline => continue,
                    Idle::Woken => return RunEnd::Woken,
                    Idle::Nothing => return RunEnd::Deadlock,
                }
            };
            self.cursor = Some(pick);
            self.stats.slices += 1;
            let used = self.run_one(k, pick);
            self.stats.fuel += used;
            k.advance_time(used.saturating_mul(self.config.ns_per_fuel));
        }
        self.reap(k);
        if self.runners.is_empty() {
            RunEnd::AllDone
        } else {
            RunEnd::StepLimit
        }
    }

    /// Runs one slice of `thread`; returns the fuel used.
    fn run_one(&mut self, k: &mut Kernel, thread: ThreadId) -> u64 {
        let slice = self.config.slice_fuel.max(1);
        let (used, end, task) = match self.runners.get_mut(&thread) {
            Some(Runner::Native(p)) => {
                let step = p.step(k);
                if step == Step::Done {
                    self.runners.remove(&thread);
                }
                return self.config.native_step_fuel;
            }
            Some(Runner::Guest(g)) => {
                let Some(gt) = self.tasks.get_mut(&g.task) else {
                    return 0;
                };
                let mut spawned = Vec::new();
                let (used, end) =
                    guest_slice(k, thread, g, gt, slice, &mut self.stats, &mut spawned);
                let task = g.task;
                for (id, child) in spawned {
                    self.runners.insert(id, Runner::Guest(child));
                }
                (used, end, task)
            }
            None => return 0,
        };
        match end {
            SliceEnd::Continue => {}
            SliceEnd::Finished => {
                self.runners.remove(&thread);
                let _ = k.exit_thread(thread);
                let live = k.task(task).is_some_and(|t| {
                    t.threads.iter().any(|th| {
                        k.thread(*th)
                            .is_some_and(|x| x.state != ThreadState::Exited)
                    })
                });
                if !live {
                    let seen = k.peek_task_id_seen_by(task, task);
                    k.log_line(task, format!("task {seen} exited"));
                    let _ = k.kill_task(task);
                    self.tasks.remove(&task);
                }
            }
            SliceEnd::TaskKilled => {
                self.tasks.remove(&task);
                self.reap(k);
            }
        }
        used
    }
}

/// Kills a guest task with a report in the kernel log.
fn kill_with_report(k: &mut Kernel, task: TaskId, thread: ThreadId, why: String) {
    let name = k.task(task).map(|t| t.name.clone()).unwrap_or_default();
    let (seen_task, seen_thread) = (
        k.peek_task_id_seen_by(task, task),
        k.peek_thread_id_seen(thread),
    );
    k.log_line(
        task,
        format!("task {seen_task} ({name}) killed: thread {seen_thread}: {why}"),
    );
    let _ = k.kill_task(task);
}

/// One slice of a guest thread: issues its pending host call, then runs it
/// until its fuel is used, it blocks, finishes or traps.
fn guest_slice(
    k: &mut Kernel,
    thread: ThreadId,
    g: &mut GuestThread,
    gt: &mut GuestTask,
    slice: u64,
    stats: &mut SchedStats,
    spawned: &mut Vec<(ThreadId, GuestThread)>,
) -> (u64, SliceEnd) {
    let mut used = 0u64;
    loop {
        if let Some((import, args)) = g.machine.pending_host_call() {
            // A host call costs one unit, so that time moves on.
            used += 1;
            stats.host_calls += 1;
            let Some(nr) = gt.sysnos.get(import as usize).copied() else {
                kill_with_report(k, g.task, thread, format!("bad import {import}"));
                return (used, SliceEnd::TaskKilled);
            };
            let args: Vec<u64> = args.iter().map(widen).collect();
            let mut child = None;
            let ret = if nr == Sysno::ThreadCreate {
                child = threads::thread_at_entry(&gt.instance, &g.machine, args[0], args[1]);
                match child {
                    None => Ok(SyscallReturn::Done(k.refuse_syscall(
                        thread,
                        nr as u32,
                        &args,
                        Errno::Invalid,
                    ))),
                    Some(_) => k.syscall(thread, nr as u32, &args),
                }
            } else {
                k.syscall(thread, nr as u32, &args)
            };
            match ret {
                Ok(SyscallReturn::Done(_)) if nr == Sysno::ThreadExit => {
                    return (used, SliceEnd::Finished);
                }
                Ok(SyscallReturn::Done(v)) => {
                    if let (Some(machine), true) = (child.take(), v > 0) {
                        spawned.push((
                            k.thread_meant_by(g.task, v as u64),
                            GuestThread {
                                task: g.task,
                                machine,
                                then: None,
                            },
                        ));
                    }
                    if let Err(e) = g
                        .machine
                        .complete_host_call(&gt.instance, &[Value::I64(v as u64)])
                    {
                        kill_with_report(k, g.task, thread, e.to_string());
                        return (used, SliceEnd::TaskKilled);
                    }
                }
                Ok(SyscallReturn::Blocked) => {
                    if let Err(e) = g.machine.reissue_host_call() {
                        kill_with_report(k, g.task, thread, e.to_string());
                        return (used, SliceEnd::TaskKilled);
                    }
                    return (used, SliceEnd::Continue);
                }
                Err(e) => {
                    kill_with_report(k, g.task, thread, format!("system call refused: {e}"));
                    return (used, SliceEnd::TaskKilled);
                }
            }
        }
        if used >= slice {
            return (used, SliceEnd::Continue);
        }
        let budget = slice - used;
        let Some(space) = guest_space(k, g.task) else {
            return (used, SliceEnd::TaskKilled);
        };
        let outcome = g.machine.run(&mut gt.instance, space, budget);
        used += budget.saturating_sub(g.machine.fuel_left());
        match outcome {
            Outcome::HostCall { .. } => {}
            Outcome::OutOfFuel => return (used, SliceEnd::Continue),
            Outcome::Finished(_) => match g.then.take() {
                Some((entry, args)) => match machine::Thread::new(&gt.instance, entry, &args) {
                    Ok(mut next) => {
                        let n = gt.instance.module().num_globals();
                        for i in 0..n {
                            if let Some(v) = g.machine.global(&gt.instance, i) {
                                next.set_global(&gt.instance, i, v);
                            }
                        }
                        g.machine = next;
                    }
                    Err(e) => {
                        kill_with_report(k, g.task, thread, e.to_string());
                        return (used, SliceEnd::TaskKilled);
                    }
                },
                None => return (used, SliceEnd::Finished),
            },
            Outcome::Trap(t) => {
                kill_with_report(k, g.task, thread, format!("trap: {t}"));
                return (used, SliceEnd::TaskKilled);
            }
        }
    }
}
