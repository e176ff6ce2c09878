//! Restoring an image into a running kernel: new tasks, threads at their
//! states, areas and pages, phones, pending calls and the id view.
//!
//! Everything that depends only on the image (task and kernel state
//! records, modules, address spaces with their pages, instances, thread states) is
//! built and checked first, without touching the kernel. Then
//! `Kernel::import_tasks` recreates the IPC state (it undoes itself on
//! failure), and the rest cannot fail: the tasks get their memory, id
//! views and machine threads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use snapfmt::exec::Suspension;
use snapfmt::{
    AreaRecord, Backing, CallDetail, CallParties, ConnectDetail, Image, KernelTaskState, ModuleRef,
    PAGE_SIZE, Peer, PhoneState, Role, TaskRecord,
};

use super::capture::build_hash;
use super::id_view::IdView;
use super::lazy::{AreaSource, FillTarget, LazyFill, LazyState, PageLoading};
use super::schedule::SetSchedule;
use super::supplement::state_from_extra;
use super::{RestoreError, back_to_sleep};
use crate::guest::image::RestoredThread;
use crate::guest::load::resolve_imports;
use crate::guest::sched::widen;
use crate::guest::{GuestMemory, Scheduler};
use crate::ipc::{
    Answer, Call, CallBuffer, CallId, CallKey, ConnId, ConnectInfo, Notification, Phone, PhoneId,
    RxCallId, SyncWaiter,
};
use crate::kernel::Kernel;
use crate::machine::{self, Extern, Instance, Module};
use crate::mm::{AddressSpace, AreaFlags, BackingId, Page, SharedBacking, WASM_PAGE_SIZE};
use crate::syscall::{PendingSyscall, SyscallState, Sysno};
use crate::task::image::{GHOST_BASE, TaskImage, ThreadImage, ghost};
use crate::task::{TaskId, TaskKind, TaskPolicy, ThreadId};

/// Keys standing for cooperative services in the IPC import (far above
/// any task id, below the id view's aliases).
const SERVICE_KEY_BASE: u64 = 1 << 61;

/// How to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Tasks outside the set, by their id in the image, and their current
    /// ids (clients and servers that were not checkpointed).
    pub outside: BTreeMap<u64, TaskId>,
    /// Refuse threads saved by another kernel build.
    pub check_build_hash: bool,
    /// Resume the tasks at once (otherwise they stay stopped until
    /// [`Restored::resume`]).
    pub resume: bool,
    /// Threads decoding page chunks (eager loading).
    pub threads: usize,
    /// Pages loaded before the tasks run, or lazily (`lazy.rs`).
    pub pages: PageLoading,
    /// Which task provides a cooperative service, by persistent id, where
    /// the caller decides (the checkpointer resolving a duplicate or
    /// missing server, thesis 4.4.7); any other service id is the running
    /// task with that id and the lowest task id.
    pub services: BTreeMap<String, TaskId>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            outside: BTreeMap::new(),
            check_build_hash: false,
            resume: true,
            threads: 2,
            pages: PageLoading::Eager,
            services: BTreeMap::new(),
        }
    }
}

/// What a restore created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Id in the image -> new task id.
    pub tasks: BTreeMap<u64, TaskId>,
    /// Thread id in the image -> new thread id.
    pub threads: BTreeMap<ThreadId, ThreadId>,
    /// Restored threads that were asleep in a system call at the
    /// checkpoint (they go back to sleep when resumed).
    pub asleep: Vec<ThreadId>,
}

impl Restored {
    /// Resumes the restored tasks (after a restore with `resume: false`):
    /// threads that were asleep go back to sleep in their call without
    /// taking a turn of the scheduler.
    pub fn resume(&self, k: &mut Kernel) {
        for new in self.tasks.values() {
            let _ = k.resume_task(*new);
        }
        back_to_sleep(k, &self.asleep);
    }
}

/// Kernel time (ns) at which the image was captured.
pub fn capture_time_ns(image: &Image) -> u64 {
    let c = image.manifest().created;
    (c.seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(c.nanos))
}

/// One task, built from the image, not yet in the kernel.
struct Prepared {
    old: u64,
    record: Arc<TaskRecord>,
    kstate: KernelTaskState,
    module: Arc<[u8]>,
    instance: Instance,
    sysnos: Vec<Sysno>,
    space: AddressSpace,
    threads: Vec<(ThreadId, machine::Thread)>,
    /// The sources of the areas left pending in the image (lazy restore).
    lazy: Vec<Arc<AreaSource>>,
}

