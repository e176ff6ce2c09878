//! The checkpointer (thesis 5.1.1, 5.2, Algorithms 1 to 3): checkpoint
//! sets, checkpoints with the cooperation of services, restores.
//!
//! The checkpointer is a cooperative native task (persistent id
//! [`CHECKPOINTER_ID`]) that talks to services with the messages of
//! [`coop`](crate::coop). Its operations run the system while they wait
//! for services (the scheduler goes on, so the set's tasks and the
//! services make progress until every connection is checkpointable), and
//! give up after the cooperation timeout, in virtual time in a simulation.
//!
//! - [`checkpoint_set`] (Algorithm 1): from task zero, every checkpointable
//!   task it shares distributed state with, transitively: phones in both
//!   directions and unanswered calls, forwarded ones included (stable:
//!   nothing outside depends on a member except services; complete;
//!   minimal: nothing unreachable). Cooperative services are not members:
//!   each connection of a member to one is a [`ServiceLink`]. A task that
//!   is neither (thesis 4.4.2) makes the set impossible.
//! - [`Checkpointer::checkpoint`] (Algorithm 2): asks every linked service
//!   for its connection (`IPC_M_CHKPNT_REQUEST`, answered lazily), stops
//!   the set, takes each connection's state (`IPC_M_CHKPNT_INIT` and a data
//!   read), captures the set, kills it if asked to, ends the cooperation
//!   (`IPC_M_CHKPNT_END`), resumes the set if it lives, and writes the image with the states as the
//!   tasks' cooperative blobs (service id, phone). Whatever fails, every
//!   requested service gets its end and the set is resumed: nothing is left
//!   stopped or held.
//! - [`Checkpointer::restore`] (Algorithm 3): restores the image's tasks
//!   stopped, hands each linked service its connection's state under the
//!   connection's new id (`IPC_M_RSTR_INIT`, a data write, `IPC_M_RSTR_END`),
//!   then resumes the tasks. A service that refuses kills the restored
//!   tasks, unless `err_resume` says to resume them anyway.
//!
//! Options and error policies (thesis Appendix A, 4.4.3, 4.4.7, 5.2):
//!
//! - [`CheckpointOptions::clients`]: the members' clients outside the set
//!   are included (the default), excluded (thesis 4.4.3: the restored
//!   members see them gone) or refuse the checkpoint.
//! - [`CheckpointOptions::timeout_ns`], [`RestoreOpts::timeout_ns`]: the
//!   bound on every wait for a service; a service that never answers
//!   fails the operation by it, and nothing stays stopped or held.
//! - [`RestoreOpts::missing`]: a service the image names that no task
//!   provides refuses the restore (the default) or the restored tasks'
//!   connections to it are hung up.
//! - [`RestoreOpts::duplicate`]: a service provided by several tasks
//!   refuses the restore (the default), is hung up, or is replaced by the
//!   provider the naming service registered (the others are killed).
//! - [`RestoreOpts::err_resume`]: a service refusing its part does not
//!   kill the restored tasks.
//!
//! A connection is hung up through a stand-in: a task that never runs
//! takes the connections in the kernel's restore and is killed before the
//! restored tasks resume, so the kernel hangs their phones up and fails
//! their calls to it with `EHANGUP`, as when a server ends.
//!
//! Saved files (the VFS's backup policies) come with a connection's state
//! ([`coop`](crate::coop)'s `IPC_M_CHKPNT_FILE`) and go into the image as
//! the task's `file_backups`; at restore the service asks for the ones it
//! needs (`IPC_M_RSTR_NEED`) and gets them from the image
//! (`IPC_M_RSTR_FILE`).
//!
//! A cooperative blob's data is the state's version (u32, little endian)
//! followed by the state the service exported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::task::Poll;

use snapfmt::{CoopBlob, FileBackup, FilePolicy, Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, ExcludedConn, PageLoading, RestoreOptions, Restored};
use spartan_kernel::guest::Scheduler;
use spartan_kernel::ipc::method::IPC_M_DATA_READ;
use spartan_kernel::ipc::{CallId, ConnId, EOK, Errno, Event, Phone, PhoneId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::native::{NativeError, NativeTask, SCRATCH_BASE};
use spartan_kernel::task::{TaskId, TaskPolicy};

use crate::coop::{
    CHECKPOINTER_ID, IPC_M_CHKPNT_END, IPC_M_CHKPNT_FILE, IPC_M_CHKPNT_INIT, IPC_M_CHKPNT_REQUEST,
    IPC_M_RSTR_END, IPC_M_RSTR_FILE, IPC_M_RSTR_INIT, IPC_M_RSTR_NEED, MAX_CHUNK, MAX_SAVED_FILE,
    MAX_STATE,
};

/// Where data reads land in the checkpointer's memory.
const READ_BUF: u64 = SCRATCH_BASE + (16 << 20);
/// Most saved files one connection's state may need at restore.
const MAX_FILES_NEEDED: u64 = 4096;

/// A connection of a member of the set to a cooperative service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLink {
    pub member: TaskId,
    /// The member's phone.
    pub phone: PhoneId,
    pub service: TaskId,
    pub service_id: String,
    /// The connection's id at the service.
    pub conn: ConnId,
}

