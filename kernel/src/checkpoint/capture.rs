//! Capturing a stopped checkpoint set: everything the image will hold,
//! taken while the tasks are stopped, in time independent of their memory
//! size. Pages are captured as copy-on-write references (mm's
//! `snapshot()`), so the tasks may run again (or be killed) before the
//! image is written ([`Capture::write`](super::write)).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::schedule::SetSchedule;
use super::{CheckpointError, Stopped};
use crate::guest::{Scheduler, guest_space_ref};
use crate::ipc::{Call, CallBuffer, ConnectInfo, Phone};
use crate::kernel::Kernel;
use crate::mm::{AreaKind, SpaceSnapshot};
use crate::task::{TaskId, TaskPolicy, ThreadId};
use snapfmt::exec::Value;
use snapfmt::{
    AreaRecord, Backing, BufferKind, CallDetail, CallParties, CallQueue, ConnectDetail, Digest,
    EntryCall, IdMapping, KernelTaskState, ModuleRef, PageMap, Peer, PendingCall, PhoneSlot,
    PhoneState, ReadRequest, Sharing, SpecialPhone, SyscallState, TaskMeta, TaskRecord,
    ThreadContext, ThreadDetail, area_flags,
};

/// One task of a capture.
pub struct CapturedTask {
    /// Its id at checkpoint time (the image's name for it).
    pub task: TaskId,
    /// The record, with empty page maps and a placeholder module
    /// reference (both are filled when the image is written).
    pub record: TaskRecord,
    /// The module as a WebAssembly binary.
    pub module: Arc<[u8]>,
    /// Its memory, by copy-on-write page references.
    pub space: SpaceSnapshot,
    /// The kernel-side state the record has no field for (written as the
    /// task's kernel state record, `tasks/<task id>.spk`).
    pub kernel_state: KernelTaskState,
}

/// A captured checkpoint set.
pub struct Capture {
    /// In ascending task id order.
    pub tasks: Vec<CapturedTask>,
    /// Kernel time of the capture (ns).
    pub time_ns: u64,
    /// The task the checkpoint was asked for (the first of the set).
    pub task_zero: TaskId,
    /// Where the set stands in the kernel's schedule (format 1.3, the
    /// `kernel.*` entries of the manifest's `options.extra`).
    pub sched: SetSchedule,
    /// The file policy of the checkpoint (recorded in the manifest's
    /// options; the VFS applies it, thesis 4.4.8).
    pub file_policy: snapfmt::FilePolicy,
    /// The set's kill option (recorded in the manifest's options).
    pub kill_after: bool,
    /// How long the checkpointer waited for each service at most (ms;
    /// recorded in the manifest's options, 0 when no checkpointer took
    /// part).
    pub timeout_ms: u64,
    /// Saved contents of files under a backup policy (thesis 4.4.8),
    /// written as `files/<sha256>.spf` objects; the tasks' records name
    /// them in `file_backups`. Filled by the checkpointer from the VFS.
    pub file_contents: Vec<std::sync::Arc<[u8]>>,
    /// Connections to members from clients the checkpointer left out of
    /// the set (thesis 4.4.3): a restore hangs them up
    /// ([`super::excluded`]). Filled by the checkpointer.
    pub excluded: Vec<super::ExcludedConn>,
    /// The tasks around the set the manifest's `checkpoint_set` lists
    /// beside its members: the cooperative services it is connected to
    /// and the clients left out of it. Filled by the checkpointer.
    pub others: Vec<snapfmt::SetMember>,
    /// Each task's epoch and area identities (by task id), recorded in
    /// the manifest (`kernel.epoch.<task id>`): see [`super::epochs`].
    pub epochs: std::collections::BTreeMap<u64, super::epochs::TaskEpoch>,
}

/// The kernel build hash as a digest.
pub fn build_hash() -> Digest {
    Digest::from_hex(crate::KERNEL_BUILD_HASH).unwrap_or(Digest::of(b"unknown kernel build"))
}

