//! Files of an image: the header plus a body, encoded and checked.
//!
//! Opening a file checks, in this order and before anything is decoded:
//! header fields, declared length against the kind's limit and against the
//! bytes present, the body checksum, then (for zstd bodies) the declared
//! content size against the limit, and only then decompresses and decodes.

use crate::budget::{Budget, Budgeted, Exceeded};
use crate::digest::Digest;
use crate::error::ObjectError;
use crate::header::{FLAG_XXH3, FLAG_ZSTD, HEADER_LEN, ObjectHeader, ObjectKind};
use crate::limits::*;
use crate::version::FORMAT_VERSION;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Path of the manifest inside an image.
pub const MANIFEST_PATH: &str = "manifest.spm";

/// Path of a task record.
pub fn task_path(task_id: u64) -> String {
    format!("tasks/{task_id}.spt")
}
/// Path of a task's kernel state record (since 1.2).
pub fn kernel_state_path(task_id: u64) -> String {
    format!("tasks/{task_id}.spk")
}
/// The task id a kernel state path names, if `path` is one.
pub fn kernel_state_task(path: &str) -> Option<u64> {
    let n = path.strip_prefix("tasks/")?.strip_suffix(".spk")?;
    n.parse::<u64>().ok().filter(|id| id.to_string() == n)
}
/// Path of a local chunk.
pub fn chunk_path(content: &Digest) -> String {
    format!("chunks/{content}.spc")
}
/// Path of pack file `n` (since 1.4): chunk frames back to back.
pub fn pack_path(n: u32) -> String {
    format!("packs/{n}.spp")
}
/// Path of an embedded module.
pub fn module_path(sha256: &Digest) -> String {
    format!("modules/{sha256}.spw")
}
/// Path of a backed-up file's content.
pub fn file_backup_path(sha256: &Digest) -> String {
    format!("files/{sha256}.spf")
}

/// Largest stored body (after the header) allowed for `kind`.
pub fn stored_limit(kind: ObjectKind) -> u64 {
    match kind {
        ObjectKind::Manifest => MAX_MANIFEST_BODY,
        ObjectKind::Task => MAX_TASK_BODY,
        ObjectKind::Chunk => MAX_CHUNK_BODY,
        ObjectKind::Module => MAX_MODULE_BODY,
        ObjectKind::FileBackup => MAX_FILE_BACKUP_BODY,
        ObjectKind::KernelState => MAX_KERNEL_STATE_BODY,
    }
}

/// Largest decompressed body allowed for `kind`.
pub fn decoded_limit(kind: ObjectKind) -> u64 {
    match kind {
        ObjectKind::Chunk => u64::from(MAX_CHUNK_PAGES) * PAGE_SIZE as u64,
        other => stored_limit(other),
    }
}

/// The checksum of `body` as a header with `flags` records it: SHA-256,
/// or with [`FLAG_XXH3`] the XXH3-128 of the body (little endian) followed
/// by 16 zero bytes.
pub fn body_checksum(flags: u16, body: &[u8]) -> Digest {
    if flags & FLAG_XXH3 == 0 {
        return Digest::of(body);
    }
    let mut d = [0u8; 32];
    d[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(body).to_le_bytes());
    Digest(d)
}

/// A whole file: header for `body` (already compressed if `flags` says
/// so) followed by `body`.
pub fn assemble(kind: ObjectKind, flags: u16, body: &[u8], checksum: Digest) -> Vec<u8> {
    let header = ObjectHeader {
        version: FORMAT_VERSION,
        kind,
        flags,
        body_len: body.len() as u64,
        checksum,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
    out
}

/// A whole file holding `content`, zstd-compressed at `level` if
/// `compress` (the frame records its content size).
pub fn encode_bytes(
    kind: ObjectKind,
    content: &[u8],
    compress: Option<i32>,
) -> std::io::Result<Vec<u8>> {
    match compress {
        Some(level) => {
            let body = zstd::bulk::compress(content, level)?;
            Ok(assemble(kind, FLAG_ZSTD, &body, Digest::of(&body)))
        }
        None => Ok(assemble(kind, 0, content, Digest::of(content))),
    }
}

/// A whole file holding the postcard encoding of `record`.
pub fn encode_record<T: Serialize>(
    kind: ObjectKind,
    record: &T,
    compress: Option<i32>,
) -> std::io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(record).map_err(std::io::Error::other)?;
    encode_bytes(kind, &body, compress)
}

