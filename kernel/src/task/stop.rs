//! Stopping and resuming all threads of a task at consistent points (the
//! udebug role, thesis 5.3.1).
//!
//! The kernel runs one system call at a time to completion, so a thread is
//! always at a consistent point when the kernel can act: between system
//! calls, or asleep in a blocking one. Stopping a sleeping thread takes it
//! off its wait queue (waitq_force_thread_wakeup) and leaves the call in
//! progress, to be *reissued* on resume (thesis 4.3.1: every call is atomic
//! or restartable). Two things survive the stop: a result that a wakeup
//! already delivered (the reissue finishes with it, thesis 5.3.6), and a
//! synchronous call already sent (the reissue waits for its answer instead
//! of sending again, thesis 5.4.8). And its place in its wait queue: a
//! reissue that sleeps again goes back to where the thread slept before
//! (its wait sequence number, `sched::waitq`), not to the back.

use serde::{Deserialize, Serialize};

use crate::kernel::{Kernel, KernelError};
use crate::task::{TaskId, ThreadId, ThreadState};

/// Where a thread stood when it was stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopPoint {
    /// Between system calls.
    Idle,
    /// In blocking call `number`, which it will issue again on resume.
    Restart { number: u32 },
    /// Woken in call `number` with `result`, which it will return on resume.
    Completed { number: u32, result: i64 },
}

impl Kernel {
    /// Stops every thread of `task`; returns where each stood, by thread id.
    /// Stopping a stopped task changes nothing and reports the same points.
    pub fn stop_task(&mut self, task: TaskId) -> Result<Vec<(ThreadId, StopPoint)>, KernelError> {
        let t = self.tasks.get_mut(&task).ok_or(KernelError::NoTask(task))?;
        t.stopped = true;
        let threads: Vec<ThreadId> = t.threads.iter().copied().collect();
        let mut points = Vec::new();
        for th in threads {
            let was_asleep = self.cancel_wait(th).is_some();
            let Some(thread) = self.threads.get_mut(&th) else {
                continue;
            };
            if was_asleep {
                thread.resume_at = Some(thread.wait_seq);
            }
            if thread.state == ThreadState::Exited {
                continue;
            }
            thread.state = ThreadState::Stopped;
            let point = match (&thread.sys.in_progress, thread.sys.completed) {
                (Some(p), Some(result)) => StopPoint::Completed {
                    number: p.number,
                    result,
                },
                (Some(p), None) => StopPoint::Restart { number: p.number },
                (None, _) => StopPoint::Idle,
            };
            points.push((th, point));
        }
        Ok(points)
    }

    /// Resumes the threads of a stopped task: each reissues its call in
    /// progress (or returns the result a wakeup delivered meanwhile).
    pub fn resume_task(&mut self, task: TaskId) -> Result<(), KernelError> {
        let t = self.tasks.get_mut(&task).ok_or(KernelError::NoTask(task))?;
        t.stopped = false;
        let threads: Vec<ThreadId> = t.threads.iter().copied().collect();
        for th in threads {
            if let Some(thread) = self.threads.get_mut(&th)
                && thread.state == ThreadState::Stopped
            {
                thread.state = ThreadState::Runnable;
            }
        }
        Ok(())
    }

    /// Whether `task` is stopped.
    pub fn is_stopped(&self, task: TaskId) -> Result<bool, KernelError> {
        Ok(self
            .tasks
            .get(&task)
            .ok_or(KernelError::NoTask(task))?
            .stopped)
    }
}