/// How a task id outside the image is named: the set's tasks by id,
/// cooperative services by their persistent id, anything else as outside.
pub(crate) fn peer_of(k: &Kernel, set: &BTreeSet<TaskId>, t: TaskId) -> Peer {
    if set.contains(&t) {
        return Peer::Task(t.0);
    }
    match k.task(t).map(|t| &t.policy) {
        Some(TaskPolicy::Cooperative { service_id }) => Peer::Service(service_id.clone()),
        _ => Peer::Outside(t.0),
    }
}

/// Captures the tasks of `stopped` (several tasks per set; the first is
/// task zero). Every task must be a stopped, checkpointable guest task of
/// `s`. A capture that succeeds gets an epoch and takes the tasks' dirty
/// bits into their histories ([`super::epochs`]).
pub fn capture(
    k: &mut Kernel,
    s: &Scheduler,
    stopped: &Stopped,
) -> Result<Capture, CheckpointError> {
    let mut c = capture_ref(k, s, stopped)?;
    let members: Vec<TaskId> = c.tasks.iter().map(|t| t.task).collect();
    c.epochs = super::epochs::take(k, &members);
    Ok(c)
}

fn capture_ref(k: &Kernel, s: &Scheduler, stopped: &Stopped) -> Result<Capture, CheckpointError> {
    let set = &stopped.set;
    let task_zero = *set.first().ok_or(CheckpointError::EmptySet)?;
    let members: BTreeSet<TaskId> = set.iter().copied().collect();
    let mut tasks = Vec::with_capacity(members.len());
    for &task in &members {
        tasks.push(capture_task(k, s, &members, task, stopped)?);
    }
    let mut wait_order: Vec<(u64, ThreadId)> = stopped
        .blocked
        .iter()
        .filter_map(|th| k.thread(*th).map(|t| (t.wait_seq, *th)))
        .collect();
    wait_order.sort();
    let sched = SetSchedule {
        cursor: s.cursor(),
        wait_order: wait_order.into_iter().map(|(_, th)| th).collect(),
        next_thread_id: members
            .iter()
            .map(|t| k.next_thread_id_seen(*t))
            .max()
            .unwrap_or(1),
    };
    Ok(Capture {
        tasks,
        time_ns: k.now(),
        task_zero,
        sched,
        file_policy: snapfmt::FilePolicy::default(),
        kill_after: false,
        timeout_ms: 0,
        file_contents: Vec::new(),
        excluded: Vec::new(),
        others: Vec::new(),
        epochs: Default::default(),
    })
}

