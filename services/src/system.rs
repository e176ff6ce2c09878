//! A whole running system in one host thread: the kernel, its guest
//! scheduler and the services (naming service, VFS over a host directory,
//! console, loader, checkpointer), with the operations the `spartan`
//! command and its control socket offer: start a program, list tasks,
//! kill one, checkpoint a set, restore an image, run the scheduler.
//!
//! Everything a task can observe is driven from here, single-threaded:
//! in simulation (`SystemConfig::sim`) a run replays bit for bit from its
//! seed and the order of host requests; the loader's queued spawns are
//! carried out between scheduler slices.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use snapfmt::FilePolicy;
use spartan_kernel::checkpoint::Restored;
use spartan_kernel::guest::{GuestError, SchedConfig, Scheduler, guest_space_ref};
use spartan_kernel::ipc::Errno;
use spartan_kernel::kernel::{ClockMode, Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::native::NativeError;
use spartan_kernel::task::{TaskId, TaskKind, TaskPolicy, ThreadState};

use crate::Shared;
use crate::checkpointer::{
    CheckpointOptions, CheckpointReport, Checkpointer, CheckpointerError, Clients, DuplicateServer,
    MissingServer, RestoreOpts,
};
use crate::console::{Console, Screen};
use crate::loader::Loader;
use crate::ns::NamingService;
use crate::vfs::{self, Vfs};

/// The entry every program starts at.
pub const ENTRY: &str = "main";
/// The longest program the system loads (bytes).
pub const MAX_PROGRAM: usize = 64 << 20;
/// At most this many arguments.
pub const MAX_ARGS: usize = 64;

/// How to boot.
#[derive(Clone, Debug)]
pub struct SystemConfig {
    /// The VFS root (a host directory).
    pub root: PathBuf,
    /// `Some(seed)`: simulation (virtual time); `None`: real time.
    pub sim: Option<u64>,
    /// The kernel's audit ledger and trace (tests; they grow without end).
    pub audit: bool,
    /// Size of the virtual consoles.
    pub cols: u32,
    pub rows: u32,
    /// Fuel per scheduler slice.
    pub slice_fuel: u64,
}

impl SystemConfig {
    pub fn new(root: impl Into<PathBuf>) -> SystemConfig {
        SystemConfig {
            root: root.into(),
            sim: None,
            audit: false,
            cols: 80,
            rows: 24,
            slice_fuel: 10_000,
        }
    }
}

/// Why an operation of the system failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The VFS root cannot be mounted.
    #[error("cannot mount {}: {source}", path.display())]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A service could not start.
    #[error("starting {what}: {source}")]
    Service {
        what: &'static str,
        source: NativeError,
    },
    /// The program cannot be read.
    #[error("cannot read the program {path}: {why}")]
    Program { path: String, why: String },
    /// The machine refused the program (it does not load, or has no `main`
    /// taking the arguments given).
    #[error("cannot start {name}: {source}")]
    Spawn { name: String, source: GuestError },
    /// An argument is not an integer, or there are too many.
    #[error("bad argument {0:?}: programs take integers (at most {MAX_ARGS})")]
    Argument(String),
    #[error("task {0} does not exist")]
    NoTask(u64),
    #[error("task {id} ({name}) is a system service; it cannot be killed")]
    SystemTask { id: u64, name: String },
    /// The checkpoint's target is unusable.
    #[error("{}: {why}", path.display())]
    Target { path: PathBuf, why: String },
    #[error(transparent)]
    Checkpointer(#[from] CheckpointerError),
    /// A restore failed, and the services said why.
    #[error("{source} ({why})")]
    Restore {
        source: Box<CheckpointerError>,
        why: String,
    },
}

impl SystemError {
    /// Whether the request itself was unusable (a usage error: exit 2)
    /// rather than refused by the system (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SystemError::Argument(_)
                | SystemError::Program { .. }
                | SystemError::Checkpointer(CheckpointerError::Image(_))
                | SystemError::Checkpointer(CheckpointerError::Parent(_))
        )
    }
}

/// A program to start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Program {
    /// A path in the VFS root.
    Vfs(String),
    /// The module itself (`.wasm` or `.wat`), read by the client.
    Bytes { name: String, bytes: Vec<u8> },
}

