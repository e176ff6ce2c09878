//! Typed errors. Every error that concerns a file of an image names it.

use crate::digest::Digest;
use crate::version::FormatVersion;
use std::path::PathBuf;

/// Something wrong with the bytes of one file (header, length, checksum,
/// compression, encoding). [`Error::Object`] adds the file's name.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The file is shorter than the 64-byte header.
    #[error("truncated header: {len} bytes, a header needs 64")]
    TruncatedHeader { len: usize },
    /// The first 8 bytes are not the image magic.
    #[error("bad magic {found:02x?}: not a Spartan image file")]
    BadMagic { found: [u8; 8] },
    /// The file has another major version than this reader.
    #[error("format version {found} has another major version than this reader's {supported}")]
    OtherMajor {
        found: FormatVersion,
        supported: FormatVersion,
    },
    /// The file has a newer minor version than this reader.
    #[error("format version {found} is newer than this reader's {supported}")]
    NewerMinor {
        found: FormatVersion,
        supported: FormatVersion,
    },
    /// The header's kind number is unknown.
    #[error("unknown object kind {found}")]
    UnknownKind { found: u16 },
    /// The file holds another kind of object than its place requires.
    #[error("holds a {found} object where a {expected} object belongs")]
    WrongKind {
        found: &'static str,
        expected: &'static str,
    },
    /// The header sets flag bits this version does not define.
    #[error("unknown header flags {flags:#06x}")]
    UnknownFlags { flags: u16 },
    /// A flag the file's kind may not set (XXH3 outside a chunk).
    #[error("header flags {flags:#06x} are not allowed in a {kind} file")]
    FlagNotAllowed { flags: u16, kind: &'static str },
    /// Header bytes 56..64 are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// The declared body length exceeds this kind's limit.
    #[error("body length {declared} exceeds the limit of {limit} bytes")]
    TooLong { declared: u64, limit: u64 },
    /// The declared body length differs from the bytes present.
    #[error("body length {declared} in the header, but {actual} bytes follow it")]
    LengthMismatch { declared: u64, actual: u64 },
    /// The body's checksum (SHA-256, or XXH3-128 under flag bit 1)
    /// differs from the header's.
    #[error("body checksum mismatch: header says {expected}, body hashes to {actual}")]
    Checksum { expected: Digest, actual: Digest },
    /// The zstd frame is malformed or lacks its content size.
    #[error("zstd body: {0}")]
    Decompress(String),
    /// The zstd frame declares more content than this kind's limit.
    #[error("decompressed size {size} exceeds the limit of {limit} bytes")]
    DecompressedTooLong { size: u64, limit: u64 },
    /// The body is not a valid postcard encoding of the record.
    #[error("record does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// Decoding the record would take more memory than its budget
    /// ([`crate::limits::decode_budget`]).
    #[error(
        "record of {len} bytes would take more than its decoding budget of {budget} bytes of memory"
    )]
    DecodeBudget { len: u64, budget: u64 },
    /// A collection in the record declares more elements than bytes remain.
    #[error("a collection declares more elements than bytes remain in the record")]
    CountPastInput,
    /// Bytes are left over after the record.
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
}

/// Every error this crate returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the image is malformed.
    #[error("{file}: {error}")]
    Object { file: String, error: ObjectError },
    /// A file the image needs is not there.
    #[error("{file}: missing from the image")]
    Missing { file: String },
    /// A record decodes but is inconsistent (a field out of range, a
    /// dangling reference, a digest that does not match).
    #[error("{file}: field {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    /// A path of the image is not what the image may hold there: a
    /// symbolic link, a FIFO, a device or a socket where a regular file
    /// (or, on the way to one, a directory) belongs. Readers never follow
    /// links or open special files inside an image.
    #[error("{file}: is {found}, where {expected} belongs")]
    NotRegular {
        file: String,
        found: &'static str,
        expected: &'static str,
    },
    /// An operating-system error on a path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The image to write exists and overwriting was not requested.
    #[error("{path}: an image already exists there (overwrite was not requested)")]
    AlreadyExists { path: PathBuf },
    /// The image has no checkpointable task with this id.
    #[error("task {task} is not a checkpointable task of this image")]
    NoSuchTask { task: u64 },
    /// An address is not inside any area of the task.
    #[error("address {addr:#x} is not inside any area of task {task}")]
    NotMapped { task: u64, addr: u64 },
    /// The parent chain is broken (missing parent, digest mismatch, too long, a cycle).
    #[error("parent chain: {0}")]
    Parent(String),
    /// The writer was used against its contract (pages for an unknown
    /// area, a page fed twice, a page outside its area, ...).
    #[error("writer: {0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
