//! The VFS service (persistent id `spartan.vfs`, service number 1): files
//! of one host directory, the *root*, for guest tasks.
//!
//! Protocol, on a connection made through the naming service. Calls that
//! carry a path or bytes are the kernel's data calls with the operation in
//! ARG3 (ARG1 and ARG2 are the buffer):
//!
//! | call | ARG3 | ARG4, ARG5 | answer |
//! | --- | --- | --- | --- |
//! | `IPC_M_DATA_WRITE` of a path | [`VFS_OPEN`] | | the path is taken for the next open |
//! | method [`VFS_OPEN`] | | ARG1 flags ([`flags`]) | ARG1 = file descriptor for the path taken |
//! | `IPC_M_DATA_READ` | [`VFS_READ`] | ARG4 fd | the bytes at the position (ARG2 = how many); the position moves on |
//! | `IPC_M_DATA_WRITE` of bytes | [`VFS_WRITE`] | ARG4 fd | ARG2 = bytes written at the position (at the end with `APPEND`) |
//! | method [`VFS_SEEK`] | | ARG1 fd, ARG2 offset (i64), ARG3 whence (0 set, 1 current, 2 end) | ARG1 = the new position |
//! | method [`VFS_CLOSE`] | | ARG1 fd | |
//! | method [`VFS_STAT`] | | ARG1 fd | ARG1 = size |
//! | `IPC_M_DATA_WRITE` of a path | [`VFS_CHDIR`] | | the path is taken for the next chdir or readdir |
//! | method [`VFS_CHDIR`] | | | the taken path, a directory, is the connection's working directory |
//! | `IPC_M_DATA_READ` | [`VFS_GETCWD`] | | the working directory, `/` and the path from the root (ARG2 = length) |
//! | `IPC_M_DATA_READ` | [`VFS_READDIR`] | ARG4 first entry | the names in the directory at the taken path (the working directory without one), sorted, from entry ARG4 on, each followed by `\n`, a directory's with `/` before it; as many whole entries as fit (none: the end) |
//!
//! A write is checked (descriptor, `WRITE` flag) before its bytes are
//! taken; a host error while writing them (a full disk) is kept and
//! returned by the next call on that descriptor.
//!
//! Paths are `/`-separated; one beginning with `/` starts at the root,
//! any other at the connection's working directory (the root at first).
//! Empty and `.` parts are skipped, `..` goes up one directory and never
//! above the root (`EINVAL`); nothing is followed through a symbolic link,
//! and only regular files are opened, only directories entered or listed
//! (`ENOENT`, `EINVAL` otherwise). Descriptors are per connection, from 0,
//! lowest free first.
//!
//! Cooperation (state version 2; version 1, without the working
//! directory, is still read): a connection's working directory and open
//! files are exported, each file with its path from the root, flags,
//! position and identity (the file system's identity, stable across
//! remounts: the content of `.spartan-fs-id` in the root, created at the
//! first mount and never shown to tasks; size, modification time, the
//! SHA-256 of the content). The checkpoint's file policy (thesis 4.4.8,
//! ARG2 of `IPC_M_CHKPNT_INIT`) decides what a restore does:
//!
//! - *unchangeable* (the default): a file on another file system, missing
//!   or changed since the checkpoint refuses the restore, naming the file;
//! - *volatile*: nothing is checked; a missing file stays closed, a
//!   shorter one goes on from its end;
//! - *backup and overwrite*: each open file's content is saved with the
//!   export (the image's `files/<sha256>.spf`), and written back over the
//!   file at restore (recreating it, and its directories, if missing);
//! - *backup and skip*: saved the same way, but written back only if the
//!   file is missing; an existing file is taken as it is (as volatile).
//!
//! A restore recreates the working directory if it is missing (thesis
//! 5.3.8: it must be valid).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use snapfmt::{FileBackup, FilePolicy};
use spartan_kernel::ipc::method::{
    IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME, IPC_M_DATA_READ, IPC_M_DATA_WRITE,
};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, PhoneId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::{MAX_NATIVE_DATA, NativeError, NativeTask};
use spartan_kernel::task::{TaskPolicy, ThreadId};

