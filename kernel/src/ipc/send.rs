//! Sending, fetching, answering and forwarding calls.
//!
//! These operations work on the kernel's objects; memory is touched only
//! where the *other* party's memory is involved (a data read answer is
//! copied into the caller). The syscall layer reads and writes the calling
//! task's own memory.

use super::call::{
    Answer, Call, CallBuffer, CallId, CallKey, ConnId, ConnectInfo, Event, PhoneId, RxCallId,
    SyncWaiter,
};
use super::errno::{EOK, Errno};
use super::method::*;
use super::phone::Phone;
use super::share::is_share;
use crate::kernel::Kernel;
use crate::task::{TaskId, take_id};

/// Bytes a data read answer provides, or nothing.
pub type AnswerData = Option<Vec<u8>>;

impl Kernel {
    fn take_rx_id(&mut self, task: TaskId) -> RxCallId {
        let t = self.tasks.get_mut(&task).expect("receiver is alive");
        RxCallId(take_id(&mut t.counters.next_rx_call_id))
    }

    pub(crate) fn take_conn_id(&mut self, task: TaskId) -> ConnId {
        let t = self.tasks.get_mut(&task).expect("callee is alive");
        ConnId(take_id(&mut t.counters.next_conn_id))
    }

    /// The callee of a connected phone of `task`, or the error a call on it
    /// gets.
    pub(crate) fn phone_target(
        &self,
        task: TaskId,
        phone: PhoneId,
    ) -> Result<(TaskId, ConnId), Errno> {
        let t = self.tasks.get(&task).ok_or(Errno::NoEntry)?;
        match t.phones.get(phone) {
            None => Err(Errno::NoEntry),
            Some(Phone::Connecting) => Err(Errno::Invalid),
            Some(Phone::Slammed { .. }) => Err(Errno::Hangup),
            Some(Phone::Connected { callee, conn }) => Ok((*callee, *conn)),
        }
    }

    /// Sends a call from `caller` through `phone`. Returns its sender-side
    /// id. For a synchronous call, `sync` names the waiting thread.
    pub fn ipc_send(
        &mut self,
        caller: TaskId,
        phone: PhoneId,
        method: u64,
        mut args: [u64; 5],
        buffer: CallBuffer,
        sync: Option<SyncWaiter>,
    ) -> Result<CallId, Errno> {
        let (callee, conn) = self.phone_target(caller, phone)?;
        let connect = match method {
            IPC_M_PHONE_HUNGUP => return Err(Errno::Invalid),
            IPC_M_SHARE_OUT => {
                self.check_share_out(caller, &args)?;
                None
            }
            IPC_M_SHARE_IN => {
                self.check_share_in(caller, &args)?;
                None
            }
            IPC_M_CONNECT_ME_TO => {
                let t = self.tasks.get_mut(&caller).ok_or(Errno::NoEntry)?;
                let slot = t.phones.alloc(Phone::Connecting).ok_or(Errno::Limit)?;
                args[ARG5] = u64::from(slot.0);
                Some(ConnectInfo::MeTo {
                    phone: slot,
                    conn: self.take_conn_id(callee),
                })
            }
            IPC_M_CONNECT_TO_ME => Some(ConnectInfo::ToReceiver {
                target: caller,
                conn: self.take_conn_id(caller),
                phone: None,
            }),
            IPC_M_CONNECTION_CLONE => {
                let cloned = u32::try_from(args[0]).map_err(|_| Errno::NoEntry)?;
                let (target, _) = self.phone_target(caller, PhoneId(cloned))?;
                Some(ConnectInfo::ToReceiver {
                    target,
                    conn: self.take_conn_id(target),
                    phone: None,
                })
            }
            _ => None,
        };
        let key = self.new_call_key();
        let t = self.tasks.get_mut(&caller).ok_or(Errno::NoEntry)?;
        let call_id = CallId(take_id(&mut t.counters.next_call_id));
        t.out_calls.insert(call_id, key);
        let rx_id = self.take_rx_id(callee);
        let call = Call {
            key,
            method,
            args,
            caller,
            caller_phone: Some(phone),
            call_id,
            receiver: callee,
            rx_id,
            conn,
            forwarded_by: Vec::new(),
            dispatched: false,
            sync,
            buffer,
            connect,
            discard_answer: false,
            offer_revoked: false,
        };
        self.enqueue_call(call);
        Ok(call_id)
    }

