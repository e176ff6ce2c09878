//! The kernel half of checkpoint/restore for what this layer owns: a
//! stopped task's IPC state and its threads' kernel-side system call state
//! (thesis 5.1.2, 5.4.7, 5.4.8). Memory and execution state are other
//! layers' business.
//!
//! [`Kernel::export_task`] reads a stopped task into a [`TaskImage`]:
//! counters, the phone table with holes and receiver-side connection ids,
//! the calls it holds (undelivered and dispatched, forwarded ones
//! included), the calls it sent that are unanswered (wherever they are),
//! undelivered answers and notifications, and per thread the
//! [`SyscallState`].
//!
//! [`Kernel::import_tasks`] recreates a checkpoint set of such images as new
//! (stopped) native tasks, with the same phone slots, connection ids
//! (within the set; a phone to a task outside it is a new connection there,
//! with a new id from that task's counter), call
//! ids and queues. Tasks outside the set (cooperative services) are named
//! through a map from their old to their current ids. Pending calls:
//! - held by a task of the set: recreated in the same queue (`calls` or
//!   `dispatched`, same receiver-side id);
//! - sent to a task outside the set: an asynchronous one is sent again
//!   with its sender-side id through the same phone; a synchronous one is
//!   sent again by the reissue;
//! - the three cases of thesis 5.4.8 for synchronous calls: outside
//!   receiver: `active_sync_call` is cleared so the reissue sends the call
//!   once; sent to a set member, delivered or not: the call is put back
//!   into the same queue (`dispatched` or `calls`) with its ids and the
//!   caller keeps `active_sync_call`, so it is not sent twice, ids go on
//!   exactly as without the checkpoint, and its answer reaches the same
//!   thread.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ipc::{Answer, Call, CallId, ConnectInfo, Notification, Phone, SyncWaiter};
use crate::kernel::{Kernel, KernelError};
use crate::syscall::SyscallState;
use crate::task::{IdCounters, TaskId, TaskPolicy, ThreadId, ThreadState};

/// One thread's kernel-side state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadImage {
    pub id: ThreadId,
    pub index: u64,
    pub sys: SyscallState,
}

/// The IPC and kernel-side thread state of one stopped task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskImage {
    pub task: TaskId,
    pub name: String,
    pub policy: TaskPolicy,
    pub counters: IdCounters,
    /// Phone slots, holes included.
    pub phones: Vec<Option<Phone>>,
    /// Calls it holds: undelivered in queue order, then dispatched.
    pub held: Vec<Call>,
    /// Calls it sent that are unanswered, in sender-side id order.
    pub out_calls: Vec<Call>,
    pub answers: Vec<Answer>,
    pub notifications: Vec<Notification>,
    pub threads: Vec<ThreadImage>,
}

/// Why an import failed. Nothing is left half-imported: tasks created
/// before the failure are killed again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A phone or call names a task neither in the set nor in the map (the
    /// missing server issue, thesis 4.4.7).
    #[error("task {0:?} is neither restored nor mapped to a live task")]
    Missing(TaskId),
    /// The image contradicts itself.
    #[error("inconsistent image: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// What an import created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub tasks: BTreeMap<TaskId, TaskId>,
    pub threads: BTreeMap<ThreadId, ThreadId>,
}

/// Ids standing for tasks that are gone (a restored call from a task that
/// had ended, or a task id a restored task saw that names no live task):
/// far above every kernel counter and below the id view's aliases, so
/// they never name a live task. See [`ghost`].
pub const GHOST_BASE: u64 = 1 << 60;

/// The ghost id of task `old` of an image: what a restored task sees as
/// the sender of a call from it. Ghosts of ghosts are themselves.
pub fn ghost(old: TaskId) -> TaskId {
    if old.0 >= GHOST_BASE {
        old
    } else {
        TaskId(GHOST_BASE + old.0)
    }
}

