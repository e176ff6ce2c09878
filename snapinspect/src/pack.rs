//! `snapinspect pack` / `unpack`: convert an image between its two
//! containers, a directory and a single tar file with the same paths
//! (snapfmt/FORMAT.md).
//!
//! Both directions refuse an image that [`snapfmt::validate`] finds
//! problems in (nothing is copied before it is checked), write to a hidden
//! temporary sibling of the target, fsync it, and only then rename it into
//! place, so an interrupted run leaves no half-written image. The tar is
//! reproducible: regular files only, mode 0644, mtime 0, owner fields left
//! zero, members in the order snapfmt's writer produces for an image whose
//! modules and file backups were added before its pages (see
//! [`member_order`]); packing `fixtures/images/golden-v1` gives back
//! `golden-v1.tar` byte for byte.
//!
//! `--force` replaces only what is safe to lose: `pack` only a file that
//! is a tar file holding an image, `unpack` only an empty directory or a
//! directory that is a Spartan image and nothing else (`manifest.spm`
//! starting with the object magic, and otherwise only the `tasks/`,
//! `chunks/`, `packs/`, `modules/` and `files/` directories with the
//! object files named for them); anything else is refused, so a mistyped target never
//! deletes a directory of other files.
//!
//! An incremental image names its parent by a path relative to the
//! directory containing it; converting in place (same directory) keeps
//! that link valid, moving the result elsewhere may not.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use snapfmt::Image;

use crate::input::{Container, InputError, located};

