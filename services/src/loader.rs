//! The loader (persistent id `spartan.loader`, service number 3): starts
//! a task from a program in the VFS root (a `.wasm` or `.wat` file) with
//! arguments, for guests over IPC; the host starts programs through
//! [`System::spawn`](crate::system::System::spawn), which uses the same
//! path rules and the same spawn.
//!
//! Protocol (methods from 1400 on, on a connection made through the
//! naming service):
//!
//! | method | arguments | answer |
//! |---|---|---|
//! | `IPC_M_DATA_WRITE` | ARG1 source, ARG2 length | the command is staged: a VFS path, then the arguments, separated by spaces (UTF-8, at most [`MAX_COMMAND`] bytes) |
//! | [`LOADER_SPAWN`] | | starts the staged command: ARG1 = the new task's id; `EINVAL` for a bad path or argument, `ENOENT` for a missing program, `EREFUSED` for a program the machine refuses |
//!
//! A program's arguments are integers, passed to its exported `main` as
//! `i64` values (the kernel has no argument vector).
//!
//! The spawn itself needs the guest scheduler, which is not the loader's:
//! a `LOADER_SPAWN` is queued ([`Loader::take_requests`]) and the driver
//! of the system ([`System`](crate::system::System)) starts the program
//! between two scheduler slices and answers the call
//! ([`Loader::finish`]; the loader's thread answers). A queued request has changed nothing: like a
//! console read waiting for a key it needs no cooperation, so every
//! connection is always checkpointable; a connection's exported state is
//! its staged command.
//!
//! Restore mode (thesis 5.3.3) is the checkpointer's
//! [`restore`](crate::checkpointer::Checkpointer::restore), which creates
//! the image's tasks from the modules the image bundles; the loader has no
//! part in it.

use std::collections::VecDeque;
use std::task::Poll;

use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME, IPC_M_DATA_WRITE};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::{NativeError, NativeTask};
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};

use crate::coop::{ConnState, Coop, Hold};
use crate::ns::NamingService;

/// Persistent service id of the loader.
pub const LOADER_ID: &str = "spartan.loader";
/// Its service number.
pub const LOADER_NUMBER: u64 = 3;
/// Starts the staged command.
pub const LOADER_SPAWN: u64 = 1400;
/// The longest command a client may stage.
pub const MAX_COMMAND: u64 = 4096;
/// The notification that wakes the loader to answer finished spawns.
pub const NOTIFY_SPAWNED: u64 = 1401;

/// A client connection's state: the command it staged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoaderConn {
    pub staged: String,
}

impl ConnState for LoaderConn {
    const VERSION: u32 = 1;
    fn checkpointable(&self) -> bool {
        // A queued spawn has changed nothing.
        true
    }
    fn export(&self) -> Vec<u8> {
        self.staged.as_bytes().to_vec()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("version {version}, the loader reads 1"));
        }
        if bytes.len() as u64 > MAX_COMMAND {
            return Err("staged command too long".into());
        }
        let staged = String::from_utf8(bytes.to_vec())
            .map_err(|_| "staged command is not UTF-8".to_string())?;
        Ok(LoaderConn { staged })
    }
}

/// A guest's request to start a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnRequest {
    /// The call to answer.
    pub rx: RxCallId,
    pub conn: ConnId,
    /// The client (kernel id).
    pub client: TaskId,
    /// The staged command: a VFS path and its arguments.
    pub command: String,
}

/// The loader service, a native program.
pub struct Loader {
    me: NativeTask,
    ns: PhoneId,
    registered: bool,
    coop: Coop<LoaderConn>,
    queue: VecDeque<SpawnRequest>,
    /// Outcomes to answer: the call, its retval and the task id.
    done: VecDeque<(RxCallId, (u64, u64))>,
}