/// A checkpoint set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetPlan {
    /// Task zero first, then the others in id order.
    pub members: Vec<TaskId>,
    pub links: Vec<ServiceLink>,
    /// Connections to members from clients left out of the set
    /// ([`Clients::Exclude`]): a restore hangs them up.
    pub excluded: Vec<ExcludedConn>,
}

impl SetPlan {
    /// The tasks around the set, as the manifest lists them: the services
    /// it is connected to and the clients left out of it.
    pub fn neighbours(&self, k: &Kernel) -> Vec<snapfmt::SetMember> {
        let name = |t: TaskId| k.task(t).map(|t| t.name.clone()).unwrap_or_default();
        let mut out: BTreeMap<u64, snapfmt::SetMember> = BTreeMap::new();
        for l in &self.links {
            out.entry(l.service.0)
                .or_insert_with(|| snapfmt::SetMember {
                    task_id: l.service.0,
                    name: name(l.service),
                    role: snapfmt::Role::Cooperative {
                        service_id: l.service_id.clone(),
                    },
                });
        }
        for e in &self.excluded {
            out.entry(e.client.0).or_insert_with(|| snapfmt::SetMember {
                task_id: e.client.0,
                name: name(e.client),
                role: snapfmt::Role::ExcludedClient,
            });
        }
        out.into_values().collect()
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointerError {
    #[error("task {0} does not exist")]
    NoTask(u64),
    #[error(
        "task {task} ({name}) is neither checkpointable nor cooperative, and task {via} shares state with it"
    )]
    Uncheckpointable { task: u64, name: String, via: u64 },
    #[error("task {0} is a service, not checkpointable")]
    NotCheckpointable(u64),
    #[error("service {service_id} did not {what} within {timeout_ms} ms")]
    Timeout {
        service_id: String,
        what: &'static str,
        timeout_ms: u64,
    },
    #[error("service {service_id} refused to {what}: {errno}")]
    Refused {
        service_id: String,
        what: &'static str,
        errno: Errno,
    },
    #[error("service {0} is not running")]
    MissingService(String),
    #[error(
        "service {service_id} is provided by {} tasks ({}); choose one (replace) or hang up its connections",
        tasks.len(),
        tasks.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    )]
    DuplicateService { service_id: String, tasks: Vec<u64> },
    #[error(
        "task {client} ({name}) is a client of task {member} of the set but not in it; exclude clients or include them"
    )]
    ClientOutside {
        client: u64,
        name: String,
        member: u64,
    },
    #[error("the system stopped making progress while waiting for {0}")]
    Stuck(String),
    /// The parent of an incremental checkpoint is missing, corrupted or
    /// replaced (the message names it).
    #[error("{0}")]
    Parent(String),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Restore(#[from] checkpoint::RestoreError),
    #[error(transparent)]
    Image(#[from] snapfmt::Error),
    #[error("checkpointer: {0}")]
    Native(#[from] NativeError),
    #[error("cooperative blob of {service_id} on phone {phone}: {why}")]
    Blob {
        service_id: String,
        phone: u32,
        why: String,
    },
}

/// What to do with the clients of the set's members (thesis 4.4.3,
/// "Excluding clients"): checkpointable tasks with a connection to a
/// member that the member does not itself depend on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clients {
    /// They join the set (the set is then closed under "calls" in both
    /// directions).
    #[default]
    Include,
    /// They are left out: the restored members see their connections as
    /// gone. The image lists the connections (`kernel.excluded_clients`),
    /// and a restore sends the member `IPC_M_PHONE_HUNGUP` on each, after
    /// the calls the image holds (which the member still handles; their
    /// answers go nowhere; thesis 5.4.8).
    Exclude,
    /// A set with such a client is refused, naming it.
    Refuse,
}

/// Algorithm 1: the checkpoint set of `task_zero`, clients included.
pub fn checkpoint_set(k: &Kernel, task_zero: TaskId) -> Result<SetPlan, CheckpointerError> {
    checkpoint_set_with(k, task_zero, Clients::Include)
}

/// Algorithm 1 with a choice for the members' clients.
pub fn checkpoint_set_with(
    k: &Kernel,
    task_zero: TaskId,
    clients: Clients,
) -> Result<SetPlan, CheckpointerError> {
    let t0 = k
        .task(task_zero)
        .ok_or(CheckpointerError::NoTask(task_zero.0))?;
    if t0.policy != TaskPolicy::Checkpointable {
        return Err(CheckpointerError::NotCheckpointable(task_zero.0));
    }
    let mut members = BTreeSet::from([task_zero]);
    let mut todo = vec![task_zero];
    while let Some(m) = todo.pop() {
        // Tasks it calls, tasks that call it, parties of its calls.
        let mut peers: BTreeSet<TaskId> = k
            .task(m)
            .map(|t| {
                t.phones
                    .iter()
                    .filter_map(|(_, p)| match p {
                        Phone::Connected { callee, .. } => Some(*callee),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut its_clients = BTreeSet::new();
        for other in k.task_ids() {
            let calls_m = k.task(other).is_some_and(|t| {
                t.phones
                    .iter()
                    .any(|(_, p)| matches!(p, Phone::Connected { callee, .. } if *callee == m))
            });
            if calls_m && !peers.contains(&other) {
                its_clients.insert(other);
            }
        }
        peers.extend(k.call_peers(m));
        // Tasks it shares memory with (thesis 4.4.3), except through an
        // area a cooperative service shares too (the naming service's
        // time area, a service's buffer): the service keeps that area
        // consistent through its connection, which the set's links hold,
        // and the other tasks mapping it are not part of this set's
        // state (thesis 4.4.9).
        for a in k.task_areas(m).unwrap_or_default() {
            let with_service = a.others.iter().any(|o| {
                matches!(
                    k.task(o.task).map(|t| &t.policy),
                    Some(TaskPolicy::Cooperative { .. })
                )
            });
            if !with_service {
                peers.extend(a.others.iter().map(|o| o.task));
            }
        }
        if clients == Clients::Include {
            peers.extend(its_clients.iter().copied());
        } else {
            for c in &its_clients {
                peers.remove(c);
            }
        }
        peers.remove(&m);
        if clients == Clients::Refuse
            && let Some(c) = its_clients.iter().find(|c| {
                **c != m
                    && !members.contains(c)
                    && k.task(**c)
                        .is_some_and(|t| t.policy == TaskPolicy::Checkpointable)
            })
        {
            return Err(CheckpointerError::ClientOutside {
                client: c.0,
                name: k.task(*c).map(|t| t.name.clone()).unwrap_or_default(),
                member: m.0,
            });
        }
        for p in peers {
            let Some(pt) = k.task(p) else { continue };
            match &pt.policy {
                TaskPolicy::Checkpointable => {
                    if members.insert(p) {
                        todo.push(p);
                    }
                }
                TaskPolicy::Cooperative { .. } => {}
                TaskPolicy::Neither => {
                    return Err(CheckpointerError::Uncheckpointable {
                        task: p.0,
                        name: pt.name.clone(),
                        via: m.0,
                    });
                }
            }
        }
    }
    let mut links = Vec::new();
    for &m in &members {
        for (phone, p) in k.task(m).expect("member").phones.iter() {
            let Phone::Connected { callee, conn } = p else {
                continue;
            };
            if let Some(TaskPolicy::Cooperative { service_id }) = k.task(*callee).map(|t| &t.policy)
            {
                links.push(ServiceLink {
                    member: m,
                    phone,
                    service: *callee,
                    service_id: service_id.clone(),
                    conn: *conn,
                });
            }
        }
    }
    let mut excluded = Vec::new();
    if clients == Clients::Exclude {
        for other in k.task_ids() {
            let Some(t) = k.task(other) else { continue };
            if members.contains(&other) || matches!(t.policy, TaskPolicy::Cooperative { .. }) {
                continue;
            }
            for (_, p) in t.phones.iter() {
                if let Phone::Connected { callee, conn } = p
                    && members.contains(callee)
                {
                    excluded.push(ExcludedConn {
                        member: *callee,
                        conn: *conn,
                        client: other,
                    });
                }
            }
        }
        excluded.sort();
    }
    let mut order = vec![task_zero];
    order.extend(members.iter().copied().filter(|t| *t != task_zero));
    Ok(SetPlan {
        members: order,
        links,
        excluded,
    })
}

/// How to checkpoint.
#[derive(Clone, Debug)]
pub struct CheckpointOptions {
    /// Kill the set after the checkpoint instead of resuming it.
    pub kill: bool,
    /// How long to wait for each service (ns; virtual in a simulation).
    pub timeout_ns: u64,
    pub form: ImageForm,
    /// What a restore does with the files the set has open (thesis 4.4.8;
    /// passed to every service as ARG2 of `IPC_M_CHKPNT_INIT`).
    pub file_policy: FilePolicy,
    /// The members' clients outside the set (thesis 4.4.3).
    pub clients: Clients,
    /// Write an incremental image on top of this one (issue 15): the
    /// pages the kernel knows unchanged since it are referenced from it
    /// (`checkpoint::epochs`).
    pub parent: Option<std::path::PathBuf>,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            kill: false,
            timeout_ns: 1_000_000_000,
            form: ImageForm::Directory,
            file_policy: FilePolicy::Unchangeable,
            clients: Clients::Include,
            parent: None,
        }
    }
}

/// What a checkpoint did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointReport {
    pub plan: SetPlan,
    /// Time the set was stopped (ns, kernel time).
    pub frozen_ns: u64,
    /// The same in host time (ns; for measurements, never shown to
    /// tasks).
    pub frozen_host_ns: u64,
    /// Pages referenced from the parent (0 for a full image).
    pub parent_pages: u64,
    /// Pages stored in the image's own chunks.
    pub stored_pages: u64,
    /// Why tasks or areas of an incremental image were written in full.
    pub notes: Vec<String>,
}

/// What a restore does about a service the image names that no running
/// task provides (thesis 4.4.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingServer {
    /// The restore is refused, naming the service; nothing is created.
    #[default]
    Cancel,
    /// The restored tasks' connections to it are hung up: their calls
    /// through them fail with `EHANGUP`, and they go on.
    HangUp,
}

/// What a restore does about a service the image names that more than
/// one running task provides (thesis 4.4.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DuplicateServer {
    /// The restore is refused, naming the service and the tasks; nothing
    /// is created.
    #[default]
    Cancel,
    /// The restored tasks' connections to it are hung up, as for a
    /// missing server.
    HangUp,
    /// The provider the naming service has registered (lacking one, the
    /// one with the lowest task id) serves the restored connections; the
    /// other tasks claiming the id are killed once the restore succeeded.
    Replace,
}