/// Restores every task of `image` into `k` and `s`. With lazy
/// [`RestoreOptions::pages`] the tasks hold the image (shared) until their
/// pages are in, and the scheduler fills them in (`lazy.rs`).
pub fn restore(
    k: &mut Kernel,
    s: &mut Scheduler,
    image: &Arc<Image>,
    opts: &RestoreOptions,
) -> Result<Restored, RestoreError> {
    let lazy = opts
        .pages
        .is_lazy()
        .then(|| LazyState::new(image.path().to_path_buf()));
    if lazy.is_some() {
        // Pages will be read later: every ancestor holding some must be
        // there and be the one the image names, now.
        image.parent_chain()?;
    }
    let manifest = image.manifest();
    if manifest.kernel_abi_version != crate::ABI_VERSION {
        return Err(RestoreError::Abi {
            image: manifest.kernel_abi_version,
            kernel: crate::ABI_VERSION,
        });
    }
    let set: Vec<u64> = manifest
        .checkpoint_set
        .iter()
        .filter(|m| m.role == Role::Checkpointable)
        .map(|m| m.task_id)
        .collect();
    let members: BTreeSet<u64> = set.iter().copied().collect();
    let mut records = Vec::with_capacity(set.len());
    for &id in &set {
        let record = image.task(id)?;
        // Since 1.2 a record of its own; images of 1.1 kernels carry it in
        // the manifest's `options.extra`.
        let kstate = match image.kernel_state(id)? {
            Some(k) => KernelTaskState::clone(&k),
            None => state_from_extra(&manifest.options.extra, id)
                .map_err(|error| RestoreError::Supplement { task: id, error })?,
        };
        check_shape(id, &record, &kstate, opts)?;
        records.push((id, record, kstate));
    }

    // The set's place in the schedule (1.3), and its time: a kernel whose
    // virtual clock is behind the capture (booted since) goes on from
    // the capture's time, so deadlines and the time tasks read continue.
    let mut set_threads = BTreeSet::new();
    for (id, r, _) in &records {
        for t in &r.threads {
            if !set_threads.insert(ThreadId(t.thread_id)) {
                return Err(RestoreError::Inconsistent {
                    task: *id,
                    what: format!("thread {} is a thread of another task too", t.thread_id),
                });
            }
        }
    }
    let sched = SetSchedule::from_extra(&manifest.options.extra, &set_threads)
        .map_err(RestoreError::Schedule)?;
    if let Some(s) = &sched
        && (s.next_thread_id >= ID_LIMIT || s.cursor.is_some_and(|c| c.0 >= ID_LIMIT))
    {
        return Err(RestoreError::Schedule(
            "thread ids in options.extra are out of range (ids are below 2^63)".into(),
        ));
    }
    let excluded = super::excluded::from_extra(&manifest.options.extra, &members)
        .map_err(RestoreError::Schedule)?;
    let epochs = super::epochs::from_extra(&manifest.options.extra, &members)
        .map_err(RestoreError::Schedule)?;
    let captured_at = capture_time_ns(image);
    let now = if k.clock_is_virtual() {
        k.now().max(captured_at)
    } else {
        k.now()
    };

    // Peers: services by persistent id, outside tasks by the caller's map.
    let mut keys = PeerKeys::new(k, &members, &opts.outside);
    keys.live_services
        .extend(opts.services.iter().map(|(s, t)| (s.clone(), *t)));
    let mut images = Vec::with_capacity(records.len());
    for (id, record, kstate) in &records {
        images.push(task_image(*id, record, kstate, &mut keys, now)?);
    }

    // Memory, modules, instances, threads: all checked before the kernel
    // changes.
    let shared = shared_backings(k, &records, &keys)?;
    let mut prepared = Vec::with_capacity(records.len());
    for (id, record, kstate) in records {
        let lazy = lazy.as_ref().map(|st| (image, st));
        prepared.push(prepare(s, image, lazy, opts, id, record, kstate, &shared)?);
    }

    // The system call in progress was recorded by import index.
    for (img, p) in images.iter_mut().zip(&prepared) {
        for th in &mut img.threads {
            if let Some(ip) = &mut th.sys.in_progress {
                let nr =
                    p.sysnos
                        .get(ip.number as usize)
                        .ok_or_else(|| RestoreError::Inconsistent {
                            task: p.old,
                            what: format!("thread {:?} is in import {}", th.id, ip.number),
                        })?;
                ip.number = *nr as u32;
            }
        }
    }
    let imported = k.import_tasks(&images, &keys.outside)?;
    if k.clock_is_virtual() {
        k.advance_time_to(captured_at);
    }
    let domain = sched.as_ref().map(|s| k.new_id_domain(s.next_thread_id));
    let mut done = Restored {
        tasks: imported
            .tasks
            .iter()
            .map(|(old, new)| (old.0, *new))
            .collect(),
        threads: imported.threads.clone(),
        asleep: Vec::new(),
    };
    let mut asleep = Vec::new();
    let mut targets = Vec::new();
    for mut p in prepared {
        let new = done.tasks[&p.old];
        targets.extend(
            std::mem::take(&mut p.lazy)
                .into_iter()
                .map(|source| FillTarget { task: new, source }),
        );
        for (ctx, d) in p.record.threads.iter().zip(&p.kstate.threads) {
            if d.asleep
                && let Some(t) = done.threads.get(&ThreadId(ctx.thread_id))
            {
                asleep.push(*t);
            }
        }
        let mut view = id_view(k, &p, &done, &keys);
        view.domain = domain;
        let backing = k.new_backing();
        // The task was created just now by `import_tasks`.
        let _ = k.replace_memory(new, Box::new(GuestMemory::new(p.space, backing)));
        if let Some(t) = k.tasks.get_mut(&new) {
            t.kind = TaskKind::Guest;
        }
        k.set_id_view(new, view);
        let threads = p
            .threads
            .into_iter()
            .zip(&p.kstate.threads)
            .filter_map(|((old, machine), d)| {
                Some(RestoredThread {
                    thread: *done.threads.get(&old)?,
                    machine,
                    then: d.then.clone().map(|e| (e.func_index, e.args)),
                })
            })
            .collect();
        let args = p.record.meta.args.clone();
        s.install_guest(new, p.instance, p.sysnos, p.module, args, threads);
    }
    super::epochs::restored(k, image.manifest_digest(), &epochs, &done.tasks);
    // Sleepers take new wait sequence numbers in the order they went to
    // sleep (before 1.3: by thread id), so they queue as they did.
    let order = sched
        .as_ref()
        .map(|s| s.wait_order.as_slice())
        .unwrap_or(&[]);
    let mut ranked: Vec<ThreadId> = order
        .iter()
        .filter_map(|old| done.threads.get(old).copied())
        .collect();
    asleep.sort();
    for t in &asleep {
        if !ranked.contains(t) {
            ranked.push(*t);
        }
    }
    for t in &ranked {
        k.renumber_sleep(*t);
    }
    done.asleep = ranked;
    if let Some(cursor) = sched.as_ref().and_then(|s| s.cursor) {
        s.set_cursor(Some(cursor));
        s.remap_cursor(&done.threads);
    }
    // Clients left out of the set are gone for the members: each
    // connection of theirs is hung up, after the calls the image holds.
    for e in &excluded {
        if let Some(member) = done.tasks.get(&e.member.0) {
            k.send_hungup(ghost(e.client), *member, e.conn);
        }
    }
    if let Some(state) = lazy {
        let tasks = done.tasks.values().copied().collect();
        let fill = LazyFill::start(image, state, tasks, targets, opts.pages, k.waker());
        s.add_lazy_fill(fill);
    }
    if opts.resume {
        done.resume(k);
    }
    done.threads.retain(|_, new| k.thread(*new).is_some());
    Ok(done)
}

