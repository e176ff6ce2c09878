//! `spartan boot`'s serving side: the owner-only control socket and the
//! loop that runs a [`System`] and carries out requests between
//! scheduler slices.
//!
//! Threads: the kernel and the services run on the thread that calls
//! [`serve`] (the only one that touches the system); a thread accepts
//! connections, checks the peer's uid (`SO_PEERCRED`) and starts one
//! thread per connection, which reads frames, checks them
//! ([`Session`](crate::control::Session)) and passes requests over a
//! channel, ringing the kernel's waker so a live kernel's idle wait ends.
//! A stop flag (set by SIGTERM/SIGINT through [`watch_signals`], or by a
//! shutdown request) ends the loop; the socket is removed.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spartan_kernel::checkpoint::PageLoading;
use spartan_kernel::sched::clock::Waker;
use spartan_kernel::sched::sim::RunEnd;

use crate::checkpointer::{CheckpointOptions, RestoreOpts};
use crate::control::{
    self, CheckpointRequest, Decoded, ErrorKind, FrameError, Request, Response, ScreenView,
    Session, error,
};
use crate::system::{self, System, SystemError};

/// Connections served at once (more are refused).
pub const MAX_CONNECTIONS: usize = 64;
/// Scheduler slices between two looks at the request channel.
const SLICES: u64 = 256;

/// Why the socket cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("a system is already running on {}", .0.display())]
    Running(PathBuf),
    #[error("{} exists and is not a socket; not replacing it", .0.display())]
    NotSocket(PathBuf),
    #[error("the socket's directory {}: {why}", path.display())]
    Dir { path: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The socket, bound and owner-only; removed when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode, so that only this socket is
    /// removed (not one that replaced it).
    id: (u64, u64),
    /// `PATH.lock`, locked (`flock`) while the system lives: two boots on
    /// one path never both take it, even racing over a stale socket.
    _lock: std::fs::File,
}

fn my_uid() -> u32 {
    // Safety: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

impl ControlSocket {
    /// Binds `path`: its directory is created owner-only if missing and
    /// must be ours and writable by nobody else; a live socket there is
    /// refused, a stale one (nobody accepts) replaced, anything else
    /// refused.
    pub fn bind(path: &Path) -> Result<ControlSocket, ServerError> {
        let io = |source| ServerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir_err = |why: String| ServerError::Dir {
            path: dir.clone(),
            why,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| dir_err(e.to_string()))?;
        }
        let m = dir.metadata().map_err(|e| dir_err(e.to_string()))?;
        if !m.is_dir() {
            return Err(dir_err("not a directory".into()));
        }
        if m.uid() != my_uid() {
            return Err(dir_err(format!(
                "owned by uid {}, not by this user ({})",
                m.uid(),
                my_uid()
            )));
        }
        if m.mode() & 0o022 != 0 {
            return Err(dir_err(format!(
                "writable by others (mode {:o})",
                m.mode() & 0o777
            )));
        }
        let lock = lock_beside(path)?;
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(ServerError::Running(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io)?;
            }
            Ok(_) => return Err(ServerError::NotSocket(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        // The socket is created owner-only (no window with a wider mode).
        // Safety: umask has no preconditions; it is restored at once.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // Safety: as above.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let m = path.symlink_metadata().map_err(io)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            id: (m.dev(), m.ino()),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock file beside the socket (kept afterwards: removing it
/// would let a racing boot lock a new file of the same name).
fn lock_beside(path: &Path) -> Result<std::fs::File, ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(|source| ServerError::Io {
            path: lock_path.clone(),
            source,
        })?;
    // Safety: flock on a descriptor `f` owns; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(ServerError::Running(path.to_path_buf()));
        }
        return Err(ServerError::Io {
            path: lock_path,
            source: e,
        });
    }
    Ok(f)
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own socket: the path may have been replaced meanwhile.
        let ours = self
            .path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The uid of the process at the other end of `s`.
pub fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Safety: `cred` and `len` are valid for writes of the sizes given;
    // the fd is a live socket owned by `s`.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// A request from a connection thread and where its response goes.
type Job = (Request, Sender<Response>);

/// The stop flag and what else ends a wait.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(Mutex::new(None)),
        }
    }

    /// Asks the loop to end.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.ring();
    }

    fn ring(&self) {
        if let Some(w) = self
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            w.ring();
        }
    }

    fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread (and every thread it
/// starts afterwards) and starts a thread that waits for them and stops
/// the loop. Call it before any other thread is started.
pub fn watch_signals() -> io::Result<Stop> {
    let stop = Stop::new();
    // Safety: the set is initialised by sigemptyset before use; the
    // signal mask is changed before any other thread exists.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    let s = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut sig = 0;
                // Safety: `set` is a valid signal set, `sig` a valid out
                // parameter.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    s.stop();
                    return;
                }
            }
        })?;
    Ok(stop)
}

