//! Tasks and threads: the kernel's bookkeeping of who exists.
//!
//! A task owns an answerbox, a phone table, a memory (through
//! [`UserMemory`]) and one or more threads. Ids are taken from counters in
//! the [`Kernel`](crate::kernel::Kernel) and never reused, never derived
//! from addresses (thesis 5.4.6).
//!
//! - [`memory`]: the [`UserMemory`] seam and the native tasks' memory.
//! - [`native`]: the Rust API by which services are tasks (`native_areas`:
//!   its areas and their sharing with guests).
//! - [`stop`]: stopping and resuming all threads of a task (udebug's role).
//! - [`image`]: export and import of a stopped task's IPC and thread state.

pub mod image;
pub mod memory;
pub mod native;
mod native_areas;
pub mod stop;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ipc::{Answerbox, CallId, CallKey, PhoneTable};
use crate::syscall::{SyscallState, WaitReason};
pub use memory::{AreaError, AreaInfo, NativeMemory, UserFault, UserMemory};

/// A task's id: from a kernel counter, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId(pub u64);

/// A thread's id: from a kernel counter, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ThreadId(pub u64);

/// What the checkpointer may do with a task (thesis 4.4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskPolicy {
    /// Stopped and snapshotted transparently; the default for user tasks.
    Checkpointable,
    /// A service that exports its part of a checkpoint set's state when
    /// asked; named in images by its persistent service id.
    Cooperative { service_id: String },
    /// Neither: a checkpoint set that needs this task cannot be taken.
    Neither,
}

/// Who runs a task's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// A Rust service in the kernel's process, polled by its owner.
    Native,
    /// A WebAssembly program run by the machine (bound in a later layer).
    Guest,
}

/// Per-task id counters (thesis 5.4.6): the image format's type, so a
/// checkpoint records them and a restore takes them back as they are.
pub use snapfmt::IdCounters;

/// Takes the next value of an id counter.
pub(crate) fn take_id(counter: &mut u64) -> u64 {
    let v = *counter;
    // Restore refuses counters near the top (`checkpoint::restore`), so
    // this never saturates in practice; it must not wrap to 0 ("none").
    *counter = counter.saturating_add(1);
    v
}

/// One task.
pub struct Task {
    pub id: TaskId,
    pub name: String,
    pub policy: TaskPolicy,
    pub kind: TaskKind,
    /// Threads of the task, in creation order (ids ascend).
    pub threads: BTreeSet<ThreadId>,
    /// How many threads were ever created in this task (native scratch
    /// areas are laid out by this index).
    pub threads_created: u64,
    pub answerbox: Answerbox,
    pub phones: PhoneTable,
    /// Calls this task sent that are not answered yet, forwarded ones
    /// included, by sender-side id (thesis 5.4.8).
    pub out_calls: BTreeMap<CallId, CallKey>,
    pub counters: IdCounters,
    /// The task's memory, for copies done by the kernel.
    pub memory: Box<dyn UserMemory>,
    /// Set while the task is stopped (its threads do not run).
    pub stopped: bool,
    /// The task and thread ids this task sees (identity unless restored).
    pub id_view: crate::checkpoint::IdView,
}

/// Where a thread stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadState {
    /// May run (and reissue its system call, if one is in progress).
    Runnable,
    /// Asleep in a system call.
    Blocked(WaitReason),
    /// Stopped at a consistent point by [`Kernel::stop_task`](crate::kernel::Kernel::stop_task).
    Stopped,
    /// Finished; kept so its id is never confused with a live one.
    Exited,
}

/// One thread.
pub struct Thread {
    pub id: ThreadId,
    pub task: TaskId,
    /// Index of the thread within its task (0 for the first).
    pub index: u64,
    pub state: ThreadState,
    /// Kernel-side system call state: what a snapshot's thread context
    /// carries about a call in progress.
    pub sys: SyscallState,
    /// Wait sequence number of its latest sleep (its place in a wait
    /// queue, `sched::waitq`); kept while a stop interrupts the sleep.
    pub wait_seq: u64,
    /// Set by a stop that interrupted the thread's sleep: the wait
    /// sequence number its reissue sleeps under if it sleeps again (so a
    /// restarted wait keeps its place in the queue).
    pub resume_at: Option<u64>,
}