    pub(crate) fn new_call_key(&mut self) -> CallKey {
        let key = CallKey(self.next_call_key);
        self.next_call_key += 1;
        if let Some(a) = &mut self.audit {
            a.created(key);
        }
        key
    }

    /// Files `call` in its receiver's `calls` queue and wakes a waiter.
    pub(crate) fn enqueue_call(&mut self, call: Call) {
        let receiver = call.receiver;
        let key = call.key;
        self.calls.insert(key, call);
        if let Some(t) = self.tasks.get_mut(&receiver) {
            t.answerbox.calls.push_back(key);
        }
        self.wake_answerbox(receiver);
    }

    /// Fetches the next event of `task`'s answerbox: notifications first,
    /// then answers, then calls (which move to `dispatched`).
    pub fn ipc_fetch(&mut self, task: TaskId) -> Option<Event> {
        loop {
            let t = self.tasks.get_mut(&task)?;
            if let Some(n) = t.answerbox.notifications.pop_front() {
                return Some(Event::Notification(n));
            }
            if let Some(a) = t.answerbox.answers.pop_front() {
                return Some(Event::Answer(a));
            }
            let key = t.answerbox.calls.pop_front()?;
            if let Some(ev) = self.dispatch_call(task, key) {
                return Some(ev);
            }
        }
    }

    /// Delivers one call to its receiver's user space; `None` when the
    /// kernel had to answer it instead (no phone slot, target gone).
    fn dispatch_call(&mut self, task: TaskId, key: CallKey) -> Option<Event> {
        let call = self.calls.get(&key)?.clone();
        let mut args = call.args;
        let mut connect = call.connect.clone();
        if let Some(ConnectInfo::ToReceiver {
            target,
            conn,
            phone,
        }) = &mut connect
        {
            if !self.tasks.contains_key(target) {
                self.finish_call(key, Errno::Hangup.retval(), [0; 5]);
                return None;
            }
            let t = self.tasks.get_mut(&task)?;
            let Some(slot) = t.phones.alloc(Phone::Connected {
                callee: *target,
                conn: *conn,
            }) else {
                self.finish_call(key, Errno::Limit.retval(), [0; 5]);
                return None;
            };
            *phone = Some(slot);
            args[ARG5] = u64::from(slot.0);
        }
        let c = self.calls.get_mut(&key)?;
        c.args = args;
        c.connect = connect;
        c.dispatched = true;
        // The receiver of a CONNECT_ME_TO learns the new connection's id in
        // ARG5 (the sender's ARG5 stays its reserved phone slot).
        let mut shown = args;
        if let Some(ConnectInfo::MeTo { conn, .. }) = &c.connect {
            shown[ARG5] = conn.0;
        }
        let ev = Event::Call {
            rx_id: c.rx_id,
            conn: c.conn,
            sender: c.caller,
            method: c.method,
            args: shown,
        };
        let rx = c.rx_id;
        self.tasks
            .get_mut(&task)?
            .answerbox
            .dispatched
            .insert(rx, key);
        Some(ev)
    }

    /// The dispatched call `rx` of `task`.
    pub fn ipc_dispatched(&self, task: TaskId, rx: RxCallId) -> Option<&Call> {
        let key = self.tasks.get(&task)?.answerbox.dispatched.get(&rx)?;
        self.calls.get(key)
    }