impl Loader {
    /// Starts the loader, registering with the naming service.
    pub fn spawn(k: &mut Kernel, ns: &NamingService) -> Result<Loader, NativeError> {
        let me = k.spawn_native(
            "loader",
            TaskPolicy::Cooperative {
                service_id: LOADER_ID.into(),
            },
        );
        let phone = ns.connect(k, me.id())?;
        Ok(Loader {
            me,
            ns: phone,
            registered: false,
            coop: Coop::default(),
            queue: VecDeque::new(),
            done: VecDeque::new(),
        })
    }

    pub fn task(&self) -> TaskId {
        self.me.id()
    }

    /// The queued requests of live connections, oldest first (requests of
    /// connections held by a checkpoint stay queued).
    pub fn take_requests(&mut self, k: &Kernel) -> Vec<SpawnRequest> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(r) = self.queue.pop_front() {
            match self.coop.hold(r.conn) {
                // The client hung up or died: nothing to answer.
                None => {}
                Some(Hold::Live) if k.task(r.client).is_some() => out.push(r),
                Some(Hold::Live) => {}
                Some(_) => keep.push_back(r),
            }
        }
        self.queue = keep;
        out
    }

    /// Hands over a request's outcome (the new task's id, or why not):
    /// a notification wakes the loader's thread, which answers the call
    /// (only the loader's own thread may answer its calls).
    pub fn finish(&mut self, k: &mut Kernel, r: &SpawnRequest, result: Result<TaskId, Errno>) {
        let answer = match result {
            Ok(t) => (EOK, k.peek_task_id_seen_by(r.client, t)),
            Err(e) => (e.retval(), 0),
        };
        self.done.push_back((r.rx, answer));
        let _ = k.notify(self.me.id(), NOTIFY_SPAWNED, [0; 5]);
    }

    fn answer_done(&mut self, k: &mut Kernel) {
        while let Some((rx, (retval, id))) = self.done.pop_front() {
            let _ = self.me.answer(k, rx, retval, [id, 0, 0, 0, 0]);
        }
    }

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
        if method == IPC_M_CONNECT_ME_TO {
            self.coop.insert(ConnId(args[4]), LoaderConn::default());
            return me.answer(k, rx_id, EOK, [0; 5]);
        }
        if self.coop.get(conn).is_none() {
            return me.answer(k, rx_id, Errno::NoEntry.retval(), [0; 5]);
        }
        match method {
            IPC_M_DATA_WRITE => {
                if args[1] > MAX_COMMAND {
                    return me.answer(k, rx_id, Errno::Limit.retval(), [0; 5]);
                }
                let bytes = me.accept_data_write(k, rx_id, MAX_COMMAND)?;
                if let Some(c) = self.coop.get_mut(conn) {
                    c.staged = String::from_utf8_lossy(&bytes).into_owned();
                }
                Ok(())
            }
            LOADER_SPAWN => {
                let command = self
                    .coop
                    .get(conn)
                    .map(|c| c.staged.clone())
                    .unwrap_or_default();
                let Some(client) = k.ipc_dispatched(me.id(), rx_id).map(|c| c.caller) else {
                    return Ok(());
                };
                self.queue.push_back(SpawnRequest {
                    rx: rx_id,
                    conn,
                    client,
                    command,
                });
                Ok(())
            }
            _ => me.answer(k, rx_id, Errno::NotSupported.retval(), [0; 5]),
        }
    }
}

impl NativeProgram for Loader {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        if !self.registered {
            let _ =
                self.me
                    .call_async(k, self.ns, IPC_M_CONNECT_TO_ME, [LOADER_NUMBER, 0, 0, 0, 0]);
            self.registered = true;
        }
        loop {
            if let Some(ev) = self.coop.released() {
                let _ = self.handle(k, ev);
                continue;
            }
            match self.me.wait(k, FOREVER) {
                Ok(Poll::Ready(ev)) => {
                    if let Ok(Some(ev)) = self.coop.on_event(k, &self.me, ev) {
                        let _ = self.handle(k, ev);
                    }
                    // Its wait is over, so the thread may answer now.
                    self.answer_done(k);
                }
                Ok(Poll::Pending) => return Step::Continue,
                Err(_) => return Step::Done,
            }
        }
    }
}
