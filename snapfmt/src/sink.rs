//! Crash-safe output of an image: everything goes to a temporary sibling
//! (`.<name>.partial-<pid>-<n>`), which is made durable and renamed into
//! place only when complete. The manifest is written last, so an
//! interrupted write leaves at most a hidden temporary without a manifest,
//! which no reader accepts.
//!
//! A directory image's files are created and written by one I/O thread
//! (`DirIo`), so the thread feeding pages never waits on a file creation
//! (on ext4 a create in a directory of thousands of chunk files took
//! 25-200 us, 0.1-0.8 s for the 4,100 files of a 1 GiB image, and the
//! compression workers starved meanwhile). At the commit the thread is
//! joined (its first error is the write's error) and the whole tree is made
//! durable at once: on Linux, with many files, by one `syncfs(2)` of the
//! filesystem holding it (one journal commit; 30-90 ms for those 4,100
//! files against 170-280 ms for 4,100 fsyncs from eight threads, on the
//! development machine under load), otherwise by an fsync of every file.
//!
//! Since format 1.4 chunks are normally not files of their own but frames
//! appended to a pack (`packs/<n>.spp`, a new one per GiB), which the I/O
//! thread keeps open: even with one thread, creating 4,100 chunk files of
//! a 1 GiB export cost it (ext4 inode allocation) about as much CPU as
//! both compression workers spent compressing. An image of packs has a
//! handful of files, each fsynced (no `syncfs`, which would also flush
//! whatever else the filesystem holds).
use crate::error::{Error, Result};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// The container an image is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageForm {
    /// A directory of files (the default).
    #[default]
    Directory,
    /// One tar file holding the same paths.
    Tar,
}

pub(crate) enum Sink {
    Dir {
        tmp: PathBuf,
        written: Vec<PathBuf>,
        io: DirIo,
        /// The pack chunks are appended to, when chunks are packed.
        pack: Option<PackCursor>,
    },
    Tar {
        tmp: PathBuf,
        builder: Option<tar::Builder<BufWriter<File>>>,
    },
}

/// A pack is closed and the next one started when a frame would take it
/// past this size (so no file of an image grows without bound; FORMAT.md
/// section 9 has no limit of its own for packs).
pub(crate) const PACK_TARGET: u64 = 1 << 30;

/// Where the next chunk frame of a directory image goes.
pub(crate) struct PackCursor {
    /// The pack being appended to, or `None` before the first frame.
    current: Option<u32>,
    /// Bytes in it so far (the next frame's offset).
    len: u64,
    /// The size past which the next pack is started ([`PACK_TARGET`];
    /// tests make it small).
    pub(crate) target: u64,
}

/// What the I/O thread does with a buffer.
enum IoJob {
    /// Create the file and write the bytes.
    Write(PathBuf, Vec<u8>),
    /// Append the bytes to the pack at this path (created by its first
    /// frame; a new path closes the one before).
    Append(PathBuf, Vec<u8>),
}

/// Files queued for the I/O thread at most (each at most a chunk file, so
/// at most a few MiB wait).
const IO_QUEUE: usize = 8;

/// The I/O thread of a directory image: writes `(path, bytes)` in the
/// order given and hands the buffers back for reuse; it stops at the first
/// error, which [`DirIo::finish`] returns.
pub(crate) struct DirIo {
    jobs: Option<SyncSender<IoJob>>,
    back: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl DirIo {
    fn start() -> std::io::Result<DirIo> {
        let (jobs, rx) = sync_channel::<IoJob>(IO_QUEUE);
        let (back_tx, back) = sync_channel(IO_QUEUE + 2);
        let handle = std::thread::Builder::new()
            .name("snapfmt-io".into())
            .spawn(move || -> Result<()> {
                use std::io::Write;
                let mut pack: Option<(PathBuf, File)> = None;
                // Bytes of the open pack written, and of those handed to
                // writeback already (`start_writeback`).
                let (mut appended, mut kicked) = (0u64, 0u64);
                for job in rx {
                    let bytes = match job {
                        IoJob::Write(path, bytes) => {
                            std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
                            bytes
                        }
                        IoJob::Append(path, bytes) => {
                            let same = pack.as_ref().is_some_and(|(p, _)| *p == path);
                            if !same {
                                let f = File::create_new(&path).map_err(|e| Error::io(&path, e))?;
                                pack = Some((path.clone(), f));
                                (appended, kicked) = (0, 0);
                            }
                            if let Some((_, f)) = pack.as_mut() {
                                f.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
                                appended += bytes.len() as u64;
                                if appended - kicked >= WRITEBACK_STEP {
                                    start_writeback(f, kicked, appended - kicked);
                                    kicked = appended;
                                }
                            }
                            bytes
                        }
                    };
                    // A full return queue means enough spares: drop it.
                    let _ = back_tx.try_send(bytes);
                }
                Ok(())
            })?;
        Ok(DirIo {
            jobs: Some(jobs),
            back,
            handle: Some(handle),
        })
    }

    /// Queues a file; returns a written buffer for reuse if one is back.
    fn write(&mut self, job: IoJob) -> Result<Option<Vec<u8>>> {
        let sent = match &self.jobs {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            // The thread stopped: at an error, which it returns.
            self.finish()?;
            return Err(Error::Usage("the image's I/O thread is gone".into()));
        }
        Ok(self.back.try_recv().ok())
    }

    /// Waits until every queued file is written; the first error.
    fn finish(&mut self) -> Result<()> {
        self.jobs = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::Usage("the image's I/O thread panicked".into()))),
            None => Ok(()),
        }
    }
}

