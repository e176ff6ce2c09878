//! The manifest: what the image is, which tasks it holds, and a digest of
//! every other object.

use super::common::Timestamp;
use crate::digest::Digest;
use crate::version::FormatVersion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The image's root record, stored in `manifest.spm` and written last.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format version the image was written with (equal to the
    /// version in every file header of the image).
    pub format_version: FormatVersion,
    /// Name and version of the program that wrote the image.
    pub tool_version: String,
    /// SHA-256 of the kernel sources of the kernel that was checkpointed.
    pub kernel_build_hash: Digest,
    /// The system call ABI version (`kernel/ABI.md`).
    pub kernel_abi_version: u32,
    /// When the checkpoint was taken (supplied by the writer's caller).
    pub created: Timestamp,
    /// The task the user asked to checkpoint.
    pub task_zero: u64,
    /// The options of the checkpoint operation.
    pub options: CheckpointOptions,
    /// The checkpoint set and the tasks around it, with their roles,
    /// sorted by task id.
    pub checkpoint_set: Vec<SetMember>,
    /// The image this one is incremental to, if any.
    pub parent: Option<ParentRef>,
    /// Every chunk of memory pages the page maps refer to, by index.
    pub chunks: Vec<ChunkEntry>,
    /// Every other file of the image (tasks, modules, file backups),
    /// sorted by path.
    pub objects: Vec<ObjectEntry>,
}

/// The options a checkpoint was taken with (DESIGN.md, thesis appendix A).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointOptions {
    /// The tasks were killed after the checkpoint.
    pub kill_after: bool,
    /// Policy for open files (thesis 4.4.8).
    pub file_policy: FilePolicy,
    /// Cooperation timeout in milliseconds.
    pub timeout_ms: u64,
    /// Modules are bundled into the image (otherwise referenced by path).
    pub bundle_modules: bool,
    /// Free-form further options, by name (room to grow).
    pub extra: BTreeMap<String, String>,
}

/// What happens to open files at restore (thesis 4.4.8).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum FilePolicy {
    /// Files must not have changed; checked by size and SHA-256.
    #[default]
    Unchangeable,
    /// No checks; missing files are closed, short ones seeked to the end.
    Volatile,
    /// A copy is stored and written back over the file at restore.
    BackupOverwrite,
    /// A copy is stored and written back only if the file is missing.
    BackupSkip,
}

/// One task of the checkpoint set or next to it.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMember {
    pub task_id: u64,
    pub name: String,
    pub role: Role,
}

/// A task's part in the checkpoint.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Checkpointed; its record is `tasks/<task id>.spt`.
    Checkpointable,
    /// A cooperative service that exported per-connection state.
    Cooperative { service_id: String },
    /// A client left outside the set (thesis 4.4.3); its calls to the
    /// set's tasks are answered by a stand-in at restore.
    ExcludedClient,
}

/// The image an incremental image builds on.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Path of the parent image, relative to the directory containing this
    /// image (or absolute).
    pub path: String,
    /// The SHA-256 of the parent's manifest body (its header checksum).
    pub manifest_digest: Digest,
}

/// One chunk of memory pages.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// The chunk's address, a digest of its uncompressed content. For
    /// [`ChunkHome::LocalPlain`] chunks (format 1.1) it is the SHA-256 of
    /// the content; for [`ChunkHome::Local`] chunks (format 1.0) the
    /// SHA-256 of the concatenated SHA-256 digests of its pages
    /// ([`crate::chunk_address`]); a [`ChunkHome::Parent`] entry carries
    /// the address of the ancestor's entry, whichever rule made it.
    pub content: Digest,
    /// Number of 4 KiB pages in the chunk (1..=MAX_CHUNK_PAGES).
    pub pages: u32,
    /// Where the chunk is stored.
    pub home: ChunkHome,
}

/// Where a chunk's bytes are.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkHome {
    /// Format 1.0 only: in this image, file `chunks/<content>.spc` with
    /// this body length and body SHA-256 (the file header's checksum); the
    /// address is SHA-256 over the page digests. Read, never written.
    Local { body_len: u64, body_digest: Digest },
    /// In the parent chain: the nearest ancestor whose manifest lists a
    /// local chunk with the same content digest.
    Parent,
    /// Since format 1.1: in this image, like `Local`, but the address is
    /// the plain SHA-256 of the uncompressed content. Since 1.2,
    /// `body_digest` (always equal to the file header's checksum) is the
    /// body's XXH3-128 padded with zeros when the header sets
    /// [`crate::header::FLAG_XXH3`].
    LocalPlain { body_len: u64, body_digest: Digest },
    /// Since format 1.4: in this image, inside pack file
    /// `packs/<pack>.spp` ([`crate::object::pack_path`]): the chunk's
    /// frame, a whole chunk file (header and body) with this body length
    /// and checksum, starts at byte `offset` of the pack. The address is
    /// the plain SHA-256 of the content, as for `LocalPlain`.
    Packed {
        pack: u32,
        offset: u64,
        body_len: u64,
        body_digest: Digest,
    },
}

impl ChunkHome {
    /// Body length and body SHA-256 of a chunk stored in this image.
    pub fn local_body(&self) -> Option<(u64, Digest)> {
        match *self {
            ChunkHome::Local {
                body_len,
                body_digest,
            }
            | ChunkHome::LocalPlain {
                body_len,
                body_digest,
            }
            | ChunkHome::Packed {
                body_len,
                body_digest,
                ..
            } => Some((body_len, body_digest)),
            ChunkHome::Parent => None,
        }
    }

    /// Whether the address is the plain SHA-256 of the content
    /// (`LocalPlain` and `Packed`).
    pub fn is_plain(&self) -> bool {
        matches!(
            self,
            ChunkHome::LocalPlain { .. } | ChunkHome::Packed { .. }
        )
    }

    /// Where a local chunk's frame is: the file holding it and the byte
    /// range of the frame in it (the whole file for a chunk file).
    pub fn location(&self, content: &Digest) -> Option<(String, Option<(u64, u64)>)> {
        match *self {
            ChunkHome::Local { .. } | ChunkHome::LocalPlain { .. } => {
                Some((crate::object::chunk_path(content), None))
            }
            ChunkHome::Packed {
                pack,
                offset,
                body_len,
                ..
            } => Some((
                crate::object::pack_path(pack),
                Some((
                    offset,
                    body_len.saturating_add(crate::header::HEADER_LEN as u64),
                )),
            )),
            ChunkHome::Parent => None,
        }
    }

    /// Whether the chunk is stored in this image.
    pub fn is_local(&self) -> bool {
        self.local_body().is_some()
    }

    /// The address of `content` under this home's rule (`None` for a
    /// parent chunk, which the ancestor checks).
    pub fn address_of(&self, content: &[u8]) -> Option<Digest> {
        match self {
            ChunkHome::Local { .. } => Some(crate::digest::chunk_address_of(content)),
            ChunkHome::LocalPlain { .. } | ChunkHome::Packed { .. } => Some(Digest::of(content)),
            ChunkHome::Parent => None,
        }
    }
}

/// A file of the image other than the manifest and chunks.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Path inside the image, `/`-separated.
    pub path: String,
    /// Body length as in the file's header.
    pub body_len: u64,
    /// Body SHA-256 as in the file's header.
    pub body_digest: Digest,
}