    /// `task` answers its dispatched call `rx`. For an `EOK` answer to
    /// IPC_M_DATA_READ, `data` is copied into the caller's memory at the
    /// destination it gave (truncated to its room; ARG2 of the answer
    /// becomes the length copied). An `EOK` answer to a share call carries
    /// out the share (see [`super::share`] for how it can fail).
    pub fn ipc_answer(
        &mut self,
        task: TaskId,
        rx: RxCallId,
        retval: u64,
        mut args: [u64; 5],
        data: AnswerData,
    ) -> Result<(), Errno> {
        let t = self.tasks.get(&task).ok_or(Errno::NoEntry)?;
        let key = *t.answerbox.dispatched.get(&rx).ok_or(Errno::NoEntry)?;
        let call = self.calls.get(&key).cloned().ok_or(Errno::NoEntry)?;
        let mut retval = retval;
        // A refusal on the answerer's side returns here, the call still
        // dispatched; one on the caller's side becomes the answer.
        let mut share_failed = None;
        if retval == EOK
            && is_share(call.method)
            && let Err(e) = self.share_on_answer(task, &call, &mut args)?
        {
            retval = e.retval();
            share_failed = Some(e);
        }
        if let Some(t) = self.tasks.get_mut(&task) {
            t.answerbox.dispatched.remove(&rx);
        }
        match &call.connect {
            Some(ConnectInfo::MeTo { phone, conn }) => {
                // An error answer frees the reserved slot in `finish_call`.
                let caller_alive = !call.discard_answer;
                if let Some(ct) = self.tasks.get_mut(&call.caller).filter(|_| caller_alive)
                    && retval == EOK
                    && let Some(p) = ct.phones.get_mut(*phone)
                {
                    *p = Phone::Connected {
                        callee: task,
                        conn: *conn,
                    };
                }
                args[ARG5] = u64::from(phone.0);
            }
            Some(ConnectInfo::ToReceiver {
                phone: Some(phone), ..
            }) if retval != EOK => {
                t_free_phone(self, task, *phone);
            }
            _ => {}
        }
        if let (CallBuffer::Read { dst, room }, true) = (&call.buffer, retval == EOK) {
            let mut bytes = data.unwrap_or_default();
            bytes.truncate(usize::try_from(*room).unwrap_or(usize::MAX));
            args[1] = bytes.len() as u64;
            if !call.discard_answer
                && let Some(ct) = self.tasks.get_mut(&call.caller)
                && ct.memory.write(*dst, &bytes).is_err()
            {
                retval = Errno::Fault.retval();
            }
        }
        if retval == Errno::Hangup.retval()
            && call.forwarded_by.is_empty()
            && let (Some(ct), Some(ph)) = (self.tasks.get_mut(&call.caller), call.caller_phone)
            && let Some(p) = ct.phones.get_mut(ph)
            && let Phone::Connected { callee, conn } = *p
            && callee == task
            && conn == call.conn
        {
            *p = Phone::Slammed { callee, conn };
        }
        self.finish_call(key, retval, args);
        match share_failed {
            None => Ok(()),
            Some(Errno::Hangup) => Err(Errno::Hangup),
            Some(_) => Err(Errno::Refused),
        }
    }