use crate::coop::{ConnState, Coop, MAX_SAVED_FILE, SavedFile};
use crate::ns::NamingService;

pub const VFS_ID: &str = "spartan.vfs";
pub const VFS_NUMBER: u64 = 1;

pub const VFS_OPEN: u64 = 1300;
pub const VFS_READ: u64 = 1301;
pub const VFS_WRITE: u64 = 1302;
pub const VFS_SEEK: u64 = 1303;
pub const VFS_CLOSE: u64 = 1304;
pub const VFS_STAT: u64 = 1305;
pub const VFS_CHDIR: u64 = 1306;
pub const VFS_GETCWD: u64 = 1307;
pub const VFS_READDIR: u64 = 1308;

/// Open flags.
pub mod flags {
    pub const READ: u64 = 1;
    pub const WRITE: u64 = 2;
    pub const CREATE: u64 = 4;
    pub const TRUNCATE: u64 = 8;
    pub const APPEND: u64 = 16;
    pub const ALL: u64 = 31;
}

/// Open files per connection.
pub const MAX_FILES: usize = 64;
/// Longest path.
pub const MAX_PATH: u64 = 4096;
/// The file holding the file system's identity.
pub const FS_ID_FILE: &str = ".spartan-fs-id";

/// One open file as a checkpoint exports it (state version 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFile {
    /// The policy of the checkpoint that exported it (its `FilePolicy`
    /// number: 0 unchangeable, 1 volatile, 2 backup and overwrite, 3
    /// backup and skip).
    pub policy: u8,
    pub fd: u32,
    /// From the root, normalized.
    pub path: String,
    pub flags: u64,
    pub pos: u64,
    pub fs_identity: String,
    pub size: u64,
    /// Modification time (ns since the Unix epoch) at the export.
    pub mtime: i64,
    /// Of the content at the export (under a backup policy, of the saved
    /// copy).
    pub sha256: [u8; 32],
    /// Its content was saved with the export (a backup policy).
    pub saved: bool,
}

/// An open file as state version 1 exported it.
#[derive(Deserialize)]
struct OpenFileV1 {
    policy: u8,
    fd: u32,
    path: String,
    flags: u64,
    pos: u64,
    fs_identity: String,
    size: u64,
    sha256: [u8; 32],
}

/// The exported state of a connection (version 2).
#[derive(Serialize, Deserialize)]
struct Exported {
    /// The working directory, from the root ("" is the root).
    cwd: String,
    files: Vec<OpenFile>,
}

/// What the VFS keeps per connection.
#[derive(Debug, Default)]
pub struct VfsConn {
    files: BTreeMap<u32, (OpenFile, Option<File>)>,
    /// The working directory, from the root ("" is the root).
    cwd: String,
    /// The path taken for the next open, chdir or readdir.
    path: Option<String>,
    /// Host errors kept for the next call on a descriptor.
    errors: BTreeMap<u32, Errno>,
    /// Set by the VFS before an export (identity and content of each file).
    exported: Option<Vec<OpenFile>>,
    /// Saved copies of the exported files (backup policies).
    saved: Vec<SavedFile>,
    /// Set by an import: reopened by the VFS (which checks them).
    imported: Option<Vec<OpenFile>>,
    /// Saved contents handed over for an import, by SHA-256.
    given: BTreeMap<[u8; 32], Vec<u8>>,
}