fn capture_task(
    k: &Kernel,
    s: &Scheduler,
    set: &BTreeSet<TaskId>,
    task: TaskId,
    stopped: &Stopped,
) -> Result<CapturedTask, CheckpointError> {
    let image = k.export_task(task)?;
    let guest = s.export_guest(k, task)?;
    let space = guest_space_ref(k, task)
        .ok_or(CheckpointError::NotGuest(task))?
        .snapshot();
    let now = k.now();
    let peer = |t: TaskId| peer_of(k, set, t);
    let hash = build_hash();

    let mut threads = Vec::with_capacity(image.threads.len());
    let mut details = Vec::with_capacity(image.threads.len());
    for ti in &image.threads {
        let g = guest
            .threads
            .iter()
            .find(|g| g.thread == ti.id)
            .ok_or(CheckpointError::NoMachineState(ti.id))?;
        let syscall = match (&ti.sys.in_progress, ti.sys.completed) {
            (_, Some(v)) => SyscallState::Complete {
                results: vec![Value::I64(v as u64)],
            },
            (Some(_), None) => SyscallState::Reissue,
            (None, None) => SyscallState::None,
        };
        threads.push(ThreadContext {
            thread_id: ti.id.0,
            exec: g.exec.clone(),
            syscall,
            active_sync_call: ti.sys.active_sync_call.map(|c| c.0),
            kernel_build_hash: hash,
        });
        details.push(ThreadDetail {
            seen_id: k.peek_thread_id_seen(ti.id),
            index: ti.index,
            remaining_ns: ti
                .sys
                .in_progress
                .as_ref()
                .and_then(|p| p.deadline)
                .map(|d| d.saturating_sub(now)),
            asleep: stopped.blocked.contains(&ti.id),
            then: g
                .then
                .clone()
                .map(|(func_index, args)| EntryCall { func_index, args }),
        });
    }

    let mut phones = Vec::with_capacity(image.phones.len());
    let mut phone_states = Vec::new();
    for (i, slot) in image.phones.iter().enumerate() {
        phones.push(match slot {
            None => PhoneSlot::Free,
            Some(Phone::Connecting) => {
                phone_states.push(SpecialPhone {
                    slot: i as u32,
                    state: PhoneState::Connecting,
                });
                PhoneSlot::Free
            }
            Some(Phone::Connected { callee, conn }) => PhoneSlot::Connected(snapfmt::Phone {
                peer: peer(*callee),
                receiver_side_id: conn.0,
            }),
            Some(Phone::Slammed { callee, conn }) => {
                phone_states.push(SpecialPhone {
                    slot: i as u32,
                    state: PhoneState::Slammed,
                });
                PhoneSlot::Connected(snapfmt::Phone {
                    peer: peer(*callee),
                    receiver_side_id: conn.0,
                })
            }
        });
    }

    // A sent call may outlive its phone: hanging up the highest phone
    // shrinks the table, but the call still names the slot. The record's
    // table reaches every slot a call names (free slots past the end of
    // the kernel's table change nothing at restore).
    let named = image.out_calls.iter().filter_map(|c| c.caller_phone);
    if let Some(top) = named.map(|p| p.0 as usize + 1).max()
        && top > phones.len()
    {
        phones.resize(top, PhoneSlot::Free);
    }

    let mut calls = Vec::new();
    let mut call_details = Vec::new();
    let mut push = |c: &Call, queue: CallQueue, other: TaskId, phone: Option<u32>| {
        let (record, detail) = call_records(c, queue, peer(other), phone, &peer);
        calls.push(record);
        call_details.push(detail);
    };
    for c in &image.held {
        let queue = if c.dispatched {
            CallQueue::Dispatched
        } else {
            CallQueue::Undispatched
        };
        push(c, queue, c.caller, None);
    }
    for c in &image.out_calls {
        let queue = if c.sync.is_some() {
            CallQueue::Synchronous
        } else if c.forwarded_by.is_empty() {
            CallQueue::Sent
        } else {
            CallQueue::Forwarded
        };
        push(c, queue, c.receiver, c.caller_phone.map(|p| p.0));
    }
    for a in &image.answers {
        let mut words = [a.retval; 6];
        words[1..].copy_from_slice(&a.args);
        calls.push(PendingCall {
            queue: CallQueue::UndeliveredAnswer,
            sender_side_id: a.call_id.0,
            receiver_side_id: 0,
            phone: None,
            // The kernel does not keep who answered.
            peer: Peer::Outside(0),
            words,
            thread: None,
            buffer: None,
        });
        call_details.push(CallDetail::Answer);
    }

    let areas = space
        .areas
        .iter()
        .map(|a| {
            let (backing, sharing) = match a.kind {
                AreaKind::Primary { max_wasm_pages } => (
                    Backing::Primary {
                        max_pages: Some(max_wasm_pages),
                    },
                    Vec::new(),
                ),
                AreaKind::Anonymous => (Backing::Anonymous, Vec::new()),
                AreaKind::Shared { backing } => {
                    (Backing::Anonymous, holders(k, set, task, a.base, backing))
                }
            };
            let mut flags = 0;
            if a.flags.readable() {
                flags |= area_flags::READ;
            }
            if a.flags.writable() {
                flags |= area_flags::WRITE;
            }
            AreaRecord {
                base: a.base,
                size: a.size,
                flags,
                backing,
                sharing,
                pages: PageMap::default(),
            }
        })
        .collect();

    // Every task id the task has seen from the kernel, and the id it has
    // for each member of the set (members pass each other their ids).
    let t = k.task(task).ok_or(CheckpointError::NotGuest(task))?;
    let mut view = t.id_view.tasks.clone();
    for m in set {
        view.show(*m, m.0);
    }
    // The senders of calls it holds and has not fetched yet, as it will
    // see them (one may have ended: a restore shows its calls under the
    // same id).
    for c in image.held.iter().filter(|c| !c.dispatched) {
        view.show(c.caller, c.caller.0);
    }
    let id_view = view
        .iter()
        .map(|(seen, real)| IdMapping {
            seen,
            refers_to: peer(real),
        })
        .collect();

    let record = TaskRecord {
        meta: TaskMeta {
            task_id: task.0,
            name: image.name.clone(),
            args: guest.args.clone(),
            cwd: String::new(),
            module: ModuleRef::Embedded {
                sha256: Digest::of(&[]),
                len: 0,
            },
            id_view,
        },
        instance: guest.instance.clone(),
        threads,
        areas,
        phones,
        calls,
        coop_blobs: Vec::new(),
        file_backups: Vec::new(),
    };
    let kernel_state = KernelTaskState {
        task_id: task.0,
        counters: image.counters,
        phones: phone_states,
        calls: call_details,
        notifications: image
            .notifications
            .iter()
            .map(|n| snapfmt::Notification {
                method: n.method,
                args: n.args,
            })
            .collect(),
        threads: details,
    };
    Ok(CapturedTask {
        task,
        record,
        module: guest.module.clone(),
        space,
        kernel_state,
    })
}

