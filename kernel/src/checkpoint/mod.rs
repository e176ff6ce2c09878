//! The kernel half of checkpoint/restore (thesis 5.1.2, 5.3, 5.4.6-5.4.9):
//! a stopped set of guest tasks into a snapfmt image, and an image back
//! into new tasks of a running kernel (the same one, or one booted
//! afterwards).
//!
//! Checkpoint is two steps, so that the time the tasks are stopped does
//! not depend on their memory size:
//!
//! 1. [`capture`] (tasks stopped with [`stop`]): per task, the
//!    IPC and system call state (`Kernel::export_task`), each thread's
//!    execution state in module terms and the instance state (the
//!    scheduler's `export_guest`), copy-on-write references to every page
//!    (mm's `snapshot()`), areas with their sharing, the id view. The
//!    tasks may then be resumed, or killed.
//! 2. [`Capture::write`]: the image, with snapfmt's streaming writer.
//!
//! [`restore`] reads an image (directory or tar) and recreates its tasks:
//! modules, areas and pages, instances and threads at their states (a
//! thread blocked in a system call issues it again; one whose wakeup had
//! already happened finishes it with the kept result, thesis 5.3.6), and
//! through `Kernel::import_tasks` phones with their slots, holes and
//! connection ids (new ones at services), pending calls in their queues with their ids and
//! buffers, and synchronous-call bookkeeping (thesis 5.4.8). Everything
//! that can fail is checked before the kernel is touched; a failure
//! afterwards removes what was created.
//!
//! Each task's kernel-side state beyond its record (id counters, special
//! phone slots, call parties, notifications, thread details) is its
//! snapfmt kernel state record (`tasks/<task id>.spk`, format 1.2); a
//! restore of an image written by a 1.1 kernel reads it from the
//! manifest's `options.extra` instead ([`supplement`]).
//!
//! A restore may leave the pages in the image ([`lazy`]): the tasks run at
//! once, a page is read, checked and decompressed on first touch, and a
//! background thread loads the rest; a page the image cannot give ends the
//! restore, killing its tasks.
//!
//! Modules: [`capture`], [`write`], [`restore`], [`lazy`] (pages loaded
//! after the restore), [`supplement`] (the 1.1 layout of the kernel state,
//! read from older images), [`id_view`] (the ids a task sees), [`epochs`]
//! and [`dirty_history`] (incremental images: each capture's epoch, the
//! dirty bits taken at it, and which pages a parent image may provide),
//! [`error`].

pub mod capture;
pub mod dirty_history;
pub mod epochs;
pub mod error;
pub mod excluded;
pub mod id_view;
pub mod lazy;
pub mod restore;
pub mod schedule;
pub mod supplement;
pub mod write;

pub use capture::{Capture, CapturedTask, capture};
pub use error::{CheckpointError, RestoreError};
pub use excluded::ExcludedConn;
pub use id_view::IdView;
pub use lazy::{LazyFill, PageLoading, PumpEnd};
pub use restore::{RestoreOptions, Restored, restore};
pub use schedule::SetSchedule;

use std::collections::BTreeSet;

use crate::guest::Scheduler;
use crate::kernel::Kernel;
use crate::syscall::{SyscallReturn, Sysno, WaitReason};
use crate::task::{TaskId, ThreadId, ThreadState};

/// A stopped checkpoint set, with the threads that were asleep in a
/// system call when it was stopped (they go back to sleep on resume and
/// after restore, instead of spending a turn reissuing the call).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// The tasks, task zero first.
    pub set: Vec<TaskId>,
    /// Threads of the set that were blocked.
    pub blocked: BTreeSet<ThreadId>,
    /// Tasks this stop stopped (the others were stopped already).
    stopped_here: Vec<TaskId>,
}

/// Stops every task of `set` (task zero first) at a consistent point.
pub fn stop(k: &mut Kernel, set: &[TaskId]) -> Result<Stopped, CheckpointError> {
    let mut out = Stopped {
        set: set.to_vec(),
        ..Stopped::default()
    };
    for &t in set {
        if k.is_stopped(t)? {
            continue;
        }
        let threads: Vec<ThreadId> = k
            .task(t)
            .map(|x| x.threads.iter().copied().collect())
            .unwrap_or_default();
        for th in threads {
            if k.thread(th)
                .is_some_and(|x| matches!(x.state, ThreadState::Blocked(_)))
            {
                out.blocked.insert(th);
            }
        }
        if let Err(e) = k.stop_task(t) {
            out.resume(k);
            return Err(e.into());
        }
        out.stopped_here.push(t);
    }
    Ok(out)
}