impl ConnState for VfsConn {
    const VERSION: u32 = 2;
    fn checkpointable(&self) -> bool {
        true
    }
    fn export(&self) -> Vec<u8> {
        let files: Vec<OpenFile> = match &self.exported {
            Some(f) => f.clone(),
            None => self.files.values().map(|(f, _)| f.clone()).collect(),
        };
        postcard::to_allocvec(&Exported {
            cwd: self.cwd.clone(),
            files,
        })
        .unwrap_or_default()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        let (cwd, files) = match version {
            1 => {
                let v1: Vec<OpenFileV1> =
                    postcard::from_bytes(bytes).map_err(|e| format!("open files: {e}"))?;
                let files = v1
                    .into_iter()
                    .map(|f| OpenFile {
                        policy: f.policy,
                        fd: f.fd,
                        path: f.path,
                        flags: f.flags,
                        pos: f.pos,
                        fs_identity: f.fs_identity,
                        size: f.size,
                        mtime: 0,
                        sha256: f.sha256,
                        saved: false,
                    })
                    .collect();
                (String::new(), files)
            }
            2 => {
                let e: Exported =
                    postcard::from_bytes(bytes).map_err(|e| format!("connection state: {e}"))?;
                (e.cwd, e.files)
            }
            v => return Err(format!("version {v}, the VFS reads 1 and 2")),
        };
        if files.len() > MAX_FILES {
            return Err(format!("{} open files", files.len()));
        }
        if !cwd.is_empty() && inside(&cwd).is_none() {
            return Err(format!(
                "working directory {cwd:?} is not a path inside the root"
            ));
        }
        if let Some(f) = files.iter().find(|f| f.policy > 3) {
            return Err(format!("file {}: policy {}", f.path, f.policy));
        }
        Ok(VfsConn {
            cwd,
            imported: Some(files),
            ..VfsConn::default()
        })
    }
    fn backups(&self) -> Vec<SavedFile> {
        self.saved.clone()
    }
    fn needs(&self) -> Vec<[u8; 32]> {
        let mut v: Vec<[u8; 32]> = self
            .imported
            .iter()
            .flatten()
            .filter(|f| f.saved && !self.given.contains_key(&f.sha256))
            .map(|f| f.sha256)
            .collect();
        v.sort();
        v.dedup();
        v
    }
    fn give(&mut self, content: Vec<u8>) {
        let sha: [u8; 32] = Sha256::digest(&content).into();
        self.given.insert(sha, content);
    }
}

/// The path inside the root, if `p` is an acceptable normalized one.
fn inside(p: &str) -> Option<PathBuf> {
    if p.is_empty() || p.len() as u64 > MAX_PATH || p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let path = Path::new(p);
    let ok = path.components().all(|c| matches!(c, Component::Normal(_)))
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && p != FS_ID_FILE;
    ok.then(|| path.to_path_buf())
}

/// `p` resolved against the working directory `cwd` into a normalized
/// path from the root ("" for the root itself); `None` if it is too long,
/// holds a NUL, or goes above the root.
fn resolve(cwd: &str, p: &str) -> Option<String> {
    if p.is_empty() || p.len() as u64 > MAX_PATH || p.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = if p.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let r = parts.join("/");
    (r.len() as u64 <= MAX_PATH).then_some(r)
}

fn digest_of(file: &File) -> std::io::Result<(u64, [u8; 32])> {
    let size = file.metadata()?.len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    while at < size {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok((size, h.finalize().into()))
}

/// A file's whole content (at most [`MAX_SAVED_FILE`] bytes).
fn content_of(file: &File) -> Result<Vec<u8>, String> {
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size > MAX_SAVED_FILE {
        return Err(format!("{size} bytes, more than a saved file may hold"));
    }
    let mut buf = vec![0u8; size as usize];
    let mut at = 0;
    while at < buf.len() {
        match file.read_at(&mut buf[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    buf.truncate(at);
    Ok(buf)
}

fn mtime_of(file: &File) -> i64 {
    file.metadata()
        .map(|m| m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec())
        .unwrap_or(0)
}

/// The VFS, a native program.
pub struct Vfs {
    me: NativeTask,
    ns: PhoneId,
    registered: bool,
    root: PathBuf,
    identity: String,
    coop: Coop<VfsConn>,
}

impl Vfs {
    /// Mounts `root` (creating its identity file at the first mount) and
    /// starts the VFS.
    pub fn spawn(k: &mut Kernel, ns: &NamingService, root: &Path) -> std::io::Result<Vfs> {
        let root = root.canonicalize()?;
        let id_path = root.join(FS_ID_FILE);
        let identity = match std::fs::read_to_string(&id_path) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Unique per file system: where and when it was first
                // mounted (never shown to tasks).
                let mut h = Sha256::new();
                h.update(root.as_os_str().as_encoded_bytes());
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                h.update(t.as_nanos().to_le_bytes());
                h.update(std::process::id().to_le_bytes());
                let id = hex::encode(&h.finalize()[..16]);
                std::fs::write(&id_path, format!("{id}\n"))?;
                id
            }
            Err(e) => return Err(e),
        };
        let me = k.spawn_native(
            "vfs",
            TaskPolicy::Cooperative {
                service_id: VFS_ID.into(),
            },
        );
        let phone = ns
            .connect(k, me.id())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Vfs {
            me,
            ns: phone,
            registered: false,
            root,
            identity,
            coop: Coop::default(),
        })
    }

    /// The file system's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn open(&self, rel: &Path, fl: u64) -> Result<File, Errno> {
        open_in(&self.root, rel, fl)
    }
}

