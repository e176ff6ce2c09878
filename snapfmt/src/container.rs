//! The two containers of an image: a directory, or a tar file with the same
//! relative paths. Reading side only; writing is in [`crate::sink`].
//!
//! A directory image is a tree of regular files and directories and
//! nothing else. Every file is checked with `lstat` before it is opened (so
//! no device is ever opened), opened without following a symbolic link
//! (`O_NOFOLLOW`) and without blocking (`O_NONBLOCK`, so a FIFO cannot hang
//! the open), every directory on the way to it is checked to be a real
//! directory, and the opened handle (`fstat`, not the path) must be a
//! regular file, whose size is taken from that handle. Anything else is
//! [`Error::NotRegular`], naming the path inside the image.

use crate::error::{Error, ObjectError, Result};
use crate::header::HEADER_LEN;
use crate::limits::MAX_TAR_ENTRIES;
use std::collections::BTreeMap;
use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the files of an opened image come from.
pub(crate) enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        file: File,
        /// Path inside the archive -> (data offset, size).
        index: BTreeMap<String, (u64, u64)>,
    },
}

/// Whether `name` is an acceptable path inside an image: relative,
/// `/`-separated, no empty, `.` or `..` components.
pub(crate) fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            !c.is_empty() && c != "." && c != ".." && !c.contains('\\') && !c.contains('\0')
        })
}

/// Whether a symbolic link as the last component of an image's path is
/// followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Followed: a path the user named.
    Yes,
    /// Refused: a path an image named (a parent reference).
    No,
}

/// What an image path must be.
const AN_IMAGE: &str = "an image (a directory or a tar file)";

/// Opens `path` for reading without blocking (a FIFO opens at once and is
/// then refused by its type) and, with [`Follow::No`], without following a
/// symbolic link in its last component (`ELOOP`).
fn open_nonblocking(path: &Path, follow: Follow) -> std::io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// A file type in words ("a FIFO", "a symbolic link"), as
/// [`Error::NotRegular`] names it.
pub fn describe(ft: FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// The error for opening or `lstat`ing `path` (named `file` in messages)
/// failing with `e`.
fn open_error(file: &str, path: &Path, expected: &'static str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::NotRegular {
            file: file.to_string(),
            found: "a symbolic link",
            expected,
        },
        _ if e.kind() == std::io::ErrorKind::NotFound => Error::Missing {
            file: file.to_string(),
        },
        _ => Error::io(path, e),
    }
}

/// Opens file `name` of the directory image at `dir` (see the module
/// doc) and returns it with its size, taken from the handle.
fn open_member(dir: &Path, name: &str) -> Result<(File, u64)> {
    if !valid_member_name(name) {
        return Err(Error::invalid(name, "-", "not a relative image path"));
    }
    let mut at = dir.to_path_buf();
    let mut inside = String::new();
    let mut parts = name.split('/').peekable();
    while let Some(c) = parts.next() {
        if !inside.is_empty() {
            inside.push('/');
        }
        inside.push_str(c);
        at.push(c);
        let last = parts.peek().is_none();
        let expected = if last {
            "a regular file"
        } else {
            "a directory"
        };
        let meta =
            std::fs::symlink_metadata(&at).map_err(|e| open_error(name, &at, expected, e))?;
        let ok = if last { meta.is_file() } else { meta.is_dir() };
        if !ok {
            return Err(Error::NotRegular {
                file: inside,
                found: describe(meta.file_type()),
                expected,
            });
        }
    }
    let f = open_nonblocking(&at, Follow::No)
        .map_err(|e| open_error(name, &at, "a regular file", e))?;
    let meta = f.metadata().map_err(|e| Error::io(&at, e))?;
    if !meta.is_file() {
        return Err(Error::NotRegular {
            file: name.to_string(),
            found: describe(meta.file_type()),
            expected: "a regular file",
        });
    }
    Ok((f, meta.len()))
}

impl Source {
    /// Opens a directory image or a tar image (a regular file is read as
    /// tar; anything but a directory or a regular file is refused, and a
    /// FIFO cannot block the open). `follow` says whether a symbolic link
    /// as `path`'s last component is followed.
    pub(crate) fn open(path: &Path, follow: Follow) -> Result<Source> {
        let name = path.display().to_string();
        let file =
            open_nonblocking(path, follow).map_err(|e| open_error(&name, path, AN_IMAGE, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        if !meta.is_file() {
            return Err(Error::NotRegular {
                file: name,
                found: describe(meta.file_type()),
                expected: AN_IMAGE,
            });
        }
        let index = tar_index(path, &file)?;
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file,
            index,
        })
    }