/// A pack's written bytes are handed to writeback in steps of this size,
/// so that the fsync at the commit finds most of them on disk already
/// (measured on a 1 GiB export: the pack's fsync took 0.13-0.15 s when all
/// 361 MiB were still dirty).
const WRITEBACK_STEP: u64 = 16 << 20;

/// Starts writing `len` bytes at `offset` of `f` back to disk without
/// waiting (`sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`, Linux); a
/// hint only: durability comes from the fsync at the commit, which also
/// reports any error of this writeback, so the hint's own result is not
/// needed.
fn start_writeback(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // Safety: a valid open descriptor; the call reads no memory of ours.
        let _ = unsafe {
            libc::sync_file_range(f.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a file name", target.display())))?;
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.{what}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(target.with_file_name(tmp_name))
}

fn fsync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Threads that fsync the files of a directory image. One fsync waits for
/// a journal commit (about 4.5 ms each on the development machine, so
/// 2,000 chunk files took 9 s one after another); concurrent fsyncs share
/// commits (400 files: 1.85 s from one thread, 0.09 s from eight).
const FSYNC_THREADS: usize = 8;

/// fsyncs every path, several at a time; the first error wins.
fn fsync_all(paths: &[PathBuf]) -> Result<()> {
    if paths.len() < 2 * FSYNC_THREADS {
        return paths.iter().try_for_each(|p| fsync_path(p));
    }
    let per = paths.len().div_ceil(FSYNC_THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().try_for_each(|p| fsync_path(p))))
            .collect();
        let mut first = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(Error::Usage("an fsync thread panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// Makes every file of the directory tree at `tmp` (all listed in
/// `written`, subdirectories included) and `tmp` itself durable.
fn sync_tree(tmp: &Path, written: &[PathBuf]) -> Result<()> {
    #[cfg(target_os = "linux")]
    if written.len() >= 2 * FSYNC_THREADS {
        // One writeback and journal commit of the filesystem holding the
        // tree (every file of it was created inside `tmp`, so on it);
        // errors in the writeback of any of them are reported (Linux 5.8+).
        use std::os::fd::AsRawFd;
        let dir = File::open(tmp).map_err(|e| Error::io(tmp, e))?;
        // Safety: a valid open descriptor; syncfs only reads it.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(Error::io(tmp, std::io::Error::last_os_error()));
        }
        return dir.sync_all().map_err(|e| Error::io(tmp, e));
    }
    fsync_all(written)?;
    fsync_path(tmp)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Sink {
    /// Starts writing an image that will appear at `target`.
    /// With `pack`, a directory image's chunks go into packs
    /// ([`put_packed`](Self::put_packed)); a tar image never packs.
    pub(crate) fn create(
        target: &Path,
        form: ImageForm,
        overwrite: bool,
        pack: bool,
    ) -> Result<Sink> {
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists {
                path: target.to_path_buf(),
            });
        }
        let tmp = temp_sibling(target, "partial")?;
        match form {
            ImageForm::Directory => {
                std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
                let io = match DirIo::start() {
                    Ok(io) => io,
                    Err(e) => {
                        let _ = std::fs::remove_dir(&tmp);
                        return Err(Error::io(&tmp, e));
                    }
                };
                Ok(Sink::Dir {
                    tmp,
                    written: Vec::new(),
                    io,
                    pack: pack.then_some(PackCursor {
                        current: None,
                        len: 0,
                        target: PACK_TARGET,
                    }),
                })
            }
            ImageForm::Tar => {
                let f = File::create_new(&tmp).map_err(|e| Error::io(&tmp, e))?;
                let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
                builder.mode(tar::HeaderMode::Deterministic);
                Ok(Sink::Tar {
                    tmp,
                    builder: Some(builder),
                })
            }
        }
    }

    /// Adds file `name` (a relative `/` path) with `bytes`.
    pub(crate) fn put(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Dir { .. } => self.put_owned(name, bytes.to_vec()).map(drop),
            Sink::Tar { .. } => self.append_tar(name, bytes),
        }
    }

    /// Adds file `name` with `bytes`, taking the buffer; returns a buffer
    /// done with (this one or an earlier one) for reuse, if there is one.
    /// In a directory image the file is written by the I/O thread, and an
    /// error writing it is returned by a later call or by the commit.
    pub(crate) fn put_owned(&mut self, name: &str, bytes: Vec<u8>) -> Result<Option<Vec<u8>>> {
        match self {
            Sink::Dir {
                tmp, written, io, ..
            } => {
                let p = tmp.join(name);
                if let Some(d) = p.parent()
                    && !d.exists()
                {
                    std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                    written.push(d.to_path_buf());
                }
                written.push(p.clone());
                io.write(IoJob::Write(p, bytes))
            }
            Sink::Tar { .. } => {
                self.append_tar(name, &bytes)?;
                Ok(Some(bytes))
            }
        }
    }

    /// Sets the size past which a new pack is started (tests).
    #[cfg(test)]
    pub(crate) fn set_pack_target(&mut self, bytes: u64) {
        if let Sink::Dir {
            pack: Some(cursor), ..
        } = self
        {
            cursor.target = bytes;
        }
    }

    /// Whether chunks go into packs ([`put_packed`](Self::put_packed)).
    pub(crate) fn packs(&self) -> bool {
        matches!(self, Sink::Dir { pack: Some(_), .. })
    }

    /// Appends a whole chunk file (its frame) to the current pack of a
    /// packing directory image, starting the next pack when this one
    /// would pass [`PACK_TARGET`]; returns the pack's number, the frame's
    /// offset in it, and a written buffer for reuse if one is back. The
    /// offsets depend only on the frames' lengths, never on the I/O
    /// thread.
    pub(crate) fn put_packed(&mut self, bytes: Vec<u8>) -> Result<(u32, u64, Option<Vec<u8>>)> {
        let Sink::Dir {
            tmp,
            written,
            io,
            pack: Some(cursor),
        } = self
        else {
            return Err(Error::Usage("this image does not pack chunks".into()));
        };
        let len = bytes.len() as u64;
        let n = match cursor.current {
            Some(n) if cursor.len == 0 || cursor.len + len <= cursor.target => n,
            Some(n) => {
                let next = n
                    .checked_add(1)
                    .ok_or_else(|| Error::Usage("too many packs".into()))?;
                cursor.current = Some(next);
                cursor.len = 0;
                next
            }
            None => {
                let d = tmp.join("packs");
                std::fs::create_dir(&d).map_err(|e| Error::io(&d, e))?;
                written.push(d);
                cursor.current = Some(0);
                cursor.len = 0;
                0
            }
        };
        let p = tmp.join(crate::object::pack_path(n));
        if cursor.len == 0 {
            written.push(p.clone());
        }
        let offset = cursor.len;
        cursor.len += len;
        let back = io.write(IoJob::Append(p, bytes))?;
        Ok((n, offset, back))
    }

    fn append_tar(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Dir { .. } => Err(Error::Usage("not a tar image".into())),
            Sink::Tar { tmp, builder } => {
                let b = builder
                    .as_mut()
                    .ok_or_else(|| Error::Usage("tar already finished".into()))?;
                let mut h = tar::Header::new_ustar();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, bytes)
                    .map_err(|e| Error::io(tmp.as_path(), e))
            }
        }
    }

    /// Makes everything durable and renames the temporary into `target`.
    pub(crate) fn commit(mut self, target: &Path, overwrite: bool) -> Result<()> {
        let tmp = match &mut self {
            Sink::Dir {
                tmp, written, io, ..
            } => {
                io.finish()?;
                sync_tree(tmp, written)?;
                tmp.clone()
            }
            Sink::Tar { tmp, builder } => {
                let b = builder
                    .take()
                    .ok_or_else(|| Error::Usage("tar already finished".into()))?;
                let w = b.into_inner().map_err(|e| Error::io(tmp.as_path(), e))?;
                let f = w
                    .into_inner()
                    .map_err(|e| Error::io(tmp.as_path(), e.into_error()))?;
                f.sync_all().map_err(|e| Error::io(tmp.as_path(), e))?;
                tmp.clone()
            }
        };
        let exists = target.symlink_metadata().is_ok();
        if exists && !overwrite {
            return Err(Error::AlreadyExists {
                path: target.to_path_buf(),
            });
        }
        let mut old = None;
        if exists {
            let aside = temp_sibling(target, "old")?;
            std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
            old = Some(aside);
        }
        std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
        fsync_path(&parent_dir(target))?;
        // The temporary is gone; make Drop a no-op.
        match &mut self {
            Sink::Dir { tmp, .. } | Sink::Tar { tmp, .. } => *tmp = PathBuf::new(),
        }
        if let Some(old) = old {
            let r = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            r.map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for Sink {
    /// An abandoned write removes its temporary (best effort; a crash
    /// leaves it, hidden and without a manifest).
    fn drop(&mut self) {
        match self {
            Sink::Dir { tmp, io, .. } => {
                // No file may appear after the removal.
                let _ = io.finish();
                if !tmp.as_os_str().is_empty() {
                    let _ = std::fs::remove_dir_all(&*tmp);
                }
            }
            Sink::Tar { tmp, builder } => {
                drop(builder.take());
                if !tmp.as_os_str().is_empty() {
                    let _ = std::fs::remove_file(&*tmp);
                }
            }
        }
    }
}