/// Checks that every directory on the way to `rel` (a normalized path
/// from the root) is a real directory, not a symbolic link; with `make`,
/// creates the missing ones.
fn dirs_to(root: &Path, rel: &Path, make: bool) -> Result<(), Errno> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Err(e) if make && e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|_| Errno::Fault)?;
            }
            _ => return Err(Errno::NoEntry),
        }
    }
    Ok(())
}

/// Opens `rel` under `root` with `fl`: nothing followed through a
/// symbolic link, only regular files.
fn open_in(root: &Path, rel: &Path, fl: u64) -> Result<File, Errno> {
    if let Some(parent) = rel.parent() {
        dirs_to(root, parent, false)?;
    }
    let mut o = OpenOptions::new();
    o.read(fl & flags::READ != 0 || fl & flags::WRITE == 0)
        .write(fl & flags::WRITE != 0)
        .create(fl & flags::CREATE != 0 && fl & flags::WRITE != 0)
        .truncate(fl & flags::TRUNCATE != 0 && fl & flags::WRITE != 0)
        .custom_flags(libc_nofollow_nonblock());
    let f = o.open(root.join(rel)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Errno::NoEntry,
        _ => Errno::Invalid,
    })?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        _ => Err(Errno::Invalid),
    }
}

/// The bytes of the regular file at `path` (relative, checked like every
/// path a client names) under `root`: what the loader reads programs with.
pub(crate) fn read_file_in(root: &Path, path: &str) -> Result<Vec<u8>, Errno> {
    use std::io::Read;
    let rel = inside(path).ok_or(Errno::Invalid)?;
    let mut f = open_in(root, &rel, flags::READ)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|_| Errno::Invalid)?;
    Ok(out)
}

/// Writes a saved content back over `rel` (creating it and its
/// directories if missing).
fn write_back(root: &Path, rel: &Path, content: &[u8]) -> Result<(), String> {
    if let Some(parent) = rel.parent() {
        dirs_to(root, parent, true).map_err(|e| format!("its directory: {e}"))?;
    }
    let f = open_in(root, rel, flags::WRITE | flags::CREATE | flags::TRUNCATE)
        .map_err(|e| format!("cannot be written back: {e}"))?;
    f.write_all_at(content, 0)
        .and_then(|()| f.set_len(content.len() as u64))
        .map_err(|e| format!("cannot be written back: {e}"))
}

/// The entries of the directory `rel` (from the root, "" the root): names
/// sorted, a directory's followed by `/`.
fn list_dir(root: &Path, rel: &str) -> Result<Vec<String>, Errno> {
    dirs_to(root, Path::new(rel), false)?;
    let dir = root.join(rel);
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|_| Errno::Invalid)? {
        let e = e.map_err(|_| Errno::Fault)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if rel.is_empty() && name == FS_ID_FILE {
            continue;
        }
        let is_dir = std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir());
        names.push(if is_dir { format!("{name}/") } else { name });
    }
    names.sort();
    Ok(names)
}