/// How to restore.
#[derive(Clone, Debug)]
pub struct RestoreOpts {
    /// Resume the restored tasks even if a service refuses its part
    /// (otherwise they are killed).
    pub err_resume: bool,
    pub timeout_ns: u64,
    pub missing: MissingServer,
    pub duplicate: DuplicateServer,
    /// Pages loaded before the tasks resume, or lazily (on first touch and
    /// in the background: the default; the image must stay in place until
    /// every page is in, and a page that fails its checks then kills the
    /// restored tasks, `err_resume` or not).
    pub pages: PageLoading,
}

impl Default for RestoreOpts {
    fn default() -> Self {
        RestoreOpts {
            err_resume: false,
            timeout_ns: 1_000_000_000,
            missing: MissingServer::Cancel,
            duplicate: DuplicateServer::Cancel,
            pages: PageLoading::Background,
        }
    }
}

/// The checkpointer.
pub struct Checkpointer {
    me: NativeTask,
    /// Its phones to services.
    phones: BTreeMap<TaskId, PhoneId>,
    /// Answers that arrived, by call id (late answers of abandoned calls
    /// are dropped here).
    answers: BTreeMap<CallId, (u64, [u64; 5])>,
    /// Host time the set was stopped at (measurement only).
    stopped_host: Option<std::time::Instant>,
}

