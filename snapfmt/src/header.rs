//! The fixed 64-byte header that leads every file of an image.
//!
//! ```text
//! offset size field
//!      0    8 magic      89 53 50 54 49 4D 47 0A  ("\x89SPTIMG\n")
//!      8    2 major      u16 little endian
//!     10    2 minor      u16 little endian
//!     12    2 kind       u16 little endian (ObjectKind; 6 since 1.2)
//!     14    2 flags      u16 little endian (bit 0: body is one zstd frame;
//!                        bit 1, since 1.2, chunks only: checksum is XXH3-128)
//!     16    8 body_len   u64 little endian, bytes following the header
//!     24   32 checksum   SHA-256 of the body bytes exactly as stored (or,
//!                        with bit 1, their XXH3-128, then 16 zero bytes)
//!     56    8 reserved   zero
//! ```
//!
//! [`ObjectHeader::parse`] checks magic, version, kind, flags and the
//! reserved bytes; length and checksum are checked against the body by
//! [`crate::object`].

use crate::digest::Digest;
use crate::error::ObjectError;
use crate::version::{FORMAT_VERSION, FormatVersion};

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 64;
/// The magic number at offset 0 of every file.
pub const MAGIC: [u8; 8] = *b"\x89SPTIMG\n";
/// Flag bit 0: the body is a single zstd frame (with its content size).
pub const FLAG_ZSTD: u16 = 1;
/// Flag bit 1 (since 1.2, chunk files only): the checksum is the XXH3-128
/// of the body (16 bytes, little endian) followed by 16 zero bytes, not its
/// SHA-256. A chunk's content is committed to by its SHA-256 address, which
/// readers check after decompressing; the body checksum only has to catch
/// damage before the decompressor sees the body, and XXH3 does that at a
/// small fraction of SHA-256's cost.
pub const FLAG_XXH3: u16 = 2;
/// Every flag this version knows.
pub const KNOWN_FLAGS: u16 = FLAG_ZSTD | FLAG_XXH3;

/// The flags a file of `version` may set.
pub fn known_flags(version: FormatVersion) -> u16 {
    if version.minor >= 2 {
        KNOWN_FLAGS
    } else {
        FLAG_ZSTD
    }
}

/// What a file holds. Stored as a `u16` at header offset 12.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u16)]
pub enum ObjectKind {
    /// `manifest.spm`: the [`crate::Manifest`].
    Manifest = 1,
    /// `tasks/<task id>.spt`: one [`crate::TaskRecord`].
    Task = 2,
    /// `chunks/<content digest>.spc`: memory pages.
    Chunk = 3,
    /// `modules/<sha256>.spw`: a WebAssembly module's bytes.
    Module = 4,
    /// `files/<sha256>.spf`: a backed-up file's bytes.
    FileBackup = 5,
    /// `tasks/<task id>.spk` (since 1.2): one [`crate::KernelTaskState`].
    KernelState = 6,
}

impl ObjectKind {
    /// The kind numbered `n`, if this version knows it.
    pub fn from_u16(n: u16) -> Option<ObjectKind> {
        Some(match n {
            1 => ObjectKind::Manifest,
            2 => ObjectKind::Task,
            3 => ObjectKind::Chunk,
            4 => ObjectKind::Module,
            5 => ObjectKind::FileBackup,
            6 => ObjectKind::KernelState,
            _ => return None,
        })
    }

    /// A short lowercase name ("manifest", "task", ...).
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Manifest => "manifest",
            ObjectKind::Task => "task",
            ObjectKind::Chunk => "chunk",
            ObjectKind::Module => "module",
            ObjectKind::FileBackup => "file backup",
            ObjectKind::KernelState => "kernel state",
        }
    }

    /// The first minor version (of major 1) that knows this kind: a file
    /// of an older version carrying it has an unknown kind.
    pub fn since_minor(self) -> u16 {
        match self {
            ObjectKind::KernelState => 2,
            _ => 0,
        }
    }
}

/// A decoded file header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ObjectHeader {
    pub version: FormatVersion,
    pub kind: ObjectKind,
    pub flags: u16,
    pub body_len: u64,
    pub checksum: Digest,
}

impl ObjectHeader {
    /// The header's 64 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&self.version.major.to_le_bytes());
        h[10..12].copy_from_slice(&self.version.minor.to_le_bytes());
        h[12..14].copy_from_slice(&(self.kind as u16).to_le_bytes());
        h[14..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..24].copy_from_slice(&self.body_len.to_le_bytes());
        h[24..56].copy_from_slice(&self.checksum.0);
        h
    }

    /// Parses and checks the first 64 bytes of `bytes` (magic, version
    /// against [`FORMAT_VERSION`], kind, flags, reserved bytes).
    pub fn parse(bytes: &[u8]) -> Result<ObjectHeader, ObjectError> {
        ObjectHeader::parse_as(bytes, FORMAT_VERSION)
    }

    /// [`parse`](Self::parse) as a reader of version `reader` would: the
    /// compatibility rule applied to another reader version (tests of the
    /// rule, tools that explain which reader an image needs).
    pub fn parse_as(bytes: &[u8], reader: FormatVersion) -> Result<ObjectHeader, ObjectError> {
        let h: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ObjectError::TruncatedHeader { len: bytes.len() })?;
        let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]);
        if h[0..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&h[0..8]);
            return Err(ObjectError::BadMagic { found });
        }
        let version = FormatVersion {
            major: u16_at(8),
            minor: u16_at(10),
        };
        if version.major != reader.major {
            return Err(ObjectError::OtherMajor {
                found: version,
                supported: reader,
            });
        }
        if !reader.can_read(version) {
            return Err(ObjectError::NewerMinor {
                found: version,
                supported: reader,
            });
        }
        let kind_n = u16_at(12);
        let kind = ObjectKind::from_u16(kind_n)
            .filter(|k| version.minor >= k.since_minor())
            .ok_or(ObjectError::UnknownKind { found: kind_n })?;
        let flags = u16_at(14);
        if flags & !known_flags(version) != 0 {
            return Err(ObjectError::UnknownFlags { flags });
        }
        if flags & FLAG_XXH3 != 0 && kind != ObjectKind::Chunk {
            return Err(ObjectError::FlagNotAllowed {
                flags,
                kind: kind.name(),
            });
        }
        if h[56..64].iter().any(|&b| b != 0) {
            return Err(ObjectError::Reserved);
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&h[16..24]);
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(&h[24..56]);
        Ok(ObjectHeader {
            version,
            kind,
            flags,
            body_len: u64::from_le_bytes(len),
            checksum: Digest(checksum),
        })
    }
}
