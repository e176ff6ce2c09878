//! State exported by cooperative services (thesis 4.4.6, 4.4.8).

use super::manifest::FilePolicy;
use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// The state a cooperative service exported for one connection of the task
/// (the IPC_M_CHKPNT_INIT data read). Opaque to the format.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoopBlob {
    /// Persistent id of the service.
    pub service_id: String,
    /// The task's phone (sender-side id) of the connection.
    pub connection: u32,
    pub data: Vec<u8>,
}

/// A file the task had open or depended on, with its identity and, for the
/// backup policies, its saved content.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBackup {
    pub path: String,
    pub policy: FilePolicy,
    /// Identity of the file system, stable across remounts.
    pub fs_identity: String,
    pub size: u64,
    /// Modification time as the file system reports it.
    pub mtime: i64,
    /// SHA-256 of the file content at checkpoint time.
    pub sha256: Digest,
    /// The content is stored in `files/<sha256>.spf` (backup policies).
    pub stored: bool,
}