impl Checkpointer {
    /// Starts the checkpointer's task.
    pub fn spawn(k: &mut Kernel) -> Checkpointer {
        let me = k.spawn_native(
            "checkpointer",
            TaskPolicy::Cooperative {
                service_id: CHECKPOINTER_ID.into(),
            },
        );
        Checkpointer {
            me,
            phones: BTreeMap::new(),
            answers: BTreeMap::new(),
            stopped_host: None,
        }
    }

    pub fn task(&self) -> TaskId {
        self.me.id()
    }

    fn phone_to(&mut self, k: &mut Kernel, service: TaskId) -> Result<PhoneId, CheckpointerError> {
        if let Some(p) = self.phones.get(&service)
            && matches!(
                k.task(self.me.id()).and_then(|t| t.phones.get(*p)),
                Some(Phone::Connected { callee, .. }) if *callee == service
            )
        {
            return Ok(*p);
        }
        let p = k
            .connect_phone(self.me.id(), service)
            .map_err(NativeError::from)?;
        self.phones.insert(service, p);
        Ok(p)
    }

    /// Sends a call and runs the system until it is answered or the
    /// deadline passes.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        service: TaskId,
        service_id: &str,
        what: &'static str,
        method: u64,
        args: [u64; 5],
        timeout_ns: u64,
    ) -> Result<[u64; 5], CheckpointerError> {
        let phone = self.phone_to(k, service)?;
        let id = self.me.call_async(k, phone, method, args)?;
        self.await_answer(k, s, id, service_id, what, timeout_ns)
    }

    fn await_answer(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        id: CallId,
        service_id: &str,
        what: &'static str,
        timeout_ns: u64,
    ) -> Result<[u64; 5], CheckpointerError> {
        let deadline = k.now().saturating_add(timeout_ns);
        loop {
            while let Ok(Poll::Ready(ev)) = self.me.wait(k, 0) {
                if let Event::Answer(a) = ev {
                    self.answers.insert(a.call_id, (a.retval, a.args));
                }
            }
            if let Some((retval, args)) = self.answers.remove(&id) {
                if retval == EOK {
                    return Ok(args);
                }
                return Err(CheckpointerError::Refused {
                    service_id: service_id.into(),
                    what,
                    errno: Errno::from_result(retval as i64).unwrap_or(Errno::Invalid),
                });
            }
            if k.now() >= deadline {
                return Err(CheckpointerError::Timeout {
                    service_id: service_id.into(),
                    what,
                    timeout_ms: timeout_ns / 1_000_000,
                });
            }
            match s.run(k, 1) {
                RunEnd::Deadlock | RunEnd::AllDone => {
                    return Err(CheckpointerError::Stuck(format!("{service_id} to {what}")));
                }
                RunEnd::StepLimit | RunEnd::Woken => {}
            }
        }
    }

    /// Reads the `n` files a service saved with a connection's state
    /// (the backup policies): each one's record, then its content in
    /// pieces.
    fn fetch_saved(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        l: &ServiceLink,
        n: u64,
        timeout_ns: u64,
    ) -> Result<Vec<(FileBackup, Vec<u8>)>, CheckpointerError> {
        let bad = |why: String| CheckpointerError::Blob {
            service_id: l.service_id.clone(),
            phone: l.phone.0,
            why,
        };
        if n > 4096 {
            return Err(bad(format!("{n} saved files")));
        }
        let mut out = Vec::new();
        for index in 0..n {
            let record = self.read_piece(k, s, l, index, u64::MAX, MAX_STATE, timeout_ns)?;
            let fb: FileBackup = postcard::from_bytes(&record.1)
                .map_err(|e| bad(format!("saved file {index}: {e}")))?;
            let mut content = Vec::new();
            loop {
                let (total, piece) = self.read_piece(
                    k,
                    s,
                    l,
                    index,
                    content.len() as u64,
                    MAX_SAVED_FILE,
                    timeout_ns,
                )?;
                content.extend(piece);
                if content.len() as u64 >= total {
                    break;
                }
            }
            if content.len() as u64 != fb.size || snapfmt::Digest::of(&content) != fb.sha256 {
                return Err(bad(format!(
                    "saved file {}: its content does not match its record",
                    fb.path
                )));
            }
            out.push((fb, content));
        }
        Ok(out)
    }

    /// One piece of a saved file: (the item's total length, the bytes).
    #[allow(clippy::too_many_arguments)]
    fn read_piece(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        l: &ServiceLink,
        index: u64,
        offset: u64,
        limit: u64,
        timeout_ns: u64,
    ) -> Result<(u64, Vec<u8>), CheckpointerError> {
        let a = self.call(
            k,
            s,
            l.service,
            &l.service_id,
            "send a saved file",
            IPC_M_CHKPNT_FILE,
            [l.conn.0, index, offset, 0, 0],
            timeout_ns,
        )?;
        let (total, n) = (a[0], a[1]);
        let from = if offset == u64::MAX { 0 } else { offset };
        if total > limit || n > MAX_CHUNK || n > total - from.min(total) || (n == 0 && from < total)
        {
            return Err(CheckpointerError::Blob {
                service_id: l.service_id.clone(),
                phone: l.phone.0,
                why: format!("saved file {index}: a piece of {n} bytes of {total} at {from}"),
            });
        }
        let phone = self.phone_to(k, l.service)?;
        let id = self
            .me
            .call_async(k, phone, IPC_M_DATA_READ, [READ_BUF, n, 0, 0, 0])?;
        let got = self.await_answer(k, s, id, &l.service_id, "send a saved file", timeout_ns)?;
        Ok((total, self.me.mem_read(k, READ_BUF, got[1].min(n))?))
    }

    /// Hands a service the saved files the state it imported for `conn`
    /// needs (asked by SHA-256), from the image.
    #[allow(clippy::too_many_arguments)]
    fn push_saved(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        image: &Image,
        record: &snapfmt::TaskRecord,
        service: TaskId,
        service_id: &str,
        conn: ConnId,
        timeout_ns: u64,
    ) -> Result<(), CheckpointerError> {
        let what = "take a saved file";
        let first = self.call(
            k,
            s,
            service,
            service_id,
            what,
            IPC_M_RSTR_NEED,
            [conn.0, 0, 0, 0, 0],
            timeout_ns,
        )?;
        let n = first[0].min(MAX_FILES_NEEDED);
        for index in 0..n {
            let a = if index == 0 {
                first
            } else {
                self.call(
                    k,
                    s,
                    service,
                    service_id,
                    what,
                    IPC_M_RSTR_NEED,
                    [conn.0, index, 0, 0, 0],
                    timeout_ns,
                )?
            };
            let mut sha = [0u8; 32];
            for w in 0..4 {
                sha[w * 8..w * 8 + 8].copy_from_slice(&a[1 + w].to_le_bytes());
            }
            let sha = snapfmt::Digest(sha);
            if !record
                .file_backups
                .iter()
                .any(|f| f.stored && f.sha256 == sha)
            {
                return Err(CheckpointerError::Blob {
                    service_id: service_id.into(),
                    phone: 0,
                    why: format!("the service needs saved file {sha}, which the image lacks"),
                });
            }
            let content = image.file_backup(&sha)?;
            let total = content.len() as u64;
            let mut at = 0u64;
            loop {
                let end = total.min(at + MAX_CHUNK);
                self.call(
                    k,
                    s,
                    service,
                    service_id,
                    what,
                    IPC_M_RSTR_FILE,
                    [conn.0, at, total, 0, 0],
                    timeout_ns,
                )?;
                let phone = self.phone_to(k, service)?;
                let id = self
                    .me
                    .data_write_start(k, phone, &content[at as usize..end as usize])?;
                self.await_answer(k, s, id, service_id, what, timeout_ns)?;
                at = end;
                if at >= total {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Algorithm 2: checkpoints the set of `task_zero` into `target`.
    pub fn checkpoint(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        task_zero: TaskId,
        target: &Path,
        opts: &CheckpointOptions,
    ) -> Result<CheckpointReport, CheckpointerError> {
        // A parent that is missing or fails its checks is refused before
        // anything is stopped.
        let parent = match &opts.parent {
            Some(p) => {
                Some(checkpoint::epochs::check_parent(p).map_err(CheckpointerError::Parent)?)
            }
            None => None,
        };
        let plan = checkpoint_set_with(k, task_zero, opts.clients)?;
        let mut requested = Vec::new();
        let mut result = self.checkpoint_inner(k, s, &plan, opts, &mut requested);
        // What the image keeps from the parent, asked of the kernel right
        // after the capture (before a kill forgets the tasks' histories).
        let mut incremental = None;
        let mut refused = None;
        if let (Ok((_, _, capture)), Some(parent)) = (&result, &parent) {
            match checkpoint::epochs::plan(k, capture, parent) {
                Ok(p) => incremental = Some(p),
                Err(e) => refused = Some(e),
            }
        }
        if let Some(e) = refused
            && let Ok((stopped, _, _)) = result
        {
            result = Err((Some(stopped), CheckpointerError::Parent(e)));
        }
        // A set to be killed dies before the services are released, so
        // what they kept back for it (a key typed meanwhile) is not handed
        // to a task that is about to go: it stays for the restored one.
        if opts.kill && result.is_ok() {
            for t in &plan.members {
                let _ = k.kill_task(*t);
            }
        }
        // The capture is taken: every service that was asked is released
        // (the calls it kept back are handled now, after the capture).
        for l in &requested {
            let end = [l.conn.0, 0, 0, 0, 0];
            let _ = self.call(
                k,
                s,
                l.service,
                &l.service_id,
                "end",
                IPC_M_CHKPNT_END,
                end,
                opts.timeout_ns,
            );
        }
        let (stopped, stopped_at, mut capture) = match result {
            Ok(x) => x,
            Err((stopped, e)) => {
                if let Some(st) = stopped {
                    st.resume(k);
                }
                return Err(e);
            }
        };
        if !opts.kill {
            stopped.resume(k);
        }
        let frozen_ns = k.now().saturating_sub(stopped_at);
        let frozen_host_ns = self
            .stopped_host
            .take()
            .map_or(0, |t| t.elapsed().as_nanos() as u64);
        for t in &mut capture.tasks {
            t.record.coop_blobs.sort_by_key(|b| b.connection);
        }
        let wopts = WriterOptions {
            form: opts.form,
            threads: 1,
            ..WriterOptions::default()
        };
        let done = match (&incremental, &opts.parent) {
            (Some(inc), Some(parent)) => capture.write_incremental(target, parent, inc, wopts)?,
            _ => capture.write(target, wopts)?,
        };
        checkpoint::epochs::note_written(k, &capture, done.manifest_digest);
        Ok(CheckpointReport {
            plan,
            frozen_ns,
            frozen_host_ns,
            parent_pages: done.stats.parent_pages,
            stored_pages: done
                .stats
                .pages_fed
                .saturating_sub(done.stats.zero_pages + done.stats.duplicate_pages),
            notes: incremental.map(|i| i.notes).unwrap_or_default(),
        })
    }

    #[allow(clippy::type_complexity)]
    /// Requests, stop, exports and the capture; the stopped set, when it
    /// was stopped, and the capture with the services' states. (The error
    /// carries the set if it was stopped, so the caller resumes it.)
    #[allow(clippy::result_large_err)]
    fn checkpoint_inner(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        plan: &SetPlan,
        opts: &CheckpointOptions,
        requested: &mut Vec<ServiceLink>,
    ) -> Result<
        (checkpoint::Stopped, u64, checkpoint::Capture),
        (Option<checkpoint::Stopped>, CheckpointerError),
    > {
        // Every connection to a service reaches a checkpointable state
        // and is held (lazily: the set runs on meanwhile).
        for l in &plan.links {
            let req = [l.conn.0, 0, 0, 0, 0];
            requested.push(l.clone());
            self.call(
                k,
                s,
                l.service,
                &l.service_id,
                "reach a checkpointable state",
                IPC_M_CHKPNT_REQUEST,
                req,
                opts.timeout_ns,
            )
            .map_err(|e| (None, e))?;
        }
        // The set may have grown while it ran.
        let now_plan =
            checkpoint_set_with(k, plan.members[0], opts.clients).map_err(|e| (None, e))?;
        if now_plan.members != plan.members || now_plan.links != plan.links {
            return Err((
                None,
                CheckpointerError::Stuck(
                    "the checkpoint set changed while services settled".into(),
                ),
            ));
        }
        let stopped = checkpoint::stop(k, &plan.members).map_err(|e| (None, e.into()))?;
        self.stopped_host = Some(std::time::Instant::now());
        let frozen_at = k.now();
        let mut blobs = Vec::new();
        let mut saved: Vec<(TaskId, (FileBackup, Vec<u8>))> = Vec::new();
        for l in &plan.links {
            let policy = opts.file_policy as u64;
            let init = [l.conn.0, policy, 0, 0, 0];
            let r = self
                .call(
                    k,
                    s,
                    l.service,
                    &l.service_id,
                    "export its state",
                    IPC_M_CHKPNT_INIT,
                    init,
                    opts.timeout_ns,
                )
                .and_then(|a| {
                    let (len, version) = (a[0], a[1] as u32);
                    if len > MAX_STATE {
                        return Err(CheckpointerError::Blob {
                            service_id: l.service_id.clone(),
                            phone: l.phone.0,
                            why: format!("{len} bytes of state"),
                        });
                    }
                    let phone = self.phone_to(k, l.service)?;
                    let id =
                        self.me
                            .call_async(k, phone, IPC_M_DATA_READ, [READ_BUF, len, 0, 0, 0])?;
                    let got = self.await_answer(
                        k,
                        s,
                        id,
                        &l.service_id,
                        "send its state",
                        opts.timeout_ns,
                    )?;
                    let mut data = version.to_le_bytes().to_vec();
                    data.extend(self.me.mem_read(k, READ_BUF, got[1])?);
                    let files = self.fetch_saved(k, s, l, a[2], opts.timeout_ns)?;
                    Ok((
                        CoopBlob {
                            service_id: l.service_id.clone(),
                            connection: l.phone.0,
                            data,
                        },
                        files,
                    ))
                });
            match r {
                Ok((b, files)) => {
                    blobs.push((l.member, b));
                    saved.extend(files.into_iter().map(|f| (l.member, f)));
                }
                Err(e) => return Err((Some(stopped), e)),
            }
        }
        let mut capture = match checkpoint::capture(k, s, &stopped) {
            Ok(c) => c,
            Err(e) => return Err((Some(stopped), e.into())),
        };
        capture.file_policy = opts.file_policy;
        capture.kill_after = opts.kill;
        capture.timeout_ms = opts.timeout_ns / 1_000_000;
        capture.excluded = plan.excluded.clone();
        capture.others = plan.neighbours(k);
        for t in &mut capture.tasks {
            t.record.coop_blobs = blobs
                .iter()
                .filter(|(m, _)| *m == t.task)
                .map(|(_, b)| b.clone())
                .collect();
            t.record.file_backups = saved
                .iter()
                .filter(|(m, _)| *m == t.task)
                .map(|(_, (fb, _))| fb.clone())
                .collect();
        }
        capture.file_contents = saved
            .into_iter()
            .map(|(_, (_, content))| content.into())
            .collect();
        Ok((stopped, frozen_at, capture))
    }

    /// Algorithm 3: restores the image at `path`.
    pub fn restore(
        &mut self,
        k: &mut Kernel,
        s: &mut Scheduler,
        path: &Path,
        opts: &RestoreOpts,
    ) -> Result<Restored, CheckpointerError> {
        let image = std::sync::Arc::new(Image::open(path)?);
        // Who provides each service now.
        let mut providers: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
        for id in k.task_ids() {
            if let Some(TaskPolicy::Cooperative { service_id }) = k.task(id).map(|t| &t.policy) {
                providers.entry(service_id.clone()).or_default().push(id);
            }
        }
        // The services the image names: by its phones and its blobs.
        let mut named = BTreeSet::new();
        let mut records = Vec::new();
        for old in image.task_ids() {
            let record = image.task(old)?;
            for slot in &record.phones {
                if let snapfmt::PhoneSlot::Connected(p) = slot
                    && let snapfmt::Peer::Service(sid) = &p.peer
                {
                    named.insert(sid.clone());
                }
            }
            named.extend(record.coop_blobs.iter().map(|b| b.service_id.clone()));
            records.push((old, record));
        }
        // Missing and duplicate servers (thesis 4.4.7).
        let mut chosen: BTreeMap<String, TaskId> = BTreeMap::new();
        let mut hang_up = BTreeSet::new();
        let mut replaced = Vec::new();
        for sid in &named {
            let now = providers.get(sid).map(Vec::as_slice).unwrap_or(&[]);
            match (now.len(), opts.missing, opts.duplicate) {
                (1, _, _) => {}
                (0, MissingServer::Cancel, _) => {
                    return Err(CheckpointerError::MissingService(sid.clone()));
                }
                (0, MissingServer::HangUp, _) | (_, _, DuplicateServer::HangUp) => {
                    hang_up.insert(sid.clone());
                }
                (_, _, DuplicateServer::Cancel) => {
                    return Err(CheckpointerError::DuplicateService {
                        service_id: sid.clone(),
                        tasks: now.iter().map(|t| t.0).collect(),
                    });
                }
                (_, _, DuplicateServer::Replace) => {
                    let keep = registered_provider(k, now).unwrap_or(now[0]);
                    chosen.insert(sid.clone(), keep);
                    replaced.extend(now.iter().copied().filter(|t| *t != keep));
                }
            }
        }
        let mut blobs = Vec::new();
        for (old, record) in &records {
            for b in &record.coop_blobs {
                if hang_up.contains(&b.service_id) {
                    continue;
                }
                if b.data.len() < 4 {
                    return Err(CheckpointerError::Blob {
                        service_id: b.service_id.clone(),
                        phone: b.connection,
                        why: "shorter than its version".into(),
                    });
                }
                blobs.push((*old, b.clone()));
            }
        }
        // A connection to hang up goes to a stand-in that never runs and
        // is killed before the restored tasks resume: the kernel then
        // hangs their phones up and fails the calls they had in it.
        let mut stand_ins = Vec::new();
        for sid in &hang_up {
            let t = k.spawn_native(&format!("stand-in for {sid}"), TaskPolicy::Neither);
            chosen.insert(sid.clone(), t.id());
            stand_ins.push(t.id());
        }
        let restored = checkpoint::restore(
            k,
            s,
            &image,
            &RestoreOptions {
                resume: false,
                services: chosen,
                pages: opts.pages,
                ..RestoreOptions::default()
            },
        );
        for t in &stand_ins {
            let _ = k.kill_task(*t);
        }
        let restored = restored?;
        let mut failed = None;
        let mut begun = Vec::new();
        for (old, b) in &blobs {
            let new = restored.tasks[old];
            let link = k
                .task(new)
                .and_then(|t| t.phones.get(PhoneId(b.connection)))
                .cloned();
            let Some(Phone::Connected { callee, conn }) = link else {
                failed = Some(CheckpointerError::Blob {
                    service_id: b.service_id.clone(),
                    phone: b.connection,
                    why: "the restored phone is not connected".into(),
                });
                break;
            };
            let version = u32::from_le_bytes(b.data[..4].try_into().expect("checked length"));
            let state = &b.data[4..];
            let init = [conn.0, u64::from(version), state.len() as u64, 0, 0];
            let r = self
                .call(
                    k,
                    s,
                    callee,
                    &b.service_id,
                    "take its state",
                    IPC_M_RSTR_INIT,
                    init,
                    opts.timeout_ns,
                )
                .and_then(|_| {
                    let phone = self.phone_to(k, callee)?;
                    let id = self.me.data_write_start(k, phone, state)?;
                    self.await_answer(k, s, id, &b.service_id, "take its state", opts.timeout_ns)
                })
                .and_then(|_| {
                    let record = image.task(*old)?;
                    self.push_saved(
                        k,
                        s,
                        &image,
                        &record,
                        callee,
                        &b.service_id,
                        conn,
                        opts.timeout_ns,
                    )
                });
            begun.push((callee, b.service_id.clone(), conn));
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
        }
        for (callee, service_id, conn) in &begun {
            let end = [conn.0, 0, 0, 0, 0];
            let r = self.call(
                k,
                s,
                *callee,
                service_id,
                "take the connection's state back (see the kernel log)",
                IPC_M_RSTR_END,
                end,
                opts.timeout_ns,
            );
            if let Err(e) = r
                && failed.is_none()
            {
                failed = Some(e);
            }
        }
        match failed {
            Some(e) if !opts.err_resume => {
                for t in restored.tasks.values() {
                    let _ = k.kill_task(*t);
                }
                Err(e)
            }
            _ => {
                for t in replaced {
                    let _ = k.kill_task(t);
                }
                restored.resume(k);
                Ok(restored)
            }
        }
    }
}

/// Of `tasks` (providers of one service id), the one a naming service has
/// registered: the one a naming service holds a phone to.
fn registered_provider(k: &Kernel, tasks: &[TaskId]) -> Option<TaskId> {
    let ns: Vec<TaskId> = k
        .task_ids()
        .into_iter()
        .filter(|t| {
            matches!(
                k.task(*t).map(|t| &t.policy),
                Some(TaskPolicy::Cooperative { service_id }) if service_id == crate::ns::NS_SERVICE_ID
            )
        })
        .collect();
    tasks.iter().copied().find(|p| {
        ns.iter().any(|n| {
            k.task(*n).is_some_and(|t| {
                t.phones
                    .iter()
                    .any(|(_, ph)| matches!(ph, Phone::Connected { callee, .. } if callee == p))
            })
        })
    })
}