impl Stopped {
    /// Resumes the tasks this stop stopped; threads that were asleep go
    /// back to sleep in their call, at their old places in their queues,
    /// without running it again ([`back_to_sleep`]): nothing changes that
    /// the tasks could observe. Meant for a resume right after the capture
    /// (nothing ran in between, as in [`freeze`]); events that reached an
    /// answerbox meanwhile still wake its waiters, but a futex wait goes
    /// back unchecked, so a futex wake sent while the task was stopped
    /// would be missed. After a longer stop use `Kernel::resume_task`,
    /// whose reissue rechecks the futex word and refetches (a reissue
    /// that sleeps again keeps its place in the queue too).
    pub fn resume(&self, k: &mut Kernel) {
        for &t in &self.stopped_here {
            let _ = k.resume_task(t);
        }
        let blocked: Vec<ThreadId> = self.blocked.iter().copied().collect();
        back_to_sleep(k, &blocked);
    }
}

/// Puts each of `threads` back to sleep in the system call it was asleep
/// in when it was stopped, at its old place in its wait queue (its wait
/// sequence number), without a turn of the scheduler and without running
/// the call again: an `ipc_wait` does not fetch (an event in the
/// answerbox belongs to the thread already woken for it), a futex wait
/// does not recheck its word (the wakeup it waits for has not happened
/// yet), a sleep keeps its deadline, a synchronous call waits for the
/// answer to the call it sent. Any other call, and a synchronous call that
/// still has to be sent (a restore cleared `active_sync_call`), is issued
/// again at once (a call that can finish now keeps its result, as after a
/// wakeup, thesis 5.3.6).
///
/// Events that reached a task's answerbox while it was stopped woke no
/// one; each then wakes one waiter, oldest first, as if it arrived now.
pub(crate) fn back_to_sleep(k: &mut Kernel, threads: &[ThreadId]) {
    let mut tasks = BTreeSet::new();
    for &th in threads {
        let Some((task, p, seq, sync)) = k.thread(th).and_then(|t| {
            (t.state == ThreadState::Runnable && t.sys.completed.is_none())
                .then(|| {
                    t.sys
                        .in_progress
                        .clone()
                        .map(|p| (t.task, p, t.wait_seq, t.sys.active_sync_call))
                })
                .flatten()
        }) else {
            continue;
        };
        let reason = match Sysno::try_from(p.number) {
            Ok(Sysno::IpcWait) => Some(WaitReason::Answerbox),
            Ok(Sysno::FutexWait) => p
                .args
                .first()
                .and_then(|addr| k.task(task).map(|t| t.memory.futex_key(*addr)))
                .and_then(Result::ok)
                .map(WaitReason::Futex),
            Ok(Sysno::IpcCallSync) => sync.map(WaitReason::SyncAnswer),
            Ok(Sysno::Sleep) => Some(WaitReason::Sleep),
            _ => None,
        };
        if let Some(reason) = reason {
            k.sleep_at(th, reason, p.deadline, seq);
            tasks.insert(task);
            continue;
        }
        if let Ok(SyscallReturn::Done(v)) = k.syscall(th, p.number, &p.args)
            && let Some(t) = k.threads.get_mut(&th)
        {
            t.sys.in_progress = Some(p);
            t.sys.completed = Some(v);
        }
    }
    for task in tasks {
        k.wake_for_stopped_events(task);
    }
    // A deadline that passed while the thread was stopped fires now.
    k.advance_time(0);
}

/// Stops `set`, captures it and resumes it: the whole freeze of a
/// checkpoint.
pub fn freeze(k: &mut Kernel, s: &Scheduler, set: &[TaskId]) -> Result<Capture, CheckpointError> {
    let stopped = stop(k, set)?;
    let captured = capture(k, s, &stopped);
    stopped.resume(k);
    captured
}