/// Checks that the kernel state fits the record (the reader checks a
/// kernel state record, not a 1.1 supplement), and the build hashes.
fn check_shape(
    id: u64,
    record: &TaskRecord,
    sup: &KernelTaskState,
    opts: &RestoreOptions,
) -> Result<(), RestoreError> {
    let bad = |what: String| RestoreError::Inconsistent { task: id, what };
    if record.meta.task_id != id {
        return Err(bad(format!("record names task {}", record.meta.task_id)));
    }
    if sup.calls.len() != record.calls.len() {
        return Err(bad(format!(
            "{} calls but {} call details",
            record.calls.len(),
            sup.calls.len()
        )));
    }
    if sup.threads.len() != record.threads.len() {
        return Err(bad(format!(
            "{} threads but {} thread details",
            record.threads.len(),
            sup.threads.len()
        )));
    }
    check_ids(id, record, sup).map_err(bad)?;
    check_sync_waiters(record).map_err(bad)?;
    if opts.check_build_hash {
        let mine = build_hash();
        for th in &record.threads {
            if th.kernel_build_hash != mine {
                return Err(RestoreError::BuildHash {
                    task: id,
                    thread: th.thread_id,
                    image: th.kernel_build_hash.to_hex(),
                    kernel: mine.to_hex(),
                });
            }
        }
    }
    Ok(())
}