/// Reopens the files of an imported connection under the policy each was
/// exported with (see the module doc); the first that cannot be refuses
/// the connection's restore, naming the file.
fn reopen(root: &Path, identity: &str, c: &mut VfsConn) -> Result<(), String> {
    if !c.cwd.is_empty() {
        dirs_to(root, Path::new(&c.cwd), true)
            .map_err(|e| format!("working directory {}: {e}", c.cwd))?;
    }
    let given = std::mem::take(&mut c.given);
    for mut of in c.imported.take().unwrap_or_default() {
        let fl = of.flags & !(flags::CREATE | flags::TRUNCATE);
        let Some(rel) = inside(&of.path) else {
            return Err(format!("file {}: is not a path inside the root", of.path));
        };
        let why = match of.policy {
            1 => {
                // Volatile: no checks; a missing file stays closed, a
                // shorter one is read and written from its end.
                if let Ok(f) = open_in(root, &rel, fl) {
                    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    of.pos = of.pos.min(size);
                    c.files.insert(of.fd, (of.clone(), Some(f)));
                }
                None
            }
            2 | 3 => {
                // The backups: the saved content over the file (always,
                // or only if it is missing); then as volatile.
                let exists = open_in(root, &rel, flags::READ).is_ok();
                let written = if of.policy == 2 || !exists {
                    match given.get(&of.sha256) {
                        Some(content) => write_back(root, &rel, content).err(),
                        None => Some("its saved content did not come with the restore".into()),
                    }
                } else {
                    None
                };
                match written {
                    Some(why) => Some(why),
                    None => match open_in(root, &rel, fl) {
                        Ok(f) => {
                            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                            of.pos = of.pos.min(size);
                            c.files.insert(of.fd, (of.clone(), Some(f)));
                            None
                        }
                        Err(e) => Some(format!("cannot be opened: {e}")),
                    },
                }
            }
            _ if of.fs_identity != identity => {
                Some("is on another file system than the image's".to_string())
            }
            _ => match open_in(root, &rel, fl) {
                Err(_) => Some("is missing".into()),
                Ok(f) => match open_in(root, &rel, flags::READ)
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| digest_of(&r))
                {
                    Ok((size, sha)) if size == of.size && sha == of.sha256 => {
                        c.files.insert(of.fd, (of.clone(), Some(f)));
                        None
                    }
                    Ok(_) => Some("changed since the checkpoint".into()),
                    Err(e) => Some(format!("cannot be read: {e}")),
                },
            },
        };
        if let Some(why) = why {
            return Err(format!("file {}: {why}", of.path));
        }
    }
    Ok(())
}

fn policy_of(n: u64) -> Option<FilePolicy> {
    Some(match n {
        0 => FilePolicy::Unchangeable,
        1 => FilePolicy::Volatile,
        2 => FilePolicy::BackupOverwrite,
        3 => FilePolicy::BackupSkip,
        _ => return None,
    })
}