/// Checks a whole file's header, length and checksum, and returns the
/// header and the body exactly as stored.
pub fn check(bytes: &[u8], expected: ObjectKind) -> Result<(ObjectHeader, &[u8]), ObjectError> {
    let header = ObjectHeader::parse(bytes)?;
    if header.kind != expected {
        return Err(ObjectError::WrongKind {
            found: header.kind.name(),
            expected: expected.name(),
        });
    }
    let limit = stored_limit(expected);
    if header.body_len > limit {
        return Err(ObjectError::TooLong {
            declared: header.body_len,
            limit,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if header.body_len != body.len() as u64 {
        return Err(ObjectError::LengthMismatch {
            declared: header.body_len,
            actual: body.len() as u64,
        });
    }
    let actual = body_checksum(header.flags, body);
    if actual != header.checksum {
        return Err(ObjectError::Checksum {
            expected: header.checksum,
            actual,
        });
    }
    Ok((header, body))
}

thread_local! {
    /// One zstd decompression context per thread, reused across files.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The content size a checked body declares: its length, or the content
/// size its zstd frame records (checked against the kind's limit).
pub fn content_len(header: &ObjectHeader, body: &[u8]) -> Result<u64, ObjectError> {
    if header.flags & FLAG_ZSTD == 0 {
        return Ok(body.len() as u64);
    }
    let limit = decoded_limit(header.kind);
    let size = match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(size)) => size,
        Ok(None) => {
            return Err(ObjectError::Decompress(
                "frame does not record its content size".into(),
            ));
        }
        Err(_) => return Err(ObjectError::Decompress("not a zstd frame".into())),
    };
    if size > limit {
        return Err(ObjectError::DecompressedTooLong { size, limit });
    }
    Ok(size)
}

/// Decompresses a checked body if its header says it is compressed.
pub fn unpack(header: &ObjectHeader, body: &[u8]) -> Result<Vec<u8>, ObjectError> {
    if header.flags & FLAG_ZSTD == 0 {
        return Ok(body.to_vec());
    }
    // At most the kind's limit, which fits in memory by construction.
    let size = content_len(header, body)? as usize;
    let mut out = vec![0u8; size];
    unpack_into(header, body, &mut out)?;
    Ok(out)
}

/// Unpacks a checked body straight into `out`, which must be exactly as
/// long as the content ([`content_len`]): no intermediate buffer.
pub fn unpack_into(header: &ObjectHeader, body: &[u8], out: &mut [u8]) -> Result<(), ObjectError> {
    let size = content_len(header, body)?;
    if size != out.len() as u64 {
        return Err(ObjectError::Decompress(format!(
            "content is {size} bytes, {} expected",
            out.len()
        )));
    }
    if header.flags & FLAG_ZSTD == 0 {
        out.copy_from_slice(body);
        return Ok(());
    }
    let written = DECOMPRESSOR.with(|d| -> Result<usize, ObjectError> {
        let mut d = d.borrow_mut();
        if d.is_none() {
            let fresh = zstd::bulk::Decompressor::new()
                .map_err(|e| ObjectError::Decompress(e.to_string()))?;
            *d = Some(fresh);
        }
        match d.as_mut() {
            Some(d) => d
                .decompress_to_buffer(body, out)
                .map_err(|e| ObjectError::Decompress(e.to_string())),
            None => Err(ObjectError::Decompress("no decompressor".into())),
        }
    })?;
    if written as u64 != size {
        return Err(ObjectError::Decompress(format!(
            "frame declares {size} bytes but holds {written}"
        )));
    }
    Ok(())
}

/// The SHA-256 and length of a checked body's content, decompressed a
/// block at a time (memory: one block, whatever the content's size). The
/// content must be exactly the size the frame declares (within the kind's
/// limit), in one frame with nothing after it.
pub fn content_digest(header: &ObjectHeader, body: &[u8]) -> Result<(Digest, u64), ObjectError> {
    use sha2::Digest as _;
    use std::io::Read;
    let size = content_len(header, body)?;
    if header.flags & FLAG_ZSTD == 0 {
        return Ok((Digest::of(body), size));
    }
    let bad = |e: std::io::Error| ObjectError::Decompress(e.to_string());
    let mut frame = zstd::stream::read::Decoder::with_buffer(body)
        .map_err(bad)?
        .single_frame();
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = frame.read(&mut block).map_err(bad)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > size {
            return Err(ObjectError::Decompress(format!(
                "frame declares {size} bytes but holds more"
            )));
        }
        hasher.update(&block[..n]);
    }
    if total != size {
        return Err(ObjectError::Decompress(format!(
            "frame declares {size} bytes but holds {total}"
        )));
    }
    let rest = frame.finish();
    if !rest.is_empty() {
        return Err(ObjectError::Decompress(format!(
            "{} bytes after the frame",
            rest.len()
        )));
    }
    Ok((Digest(hasher.finalize().into()), size))
}

/// Bytes of a file enough for [`declared_content`]: the header and the
/// longest zstd frame header.
pub const DECLARATION_LEN: usize = HEADER_LEN + 18;

/// The content size the first bytes of a file of `kind` declare (the
/// header's `body_len`, or its zstd frame's content size), checked against
/// the kind's limit, without reading or checking the rest: what an image's
/// budget is charged before anything is decompressed. Only a refusal is
/// trusted; the size is verified when the file is unpacked.
pub fn declared_content(prefix: &[u8], kind: ObjectKind) -> Result<u64, ObjectError> {
    let header = ObjectHeader::parse(prefix)?;
    if header.kind != kind {
        return Err(ObjectError::WrongKind {
            found: header.kind.name(),
            expected: kind.name(),
        });
    }
    let limit = stored_limit(kind);
    if header.body_len > limit {
        return Err(ObjectError::TooLong {
            declared: header.body_len,
            limit,
        });
    }
    if header.flags & FLAG_ZSTD == 0 {
        return Ok(header.body_len);
    }
    content_len(&header, &prefix[HEADER_LEN..])
}

/// The kind of object a listed path holds (`None` for a path the object
/// list may not hold).
pub fn kind_of_path(path: &str) -> Option<ObjectKind> {
    if !valid_object_path(path) {
        return None;
    }
    let kind = match path.rsplit('.').next() {
        Some("spt") => ObjectKind::Task,
        Some("spk") => ObjectKind::KernelState,
        Some("spw") => ObjectKind::Module,
        Some("spf") => ObjectKind::FileBackup,
        _ => return None,
    };
    Some(kind)
}

/// Checks and unpacks a whole file: its content bytes.
pub fn open_bytes(
    bytes: &[u8],
    expected: ObjectKind,
) -> Result<(ObjectHeader, Vec<u8>), ObjectError> {
    let (header, body) = check(bytes, expected)?;
    let content = unpack(&header, body)?;
    Ok((header, content))
}

/// Decodes a postcard record that must use every byte of `content`,
/// within the memory budget of [`decode_budget`] (see `budget.rs`).
pub fn decode_record<T: DeserializeOwned>(content: &[u8]) -> Result<T, ObjectError> {
    decode_within(content, decode_budget(content.len() as u64)).map(|(value, _)| value)
}

/// Memory that decoding `content` as a `T` is charged (so a writer can
/// check that a record stays within what readers accept).
pub fn decode_cost<T: DeserializeOwned>(content: &[u8]) -> Result<u64, ObjectError> {
    decode_within::<T>(content, MAX_DECODE_BUDGET).map(|(_, used)| used)
}

fn decode_within<T: DeserializeOwned>(content: &[u8], limit: u64) -> Result<(T, u64), ObjectError> {
    let budget = Budget::new(limit);
    let mut de = postcard::Deserializer::from_bytes(content);
    let value = T::deserialize(Budgeted {
        inner: &mut de,
        budget: &budget,
    });
    match (value, budget.exceeded()) {
        (_, Some(Exceeded::Budget { budget })) => Err(ObjectError::DecodeBudget {
            len: content.len() as u64,
            budget,
        }),
        (_, Some(Exceeded::Count)) => Err(ObjectError::CountPastInput),
        (Err(e), None) => Err(e.into()),
        (Ok(value), None) => {
            let rest = de.finalize()?;
            if !rest.is_empty() {
                return Err(ObjectError::Trailing(rest.len()));
            }
            Ok((value, budget.used()))
        }
    }
}

/// Checks, unpacks and decodes a whole record file.
pub fn open_record<T: DeserializeOwned>(
    bytes: &[u8],
    expected: ObjectKind,
) -> Result<(ObjectHeader, T), ObjectError> {
    let (header, content) = open_bytes(bytes, expected)?;
    Ok((header, decode_record(&content)?))
}

/// Whether `path` is a well-formed path of a task, kernel state, module or
/// file-backup object (the paths the manifest's object list may hold).
pub fn valid_object_path(path: &str) -> bool {
    let hex64 = |s: &str| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if let Some(n) = path
        .strip_prefix("tasks/")
        .and_then(|s| s.strip_suffix(".spt"))
    {
        return n.parse::<u64>().is_ok_and(|id| id.to_string() == n);
    }
    if kernel_state_task(path).is_some() {
        return true;
    }
    if let Some(h) = path
        .strip_prefix("modules/")
        .and_then(|s| s.strip_suffix(".spw"))
    {
        return hex64(h);
    }
    if let Some(h) = path
        .strip_prefix("files/")
        .and_then(|s| s.strip_suffix(".spf"))
    {
        return hex64(h);
    }
    false
}