    /// The image's path on disk.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::Dir(p) => p,
            Source::Tar { path, .. } => path,
        }
    }

    /// Reads file `name`, refusing (before allocating) a file whose body
    /// would exceed `body_limit`.
    pub(crate) fn read(&self, name: &str, body_limit: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(name, body_limit, &mut buf)?;
        Ok(buf)
    }

    /// [`read`](Self::read) into `buf` (cleared first), so that a caller
    /// reading many files can reuse one buffer.
    pub(crate) fn read_into(&self, name: &str, body_limit: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let too_long = |size: u64| Error::Object {
            file: name.to_string(),
            error: ObjectError::TooLong {
                declared: size.saturating_sub(HEADER_LEN as u64),
                limit: body_limit,
            },
        };
        let cap = body_limit + HEADER_LEN as u64;
        match self {
            Source::Dir(dir) => {
                let p = dir.join(name);
                let (mut f, size) = open_member(dir, name)?;
                if size > cap {
                    return Err(too_long(size));
                }
                buf.reserve(size as usize);
                // Read at most `cap + 1` bytes in case the file grows meanwhile.
                (&mut f)
                    .take(cap + 1)
                    .read_to_end(buf)
                    .map_err(|e| Error::io(&p, e))?;
                if buf.len() as u64 > cap {
                    return Err(too_long(buf.len() as u64));
                }
                Ok(())
            }
            Source::Tar { path, file, index } => {
                let &(offset, size) = index.get(name).ok_or_else(|| Error::Missing {
                    file: name.to_string(),
                })?;
                if size > cap {
                    return Err(too_long(size));
                }
                buf.resize(size as usize, 0);
                file.read_exact_at(buf, offset)
                    .map_err(|e| Error::io(path, e))?;
                Ok(())
            }
        }
    }

    /// The size of file `name` (a directory image's taken from the opened
    /// handle, with every rule of [`read`](Self::read)).
    pub(crate) fn size(&self, name: &str) -> Result<u64> {
        match self {
            Source::Dir(dir) => open_member(dir, name).map(|(_, size)| size),
            Source::Tar { index, .. } => {
                index
                    .get(name)
                    .map(|&(_, size)| size)
                    .ok_or_else(|| Error::Missing {
                        file: name.to_string(),
                    })
            }
        }
    }

    /// Reads the `len` bytes at `offset` of file `name` (a chunk's frame in
    /// a pack) into `buf` (cleared first). The range is checked against
    /// the file's real size (from the opened handle) before anything is
    /// allocated or read; `len` must be at most `cap`.
    pub(crate) fn read_range_into(
        &self,
        name: &str,
        offset: u64,
        len: u64,
        cap: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.clear();
        let past = |size: u64| {
            Error::invalid(
                name,
                "-",
                format!(
                    "a frame of {len} bytes at offset {offset} ends past the file's {size} bytes"
                ),
            )
        };
        if len > cap {
            return Err(Error::invalid(
                name,
                "-",
                format!("a frame of {len} bytes at offset {offset} exceeds the limit of {cap}"),
            ));
        }
        match self {
            Source::Dir(dir) => {
                let (f, size) = open_member(dir, name)?;
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(past(size));
                }
                buf.resize(len as usize, 0);
                f.read_exact_at(buf, offset).map_err(|e| match e.kind() {
                    // The file shrank after the size was taken.
                    std::io::ErrorKind::UnexpectedEof => past(size),
                    _ => Error::io(dir.join(name), e),
                })
            }
            Source::Tar { path, file, index } => {
                let &(start, size) = index.get(name).ok_or_else(|| Error::Missing {
                    file: name.to_string(),
                })?;
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(past(size));
                }
                buf.resize(len as usize, 0);
                file.read_exact_at(buf, start + offset)
                    .map_err(|e| Error::io(path, e))
            }
        }
    }

    /// The first `n` bytes of file `name` (fewer if it is shorter).
    pub(crate) fn read_prefix(&self, name: &str, n: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        match self {
            Source::Dir(dir) => {
                let (f, _) = open_member(dir, name)?;
                f.take(n as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::io(dir.join(name), e))?;
            }
            Source::Tar { path, file, index } => {
                let &(offset, size) = index.get(name).ok_or_else(|| Error::Missing {
                    file: name.to_string(),
                })?;
                buf.resize(size.min(n as u64) as usize, 0);
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| Error::io(path, e))?;
            }
        }
        Ok(buf)
    }

    /// Every file in the image, sorted.
    pub(crate) fn list(&self) -> Result<Vec<String>> {
        match self {
            Source::Tar { index, .. } => Ok(index.keys().cloned().collect()),
            Source::Dir(dir) => {
                let mut out = Vec::new();
                list_dir(dir, "", 0, &mut out)?;
                out.sort();
                Ok(out)
            }
        }
    }
}

fn list_dir(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = format!("{prefix}{name}");
        let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if ft.is_dir() && depth < 2 {
            list_dir(&entry.path(), &format!("{full}/"), depth + 1, out)?;
        } else {
            out.push(full);
        }
        if out.len() > MAX_TAR_ENTRIES {
            return Err(Error::invalid(
                dir.display().to_string(),
                "files",
                "too many files",
            ));
        }
    }
    Ok(())
}

/// Builds the name -> (offset, size) index of a tar image.
fn tar_index(path: &Path, file: &File) -> Result<BTreeMap<String, (u64, u64)>> {
    let bad = |msg: String| Error::invalid(path.display().to_string(), "tar", msg);
    let mut archive = tar::Archive::new(file);
    let mut index = BTreeMap::new();
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let kind = entry.header().entry_type();
        let name = entry.path().map_err(|e| bad(e.to_string()))?;
        let name = name
            .to_str()
            .ok_or_else(|| bad("member name is not UTF-8".into()))?;
        let name = name.strip_prefix("./").unwrap_or(name).to_string();
        if kind.is_dir() {
            // Ignored, but named like every other member (the archive's
            // root `./` aside).
            let dir = name.strip_suffix('/').unwrap_or(&name);
            if !dir.is_empty() && dir != "." && !valid_member_name(dir) {
                return Err(bad(format!(
                    "directory member name {name:?} is not a relative image path"
                )));
            }
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!("member {name:?} is not a regular file")));
        }
        if !valid_member_name(&name) {
            return Err(bad(format!(
                "member name {name:?} is not a relative image path"
            )));
        }
        let pos = (entry.raw_file_position(), entry.size());
        if index.insert(name.clone(), pos).is_some() {
            return Err(bad(format!("member {name:?} appears twice")));
        }
        if index.len() > MAX_TAR_ENTRIES {
            return Err(bad("too many members".into()));
        }
    }
    Ok(index)
}
