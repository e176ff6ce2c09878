//! The two containers of an image: a directory, or a tar file with the same
//! relative paths. Reading side only; writing is in [`crate::sink`].

use crate::error::{Error, ObjectError, Result};
use crate::header::HEADER_LEN;
use crate::limits::MAX_TAR_ENTRIES;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
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

impl Source {
    /// Opens a directory image or a tar image (anything that is not a
    /// directory is read as tar).
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
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
                let mut f = match File::open(&p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::Missing {
                            file: name.to_string(),
                        });
                    }
                    Err(e) => return Err(Error::io(p, e)),
                };
                let size = f.metadata().map_err(|e| Error::io(&p, e))?.len();
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
        if kind.is_dir() {
            continue;
        }
        let name = entry.path().map_err(|e| bad(e.to_string()))?;
        let name = name
            .to_str()
            .ok_or_else(|| bad("member name is not UTF-8".into()))?;
        let name = name.strip_prefix("./").unwrap_or(name).to_string();
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
