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
//!
//! A write is checked (descriptor, `WRITE` flag) before its bytes are
//! taken; a host error while writing them (a full disk) is kept and
//! returned by the next call on that descriptor.
//!
//! Paths are relative to the root, `/`-separated, without empty, `.` or
//! `..` parts; nothing is followed through a symbolic link, and only
//! regular files are opened (`ENOENT`, `EINVAL` otherwise). Descriptors are
//! per connection, from 0, lowest free first.
//!
//! Cooperation: a connection's open files are exported with path, flags,
//! position and the file's identity (the file system's identity, stable
//! across remounts: the content of `.spartan-fs-id` in the root, created
//! at the first mount and never shown to tasks; the size; the SHA-256 of
//! the content). A restore reopens each file and refuses (the checkpointer
//! names the file) when the file system is another one, or the file is
//! missing or its content changed since the checkpoint: the *unchangeable*
//! policy of thesis 4.4.8, the default. Under the *volatile* policy
//! (chosen per checkpoint, carried in the export) nothing is checked: a
//! missing file stays closed, a shorter one goes on from its end. The
//! backup policies are not supported yet: an export under one is refused
//! (`ENOTSUP`), so such a checkpoint fails with a clear error.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::task::Poll;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spartan_kernel::ipc::method::{
    IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME, IPC_M_DATA_READ, IPC_M_DATA_WRITE,
};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, PhoneId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::{MAX_NATIVE_DATA, NativeError, NativeTask};
use spartan_kernel::task::{TaskPolicy, ThreadId};

use crate::coop::{ConnState, Coop};
use crate::ns::NamingService;

pub const VFS_ID: &str = "spartan.vfs";
pub const VFS_NUMBER: u64 = 1;

pub const VFS_OPEN: u64 = 1300;
pub const VFS_READ: u64 = 1301;
pub const VFS_WRITE: u64 = 1302;
pub const VFS_SEEK: u64 = 1303;
pub const VFS_CLOSE: u64 = 1304;
pub const VFS_STAT: u64 = 1305;

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

/// One open file as a checkpoint exports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFile {
    /// The policy of the checkpoint that exported it (its `FilePolicy`
    /// number: 0 unchangeable, 1 volatile).
    pub policy: u8,
    pub fd: u32,
    pub path: String,
    pub flags: u64,
    pub pos: u64,
    pub fs_identity: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// What the VFS keeps per connection.
#[derive(Debug, Default)]
pub struct VfsConn {
    files: BTreeMap<u32, (OpenFile, Option<File>)>,
    /// The path taken for the next open.
    path: Option<String>,
    /// Host errors kept for the next call on a descriptor.
    errors: BTreeMap<u32, Errno>,
    /// Set by the VFS before an export (identity and content of each file).
    exported: Option<Vec<OpenFile>>,
    /// Set by an import: reopened by the VFS (which checks them).
    imported: Option<Vec<OpenFile>>,
}

impl ConnState for VfsConn {
    const VERSION: u32 = 1;
    fn checkpointable(&self) -> bool {
        true
    }
    fn export(&self) -> Vec<u8> {
        let files: Vec<OpenFile> = match &self.exported {
            Some(f) => f.clone(),
            None => self.files.values().map(|(f, _)| f.clone()).collect(),
        };
        postcard::to_allocvec(&files).unwrap_or_default()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("version {version}, the VFS reads 1"));
        }
        let files: Vec<OpenFile> =
            postcard::from_bytes(bytes).map_err(|e| format!("open files: {e}"))?;
        if files.len() > MAX_FILES {
            return Err(format!("{} open files", files.len()));
        }
        Ok(VfsConn {
            imported: Some(files),
            ..VfsConn::default()
        })
    }
}

/// The path inside the root, if `p` is an acceptable one.
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