    /// Completes a call with an answer: off the books, off the caller's
    /// `out_calls`, to the waiting thread or the caller's answerbox (or
    /// nowhere when the answer is discarded).
    pub(crate) fn finish_call(&mut self, key: CallKey, retval: u64, args: [u64; 5]) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        if let Some(a) = &mut self.audit {
            a.answered(key);
        }
        if let Some(rt) = self.tasks.get_mut(&call.receiver) {
            rt.answerbox.calls.retain(|k| *k != key);
            rt.answerbox.dispatched.remove(&call.rx_id);
        }
        if call.discard_answer {
            return;
        }
        let Some(ct) = self.tasks.get_mut(&call.caller) else {
            return;
        };
        ct.out_calls.remove(&call.call_id);
        if let Some(ConnectInfo::MeTo { phone, .. }) = &call.connect
            && retval != EOK
            && matches!(ct.phones.get(*phone), Some(Phone::Connecting))
        {
            ct.phones.free(*phone);
        }
        match call.sync {
            Some(w) => {
                let mut words = [0u8; 48];
                words[..8].copy_from_slice(&retval.to_le_bytes());
                for (i, a) in args.iter().enumerate() {
                    words[8 + i * 8..16 + i * 8].copy_from_slice(&a.to_le_bytes());
                }
                let result = match ct.memory.write(w.answer_ptr, &words) {
                    Ok(()) => retval as i64,
                    Err(_) => Errno::Fault.as_result(),
                };
                if let Some(th) = self.threads.get_mut(&w.thread)
                    && th.sys.active_sync_call == Some(call.call_id)
                {
                    th.sys.active_sync_call = None;
                }
                self.wake(w.thread, Some(result));
            }
            None => {
                ct.answerbox.answers.push_back(Answer {
                    call_id: call.call_id,
                    retval,
                    args,
                });
                self.wake_answerbox(call.caller);
            }
        }
    }

    /// `task` forwards its dispatched call `rx` through its `phone`. With
    /// `rewrite = Some((method, a1, a2))`, a protocol call gets method,
    /// ARG1 and ARG2 replaced (a CONNECT_ME_TO only ARG1 and ARG2; other
    /// kernel methods must be forwarded unchanged, `rewrite = None`). If the
    /// phone cannot carry the call, the call is answered with that error
    /// and the error is returned.
    pub fn ipc_forward(
        &mut self,
        task: TaskId,
        rx: RxCallId,
        phone: PhoneId,
        rewrite: Option<(u64, u64, u64)>,
    ) -> Result<(), Errno> {
        let keep = rewrite.is_none();
        let key = *self
            .tasks
            .get(&task)
            .ok_or(Errno::NoEntry)?
            .answerbox
            .dispatched
            .get(&rx)
            .ok_or(Errno::NoEntry)?;
        let old_method = self
            .calls
            .get(&key)
            .map(|c| c.method)
            .ok_or(Errno::NoEntry)?;
        if !keep && old_method < FIRST_USER_METHOD && old_method != IPC_M_CONNECT_ME_TO {
            return Err(Errno::Invalid);
        }
        let (callee, conn) = match self.phone_target(task, phone) {
            Ok(x) => x,
            Err(e) => {
                self.finish_call(key, e.retval(), [0; 5]);
                return Err(e);
            }
        };
        if let Some(t) = self.tasks.get_mut(&task) {
            t.answerbox.dispatched.remove(&rx);
        }
        let new_rx = self.take_rx_id(callee);
        let mut call = self.calls.remove(&key).ok_or(Errno::NoEntry)?;
        match &mut call.connect {
            Some(ConnectInfo::MeTo { conn, .. }) => *conn = self.take_conn_id(callee),
            Some(ConnectInfo::ToReceiver { phone, .. }) => {
                if let Some(p) = phone.take() {
                    t_free_phone(self, task, p);
                }
            }
            None => {}
        }
        if let Some((method, a1, a2)) = rewrite {
            if old_method >= FIRST_USER_METHOD {
                call.method = method;
            }
            call.args[0] = a1;
            call.args[1] = a2;
        }
        call.receiver = callee;
        call.rx_id = new_rx;
        call.conn = conn;
        call.forwarded_by.push(task);
        call.dispatched = false;
        self.enqueue_call(call);
        Ok(())
    }
}

/// Frees a phone slot of `task` without sending anything (a connection
/// that was never used).
fn t_free_phone(k: &mut Kernel, task: TaskId, phone: PhoneId) {
    if let Some(t) = k.tasks.get_mut(&task) {
        t.phones.free(phone);
    }
}