/// A stop flag nothing but a shutdown request sets (tests, in-process
/// use).
pub fn no_signals() -> Stop {
    Stop::new()
}

/// How to serve.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeOptions {
    /// The simulation seed, if the system runs in simulation.
    pub sim: Option<u64>,
    /// Print the kernel log's lines on stderr as they come (otherwise they
    /// are dropped: the log is drained either way, so that a long-lived
    /// system's memory stays bounded).
    pub log: bool,
}

/// Runs `sys` and serves `socket` until `stop` or a shutdown request.
pub fn serve(mut sys: System, socket: ControlSocket, stop: Stop, opts: ServeOptions) {
    let sim = opts.sim;
    let (tx, rx) = mpsc::channel::<Job>();
    *stop.waker.lock().unwrap_or_else(|e| e.into_inner()) = sys.k.waker();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let hello = Response::Hello {
        version: control::PROTOCOL_VERSION,
        sim,
        root: sys.root().display().to_string(),
    };
    let listener = match socket.listener.try_clone() {
        Ok(l) => l,
        Err(_) => return,
    };
    {
        let (stop, in_flight) = (stop.clone(), in_flight.clone());
        let _ = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, tx, stop, in_flight, hello));
    }
    run_loop(&mut sys, &rx, &stop, opts);
    // Let the connections whose requests were carried out write their
    // responses (the shutdown's among them).
    let until = Instant::now() + Duration::from_secs(2);
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        while let Ok((_, reply)) = rx.try_recv() {
            let _ = reply.send(error(ErrorKind::Refused, "the system is shutting down"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(socket);
}

/// Drains the kernel log, printing it if asked.
fn drain_log(sys: &mut System, print: bool) {
    let lines = sys.k.take_log();
    if !print {
        return;
    }
    let mut err = io::stderr().lock();
    for l in lines {
        let name = sys.k.task(l.task).map(|t| t.name.as_str()).unwrap_or("-");
        let line = format!(
            "[{}.{:06}] task {} ({}): {}\n",
            l.time / 1_000_000_000,
            l.time / 1000 % 1_000_000,
            l.task.0,
            name,
            l.text
        );
        let _ = io::Write::write_all(&mut err, spartan_cli::escape_lines(&line).as_bytes());
    }
}

fn run_loop(sys: &mut System, rx: &Receiver<Job>, stop: &Stop, opts: ServeOptions) {
    let sim = opts.sim.is_some();
    let started = Instant::now();
    // Simulation is paced: virtual time may not run ahead of the host's
    // (less `skew`: the virtual time requests took, a restore's jump to
    // its image's time), so sleeping tasks sleep as long as they asked.
    // Each slice runs alone then, so an idle jump goes at most to the
    // next deadline. (Requests arrive at host times: a served simulation
    // is reproducible only given the same requests at the same virtual
    // times; the scheduling itself stays deterministic.)
    let mut skew = 0u64;
    let host = || started.elapsed().as_nanos() as u64;
    loop {
        drain_log(sys, opts.log);
        let mut served = false;
        while let Ok((req, reply)) = rx.try_recv() {
            let shutdown = req == Request::Shutdown;
            let _ = reply.send(execute(sys, req));
            if shutdown {
                return;
            }
            served = true;
        }
        if sim && served {
            skew = skew.max(sys.k.now().saturating_sub(host()));
        }
        if stop.stopped() {
            return;
        }
        let end = if sim {
            let ahead = sys.k.now().saturating_sub(skew).saturating_sub(host());
            if ahead > 0 {
                let wait = Duration::from_nanos(ahead).min(Duration::from_millis(20));
                match wait_for_job(sys, rx, stop, wait) {
                    Waited::Stop => return,
                    Waited::Served => skew = skew.max(sys.k.now().saturating_sub(host())),
                    Waited::Timeout => {}
                }
                continue;
            }
            let mut end = RunEnd::StepLimit;
            for _ in 0..SLICES {
                end = sys.run(1);
                if end != RunEnd::StepLimit || sys.k.now().saturating_sub(skew) > host() {
                    break;
                }
            }
            end
        } else {
            sys.run(SLICES)
        };
        match end {
            RunEnd::StepLimit | RunEnd::Woken => {}
            RunEnd::Deadlock | RunEnd::AllDone => {
                // Nothing runs: wait for a request, or in real time until
                // the next sleeper is due (a game's gravity tick keeps its
                // time), at most 20 ms.
                let mut wait = Duration::from_millis(20);
                if !sim && let Some(due) = sys.k.next_deadline() {
                    wait = wait.min(Duration::from_nanos(due.saturating_sub(sys.k.now())));
                }
                match wait_for_job(sys, rx, stop, wait) {
                    Waited::Stop => return,
                    Waited::Served if sim => {
                        skew = skew.max(sys.k.now().saturating_sub(host()));
                    }
                    _ => {}
                }
            }
        }
    }
}

enum Waited {
    Stop,
    Served,
    Timeout,
}

/// Waits up to `wait` for a request and carries it out.
fn wait_for_job(sys: &mut System, rx: &Receiver<Job>, stop: &Stop, wait: Duration) -> Waited {
    match rx.recv_timeout(wait) {
        Ok((req, reply)) => {
            let shutdown = req == Request::Shutdown;
            let _ = reply.send(execute(sys, req));
            if shutdown || stop.stopped() {
                Waited::Stop
            } else {
                Waited::Served
            }
        }
        Err(RecvTimeoutError::Timeout) if stop.stopped() => Waited::Stop,
        Err(RecvTimeoutError::Timeout) => Waited::Timeout,
        Err(RecvTimeoutError::Disconnected) => Waited::Stop,
    }
}

fn accept_loop(
    listener: UnixListener,
    tx: Sender<Job>,
    stop: Stop,
    in_flight: Arc<AtomicUsize>,
    hello: Response,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        if stop.stopped() {
            return;
        }
        match peer_uid(&s) {
            Ok(uid) if uid == my_uid() => {}
            Ok(uid) => {
                let msg = format!("permission denied: uid {uid} is not the system's owner");
                let _ = control::write_frame(
                    &mut s,
                    &control::encode(&error(ErrorKind::Permission, msg)),
                );
                continue;
            }
            Err(_) => continue,
        }
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let msg = format!("too many connections (at most {MAX_CONNECTIONS})");
            let _ = control::write_frame(&mut s, &control::encode(&error(ErrorKind::Refused, msg)));
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (tx, stop, in_flight, open, hello) = (
            tx.clone(),
            stop.clone(),
            in_flight.clone(),
            open.clone(),
            hello.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                connection(s, &tx, &stop, &in_flight, &hello);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            continue;
        }
    }
}

/// Serves one connection until it closes or errs.
fn connection(
    mut s: UnixStream,
    tx: &Sender<Job>,
    stop: &Stop,
    in_flight: &AtomicUsize,
    hello: &Response,
) {
    let mut session = Session::default();
    loop {
        let frame = match control::read_frame(&mut s) {
            Ok(f) => f,
            Err(FrameError::TooLarge(n)) => {
                let e = error(
                    ErrorKind::TooLarge,
                    format!(
                        "frame of {n} bytes is larger than the maximum of {}",
                        control::MAX_FRAME
                    ),
                );
                let _ = control::write_frame(&mut s, &control::encode(&e));
                return;
            }
            Err(_) => return,
        };
        let resp = match session.decode(&frame) {
            Decoded::Reply(r) => r,
            Decoded::Request(Request::Hello { .. }) => hello.clone(),
            Decoded::Request(req) => {
                let (rtx, rrx) = mpsc::channel();
                in_flight.fetch_add(1, Ordering::SeqCst);
                if tx.send((req, rtx)).is_err() {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                stop.ring();
                let r = rrx.recv();
                let written = match &r {
                    Ok(resp) => control::write_frame(&mut s, &control::encode(resp)).is_ok(),
                    Err(_) => false,
                };
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if !written {
                    return;
                }
                continue;
            }
        };
        let closes = matches!(&resp, Response::Error { kind, .. } if kind.closes());
        if control::write_frame(&mut s, &control::encode(&resp)).is_err() || closes {
            return;
        }
    }
}

fn system_error(e: SystemError) -> Response {
    let kind = if e.is_usage() {
        ErrorKind::Usage
    } else {
        ErrorKind::Refused
    };
    error(kind, e.to_string())
}

/// Carries out one request on the system.
pub fn execute(sys: &mut System, req: Request) -> Response {
    match req {
        Request::Hello { .. } => error(ErrorKind::Handshake, "a second hello"),
        Request::Run {
            program,
            args,
            name,
        } => {
            if name
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.len() > 256)
            {
                return error(ErrorKind::Usage, "a task name must have 1 to 256 bytes");
            }
            match sys.spawn(&program, &args, name.as_deref()) {
                Ok(t) => Response::Started {
                    task: t.0,
                    name: sys.k.task(t).map(|t| t.name.clone()).unwrap_or_default(),
                },
                Err(e) => system_error(e),
            }
        }
        Request::Tasks => Response::Tasks { tasks: sys.tasks() },
        Request::Kill { task } => match sys.kill(task) {
            Ok(()) => Response::Killed { task },
            Err(e) => system_error(e),
        },
        Request::Checkpoint {
            task,
            output,
            options,
        } => checkpoint(sys, task, &output, &options),
        Request::Restore {
            image,
            err_resume,
            timeout_ms,
            missing,
            duplicate,
            eager,
        } => {
            let Some(missing) = system::parse_missing(&missing) else {
                return error(
                    ErrorKind::Usage,
                    format!("unknown missing-server policy {missing:?} (cancel, hang-up)"),
                );
            };
            let Some(duplicate) = system::parse_duplicate(&duplicate) else {
                return error(
                    ErrorKind::Usage,
                    format!(
                        "unknown duplicate-server policy {duplicate:?} (cancel, hang-up, replace)"
                    ),
                );
            };
            let path = Path::new(&image);
            if !path.is_absolute() {
                return error(
                    ErrorKind::Usage,
                    format!("{image}: the image path must be absolute"),
                );
            }
            let opts = RestoreOpts {
                err_resume,
                timeout_ns: timeout_ms.saturating_mul(1_000_000),
                missing,
                duplicate,
                pages: if eager {
                    PageLoading::Eager
                } else {
                    PageLoading::Background
                },
            };
            match sys.restore(path, &opts) {
                Ok(r) => Response::Restored {
                    tasks: r.tasks.iter().map(|(old, new)| (*old, new.0)).collect(),
                },
                Err(e) => system_error(e),
            }
        }
        Request::Shutdown => Response::ShuttingDown,
        Request::Screen { vc, unless } => {
            if let Some(refused) = no_such_vc(vc) {
                return refused;
            }
            let view = ScreenView::of(vc, &sys.screen(vc));
            if unless == Some(view.digest) {
                Response::Unchanged
            } else {
                Response::Screen(view)
            }
        }
        Request::Key { vc, key, modifiers } => {
            if let Some(refused) = no_such_vc(vc) {
                return refused;
            }
            sys.push_key(vc, key, modifiers);
            Response::KeySent
        }
    }
}

/// The refusal of a virtual console number that does not exist.
fn no_such_vc(vc: u32) -> Option<Response> {
    (vc >= crate::console::MAX_VCS).then(|| {
        error(
            ErrorKind::Usage,
            format!(
                "virtual console {vc} (there are {})",
                crate::console::MAX_VCS
            ),
        )
    })
}

fn checkpoint(sys: &mut System, task: u64, output: &str, o: &CheckpointRequest) -> Response {
    let Some(file_policy) = system::parse_file_policy(&o.file_policy) else {
        return error(
            ErrorKind::Usage,
            format!(
                "unknown file policy {:?} (unchangeable, volatile, backup-overwrite, backup-skip)",
                o.file_policy
            ),
        );
    };
    let Some(clients) = system::parse_clients(&o.clients) else {
        return error(
            ErrorKind::Usage,
            format!(
                "unknown policy for clients outside the set {:?} (include, exclude, refuse)",
                o.clients
            ),
        );
    };
    if o.timeout_ms == 0 {
        return error(ErrorKind::Usage, "the timeout must be at least 1 ms");
    }
    let opts = CheckpointOptions {
        kill: o.kill,
        timeout_ns: o.timeout_ms.saturating_mul(1_000_000),
        form: if o.tar {
            snapfmt::ImageForm::Tar
        } else {
            snapfmt::ImageForm::Directory
        },
        file_policy,
        clients,
        parent: o.parent.as_ref().map(std::path::PathBuf::from),
    };
    if opts.parent.as_ref().is_some_and(|p| !p.is_absolute()) {
        return error(ErrorKind::Usage, "the parent image path must be absolute");
    }
    match sys.checkpoint(task, Path::new(output), &opts) {
        Ok(r) => Response::Checkpointed {
            image: output.to_string(),
            members: r.plan.members.iter().map(|t| t.0).collect(),
            services: r.plan.links.iter().map(|l| l.service_id.clone()).collect(),
            frozen_ns: r.frozen_ns,
            parent_pages: r.parent_pages,
            stored_pages: r.stored_pages,
            notes: r.notes,
        },
        Err(e) => system_error(e),
    }
}