/// Opens `rel` under `root` with `fl`: nothing followed through a
/// symbolic link, only regular files.
fn open_in(root: &Path, rel: &Path, fl: u64) -> Result<File, Errno> {
    {
        // Every directory on the way must be a real directory.
        let mut at = root.to_path_buf();
        let parts: Vec<_> = rel.components().collect();
        for c in &parts[..parts.len() - 1] {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                _ => return Err(Errno::NoEntry),
            }
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

/// Reopens the files of an imported connection, checking that they are
/// the files the image saw (the unchangeable policy); the first that is
/// not refuses the connection's restore, naming the file.
fn reopen(root: &Path, identity: &str, c: &mut VfsConn) -> Result<(), String> {
    for mut of in c.imported.take().unwrap_or_default() {
        if of.policy == 1 {
            // Volatile: no checks; a missing file stays closed, a shorter
            // one is read and written from its end.
            if let Some(Ok(f)) = inside(&of.path)
                .map(|rel| open_in(root, &rel, of.flags & !(flags::CREATE | flags::TRUNCATE)))
            {
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                of.pos = of.pos.min(size);
                c.files.insert(of.fd, (of.clone(), Some(f)));
            }
            continue;
        }
        let why = if of.fs_identity != identity {
            Some("is on another file system than the image's".to_string())
        } else {
            match inside(&of.path)
                .map(|rel| open_in(root, &rel, of.flags & !(flags::CREATE | flags::TRUNCATE)))
            {
                None => Some("is not a path inside the root".into()),
                Some(Err(_)) => Some("is missing".into()),
                Some(Ok(f)) => match open_in(root, Path::new(&of.path), flags::READ)
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
            }
        };
        if let Some(why) = why {
            return Err(format!("file {}: {why}", of.path));
        }
    }
    Ok(())
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
        let (op, data_fd) = (args[2], u32::try_from(args[3]).unwrap_or(u32::MAX));
        let call_fd = u32::try_from(args[0]).unwrap_or(u32::MAX);
        let fd = if matches!(method, IPC_M_DATA_READ | IPC_M_DATA_WRITE) {
            data_fd
        } else {
            call_fd
        };
        if method != VFS_OPEN
            && let Some(e) = self.coop.get_mut(conn).and_then(|c| c.errors.remove(&fd))
        {
            return fail(k, e);
        }
        match (method, op) {
            (IPC_M_DATA_WRITE, VFS_OPEN) => {
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
                            sha256: [0; 32],
                        },
                        Some(file),
                    ),
                );
                ok(k, u64::from(fd))
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
    /// content now. The backup policies are not supported yet: the export
    /// is refused (`false`).
    fn prepare_export(&mut self, conn: ConnId, policy: u64) -> bool {
        if policy > 1 {
            if let Some(c) = self.coop.get_mut(conn) {
                c.exported = None;
            }
            return false;
        }
        let root = self.root.clone();
        let Some(c) = self.coop.get_mut(conn) else {
            return true;
        };
        let mut out = Vec::new();
        for (of, _) in c.files.values() {
            let mut of = of.clone();
            of.policy = policy as u8;
            // Through a handle of its own: the task's may be write-only.
            if let Ok(Ok((size, sha))) =
                open_in(&root, Path::new(&of.path), flags::READ).map(|f| digest_of(&f))
            {
                (of.size, of.sha256) = (size, sha);
            }
            out.push(of);
        }
        c.exported = Some(out);
        true
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
                    if let Event::Call {
                        rx_id,
                        method,
                        args,
                        ..
                    } = &ev
                        && *method == crate::coop::IPC_M_CHKPNT_INIT
                        && !self.prepare_export(ConnId(args[0]), args[1])
                    {
                        let _ = self
                            .me
                            .answer(k, *rx_id, Errno::NotSupported.retval(), [0; 5]);
                        continue;
                    }
                    let (root, identity) = (&self.root, &self.identity);
                    let next = self
                        .coop
                        .on_event_checking(k, &self.me, ev, |c| reopen(root, identity, c));
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