impl Vfs {
    fn handle(&mut self, k: &mut Kernel, ev: Event) -> Result<(), NativeError> {
        let Event::Call {
            rx_id,
            conn,
            method,
            args,
            ..
        } = ev
        else {
            return Ok(());
        };
        let me = self.me;
        let fail = |k: &mut Kernel, e: Errno| me.answer(k, rx_id, e.retval(), [0; 5]);
        let ok = |k: &mut Kernel, a1: u64| me.answer(k, rx_id, EOK, [a1, 0, 0, 0, 0]);
        if method == IPC_M_CONNECT_ME_TO {
            self.coop.insert(ConnId(args[4]), VfsConn::default());
            return ok(k, 0);
        }
        if self.coop.get(conn).is_none() {
            return fail(k, Errno::NoEntry);
        }
        let data = matches!(method, IPC_M_DATA_READ | IPC_M_DATA_WRITE);
        let op = if data { args[2] } else { method };
        let fd = u32::try_from(if data { args[3] } else { args[0] }).unwrap_or(u32::MAX);
        let on_fd = matches!(op, VFS_READ | VFS_WRITE | VFS_SEEK | VFS_CLOSE | VFS_STAT);
        if on_fd && let Some(e) = self.coop.get_mut(conn).and_then(|c| c.errors.remove(&fd)) {
            return fail(k, e);
        }
        match (method, op) {
            (IPC_M_DATA_WRITE, VFS_OPEN | VFS_CHDIR | VFS_READDIR) => {
                let bytes = me.accept_data_write(k, rx_id, MAX_PATH)?;
                let c = self.coop.get_mut(conn).expect("checked");
                c.path = Some(String::from_utf8_lossy(&bytes).into_owned());
                Ok(())
            }
            (VFS_OPEN, _) => {
                let fl = args[0];
                let c = self.coop.get_mut(conn).expect("checked");
                let Some(path) = c.path.take() else {
                    return fail(k, Errno::Invalid);
                };
                if fl & !flags::ALL != 0 {
                    return fail(k, Errno::Invalid);
                }
                let Some(path) = resolve(&c.cwd, &path) else {
                    return fail(k, Errno::Invalid);
                };
                let Some(rel) = inside(&path) else {
                    return fail(k, Errno::Invalid);
                };
                if c.files.len() >= MAX_FILES {
                    return fail(k, Errno::Limit);
                }
                let file = match self.open(&rel, fl) {
                    Ok(f) => f,
                    Err(e) => return fail(k, e),
                };
                let identity = self.identity.clone();
                let c = self.coop.get_mut(conn).expect("checked");
                let fd = (0..)
                    .find(|i| !c.files.contains_key(i))
                    .expect("below MAX_FILES");
                c.files.insert(
                    fd,
                    (
                        OpenFile {
                            policy: 0,
                            fd,
                            path,
                            flags: fl,
                            pos: 0,
                            fs_identity: identity,
                            size: 0,
                            mtime: 0,
                            sha256: [0; 32],
                            saved: false,
                        },
                        Some(file),
                    ),
                );
                ok(k, u64::from(fd))
            }
            (VFS_CHDIR, _) => {
                let c = self.coop.get_mut(conn).expect("checked");
                let Some(path) = c.path.take() else {
                    return fail(k, Errno::Invalid);
                };
                let Some(to) = resolve(&c.cwd, &path) else {
                    return fail(k, Errno::Invalid);
                };
                if to == FS_ID_FILE {
                    return fail(k, Errno::NoEntry);
                }
                if let Err(e) = dirs_to(&self.root, Path::new(&to), false) {
                    return fail(k, e);
                }
                let c = self.coop.get_mut(conn).expect("checked");
                c.cwd = to;
                ok(k, 0)
            }
            (IPC_M_DATA_READ, VFS_GETCWD) => {
                let c = self.coop.get(conn).expect("checked");
                let cwd = format!("/{}", c.cwd);
                if cwd.len() as u64 > args[1] {
                    return fail(k, Errno::Limit);
                }
                me.answer_data_read(k, rx_id, cwd.as_bytes())
            }
            (IPC_M_DATA_READ, VFS_READDIR) => {
                let room = args[1].min(MAX_NATIVE_DATA) as usize;
                let c = self.coop.get_mut(conn).expect("checked");
                let taken = c.path.take();
                let dir = match &taken {
                    Some(p) => resolve(&c.cwd, p),
                    None => Some(c.cwd.clone()),
                };
                let Some(dir) = dir else {
                    return fail(k, Errno::Invalid);
                };
                let names = match list_dir(&self.root, &dir) {
                    Ok(n) => n,
                    Err(e) => return fail(k, e),
                };
                let mut out = Vec::new();
                for name in names.iter().skip(args[3] as usize) {
                    if out.len() + name.len() + 1 > room {
                        if out.is_empty() {
                            return fail(k, Errno::Limit);
                        }
                        break;
                    }
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'\n');
                }
                me.answer_data_read(k, rx_id, &out)
            }
            (IPC_M_DATA_READ, VFS_READ) => {
                let room = args[1].min(MAX_NATIVE_DATA);
                let c = self.coop.get_mut(conn).expect("checked");
                let Some((of, Some(file))) = c.files.get_mut(&fd) else {
                    return fail(k, Errno::NoEntry);
                };
                if of.flags & flags::WRITE != 0 && of.flags & flags::READ == 0 {
                    return fail(k, Errno::Invalid);
                }
                let mut buf = vec![0u8; room as usize];
                let n = match file.read_at(&mut buf, of.pos) {
                    Ok(n) => n,
                    Err(_) => return fail(k, Errno::Fault),
                };
                of.pos += n as u64;
                buf.truncate(n);
                me.answer_data_read(k, rx_id, &buf)
            }
            (IPC_M_DATA_WRITE, VFS_WRITE) => {
                let c = self.coop.get_mut(conn).expect("checked");
                let writable =
                    matches!(c.files.get(&fd), Some((of, Some(_))) if of.flags & flags::WRITE != 0);
                if !writable {
                    return fail(k, Errno::Invalid);
                }
                let bytes = me.accept_data_write(k, rx_id, MAX_NATIVE_DATA)?;
                let c = self.coop.get_mut(conn).expect("checked");
                let (of, file) = c.files.get_mut(&fd).expect("checked");
                let file = file.as_ref().expect("checked");
                let at = if of.flags & flags::APPEND != 0 {
                    file.metadata().map(|m| m.len()).unwrap_or(of.pos)
                } else {
                    of.pos
                };
                match file.write_all_at(&bytes, at) {
                    Ok(()) => of.pos = at + bytes.len() as u64,
                    Err(_) => {
                        c.errors.insert(fd, Errno::Fault);
                    }
                }
                Ok(())
            }
            (VFS_SEEK, _) => {
                let c = self.coop.get_mut(conn).expect("checked");
                let Some((of, Some(file))) = c.files.get_mut(&fd) else {
                    return fail(k, Errno::NoEntry);
                };
                let base = match args[2] {
                    0 => 0i128,
                    1 => i128::from(of.pos),
                    2 => i128::from(file.metadata().map(|m| m.len()).unwrap_or(0)),
                    _ => return fail(k, Errno::Invalid),
                };
                let to = base + i128::from(args[1] as i64);
                let Ok(to) = u64::try_from(to) else {
                    return fail(k, Errno::Invalid);
                };
                of.pos = to;
                ok(k, to)
            }
            (VFS_CLOSE, _) => {
                let c = self.coop.get_mut(conn).expect("checked");
                match c.files.remove(&fd) {
                    Some(_) => ok(k, 0),
                    None => fail(k, Errno::NoEntry),
                }
            }
            (VFS_STAT, _) => {
                let c = self.coop.get(conn).expect("checked");
                match c.files.get(&fd) {
                    Some((_, Some(f))) => ok(k, f.metadata().map(|m| m.len()).unwrap_or(0)),
                    _ => fail(k, Errno::NoEntry),
                }
            }
            _ => fail(k, Errno::NotSupported),
        }
    }

    /// Before an export under `policy`: each open file's identity and
    /// content now, and under a backup policy a copy of the content. A
    /// file that cannot be saved refuses the export (the reason is in the
    /// kernel log).
    fn prepare_export(&mut self, conn: ConnId, policy: u64) -> Result<(), (Errno, String)> {
        let Some(fp) = policy_of(policy) else {
            return Err((Errno::Invalid, format!("file policy {policy}")));
        };
        let backup = matches!(fp, FilePolicy::BackupOverwrite | FilePolicy::BackupSkip);
        let (root, identity) = (self.root.clone(), self.identity.clone());
        let Some(c) = self.coop.get_mut(conn) else {
            return Ok(());
        };
        c.exported = None;
        c.saved.clear();
        let mut out = Vec::new();
        let mut saved = Vec::new();
        for (of, _) in c.files.values() {
            let mut of = of.clone();
            of.policy = policy as u8;
            // Through a handle of its own: the task's may be write-only.
            let reader = open_in(&root, Path::new(&of.path), flags::READ);
            if let Ok(f) = &reader {
                of.mtime = mtime_of(f);
            }
            if backup {
                let content = reader
                    .map_err(|e| e.to_string())
                    .and_then(|f| content_of(&f))
                    .map_err(|why| (Errno::Limit, format!("file {}: {why}", of.path)))?;
                of.size = content.len() as u64;
                of.sha256 = Sha256::digest(&content).into();
                of.saved = true;
                saved.push((
                    FileBackup {
                        path: of.path.clone(),
                        policy: fp,
                        fs_identity: identity.clone(),
                        size: of.size,
                        mtime: of.mtime,
                        sha256: snapfmt::Digest(of.sha256),
                        stored: true,
                    },
                    Arc::<[u8]>::from(content),
                ));
            } else if let Ok(Ok((size, sha))) = reader.map(|f| digest_of(&f)) {
                (of.size, of.sha256) = (size, sha);
            }
            out.push(of);
        }
        c.exported = Some(out);
        c.saved = saved;
        Ok(())
    }
}