/// The other mappings of a shared backing: where other tasks map it, and
/// where this task maps it again (one backing at two addresses of one
/// task stays one backing).
fn holders(
    k: &Kernel,
    set: &BTreeSet<TaskId>,
    me: TaskId,
    my_base: u64,
    backing: crate::mm::BackingId,
) -> Vec<Sharing> {
    let mut out: Vec<Sharing> = k
        .backing_mappings(backing)
        .into_iter()
        .filter(|m| (m.task, m.base) != (me, my_base))
        .map(|m| Sharing {
            with: peer_of(k, set, m.task),
            base: m.base,
        })
        .collect();
    // An area a cooperative service shares (the naming service's time
    // area): the service is what the restore reshares it with; the other
    // tasks outside the set that map it are none of the set's business
    // (thesis 4.4.9).
    if out.iter().any(|s| matches!(s.with, Peer::Service(_))) {
        out.retain(|s| !matches!(s.with, Peer::Outside(_)));
    }
    out
}

/// A kernel call as a record and its kernel state detail.
fn call_records(
    c: &Call,
    queue: CallQueue,
    other: Peer,
    phone: Option<u32>,
    peer: &dyn Fn(TaskId) -> Peer,
) -> (PendingCall, CallDetail) {
    let mut words = [c.method; 6];
    words[1..].copy_from_slice(&c.args);
    let (buffer, read) = match &c.buffer {
        CallBuffer::None => (None, None),
        CallBuffer::Write(bytes) => (
            Some(snapfmt::CallBuffer {
                kind: BufferKind::DataWrite,
                bytes: bytes.clone(),
            }),
            None,
        ),
        CallBuffer::Read { dst, room } => (
            None,
            Some(ReadRequest {
                dst: *dst,
                room: *room,
            }),
        ),
    };
    let connect = c.connect.as_ref().map(|ci| match ci {
        ConnectInfo::MeTo { phone, conn } => ConnectDetail::MeTo {
            phone: phone.0,
            conn: conn.0,
        },
        ConnectInfo::ToReceiver {
            target,
            conn,
            phone,
        } => ConnectDetail::ToReceiver {
            target: peer(*target),
            conn: conn.0,
            phone: phone.map(|p| p.0),
        },
    });
    let record = PendingCall {
        queue,
        sender_side_id: c.call_id.0,
        receiver_side_id: c.rx_id.0,
        phone,
        peer: other,
        words,
        thread: c.sync.as_ref().map(|w| w.thread.0),
        buffer,
    };
    let detail = CallDetail::Call(CallParties {
        caller: peer(c.caller),
        receiver: peer(c.receiver),
        caller_phone: c.caller_phone.map(|p| p.0),
        conn: c.conn.0,
        forwarded_by: c.forwarded_by.iter().map(|t| peer(*t)).collect(),
        answer_ptr: c.sync.as_ref().map(|w| w.answer_ptr),
        read,
        connect,
        discard_answer: c.discard_answer,
        offer_revoked: c.offer_revoked,
    });
    (record, detail)
}