impl Kernel {
    /// Exports a stopped checkpointable task (thesis 4.4.2: only those are
    /// snapshotted transparently).
    pub fn export_task(&self, task: TaskId) -> Result<TaskImage, KernelError> {
        let t = self.tasks.get(&task).ok_or(KernelError::NoTask(task))?;
        if !t.stopped {
            return Err(KernelError::NotStopped(task));
        }
        if t.policy != TaskPolicy::Checkpointable {
            return Err(KernelError::NotCheckpointable(task));
        }
        let call = |k| self.calls.get(k).cloned();
        let mut held: Vec<Call> = t.answerbox.calls.iter().filter_map(call).collect();
        held.extend(t.answerbox.dispatched.values().filter_map(call));
        let threads = t
            .threads
            .iter()
            .filter_map(|id| self.threads.get(id))
            .filter(|th| th.state != ThreadState::Exited)
            .map(|th| ThreadImage {
                id: th.id,
                index: th.index,
                sys: th.sys.clone(),
            })
            .collect();
        Ok(TaskImage {
            task,
            name: t.name.clone(),
            policy: t.policy.clone(),
            counters: t.counters,
            phones: t.phones.slots().to_vec(),
            held,
            out_calls: t.out_calls.values().filter_map(call).collect(),
            answers: t.answerbox.answers.iter().cloned().collect(),
            notifications: t.answerbox.notifications.iter().cloned().collect(),
            threads,
        })
    }

    /// The other parties of the calls `task` holds or has sent and that
    /// are not answered yet: callers, receivers and forwarders (how a
    /// checkpoint set is completed with forwarded calls, thesis 5.2).
    pub fn call_peers(&self, task: TaskId) -> BTreeSet<TaskId> {
        let Some(t) = self.tasks.get(&task) else {
            return BTreeSet::new();
        };
        let keys = t
            .answerbox
            .calls
            .iter()
            .chain(t.answerbox.dispatched.values())
            .chain(t.out_calls.values());
        let mut out = BTreeSet::new();
        for c in keys.filter_map(|k| self.calls.get(k)) {
            if !c.discard_answer {
                out.insert(c.caller);
            }
            out.insert(c.receiver);
            out.extend(c.forwarded_by.iter().copied());
        }
        out.remove(&task);
        out.retain(|t| self.tasks.contains_key(t));
        out
    }

    /// Imports a checkpoint set as new stopped native tasks; `outside` maps
    /// old ids of tasks outside the set to their current ids.
    pub fn import_tasks(
        &mut self,
        images: &[TaskImage],
        outside: &BTreeMap<TaskId, TaskId>,
    ) -> Result<Imported, ImportError> {
        let mut done = Imported::default();
        match self.import_inner(images, outside, &mut done) {
            Ok(()) => {
                self.debug_check();
                Ok(done)
            }
            Err(e) => {
                for new in done.tasks.values() {
                    let _ = self.kill_task(*new);
                }
                Err(e)
            }
        }
    }

