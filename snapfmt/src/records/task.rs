//! The record of one checkpointable task.

use super::area::AreaRecord;
use super::common::Peer;
use super::ipc::{PendingCall, PhoneSlot};
use super::services::{CoopBlob, FileBackup};
use crate::digest::Digest;
use crate::exec::{ExecState, InstanceState, Value};
use serde::{Deserialize, Serialize};

/// Everything about one checkpointable task, stored in
/// `tasks/<task id>.spt`.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub meta: TaskMeta,
    /// Tables and dropped segments of the module instance.
    pub instance: InstanceState,
    /// Threads, sorted by thread id.
    pub threads: Vec<ThreadContext>,
    /// Areas, sorted by base, not overlapping.
    pub areas: Vec<AreaRecord>,
    /// Phone table: slot `i` is phone `i`.
    pub phones: Vec<PhoneSlot>,
    pub calls: Vec<PendingCall>,
    pub coop_blobs: Vec<CoopBlob>,
    pub file_backups: Vec<FileBackup>,
}

/// Task metadata (thesis 5.3.5, 5.3.8, 4.4.10).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// The task id at checkpoint time; the restored task keeps seeing it.
    pub task_id: u64,
    pub name: String,
    pub args: Vec<String>,
    /// Current working directory.
    pub cwd: String,
    pub module: ModuleRef,
    /// Other task ids the task knows, and what each refers to, so restore
    /// can keep them valid (the per-task id view).
    pub id_view: Vec<IdMapping>,
}

/// One id a task has seen.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub seen: u64,
    pub refers_to: Peer,
}

/// The WebAssembly module a task runs.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModuleRef {
    /// Bundled in the image as `modules/<sha256>.spw`.
    Embedded { sha256: Digest, len: u64 },
    /// Loaded from a path (of the VFS) at restore, checked against sha256.
    External { path: String, sha256: Digest },
}

impl ModuleRef {
    /// The module's SHA-256.
    pub fn sha256(&self) -> Digest {
        match self {
            ModuleRef::Embedded { sha256, .. } | ModuleRef::External { sha256, .. } => *sha256,
        }
    }
}

/// One thread: portable execution state plus kernel-side state.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadContext {
    pub thread_id: u64,
    pub exec: ExecState,
    pub syscall: SyscallState,
    /// Sender-side id of a synchronous call this thread sent and awaits
    /// the answer to (thesis 5.4.8 `active_sync_call`): resume waits for
    /// it instead of sending again.
    pub active_sync_call: Option<u64>,
    /// SHA-256 of the sources of the kernel that saved this thread.
    pub kernel_build_hash: Digest,
}

/// Kernel-side state of the system call a thread is in (thesis 5.3.1, 5.3.6).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyscallState {
    /// Not in a system call.
    None,
    /// Blocked in the system call of `ExecState::suspension`; resume
    /// issues it again.
    Reissue,
    /// The system call finished (its wakeup happened) but the thread had
    /// not returned yet; resume returns these results.
    Complete { results: Vec<Value> },
}