/// One row of [`System::tasks`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: u64,
    pub name: String,
    /// `running` (a thread may run), `blocked` (all asleep), `stopped`.
    pub state: String,
    /// Threads that have not exited.
    pub threads: u64,
    /// Bytes of memory: resident pages of a guest, areas of a native task.
    pub memory: u64,
    /// `guest` or `native`.
    pub kind: String,
    pub checkpointable: bool,
    pub cooperative: bool,
    /// A cooperative task's persistent service id.
    pub service_id: Option<String>,
    /// Bytes of a guest's memory still in the image it was lazily restored
    /// from (its own pages and those of shared areas it maps): the image
    /// must stay in place until this is 0.
    pub in_image: u64,
}

/// A booted system.
pub struct System {
    pub k: Kernel,
    pub s: Scheduler,
    pub ck: Checkpointer,
    console: Shared<Console>,
    loader: Shared<Loader>,
    ns: TaskId,
    root: PathBuf,
}

impl System {
    /// Boots the kernel and the services.
    pub fn boot(cfg: &SystemConfig) -> Result<System, SystemError> {
        let kc = match cfg.sim {
            Some(seed) => KernelConfig {
                audit: cfg.audit,
                trace: cfg.audit,
                ..KernelConfig::simulation(seed)
            },
            None => KernelConfig {
                seed: 0,
                clock: ClockMode::RealTime,
                audit: cfg.audit,
                trace: cfg.audit,
            },
        };
        let root = cfg
            .root
            .canonicalize()
            .map_err(|source| SystemError::Root {
                path: cfg.root.clone(),
                source,
            })?;
        let mut k = Kernel::new(kc);
        let ns = NamingService::spawn(&mut k);
        let service = |what| move |source| SystemError::Service { what, source };
        let console = Shared::new(
            Console::spawn(&mut k, &ns, cfg.cols, cfg.rows).map_err(service("the console"))?,
        );
        let vfs = Vfs::spawn(&mut k, &ns, &root).map_err(|source| SystemError::Root {
            path: root.clone(),
            source,
        })?;
        let loader = Shared::new(Loader::spawn(&mut k, &ns).map_err(service("the loader"))?);
        let ck = Checkpointer::spawn(&mut k);
        let mut s = Scheduler::new(SchedConfig {
            slice_fuel: cfg.slice_fuel,
            ..SchedConfig::default()
        });
        let ns_task = ns.task();
        s.add_native(Box::new(console.clone()));
        s.add_native(Box::new(vfs));
        s.add_native(Box::new(loader.clone()));
        s.add_native(Box::new(ns));
        Ok(System {
            k,
            s,
            ck,
            console,
            loader,
            ns: ns_task,
            root,
        })
    }