    fn import_inner(
        &mut self,
        images: &[TaskImage],
        outside: &BTreeMap<TaskId, TaskId>,
        done: &mut Imported,
    ) -> Result<(), ImportError> {
        // Tasks, then their threads in the order of their old ids across
        // the whole set, so that new ids keep the old relative order
        // (round robin and timeouts go by thread id).
        for img in images {
            let new = self.create_native_task(&img.name, img.policy.clone());
            done.tasks.insert(img.task, new);
            let t = self.tasks.get_mut(&new).expect("just created");
            t.stopped = true;
            t.counters = img.counters;
            t.threads_created = img
                .threads
                .iter()
                .map(|t| t.index.saturating_add(1))
                .max()
                .unwrap_or(0);
        }
        let mut threads: Vec<(TaskId, &ThreadImage)> = images
            .iter()
            .flat_map(|img| img.threads.iter().map(move |th| (img.task, th)))
            .collect();
        threads.sort_by_key(|(_, th)| th.id);
        for (old_task, th) in threads {
            let new = done.tasks[&old_task];
            let threads_created = self.tasks[&new].threads_created;
            let id = self.create_thread(new)?;
            let thread = self.threads.get_mut(&id).expect("just created");
            thread.index = th.index;
            thread.sys = th.sys.clone();
            if done.threads.insert(th.id, id).is_some() {
                return Err(ImportError::Inconsistent(format!(
                    "thread {} appears twice in the set",
                    th.id.0
                )));
            }
            self.tasks
                .get_mut(&new)
                .expect("just created")
                .threads_created = threads_created;
        }
        let map = |old: TaskId| -> Result<TaskId, ImportError> {
            done.tasks
                .get(&old)
                .or_else(|| outside.get(&old))
                .copied()
                .ok_or(ImportError::Missing(old))
        };
        // Phones, at their slots, with their connection ids.
        for img in images {
            let new = done.tasks[&img.task];
            for (slot, p) in img.phones.iter().enumerate() {
                let phone = match p {
                    None => continue,
                    Some(Phone::Connecting) => Phone::Connecting,
                    // Within the set a connection keeps its id (the
                    // restored receiver may remember it); to a running
                    // task outside the set (a service) it is a new
                    // connection, with a new id from that task's counter,
                    // so it never collides with the task's current
                    // connections (the checkpointer hands the service the
                    // connection's state under the new id).
                    Some(Phone::Connected { callee, conn }) if done.tasks.contains_key(callee) => {
                        let callee = map(*callee)?;
                        self.bump_conn(callee, conn.0)?;
                        Phone::Connected {
                            callee,
                            conn: *conn,
                        }
                    }
                    Some(Phone::Connected { callee, .. }) => {
                        let callee = map(*callee)?;
                        Phone::Connected {
                            callee,
                            conn: self.take_conn_id(callee),
                        }
                    }
                    Some(Phone::Slammed { callee, conn }) => Phone::Slammed {
                        callee: map(*callee).unwrap_or(*callee),
                        conn: *conn,
                    },
                };
                let t = self.tasks.get_mut(&new).expect("created above");
                t.phones
                    .insert_at(crate::ipc::PhoneId(slot as u32), phone)
                    .map_err(|_| ImportError::Inconsistent(format!("phone slot {slot}")))?;
            }
            let t = self.tasks.get_mut(&new).expect("created above");
            t.answerbox.answers = img.answers.iter().cloned().collect();
            t.answerbox.notifications = img.notifications.iter().cloned().collect();
        }
        // Calls, each once (a call between two members is both held by
        // its receiver and sent by its caller). The receiver's copies
        // first, each receiver's in queue order: they say whether the call
        // was delivered, and where it stands in the queue.
        self.cross_check_calls(images, done)?;
        let mut seen = BTreeSet::new();
        let all = images
            .iter()
            .flat_map(|i| i.held.iter())
            .chain(images.iter().flat_map(|i| i.out_calls.iter()));
        for call in all {
            if !seen.insert((
                call.caller,
                call.call_id,
                call.caller_phone.is_none(),
                call.rx_id,
            )) {
                continue;
            }
            self.import_call(call, done, outside)?;
        }
        Ok(())
    }

