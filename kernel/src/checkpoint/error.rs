//! The errors of checkpoint and restore. A restore that fails leaves
//! nothing behind: no task, thread, call or scheduler entry it created.

use snapfmt::Peer;

use super::supplement::SupplementError;
use crate::guest::{GuestError, LoadError};
use crate::kernel::KernelError;
use crate::machine::{InstantiateError, StateError};
use crate::mm::MmError;
use crate::task::image::ImportError;
use crate::task::{TaskId, ThreadId};

/// Why a checkpoint set could not be captured or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A checkpoint set has at least one task.
    #[error("the checkpoint set is empty")]
    EmptySet,
    /// The kernel refused (no such task, not stopped, not checkpointable).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The scheduler could not export a thread's machine state.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// Only guest tasks are checkpointed transparently.
    #[error("task {0:?} is not a guest task")]
    NotGuest(TaskId),
    /// A live thread has no machine state in the scheduler.
    #[error("thread {0:?} has no machine state")]
    NoMachineState(ThreadId),
    /// The captured state contradicts itself.
    #[error("inconsistent capture: {0}")]
    Inconsistent(String),
    /// Writing the image failed.
    #[error("image: {0}")]
    Image(#[from] snapfmt::Error),
}

/// Why an image could not be restored. Each names the task (by its id in
/// the image) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading or checking the image failed.
    #[error("image: {0}")]
    Image(#[from] snapfmt::Error),
    /// The image was written for another system call ABI.
    #[error("image is for ABI version {image}, this kernel implements {kernel}")]
    Abi { image: u32, kernel: u32 },
    /// A thread was saved by another kernel build (checked on request).
    #[error("task {task}: thread {thread} was saved by kernel build {image}, this is {kernel}")]
    BuildHash {
        task: u64,
        thread: u64,
        image: String,
        kernel: String,
    },
    /// The kernel state of a task is missing (no kernel state record and
    /// no 1.1 supplement) or its 1.1 supplement is unreadable.
    #[error("task {task}: kernel state: {error}")]
    Supplement { task: u64, error: SupplementError },
    /// A module reference this restore cannot resolve.
    #[error("task {task}: module {what}")]
    Module { task: u64, what: String },
    /// The module does not load.
    #[error("task {task}: module: {error}")]
    Load { task: u64, error: LoadError },
    /// An area cannot be recreated.
    #[error("task {task}: area {base:#x}: {error}")]
    Area {
        task: u64,
        base: u64,
        error: MmError,
    },
    /// The instance state does not fit the module.
    #[error("task {task}: instance: {error}")]
    Instance { task: u64, error: InstantiateError },
    /// A thread's execution state does not fit the module.
    #[error("task {task}: thread {thread}: {error}")]
    Thread {
        task: u64,
        thread: u64,
        error: StateError,
    },
    /// A peer named by the image is not there (the missing server case,
    /// thesis 4.4.7).
    #[error("task {task}: {peer:?} is neither in the image nor running")]
    MissingPeer { task: u64, peer: Peer },
    /// The image contradicts itself.
    #[error("task {task}: {what}")]
    Inconsistent { task: u64, what: String },
    /// The set's entries in the manifest (format 1.3) are malformed.
    #[error("manifest: {0}")]
    Schedule(String),
    /// The kernel refused the IPC state.
    #[error("import: {0}")]
    Import(#[from] ImportError),
}
