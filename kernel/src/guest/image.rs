//! The scheduler's side of checkpoint/restore: the machine state of a
//! stopped guest task's threads (in module terms) and its instance, out;
//! restored tasks and threads, in. The kernel side (IPC, system call state)
//! is `task::image`; `checkpoint` puts both together into images.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::sched::{GuestError, GuestTask, GuestThread, Runner, Scheduler};
use crate::kernel::Kernel;
use crate::machine::{self, ExecState, Instance, InstanceState, Value};
use crate::syscall::Sysno;
use crate::task::{TaskId, ThreadId, ThreadState};

/// One guest thread's machine state.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestThreadState {
    pub thread: ThreadId,
    pub exec: ExecState,
    /// The entry still to run once the start function returns.
    pub then: Option<(u32, Vec<Value>)>,
}

/// One guest task's machine state.
#[derive(Clone, Debug)]
pub struct GuestTaskState {
    /// The module as a WebAssembly binary.
    pub module: Arc<[u8]>,
    /// Entry export and arguments it was started with (informative).
    pub args: Vec<String>,
    pub instance: InstanceState,
    /// The system call behind each function import.
    pub sysnos: Vec<Sysno>,
    /// Live threads in id order.
    pub threads: Vec<GuestThreadState>,
}

/// A restored thread, ready to be handed to the scheduler.
pub struct RestoredThread {
    pub thread: ThreadId,
    pub machine: machine::Thread,
    pub then: Option<(u32, Vec<Value>)>,
}

impl Scheduler {
    /// Whether `task` is a guest task of this scheduler.
    pub fn is_guest(&self, task: TaskId) -> bool {
        self.tasks.contains_key(&task)
    }

    /// The machine state of guest task `task` and of each of its live
    /// threads (the caller makes sure the task is stopped).
    pub fn export_guest(&self, k: &Kernel, task: TaskId) -> Result<GuestTaskState, GuestError> {
        let gt = self.tasks.get(&task).ok_or(GuestError::NotGuest(task))?;
        let t = k
            .task(task)
            .ok_or(GuestError::Kernel(crate::kernel::KernelError::NoTask(task)))?;
        let mut threads = Vec::new();
        for &id in &t.threads {
            if k.thread(id)
                .is_none_or(|th| th.state == ThreadState::Exited)
            {
                continue;
            }
            let Some(Runner::Guest(g)) = self.runners.get(&id) else {
                return Err(GuestError::NoRunner(id));
            };
            let exec = g
                .machine
                .export_state(&gt.instance)
                .map_err(|error| GuestError::State { thread: id, error })?;
            threads.push(GuestThreadState {
                thread: id,
                exec,
                then: g.then.clone(),
            });
        }
        Ok(GuestTaskState {
            module: gt.module.clone(),
            args: gt.args.clone(),
            instance: gt.instance.export_state(),
            sysnos: gt.sysnos.clone(),
            threads,
        })
    }

    /// Takes over a restored guest task: its instance and its threads'
    /// machine states (the kernel task and threads exist already).
    pub fn install_guest(
        &mut self,
        task: TaskId,
        instance: Instance,
        sysnos: Vec<Sysno>,
        module: Arc<[u8]>,
        args: Vec<String>,
        threads: Vec<RestoredThread>,
    ) {
        self.tasks.insert(
            task,
            GuestTask {
                instance,
                sysnos,
                module,
                args,
            },
        );
        for t in threads {
            self.runners.insert(
                t.thread,
                Runner::Guest(GuestThread {
                    task,
                    machine: t.machine,
                    then: t.then,
                }),
            );
        }
    }

    /// Forgets a task and its threads (a restore that failed half-way).
    pub fn forget_task(&mut self, task: TaskId) {
        self.tasks.remove(&task);
        self.runners
            .retain(|_, r| !matches!(r, Runner::Guest(g) if g.task == task));
    }

    /// The thread the round robin continues after.
    pub fn cursor(&self) -> Option<ThreadId> {
        self.cursor
    }

    /// Sets the thread the round robin continues after (a scheduler that
    /// takes over restored tasks from another one).
    pub fn set_cursor(&mut self, cursor: Option<ThreadId>) {
        self.cursor = cursor;
    }

    /// Moves the round-robin position onto restored threads: the cursor
    /// becomes the new id of the last old thread at or before it, so the
    /// next pick is the thread that would have come next (`map` is
    /// ascending in both old and new ids, as restore creates threads).
    pub fn remap_cursor(&mut self, map: &BTreeMap<ThreadId, ThreadId>) {
        let Some(c) = self.cursor else {
            return;
        };
        if let Some((_, new)) = map.range(..=c).next_back() {
            self.cursor = Some(*new);
        } else if map.range(c..).next().is_some() {
            self.cursor = None;
        }
    }
}