    /// A call between two members of the set has two copies, the
    /// receiver's (held) and the caller's (sent): each must have the
    /// other, and they must agree on everything but whether the call was
    /// delivered (which only the receiver's says).
    fn cross_check_calls(&self, images: &[TaskImage], done: &Imported) -> Result<(), ImportError> {
        type Key = (TaskId, CallId, bool, crate::ipc::RxCallId);
        let key = |c: &Call| -> Key { (c.caller, c.call_id, c.caller_phone.is_none(), c.rx_id) };
        let mut held: BTreeMap<Key, &Call> = BTreeMap::new();
        for img in images {
            for c in &img.held {
                if c.receiver != img.task {
                    return Err(ImportError::Inconsistent(format!(
                        "task {} holds call {} of task {} received by task {}",
                        img.task.0, c.call_id.0, c.caller.0, c.receiver.0
                    )));
                }
                if held.insert(key(c), c).is_some() {
                    return Err(ImportError::Inconsistent(format!(
                        "call {} of task {} is held twice",
                        c.call_id.0, c.caller.0
                    )));
                }
            }
        }
        let mut sent = BTreeSet::new();
        for img in images {
            for c in &img.out_calls {
                if c.caller != img.task {
                    return Err(ImportError::Inconsistent(format!(
                        "task {} lists call {} of task {} as sent",
                        img.task.0, c.call_id.0, c.caller.0
                    )));
                }
                if !sent.insert(key(c)) {
                    return Err(ImportError::Inconsistent(format!(
                        "call {} of task {} is sent twice",
                        c.call_id.0, c.caller.0
                    )));
                }
                if !done.tasks.contains_key(&c.receiver) {
                    continue;
                }
                let Some(h) = held.get(&key(c)) else {
                    return Err(ImportError::Inconsistent(format!(
                        "call {} of task {} to task {} is not held by its receiver",
                        c.call_id.0, c.caller.0, c.receiver.0
                    )));
                };
                let mut mine = c.clone();
                mine.dispatched = h.dispatched;
                if mine != **h {
                    return Err(ImportError::Inconsistent(format!(
                        "the caller's and the receiver's copies of call {} of task {} differ",
                        c.call_id.0, c.caller.0
                    )));
                }
            }
        }
        for (k, h) in &held {
            if done.tasks.contains_key(&h.caller) && !h.discard_answer && !sent.contains(k) {
                return Err(ImportError::Inconsistent(format!(
                    "call {} of task {} held by task {} is not among its caller's sent calls",
                    h.call_id.0, h.caller.0, h.receiver.0
                )));
            }
        }
        Ok(())
    }

    fn bump_conn(&mut self, task: TaskId, conn: u64) -> Result<(), ImportError> {
        let t = self
            .tasks
            .get_mut(&task)
            .ok_or(ImportError::Missing(task))?;
        t.counters.next_conn_id = t.counters.next_conn_id.max(conn.saturating_add(1));
        Ok(())
    }

    fn clear_sync(&mut self, waiter: &SyncWaiter, id: CallId, done: &Imported) {
        if let Some(th) = done.threads.get(&waiter.thread)
            && let Some(t) = self.threads.get_mut(th)
            && t.sys.active_sync_call == Some(id)
        {
            t.sys.active_sync_call = None;
        }
    }