    /// The VFS root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts `program` at its `main` with integer `args` (as `i64`), as a
    /// checkpointable task named `name` (default: the file name without
    /// its extension), phone 0 connected to the naming service.
    pub fn spawn(
        &mut self,
        program: &Program,
        args: &[String],
        name: Option<&str>,
    ) -> Result<TaskId, SystemError> {
        let (default_name, bytes) = match program {
            Program::Vfs(path) => {
                let bytes =
                    vfs::read_file_in(&self.root, path).map_err(|e| SystemError::Program {
                        path: path.clone(),
                        why: match e {
                            Errno::NoEntry => "no such file in the VFS root".into(),
                            Errno::Invalid => {
                                "not a relative path to a regular file in the VFS root".into()
                            }
                            e => e.to_string(),
                        },
                    })?;
                (path.as_str(), bytes)
            }
            Program::Bytes { name, bytes } => (name.as_str(), bytes.clone()),
        };
        if bytes.len() > MAX_PROGRAM {
            return Err(SystemError::Program {
                path: default_name.into(),
                why: format!("larger than {MAX_PROGRAM} bytes"),
            });
        }
        if args.len() > MAX_ARGS {
            return Err(SystemError::Argument(format!("{} arguments", args.len())));
        }
        let values = args
            .iter()
            .map(|a| {
                a.parse::<i64>()
                    .map(|v| Value::I64(v as u64))
                    .map_err(|_| SystemError::Argument(a.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = match name {
            Some(n) => n.to_string(),
            None => task_name(default_name),
        };
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                &name,
                TaskPolicy::Checkpointable,
                &bytes,
                ENTRY,
                &values,
            )
            .map_err(|source| SystemError::Spawn {
                name: name.clone(),
                source,
            })?;
        if let Err(e) = self.k.connect_phone(task, self.ns) {
            let _ = self.k.kill_task(task);
            return Err(SystemError::Service {
                what: "the naming service",
                source: NativeError::from(e),
            });
        }
        Ok(task)
    }

    /// Every task, by id.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.k
            .task_ids()
            .into_iter()
            .filter_map(|id| self.task_info(id))
            .collect()
    }

    /// One task's row.
    pub fn task_info(&self, id: TaskId) -> Option<TaskInfo> {
        let t = self.k.task(id)?;
        let live: Vec<_> = t
            .threads
            .iter()
            .filter_map(|th| self.k.thread(*th))
            .filter(|th| th.state != ThreadState::Exited)
            .collect();
        // A native thread the scheduler does not step (the checkpointer,
        // driven by the host's requests) is waiting, whatever its state.
        let scheduled = (t.kind == TaskKind::Native).then(|| self.s.threads());
        let state = if t.stopped {
            "stopped"
        } else if live.iter().any(|th| {
            th.state == ThreadState::Runnable
                && scheduled.as_ref().is_none_or(|s| s.contains(&th.id))
        }) {
            "running"
        } else {
            "blocked"
        };
        let (memory, in_image) = match guest_space_ref(&self.k, id) {
            Some(space) => {
                let (own, shared) = space.pending_pages();
                (
                    space.resident_bytes(),
                    (own + shared) * spartan_kernel::mm::PAGE_SIZE,
                )
            }
            None => (t.memory.areas().iter().map(|a| a.size).sum(), 0),
        };
        let service_id = match &t.policy {
            TaskPolicy::Cooperative { service_id } => Some(service_id.clone()),
            _ => None,
        };
        Some(TaskInfo {
            id: id.0,
            name: t.name.clone(),
            state: state.into(),
            threads: live.len() as u64,
            memory,
            kind: match t.kind {
                TaskKind::Native => "native",
                _ => "guest",
            }
            .into(),
            checkpointable: t.policy == TaskPolicy::Checkpointable,
            cooperative: service_id.is_some(),
            service_id,
            in_image,
        })
    }

    /// Ends a task that is not a system service.
    pub fn kill(&mut self, id: u64) -> Result<(), SystemError> {
        let task = TaskId(id);
        let t = self.k.task(task).ok_or(SystemError::NoTask(id))?;
        if t.kind == TaskKind::Native {
            return Err(SystemError::SystemTask {
                id,
                name: t.name.clone(),
            });
        }
        self.k
            .kill_task(task)
            .map_err(|_| SystemError::NoTask(id))?;
        self.s.run(&mut self.k, 0);
        Ok(())
    }

    /// Checkpoints the set of `task` into `target`, which must not exist
    /// or be an empty directory (it is replaced). The image is written to
    /// a temporary sibling and renamed into place when complete, so an
    /// interrupted checkpoint leaves no image that validates.
    pub fn checkpoint(
        &mut self,
        task: u64,
        target: &Path,
        opts: &CheckpointOptions,
    ) -> Result<CheckpointReport, SystemError> {
        let target_err = |why: &str| SystemError::Target {
            path: target.to_path_buf(),
            why: why.into(),
        };
        if !target.is_absolute() {
            return Err(target_err("the image path must be absolute"));
        }
        if target.file_name().is_none() {
            return Err(target_err("the image path has no file name"));
        }
        match target.parent().map(|p| p.symlink_metadata()) {
            Some(Ok(m)) if m.is_dir() => {}
            _ => return Err(target_err("its parent directory does not exist")),
        }
        if self.k.task(TaskId(task)).is_none() {
            return Err(SystemError::NoTask(task));
        }
        // Checked before any service is asked: a set that cannot be taken
        // is refused with nothing stopped.
        crate::checkpointer::checkpoint_set(&self.k, TaskId(task))?;
        let mut emptied = false;
        match target.symlink_metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(m) if m.is_dir() => {
                // An empty directory is taken; anything else is refused
                // (remove_dir fails on a non-empty one, atomically).
                std::fs::remove_dir(target).map_err(|_| {
                    target_err(
                        "exists and is not an empty directory (images are never overwritten)",
                    )
                })?;
                emptied = true;
            }
            Ok(_) => return Err(target_err("exists (images are never overwritten)")),
            Err(e) => return Err(target_err(&e.to_string())),
        }
        let r = self
            .ck
            .checkpoint(&mut self.k, &mut self.s, TaskId(task), target, opts);
        if r.is_err() && emptied && target.symlink_metadata().is_err() {
            let _ = std::fs::create_dir(target);
        }
        Ok(r?)
    }

    /// Restores the image at `path` (a directory or a tar file). A
    /// refusal carries the reasons the services logged meanwhile (a
    /// changed file, named), since the kernel log is not the user's.
    pub fn restore(&mut self, path: &Path, opts: &RestoreOpts) -> Result<Restored, SystemError> {
        let seen = self.k.log().len();
        self.ck
            .restore(&mut self.k, &mut self.s, path, opts)
            .map_err(|e| {
                let why: Vec<String> = self.k.log()[seen.min(self.k.log().len())..]
                    .iter()
                    .filter(|l| {
                        self.k
                            .task(l.task)
                            .is_some_and(|t| matches!(t.policy, TaskPolicy::Cooperative { .. }))
                    })
                    .map(|l| {
                        let name = self
                            .k
                            .task(l.task)
                            .map(|t| t.name.clone())
                            .unwrap_or_default();
                        format!("{name}: {}", l.text)
                    })
                    .collect();
                if why.is_empty() {
                    SystemError::Checkpointer(e)
                } else {
                    SystemError::Restore {
                        source: Box::new(e),
                        why: why.join("; "),
                    }
                }
            })
    }

    /// Runs at most `slices` scheduler slices, carrying out the loader's
    /// queued spawns after them.
    pub fn run(&mut self, slices: u64) -> RunEnd {
        let end = self.s.run(&mut self.k, slices);
        self.serve_loader();
        end
    }

    /// Starts the programs guests asked the loader for and answers them.
    fn serve_loader(&mut self) {
        let requests = self.loader.0.borrow_mut().take_requests(&self.k);
        for r in requests {
            let mut words = r.command.split(' ').filter(|w| !w.is_empty());
            let result = match words.next() {
                None => Err(Errno::Invalid),
                Some(path) => {
                    let args: Vec<String> = words.map(str::to_string).collect();
                    self.spawn(&Program::Vfs(path.to_string()), &args, None)
                        .map_err(|e| match e {
                            SystemError::Program { ref why, .. } if why.starts_with("no such") => {
                                Errno::NoEntry
                            }
                            SystemError::Program { .. } | SystemError::Argument(_) => {
                                Errno::Invalid
                            }
                            _ => Errno::Refused,
                        })
                }
            };
            if let Err(e) = &result {
                let me = self.loader.0.borrow().task();
                self.k
                    .log_line(me, format!("loader: cannot start {:?}: {e}", r.command));
            }
            self.loader.0.borrow_mut().finish(&mut self.k, &r, result);
        }
    }

    /// The console service (to attach a player or a terminal).
    pub fn console(&self) -> Shared<Console> {
        self.console.clone()
    }

    /// A copy of virtual console `vc`'s screen.
    pub fn screen(&self, vc: u32) -> Screen {
        self.console.0.borrow_mut().screen(vc).clone()
    }

    /// A key for virtual console `vc`.
    pub fn push_key(&mut self, vc: u32, key: u64, modifiers: u64) {
        self.console
            .0
            .borrow_mut()
            .push_key(&mut self.k, vc, key, modifiers);
    }

    /// The task with this name (the lowest id), if any.
    pub fn find(&self, name: &str) -> Option<TaskId> {
        self.k
            .task_ids()
            .into_iter()
            .find(|t| self.k.task(*t).is_some_and(|t| t.name == name))
    }
}

/// A task name from a program path: its file name without the extension.
fn task_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file
        .strip_suffix(".wasm")
        .or_else(|| file.strip_suffix(".wat"))
        .unwrap_or(file);
    if stem.is_empty() {
        "task".into()
    } else {
        stem.into()
    }
}

