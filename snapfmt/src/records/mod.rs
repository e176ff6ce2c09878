//! The records an image holds, as Rust types encoded with serde + postcard.
//!
//! Field order is the encoding order (postcard is not self-describing), so
//! fields are never reordered, removed or retyped within a major version.
//! `FORMAT.md` ("Growing the format") lists the ways a minor version may
//! add information.

mod area;
mod common;
mod ipc;
mod kernel;
mod manifest;
mod services;
mod task;

pub use area::{AreaRecord, Backing, PageLoc, PageMap, PageRun, Sharing, area_flags};
pub use common::{Peer, Timestamp};
pub use ipc::{BufferKind, CallBuffer, CallQueue, PendingCall, Phone, PhoneSlot};
pub use kernel::{
    CallDetail, CallParties, ConnectDetail, EntryCall, IdCounters, KernelTaskState, Notification,
    PhoneState, ReadRequest, SpecialPhone, ThreadDetail,
};
pub use manifest::{
    CheckpointOptions, ChunkEntry, ChunkHome, FilePolicy, Manifest, ObjectEntry, ParentRef, Role,
    SetMember,
};
pub use services::{CoopBlob, FileBackup};
pub use task::{IdMapping, ModuleRef, SyscallState, TaskMeta, TaskRecord, ThreadContext};

#[cfg(test)]
mod tests;