    fn import_call(
        &mut self,
        old: &Call,
        done: &Imported,
        outside: &BTreeMap<TaskId, TaskId>,
    ) -> Result<(), ImportError> {
        let in_set_caller = done.tasks.get(&old.caller).copied();
        let in_set_receiver = done.tasks.get(&old.receiver).copied();
        let sync = old.sync.as_ref().and_then(|w| {
            done.threads.get(&w.thread).map(|t| SyncWaiter {
                thread: *t,
                answer_ptr: w.answer_ptr,
            })
        });
        // The waiter of a synchronous call from a member is a thread of
        // that member.
        if let (Some(w), Some(caller)) = (&old.sync, in_set_caller) {
            let owner = sync
                .as_ref()
                .and_then(|s| self.threads.get(&s.thread))
                .map(|t| t.task);
            if owner != Some(caller) {
                return Err(ImportError::Inconsistent(format!(
                    "synchronous call {} of task {} waits in thread {}, which is not a thread of its caller",
                    old.call_id.0, old.caller.0, w.thread.0
                )));
            }
        }
        let mut call = old.clone();
        call.sync = sync;
        let remap = |t: &TaskId| done.tasks.get(t).or(outside.get(t)).copied().unwrap_or(*t);
        call.forwarded_by = call.forwarded_by.iter().map(remap).collect();
        if let Some(ConnectInfo::ToReceiver { target, .. }) = &mut call.connect {
            *target = remap(target);
        }
        match (in_set_receiver, old.dispatched) {
            // Held by a set member and already delivered: back into
            // `dispatched` (thesis 5.4.8 case 3 for a synchronous call).
            (Some(receiver), true) => {
                call.receiver = receiver;
                match in_set_caller {
                    Some(c) => call.caller = c,
                    // A client outside the set: the restored server may
                    // answer, the answer goes nowhere (the thesis's dummy
                    // task).
                    None => {
                        call.caller = outside
                            .get(&old.caller)
                            .copied()
                            .unwrap_or(ghost(old.caller));
                        call.discard_answer = true;
                    }
                }
                self.file_imported(call, true)
            }
            // Undelivered synchronous call between two set members (case
            // 2): back into the receiver's `calls` with its ids; the caller
            // keeps `active_sync_call`, so its reissue waits for the answer
            // instead of sending again.
            (Some(receiver), false) if old.sync.is_some() && in_set_caller.is_some() => {
                call.receiver = receiver;
                call.caller = in_set_caller.unwrap_or(call.caller);
                self.file_imported(call, false)
            }
            // A synchronous call to a task outside the set (case 1), or
            // from a client outside it: the reissue sends it again.
            (_, _) if old.sync.is_some() => {
                if let Some(w) = &old.sync {
                    self.clear_sync(w, old.call_id, done);
                }
                if let Some(c) = in_set_caller
                    && let Some(t) = self.tasks.get_mut(&c)
                {
                    t.out_calls.remove(&old.call_id);
                }
                Ok(())
            }
            // Undelivered asynchronous call held by a set member.
            (Some(receiver), false) => {
                let caller = match in_set_caller.or_else(|| outside.get(&old.caller).copied()) {
                    Some(c) => c,
                    // From a task that has ended (or a hangup notice of
                    // one): delivered as it would have been, under the
                    // ended task's id; its answer goes nowhere.
                    None if old.discard_answer => ghost(old.caller),
                    // A client outside the set: its undelivered call is
                    // dropped (thesis 5.4.8, excluding clients).
                    None => return Ok(()),
                };
                call.receiver = receiver;
                call.caller = caller;
                self.file_imported(call, false)
            }
            // Asynchronous call sent to a task outside the set: sent again
            // through the same phone, with the same sender-side id.
            (None, _) => {
                let Some(caller) = in_set_caller else {
                    return Ok(());
                };
                let Some(phone) = old.caller_phone else {
                    return Ok(());
                };
                if call.connect.is_some() {
                    return Err(ImportError::Inconsistent(
                        "a connection request to a task outside the set is in flight".into(),
                    ));
                }
                let (receiver, conn) = self.phone_target(caller, phone).map_err(|e| {
                    ImportError::Inconsistent(format!("resend through {phone:?}: {e}"))
                })?;
                let rt = self
                    .tasks
                    .get_mut(&receiver)
                    .ok_or(ImportError::Missing(receiver))?;
                call.rx_id =
                    crate::ipc::RxCallId(crate::task::take_id(&mut rt.counters.next_rx_call_id));
                call.caller = caller;
                call.receiver = receiver;
                call.conn = conn;
                call.forwarded_by.clear();
                call.dispatched = false;
                self.file_imported(call, false)
            }
        }
    }

    /// Files an imported call into its receiver's queue and its caller's
    /// `out_calls`, and keeps the id counters ahead of the restored ids.
    fn file_imported(&mut self, mut call: Call, dispatched: bool) -> Result<(), ImportError> {
        call.key = self.new_call_key();
        let rt = self
            .tasks
            .get_mut(&call.receiver)
            .ok_or(ImportError::Missing(call.receiver))?;
        rt.counters.next_rx_call_id = rt
            .counters
            .next_rx_call_id
            .max(call.rx_id.0.saturating_add(1));
        if dispatched {
            if rt
                .answerbox
                .dispatched
                .insert(call.rx_id, call.key)
                .is_some()
            {
                return Err(ImportError::Inconsistent(format!("{:?} twice", call.rx_id)));
            }
        } else {
            rt.answerbox.calls.push_back(call.key);
        }
        if !call.discard_answer
            && let Some(ct) = self.tasks.get_mut(&call.caller)
        {
            ct.counters.next_call_id = ct
                .counters
                .next_call_id
                .max(call.call_id.0.saturating_add(1));
            ct.out_calls.insert(call.call_id, call.key);
        }
        let receiver = call.receiver;
        self.calls.insert(call.key, call);
        self.wake_answerbox(receiver);
        Ok(())
    }
}