/// Why a pack or unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The source is not of the expected container type.
    #[error("{}: {what}", path.display())]
    WrongSource { path: PathBuf, what: &'static str },
    /// The target exists and `force` was not given.
    #[error("{}: already exists (use --force to replace it)", path.display())]
    TargetExists { path: PathBuf },
    /// `--force` was given, but the target is not something it replaces.
    #[error("{}: {why}; --force replaces only {only}", path.display())]
    NotReplaceable {
        path: PathBuf,
        why: String,
        only: &'static str,
    },
    /// The source image is not sound; nothing was written.
    #[error("{}: the image has {} problem(s): {}", path.display(), problems.len(), problems.join("; "))]
    Unsound {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The source cannot be read as an image at all.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The source could not be opened as an image.
    #[error("{}", located(path, source))]
    Open {
        path: PathBuf,
        source: Box<snapfmt::Error>,
    },
    /// A tar member has a name that is not a plain relative path.
    #[error("{}: member {name:?} is not a relative image path", path.display())]
    BadMember { path: PathBuf, name: String },
    /// An operating-system error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A hidden sibling of `target` for writing into.
fn temp_sibling(target: &Path, what: &str) -> Result<PathBuf, PackError> {
    let name = target.file_name().ok_or_else(|| PackError::WrongSource {
        path: target.to_path_buf(),
        what: "the target has no file name",
    })?;
    Ok(target.with_file_name(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn fsync(path: &Path) -> Result<(), PackError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Sorts the files of `image` into tar member order: modules, file
/// backups, chunks in chunk-table order (packs by number), task records by task id, the
/// manifest last (FORMAT.md asks writers for a deterministic order with the
/// manifest last).
pub fn member_order(image: &Image, files: &mut [String]) {
    let chunk_index: std::collections::BTreeMap<String, usize> = image
        .manifest()
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (snapfmt::object::chunk_path(&c.content), i))
        .collect();
    let key = |name: &String| -> (u8, u64, String) {
        if name == snapfmt::object::MANIFEST_PATH {
            return (6, 0, String::new());
        }
        if name.starts_with("modules/") {
            (0, 0, name.clone())
        } else if name.starts_with("files/") {
            (1, 0, name.clone())
        } else if let Some(&i) = chunk_index.get(name) {
            (2, i as u64, String::new())
        } else if let Some(n) = name
            .strip_prefix("packs/")
            .and_then(|s| s.strip_suffix(".spp"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            // Packs (format 1.4) in the chunks' place, by number.
            (2, n, name.clone())
        } else if let Some(id) = name
            .strip_prefix("tasks/")
            .and_then(|s| s.strip_suffix(".spt"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            (3, id, String::new())
        } else {
            (4, 0, name.clone())
        }
    };
    files.sort_by_key(key);
}

/// Validates the image at `path` and lists its files in member order.
fn checked_files(path: &Path) -> Result<Vec<String>, PackError> {
    let problems = snapfmt::validate(path);
    if !problems.is_empty() {
        return Err(PackError::Unsound {
            path: path.to_path_buf(),
            problems: problems.iter().map(ToString::to_string).collect(),
        });
    }
    let image = Image::open(path).map_err(|source| PackError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let mut files = image.files().map_err(|source| PackError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    member_order(&image, &mut files);
    Ok(files)
}

/// Whether `name` is a plain relative path (no root, `.` or `..`).
fn plain_relative(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// What `pack --force` may replace.
const PACK_REPLACES: &str = "a tar file holding an image";
/// What `unpack --force` may replace.
const UNPACK_REPLACES: &str = "an image directory or an empty directory";

/// Whether `target` exists (without following a symbolic link), refusing
/// an existing target unless `force`.
fn existing_target(target: &Path, force: bool) -> Result<Option<fs::Metadata>, PackError> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(target)(e)),
        Ok(_) if !force => Err(PackError::TargetExists {
            path: target.to_path_buf(),
        }),
        Ok(meta) => Ok(Some(meta)),
    }
}

fn not_replaceable(path: &Path, why: impl Into<String>, only: &'static str) -> PackError {
    PackError::NotReplaceable {
        path: path.to_path_buf(),
        why: why.into(),
        only,
    }
}

/// Refuses a tar target that `pack --force` may not replace.
fn check_tar_target(tar: &Path, force: bool) -> Result<(), PackError> {
    let Some(meta) = existing_target(tar, force)? else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(PackError::WrongSource {
            path: tar.to_path_buf(),
            what: "is a directory; pack writes a tar file",
        });
    }
    if !meta.is_file() {
        return Err(not_replaceable(tar, "is not a regular file", PACK_REPLACES));
    }
    match crate::input::probe(tar) {
        Ok(Container::Tar) => Ok(()),
        _ => Err(not_replaceable(
            tar,
            "is not a tar file holding an image",
            PACK_REPLACES,
        )),
    }
}

/// The object-file extension each directory of an image holds.
const IMAGE_DIRS: [(&str, &[&str]); 5] = [
    ("tasks", &["spt", "spk"]),
    ("chunks", &["spc"]),
    ("packs", &["spp"]),
    ("modules", &["spw"]),
    ("files", &["spf"]),
];

/// Refuses a directory target that `unpack --force` may not replace.
fn check_dir_target(dir: &Path, force: bool) -> Result<(), PackError> {
    let Some(meta) = existing_target(dir, force)? else {
        return Ok(());
    };
    let refuse = |why: String| Err(not_replaceable(dir, why, UNPACK_REPLACES));
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    let names = dir_names(dir)?;
    if names.is_empty() {
        return Ok(());
    }
    if !names.iter().any(|n| n == snapfmt::object::MANIFEST_PATH) {
        return refuse("is not a Spartan image (it has no manifest.spm)".into());
    }
    for name in &names {
        let path = dir.join(name);
        let meta = fs::symlink_metadata(&path).map_err(io(&path))?;
        if name == snapfmt::object::MANIFEST_PATH {
            if !meta.is_file() || !starts_with_magic(&path)? {
                return refuse("its manifest.spm is not a Spartan object file".into());
            }
            continue;
        }
        let Some((_, exts)) = IMAGE_DIRS.iter().find(|(d, _)| d == name) else {
            return refuse(format!("holds {name:?}, which is not part of an image"));
        };
        if !meta.is_dir() {
            return refuse(format!("holds {name:?}, which is not a directory"));
        }
        for inner in dir_names(&path)? {
            let inner_path = path.join(&inner);
            let ok_name = Path::new(&inner)
                .extension()
                .is_some_and(|e| exts.iter().any(|x| e == *x));
            let is_file = fs::symlink_metadata(&inner_path)
                .map_err(io(&inner_path))?
                .is_file();
            if !ok_name || !is_file {
                return refuse(format!(
                    "holds \"{name}/{inner}\", which is not part of an image"
                ));
            }
        }
    }
    Ok(())
}

/// The names in directory `dir`, sorted.
fn dir_names(dir: &Path) -> Result<Vec<String>, PackError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn starts_with_magic(path: &Path) -> Result<bool, PackError> {
    let mut head = [0u8; 8];
    let mut file = File::open(path).map_err(io(path))?;
    Ok(file.read_exact(&mut head).is_ok() && head == snapfmt::header::MAGIC)
}

/// Packs the image directory `dir` into the tar file `tar`. Returns the
/// number of files packed.
pub fn pack(dir: &Path, tar: &Path, force: bool) -> Result<usize, PackError> {
    if crate::input::probe(dir)? != Container::Dir {
        return Err(PackError::WrongSource {
            path: dir.to_path_buf(),
            what: "not a directory (pack takes an image directory)",
        });
    }
    check_tar_target(tar, force)?;
    let files = checked_files(dir)?;
    let tmp = temp_sibling(tar, "packing")?;
    let result = write_tar(dir, &files, &tmp).and_then(|()| {
        fs::rename(&tmp, tar).map_err(io(tar))?;
        fsync(&parent_dir(tar))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| files.len())
}

/// A reader of exactly `left` more bytes: ending early is an error (a file
/// that shrank while being packed would otherwise leave a corrupt tar), and
/// bytes beyond `left` are not read.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn write_tar(dir: &Path, files: &[String], tmp: &Path) -> Result<(), PackError> {
    let file = File::create(tmp).map_err(io(tmp))?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    for name in files {
        let src = dir.join(name);
        let file = File::open(&src).map_err(io(&src))?;
        let len = file.metadata().map_err(io(&src))?.len();
        let mut header = tar::Header::new_ustar();
        header.set_path(name).map_err(io(&src))?;
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let data = Exact {
            inner: file,
            left: len,
        };
        builder.append(&header, data).map_err(io(&src))?;
    }
    let writer = builder.into_inner().map_err(io(tmp))?;
    let file = writer.into_inner().map_err(|e| PackError::Io {
        path: tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(tmp))
}

/// Unpacks the tar image `tar` into the directory `dir`. Returns the
/// number of files unpacked.
pub fn unpack(tar: &Path, dir: &Path, force: bool) -> Result<usize, PackError> {
    if crate::input::probe(tar)? != Container::Tar {
        return Err(PackError::WrongSource {
            path: tar.to_path_buf(),
            what: "not a file (unpack takes a tar image)",
        });
    }
    check_dir_target(dir, force)?;
    let files = checked_files(tar)?;
    let tmp = temp_sibling(dir, "unpacking")?;
    let _ = fs::remove_dir_all(&tmp);
    let result = extract(tar, &files, &tmp).and_then(|()| replace_dir(&tmp, dir));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| files.len())
}

fn extract(tar: &Path, files: &[String], tmp: &Path) -> Result<(), PackError> {
    fs::create_dir(tmp).map_err(io(tmp))?;
    let listed: std::collections::BTreeSet<&String> = files.iter().collect();
    let mut dirs = vec![tmp.to_path_buf()];
    let file = File::open(tar).map_err(io(tar))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(io(tar))? {
        let mut entry = entry.map_err(io(tar))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(io(tar))?
            .to_string_lossy()
            .into_owned();
        let name = name.strip_prefix("./").unwrap_or(&name).to_string();
        if !plain_relative(&name) || !listed.contains(&name) {
            return Err(PackError::BadMember {
                path: tar.to_path_buf(),
                name,
            });
        }
        let dst = tmp.join(&name);
        if let Some(parent) = dst.parent()
            && !dirs.iter().any(|d| d == parent)
        {
            fs::create_dir_all(parent).map_err(io(parent))?;
            dirs.push(parent.to_path_buf());
        }
        let mut out = File::create(&dst).map_err(io(&dst))?;
        std::io::copy(&mut entry, &mut out).map_err(io(&dst))?;
        out.flush().map_err(io(&dst))?;
        out.sync_all().map_err(io(&dst))?;
    }
    for d in &dirs {
        fsync(d)?;
    }
    Ok(())
}

/// Renames `tmp` to `dir`, moving an existing `dir` aside first.
fn replace_dir(tmp: &Path, dir: &Path) -> Result<(), PackError> {
    let old = temp_sibling(dir, "replaced")?;
    let existed = fs::symlink_metadata(dir).is_ok();
    if existed {
        let _ = fs::remove_dir_all(&old);
        fs::rename(dir, &old).map_err(io(dir))?;
    }
    fs::rename(tmp, dir).map_err(io(dir))?;
    fsync(&parent_dir(dir))?;
    if existed {
        let removed = if fs::metadata(&old).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        removed.map_err(io(&old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Exact, plain_relative};
    use std::io::Read;

    #[test]
    fn exact_reader_refuses_short_input_and_stops_at_its_length() {
        let mut out = Vec::new();
        let mut r = Exact {
            inner: &b"abcdef"[..],
            left: 4,
        };
        assert_eq!(r.read_to_end(&mut out).unwrap(), 4);
        assert_eq!(out, b"abcd");
        let mut short = Exact {
            inner: &b"ab"[..],
            left: 4,
        };
        let err = short.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn member_names_must_be_plain() {
        assert!(plain_relative("manifest.spm"));
        assert!(plain_relative("tasks/1.spt"));
        assert!(!plain_relative("/etc/passwd"));
        assert!(!plain_relative("../x"));
        assert!(!plain_relative("a/../b"));
        assert!(!plain_relative(""));
    }
}