/// Ids and id counters of an image are below this: the kernel counts on
/// from them (`+ 1` must neither overflow nor wrap to 0, which means
/// "none"), and shows aliases from `id_view::ALIAS_BASE` on.
pub const ID_LIMIT: u64 = 1 << 63;

/// Checks that every id and counter of a task's records is below
/// [`ID_LIMIT`]; the error names the first one that is not.
fn check_ids(id: u64, record: &TaskRecord, sup: &KernelTaskState) -> Result<(), String> {
    let ok = |what: &str, v: u64| {
        if v < ID_LIMIT {
            Ok(())
        } else {
            Err(format!("{what} {v} is out of range (ids are below 2^63)"))
        }
    };
    ok("task id", id)?;
    let c = &sup.counters;
    ok("counter next_call_id", c.next_call_id)?;
    ok("counter next_rx_call_id", c.next_rx_call_id)?;
    ok("counter next_conn_id", c.next_conn_id)?;
    for m in &record.meta.id_view {
        ok("seen task id", m.seen)?;
    }
    for (i, p) in record.phones.iter().enumerate() {
        if let snapfmt::PhoneSlot::Connected(p) = p {
            ok(&format!("phone {i}: connection id"), p.receiver_side_id)?;
        }
    }
    for (t, d) in record.threads.iter().zip(&sup.threads) {
        ok("thread id", t.thread_id)?;
        if let Some(c) = t.active_sync_call {
            ok(&format!("thread {}: active_sync_call", t.thread_id), c)?;
        }
        ok(&format!("thread {}: seen id", t.thread_id), d.seen_id)?;
        ok(&format!("thread {}: index", t.thread_id), d.index)?;
    }
    for (i, (pc, d)) in record.calls.iter().zip(&sup.calls).enumerate() {
        ok(&format!("calls[{i}]: sender-side id"), pc.sender_side_id)?;
        ok(
            &format!("calls[{i}]: receiver-side id"),
            pc.receiver_side_id,
        )?;
        if let CallDetail::Call(p) = d {
            ok(&format!("calls[{i}]: connection id"), p.conn)?;
            match &p.connect {
                Some(ConnectDetail::MeTo { conn, .. } | ConnectDetail::ToReceiver { conn, .. }) => {
                    ok(&format!("calls[{i}]: new connection id"), *conn)?
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// Checks that a thread waiting for a synchronous call waits for one of
/// its own: the call is in the task's `Synchronous` queue and names the
/// thread as its waiter. (Two threads waiting for one call would leave the
/// second waiting for a call that is gone once the first has its answer.)
fn check_sync_waiters(record: &TaskRecord) -> Result<(), String> {
    for t in &record.threads {
        let Some(c) = t.active_sync_call else {
            continue;
        };
        let own = record.calls.iter().any(|pc| {
            pc.queue == snapfmt::CallQueue::Synchronous
                && pc.sender_side_id == c
                && pc.thread == Some(t.thread_id)
        });
        if !own {
            return Err(format!(
                "thread {} waits for synchronous call {c}, which is not a synchronous call of that thread",
                t.thread_id
            ));
        }
    }
    Ok(())
}

/// How peers of the image become task ids for `Kernel::import_tasks`.
struct PeerKeys {
    members: BTreeSet<u64>,
    /// Key -> current task, for tasks outside the set.
    outside: BTreeMap<TaskId, TaskId>,
    services: BTreeMap<String, TaskId>,
    live_services: BTreeMap<String, TaskId>,
}

impl PeerKeys {
    fn new(k: &Kernel, members: &BTreeSet<u64>, outside: &BTreeMap<u64, TaskId>) -> Self {
        let mut live_services = BTreeMap::new();
        for id in k.task_ids() {
            if let Some(TaskPolicy::Cooperative { service_id }) = k.task(id).map(|t| &t.policy) {
                live_services.entry(service_id.clone()).or_insert(id);
            }
        }
        PeerKeys {
            members: members.clone(),
            outside: outside.iter().map(|(o, n)| (TaskId(*o), *n)).collect(),
            services: BTreeMap::new(),
            live_services,
        }
    }

    /// The import key of `peer`.
    fn key(&mut self, task: u64, peer: &Peer) -> Result<TaskId, RestoreError> {
        match peer {
            Peer::Task(t) if self.members.contains(t) => Ok(TaskId(*t)),
            Peer::Task(_) => Err(RestoreError::Inconsistent {
                task,
                what: format!("{peer:?} is not in the checkpoint set"),
            }),
            Peer::Outside(t) if *t >= SERVICE_KEY_BASE || self.members.contains(t) => {
                Err(RestoreError::Inconsistent {
                    task,
                    what: format!("{peer:?} is not a task outside the set"),
                })
            }
            Peer::Outside(t) => Ok(TaskId(*t)),
            Peer::Service(sid) => {
                if let Some(k) = self.services.get(sid) {
                    return Ok(*k);
                }
                let key = TaskId(SERVICE_KEY_BASE + self.services.len() as u64);
                self.services.insert(sid.clone(), key);
                if let Some(live) = self.live_services.get(sid) {
                    self.outside.insert(key, *live);
                }
                Ok(key)
            }
        }
    }

    /// The current task `peer` names, if it is running (set members are
    /// not: they are being created).
    fn live(&self, peer: &Peer, outside: &BTreeMap<u64, TaskId>) -> Option<TaskId> {
        match peer {
            Peer::Task(_) => None,
            Peer::Outside(t) => outside.get(t).copied(),
            Peer::Service(sid) => self.live_services.get(sid).copied(),
        }
    }
}

/// The kernel's import form of one task's IPC and system call state.
fn task_image(
    id: u64,
    record: &TaskRecord,
    sup: &KernelTaskState,
    keys: &mut PeerKeys,
    now: u64,
) -> Result<TaskImage, RestoreError> {
    let bad = |what: String| RestoreError::Inconsistent { task: id, what };
    let mut phones: Vec<Option<Phone>> = Vec::with_capacity(record.phones.len());
    for slot in &record.phones {
        phones.push(match slot {
            snapfmt::PhoneSlot::Free => None,
            snapfmt::PhoneSlot::Connected(p) => Some(Phone::Connected {
                callee: keys.key(id, &p.peer)?,
                conn: ConnId(p.receiver_side_id),
            }),
        });
    }
    for sp in &sup.phones {
        let (slot, state) = (&sp.slot, &sp.state);
        let i = *slot as usize;
        let cur = phones
            .get_mut(i)
            .ok_or_else(|| bad(format!("phone state for slot {slot} past the table")))?;
        *cur = match (state, cur.take()) {
            (PhoneState::Connecting, None) => Some(Phone::Connecting),
            (PhoneState::Slammed, Some(Phone::Connected { callee, conn })) => {
                Some(Phone::Slammed { callee, conn })
            }
            _ => return Err(bad(format!("phone slot {slot} cannot be {state:?}"))),
        };
    }

    let mut held_undelivered = Vec::new();
    let mut held_dispatched = Vec::new();
    let mut out_calls = Vec::new();
    let mut answers = Vec::new();
    for (pc, detail) in record.calls.iter().zip(&sup.calls) {
        use snapfmt::CallQueue as Q;
        let mut args = [0u64; 5];
        args.copy_from_slice(&pc.words[1..]);
        match (pc.queue, detail) {
            (Q::UndeliveredAnswer, CallDetail::Answer) => answers.push(Answer {
                call_id: CallId(pc.sender_side_id),
                retval: pc.words[0],
                args,
            }),
            (Q::UndeliveredAnswer, _) | (_, CallDetail::Answer) => {
                return Err(bad(format!(
                    "call {} in {:?} with detail {detail:?}",
                    pc.sender_side_id, pc.queue
                )));
            }
            (
                queue,
                CallDetail::Call(CallParties {
                    caller,
                    receiver,
                    caller_phone,
                    conn,
                    forwarded_by,
                    answer_ptr,
                    read,
                    connect,
                    discard_answer,
                    offer_revoked,
                }),
            ) => {
                let buffer = match (&pc.buffer, read) {
                    (None, None) => CallBuffer::None,
                    (Some(b), None) if b.kind == snapfmt::BufferKind::DataWrite => {
                        CallBuffer::Write(b.bytes.clone())
                    }
                    (None, Some(r)) => CallBuffer::Read {
                        dst: r.dst,
                        room: r.room,
                    },
                    _ => return Err(bad(format!("call {}: buffer", pc.sender_side_id))),
                };
                let sync = match (pc.thread, answer_ptr) {
                    (Some(t), Some(p)) => Some(SyncWaiter {
                        thread: ThreadId(t),
                        answer_ptr: *p,
                    }),
                    (None, None) => None,
                    _ => return Err(bad(format!("call {}: waiter", pc.sender_side_id))),
                };
                let connect = match connect {
                    None => None,
                    Some(ConnectDetail::MeTo { phone, conn }) => Some(ConnectInfo::MeTo {
                        phone: PhoneId(*phone),
                        conn: ConnId(*conn),
                    }),
                    Some(ConnectDetail::ToReceiver {
                        target,
                        conn,
                        phone,
                    }) => Some(ConnectInfo::ToReceiver {
                        target: keys.key(id, target)?,
                        conn: ConnId(*conn),
                        phone: phone.map(PhoneId),
                    }),
                };
                let forwarded_by = forwarded_by
                    .iter()
                    .map(|p| keys.key(id, p))
                    .collect::<Result<Vec<_>, _>>()?;
                let call = Call {
                    key: CallKey(0),
                    method: pc.words[0],
                    args,
                    caller: keys.key(id, caller)?,
                    caller_phone: caller_phone.map(PhoneId),
                    call_id: CallId(pc.sender_side_id),
                    receiver: keys.key(id, receiver)?,
                    rx_id: RxCallId(pc.receiver_side_id),
                    conn: ConnId(*conn),
                    forwarded_by,
                    dispatched: queue == Q::Dispatched,
                    sync,
                    buffer,
                    connect,
                    discard_answer: *discard_answer,
                    offer_revoked: *offer_revoked,
                };
                let (is_caller, is_receiver) =
                    (call.caller == TaskId(id), call.receiver == TaskId(id));
                match queue {
                    Q::Undispatched if is_receiver => held_undelivered.push(call),
                    Q::Dispatched if is_receiver => held_dispatched.push(call),
                    Q::Sent | Q::Forwarded | Q::Synchronous if is_caller => out_calls.push(call),
                    _ => {
                        return Err(bad(format!(
                            "call {} in {queue:?} does not belong to this task",
                            pc.sender_side_id
                        )));
                    }
                }
            }
        }
    }
    let mut held = held_undelivered;
    held.extend(held_dispatched);

    let mut threads = Vec::with_capacity(record.threads.len());
    for (ctx, d) in record.threads.iter().zip(&sup.threads) {
        let in_progress = match (&ctx.syscall, &ctx.exec.suspension) {
            (snapfmt::SyscallState::None, _) => None,
            (_, Suspension::HostCall { import, args }) => Some((*import, args)),
            _ => {
                return Err(bad(format!(
                    "thread {} is in a system call but not in a host call",
                    ctx.thread_id
                )));
            }
        };
        let completed = match &ctx.syscall {
            snapfmt::SyscallState::Complete { results } => match results.as_slice() {
                [snapfmt::exec::Value::I64(v)] => Some(*v as i64),
                _ => return Err(bad(format!("thread {}: results", ctx.thread_id))),
            },
            _ => None,
        };
        threads.push(ThreadImage {
            id: ThreadId(ctx.thread_id),
            index: d.index,
            sys: SyscallState {
                // The number is filled in by `prepare` (it needs the module).
                in_progress: in_progress.map(|(import, args)| PendingSyscall {
                    number: import,
                    args: args.iter().map(widen).collect(),
                    deadline: d.remaining_ns.map(|r| now.saturating_add(r)),
                }),
                active_sync_call: ctx.active_sync_call.map(CallId),
                completed,
            },
        });
    }
    Ok(TaskImage {
        task: TaskId(id),
        name: record.meta.name.clone(),
        policy: TaskPolicy::Checkpointable,
        counters: sup.counters,
        phones,
        held,
        out_calls,
        answers,
        notifications: sup
            .notifications
            .iter()
            .map(|n| Notification {
                method: n.method,
                args: n.args,
            })
            .collect(),
        threads,
    })
}

/// The backing of every shared area of the set, by (task, base): one per
/// group of areas sharing it; an outside holder's live backing if the group
/// has one, else a new backing (filled from the image later).
type SharedMap = BTreeMap<(u64, u64), (SharedBacking, bool)>;

fn shared_backings(
    k: &mut Kernel,
    records: &[(u64, Arc<TaskRecord>, KernelTaskState)],
    keys: &PeerKeys,
) -> Result<SharedMap, RestoreError> {
    let areas: BTreeMap<(u64, u64), &AreaRecord> = records
        .iter()
        .flat_map(|(id, r, _)| r.areas.iter().map(move |a| ((*id, a.base), a)))
        .filter(|(_, a)| !a.sharing.is_empty())
        .collect();
    let mut out = SharedMap::new();
    let outside: BTreeMap<u64, TaskId> = keys
        .outside
        .iter()
        .map(|(key, cur)| (key.0, *cur))
        .collect();
    for (&(task, base), area) in &areas {
        if out.contains_key(&(task, base)) {
            continue;
        }
        // The group: this area and the set's areas it names (transitively).
        let mut group = vec![(task, base)];
        let mut live = None;
        let mut i = 0;
        while i < group.len() {
            let a = areas[&group[i]];
            for sh in &a.sharing {
                match &sh.with {
                    Peer::Task(t) => {
                        let other = areas.get(&(*t, sh.base)).ok_or_else(|| {
                            RestoreError::Inconsistent {
                                task: group[i].0,
                                what: format!(
                                    "area {:#x} shared with task {t} at {:#x}, which has no such shared area",
                                    a.base, sh.base
                                ),
                            }
                        })?;
                        if other.size != a.size {
                            return Err(RestoreError::Inconsistent {
                                task: group[i].0,
                                what: format!("shared area {:#x} sizes differ", a.base),
                            });
                        }
                        if !group.contains(&(*t, sh.base)) {
                            group.push((*t, sh.base));
                        }
                    }
                    peer => {
                        let handle = keys
                            .live(peer, &outside)
                            .and_then(|t| k.task(t))
                            .and_then(|t| t.memory.shared_backing(sh.base))
                            .ok_or_else(|| RestoreError::MissingPeer {
                                task: group[i].0,
                                peer: peer.clone(),
                            })?;
                        live.get_or_insert(handle);
                    }
                }
            }
            i += 1;
        }
        let (handle, fill) =
            match live {
                Some(h) => (h, false),
                None => {
                    let id = BackingId(k.new_backing().0);
                    let h = SharedBacking::new(id, area.size)
                        .map_err(|error| RestoreError::Area { task, base, error })?;
                    (h, true)
                }
            };
        for (n, member) in group.iter().enumerate() {
            // Pages go in once, through the group's first member.
            out.insert(*member, (handle.clone(), fill && n == 0));
        }
    }
    Ok(out)
}

/// Builds one task's memory, module instance and threads from the image
/// (with `lazy`, its stored pages pending in the image instead of loaded).
#[allow(clippy::too_many_arguments)]
fn prepare(
    s: &Scheduler,
    image: &Image,
    lazy: Option<(&Arc<Image>, &Arc<LazyState>)>,
    opts: &RestoreOptions,
    id: u64,
    record: Arc<TaskRecord>,
    kstate: KernelTaskState,
    shared: &SharedMap,
) -> Result<Prepared, RestoreError> {
    let sha = match &record.meta.module {
        ModuleRef::Embedded { sha256, .. } => *sha256,
        ModuleRef::External { path, .. } => {
            return Err(RestoreError::Module {
                task: id,
                what: format!("{path}: modules by path need the loader service"),
            });
        }
    };
    let bytes: Arc<[u8]> = image.module(&sha)?.into();
    let load = |error| RestoreError::Load { task: id, error };
    let module = Module::new(&bytes).map_err(|e| load(e.into()))?;
    let sysnos = resolve_imports(&module).map_err(load)?;

    let mut space = AddressSpace::new(s.config.mem_limits);
    let mut pending = Vec::new();
    for area in &record.areas {
        let err = |error| RestoreError::Area {
            task: id,
            base: area.base,
            error,
        };
        let flags =
            AreaFlags::from_bits(area.flags & 3).ok_or_else(|| RestoreError::Inconsistent {
                task: id,
                what: format!("area {:#x}: flags {:#x}", area.base, area.flags),
            })?;
        let fill = match &area.backing {
            Backing::Primary { max_pages } => {
                if area.base != 0 || area.size % WASM_PAGE_SIZE != 0 {
                    return Err(RestoreError::Inconsistent {
                        task: id,
                        what: format!("primary area {:#x}+{:#x}", area.base, area.size),
                    });
                }
                let pages = u32::try_from(area.size / WASM_PAGE_SIZE).unwrap_or(u32::MAX);
                space.create_primary(pages, *max_pages).map_err(err)?;
                true
            }
            Backing::Anonymous if area.sharing.is_empty() => {
                space
                    .create_area(area.base, area.size, flags)
                    .map_err(err)?;
                true
            }
            Backing::Anonymous => {
                let (handle, fill) =
                    shared
                        .get(&(id, area.base))
                        .ok_or_else(|| RestoreError::Inconsistent {
                            task: id,
                            what: format!("shared area {:#x} has no backing", area.base),
                        })?;
                space.map_shared(area.base, handle, flags).map_err(err)?;
                *fill
            }
        };
        if let (true, Some((img, state))) = (fill, lazy) {
            if !area.pages.runs.is_empty() {
                let (source, p) = AreaSource::pending(img, id, area, state);
                space.set_pending(area.base, p).map_err(err)?;
                pending.push(source);
            }
        } else if fill {
            load_pages(image, area, &mut space, opts.threads).map_err(|e| match e {
                PageError::Image(e) => RestoreError::Image(e),
                PageError::Mm(error) => err(error),
            })?;
        }
    }

    let imports = vec![Extern::Func; sysnos.len()];
    let instance = Instance::restore(
        module,
        &mut space,
        &s.config.limits,
        &imports,
        &record.instance,
    )
    .map_err(|error| RestoreError::Instance { task: id, error })?;
    let mut threads = Vec::with_capacity(record.threads.len());
    for ctx in &record.threads {
        let t = machine::Thread::import_state(&instance, &ctx.exec).map_err(|error| {
            RestoreError::Thread {
                task: id,
                thread: ctx.thread_id,
                error,
            }
        })?;
        threads.push((ThreadId(ctx.thread_id), t));
    }
    Ok(Prepared {
        old: id,
        record,
        kstate,
        module: bytes,
        instance,
        sysnos,
        space,
        threads,
        lazy: pending,
    })
}

enum PageError {
    Image(snapfmt::Error),
    Mm(crate::mm::MmError),
}

/// Installs the stored pages of `area` (zero pages stay untouched).
fn load_pages(
    image: &Image,
    area: &AreaRecord,
    space: &mut AddressSpace,
    threads: usize,
) -> Result<(), PageError> {
    if area.pages.runs.is_empty() {
        return Ok(());
    }
    let mut mm_err = None;
    let r = image.for_each_page(area, threads, |index, bytes| {
        if bytes.iter().all(|b| *b == 0) {
            return Ok(());
        }
        // One allocation and one copy straight from the decoded chunk into
        // the page's final place (`restore_page(&Page)` went through a
        // 4 KiB temporary); the slice-to-array conversion moves no bytes.
        let Ok(page) = Arc::<Page>::try_from(Arc::<[u8]>::from(bytes)) else {
            return Err(snapfmt::Error::Usage("page of the wrong size".into()));
        };
        let addr = area.base + u64::from(index) * PAGE_SIZE as u64;
        if let Err(e) = space.install_page(addr, page) {
            mm_err = Some(e);
            return Err(snapfmt::Error::Usage("page install failed".into()));
        }
        Ok(())
    });
    match (r, mm_err) {
        (_, Some(e)) => Err(PageError::Mm(e)),
        (Err(e), None) => Err(PageError::Image(e)),
        (Ok(()), None) => Ok(()),
    }
}

/// The id view of a restored task: every id it saw, bound to what that id
/// refers to now; its threads under the ids they saw.
fn id_view(k: &Kernel, p: &Prepared, done: &Restored, keys: &PeerKeys) -> IdView {
    let mut view = IdView::default();
    let outside: BTreeMap<u64, TaskId> = keys
        .outside
        .iter()
        .map(|(key, cur)| (key.0, *cur))
        .collect();
    for m in &p.record.meta.id_view {
        let real = match &m.refers_to {
            Peer::Task(t) => done.tasks.get(t).copied(),
            // A task outside the set that is not running (it ended before
            // the checkpoint, or is not mapped): its ghost, the sender of
            // its calls that are restored (`task::image::ghost`).
            Peer::Outside(t) => Some(
                keys.live(&m.refers_to, &outside)
                    .filter(|real| k.task(*real).is_some())
                    .unwrap_or(ghost(TaskId(*t))),
            ),
            peer => keys.live(peer, &outside),
        };
        if let Some(real) = real
            && (k.task(real).is_some() || real.0 >= GHOST_BASE)
        {
            view.tasks.bind(m.seen, real);
        }
    }
    for (ctx, d) in p.record.threads.iter().zip(&p.kstate.threads) {
        if let Some(new) = done.threads.get(&ThreadId(ctx.thread_id)) {
            view.threads.bind(d.seen_id, *new);
        }
    }
    view
}
