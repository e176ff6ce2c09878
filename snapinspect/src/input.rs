//! What an input path holds, decided before any image parser sees it.
//!
//! [`probe`] looks at a path without opening anything that could block or
//! mislead: it stats the path (a symbolic link is followed by `stat`, never
//! by `open`), refuses FIFOs, sockets and devices, and reads the first
//! block of a regular file to tell a tar file from anything else. Only
//! then does snapfmt's reader open it. An input that fails here cannot be
//! read as an image at all (exit status 2); one that passes is an image,
//! sound or with problems.
//!
//! [`Located`] names an image path in front of a snapfmt error once: the
//! error often starts with that path already.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use snapfmt::header::MAGIC;
use snapfmt::limits::MAX_TAR_ENTRIES;
use snapfmt::object::MANIFEST_PATH;

/// The two containers an image comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A directory holding `manifest.spm`.
    Dir,
    /// A regular file that starts with a valid tar header.
    Tar,
}

/// Why a path cannot be read as an image at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path does not exist or cannot be examined or read.
    #[error("{}: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    /// The path is a FIFO, socket or device: never opened.
    #[error("{}: is {what}, not a Spartan image", path.display())]
    Special { path: PathBuf, what: &'static str },
    /// The path can be read but holds no image.
    #[error("{}: not a Spartan image ({why})", path.display())]
    NotAnImage { path: PathBuf, why: &'static str },
}

impl InputError {
    fn unreadable(path: &Path) -> impl FnOnce(io::Error) -> InputError + '_ {
        move |source| InputError::Unreadable {
            path: path.to_path_buf(),
            source,
        }
    }

    fn not_an_image(path: &Path, why: &'static str) -> InputError {
        InputError::NotAnImage {
            path: path.to_path_buf(),
            why,
        }
    }
}

/// The size of a tar header block.
const BLOCK: usize = 512;

/// Decides which container `path` is, or why it is none.
pub fn probe(path: &Path) -> Result<Container, InputError> {
    // `metadata` follows a symbolic link with stat(2): the link's target
    // is classified, and nothing is opened before its type is known.
    let meta = std::fs::metadata(path).map_err(InputError::unreadable(path))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        probe_dir(path)
    } else if ft.is_file() {
        probe_file(path)
    } else {
        let what = snapfmt::describe_file_type(ft);
        Err(InputError::Special {
            path: path.to_path_buf(),
            what,
        })
    }
}

fn probe_dir(path: &Path) -> Result<Container, InputError> {
    let mut entries = std::fs::read_dir(path).map_err(InputError::unreadable(path))?;
    if entries.next().is_none() {
        return Err(InputError::not_an_image(path, "an empty directory"));
    }
    match std::fs::symlink_metadata(path.join(MANIFEST_PATH)) {
        Ok(_) => Ok(Container::Dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(InputError::not_an_image(
            path,
            "a directory without manifest.spm",
        )),
        Err(e) => Err(InputError::unreadable(path)(e)),
    }
}

fn probe_file(path: &Path) -> Result<Container, InputError> {
    let mut file = File::open(path).map_err(InputError::unreadable(path))?;
    // The path may have been replaced since it was examined.
    let meta = file.metadata().map_err(InputError::unreadable(path))?;
    if !meta.is_file() {
        return Err(InputError::not_an_image(path, "not a regular file"));
    }
    let mut head = Vec::with_capacity(BLOCK);
    (&mut file)
        .take(BLOCK as u64)
        .read_to_end(&mut head)
        .map_err(InputError::unreadable(path))?;
    if head.is_empty() {
        return Err(InputError::not_an_image(path, "an empty file"));
    }
    if head.starts_with(&MAGIC) {
        return Err(InputError::not_an_image(
            path,
            "one object file of an image; give the image directory or its tar file",
        ));
    }
    if head.len() < BLOCK || !tar_header_checksum_ok(&head) {
        return Err(InputError::not_an_image(
            path,
            "neither an image directory nor a tar file",
        ));
    }
    file.rewind().map_err(InputError::unreadable(path))?;
    if tar_lacks_manifest(file, meta.len()) {
        return Err(InputError::not_an_image(
            path,
            "a tar file without manifest.spm",
        ));
    }
    Ok(Container::Tar)
}

/// Whether `block` is a tar header: its checksum field (octal, bytes
/// 148..156) equals the sum of its bytes with that field read as spaces
/// (unsigned, or signed as some old writers computed it). An all-zero
/// block (an empty archive) is no header.
pub fn tar_header_checksum_ok(block: &[u8]) -> bool {
    let Some(block) = block.get(..BLOCK) else {
        return false;
    };
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, ' ' | '\0'))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let in_field = |i: usize| (148..156).contains(&i);
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { u32::from(b) })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { i64::from(b as i8) })
        .sum();
    stored == unsigned || i64::from(stored) == signed
}

/// Whether the tar archive in `file` (of `len` bytes) ends cleanly without
/// a member named `manifest.spm`. Member headers are read and their data
/// skipped by seeking; an archive that is damaged or cut short before its
/// end is not judged here (it is an image with problems, which snapfmt's
/// validation reports).
fn tar_lacks_manifest(file: File, len: u64) -> bool {
    let mut archive = tar::Archive::new(file);
    let Ok(entries) = archive.entries_with_seek() else {
        return false;
    };
    let mut end = 0u64;
    for entry in entries.take(MAX_TAR_ENTRIES) {
        let Ok(e) = entry else {
            return false;
        };
        end = e.raw_file_position().saturating_add(e.size());
        if end > len || e.path_bytes().as_ref() == MANIFEST_PATH.as_bytes() {
            return false;
        }
    }
    // A complete archive has an end-of-archive block after its last member.
    let padded = end.div_ceil(BLOCK as u64) * BLOCK as u64;
    len >= padded + BLOCK as u64
}

/// An image path and a snapfmt error about it, as `PATH: ERROR`, or just
/// `ERROR` when the error already starts with the path (snapfmt names the
/// full path of operating-system errors and of tar problems).
pub struct Located<'a> {
    pub path: &'a Path,
    pub error: &'a snapfmt::Error,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display().to_string();
        let msg = self.error.to_string();
        if msg.starts_with(&path) {
            f.write_str(&msg)
        } else {
            write!(f, "{path}: {msg}")
        }
    }
}

/// Shorthand for [`Located`] in error attributes.
pub fn located<'a>(path: &'a Path, error: &'a snapfmt::Error) -> Located<'a> {
    Located { path, error }
}

#[cfg(test)]
mod tests {
    use super::tar_header_checksum_ok;

    #[test]
    fn tar_headers_are_recognised_by_their_checksum() {
        let mut h = tar::Header::new_ustar();
        h.set_path("manifest.spm").unwrap();
        h.set_size(3);
        h.set_cksum();
        assert!(tar_header_checksum_ok(h.as_bytes()));
        let mut bad = *h.as_bytes();
        bad[0] ^= 1;
        assert!(!tar_header_checksum_ok(&bad));
        assert!(!tar_header_checksum_ok(&[0u8; 512]));
        assert!(!tar_header_checksum_ok(&[0u8; 100]));
    }
}