/// The policy for clients outside a set, by its command-line name.
pub fn parse_clients(s: &str) -> Option<Clients> {
    Some(match s {
        "include" => Clients::Include,
        "exclude" => Clients::Exclude,
        "refuse" => Clients::Refuse,
        _ => return None,
    })
}

/// The policy for a missing server, by its command-line name.
pub fn parse_missing(s: &str) -> Option<MissingServer> {
    Some(match s {
        "cancel" => MissingServer::Cancel,
        "hang-up" => MissingServer::HangUp,
        _ => return None,
    })
}

/// The policy for a duplicate server, by its command-line name.
pub fn parse_duplicate(s: &str) -> Option<DuplicateServer> {
    Some(match s {
        "cancel" => DuplicateServer::Cancel,
        "hang-up" => DuplicateServer::HangUp,
        "replace" => DuplicateServer::Replace,
        _ => return None,
    })
}

/// The file policy of its command-line name.
pub fn parse_file_policy(s: &str) -> Option<FilePolicy> {
    Some(match s {
        "unchangeable" => FilePolicy::Unchangeable,
        "volatile" => FilePolicy::Volatile,
        "backup-overwrite" => FilePolicy::BackupOverwrite,
        "backup-skip" => FilePolicy::BackupSkip,
        _ => return None,
    })
}