impl NativeProgram for Vfs {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        if !self.registered {
            let _ = self
                .me
                .call_async(k, self.ns, IPC_M_CONNECT_TO_ME, [VFS_NUMBER, 0, 0, 0, 0]);
            self.registered = true;
        }
        loop {
            if let Some(ev) = self.coop.released() {
                let _ = self.handle(k, ev);
                continue;
            }
            match self.me.wait(k, FOREVER) {
                Ok(Poll::Ready(ev)) => {
                    let mut exported = None;
                    if let Event::Call {
                        rx_id,
                        method,
                        args,
                        sender,
                        ..
                    } = &ev
                        && *method == crate::coop::IPC_M_CHKPNT_INIT
                        && crate::coop::is_checkpointer(k, &self.me, sender.0)
                    {
                        let conn = ConnId(args[0]);
                        if let Err((e, why)) = self.prepare_export(conn, args[1]) {
                            let _ = self
                                .me
                                .log(k, &format!("export of connection {}: {why}", conn.0));
                            let _ = self.me.answer(k, *rx_id, e.retval(), [0; 5]);
                            continue;
                        }
                        exported = Some(conn);
                    }
                    let (root, identity) = (&self.root, &self.identity);
                    let next = self
                        .coop
                        .on_event_checking(k, &self.me, ev, |c| reopen(root, identity, c));
                    if let Some(c) = exported.and_then(|conn| self.coop.get_mut(conn)) {
                        // The framework holds the copies until the end.
                        c.saved.clear();
                    }
                    if let Ok(Some(ev)) = next {
                        let _ = self.handle(k, ev);
                    }
                }
                Ok(Poll::Pending) => return Step::Continue,
                Err(_) => return Step::Done,
            }
        }
    }
}

fn libc_nofollow_nonblock() -> i32 {
    libc::O_NOFOLLOW | libc::O_NONBLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_version_1_is_still_read() {
        #[derive(Serialize)]
        struct V1 {
            policy: u8,
            fd: u32,
            path: String,
            flags: u64,
            pos: u64,
            fs_identity: String,
            size: u64,
            sha256: [u8; 32],
        }
        let v1 = vec![V1 {
            policy: 1,
            fd: 3,
            path: "x/y".into(),
            flags: 2,
            pos: 7,
            fs_identity: "id".into(),
            size: 9,
            sha256: [5; 32],
        }];
        let c = VfsConn::import(1, &postcard::to_allocvec(&v1).unwrap()).unwrap();
        let f = &c.imported.as_ref().unwrap()[0];
        assert_eq!(
            (f.fd, f.path.as_str(), f.pos, f.saved),
            (3, "x/y", 7, false)
        );
        assert_eq!(c.cwd, "");
        assert!(
            VfsConn::import(3, &[])
                .unwrap_err()
                .contains("reads 1 and 2")
        );
    }

    #[test]
    fn paths_resolve_inside_the_root() {
        assert_eq!(resolve("a/b", "c").as_deref(), Some("a/b/c"));
        assert_eq!(resolve("a/b", "/c").as_deref(), Some("c"));
        assert_eq!(resolve("a/b", "../../c/./d").as_deref(), Some("c/d"));
        assert_eq!(resolve("a", ".."), Some(String::new()));
        assert_eq!(resolve("a", "../.."), None);
        assert_eq!(resolve("", "x\0"), None);
    }
}
