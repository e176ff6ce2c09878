//! Closing connections, notifications, connections made by the kernel, and
//! what happens to IPC when a task ends.
//!
//! Hangup in both directions (thesis 3.4.1): the phone's owner hangs up
//! with `ipc_hangup` (the callee receives IPC_M_PHONE_HUNGUP naming the
//! connection; the slot is freed and may be reused, lowest first); the
//! callee closes an incoming connection by answering a call on it with
//! EHANGUP (the phone becomes *slammed*: calls on it fail with EHANGUP and
//! the slot stays taken until its owner hangs up too).

use super::call::{Call, CallBuffer, CallId, CallKey, ConnId, Notification, PhoneId};
use super::errno::Errno;
use super::method::IPC_M_PHONE_HUNGUP;
use super::phone::Phone;
use crate::kernel::{Kernel, KernelError};
use crate::task::TaskId;

impl Kernel {
    /// Sends IPC_M_PHONE_HUNGUP for connection `conn` of `callee` on
    /// behalf of `owner`; the answer is discarded.
    pub(crate) fn send_hungup(&mut self, owner: TaskId, callee: TaskId, conn: ConnId) {
        if !self.tasks.contains_key(&callee) {
            return;
        }
        let key: CallKey = self.new_call_key();
        let rx_id = {
            let t = self.tasks.get_mut(&callee).expect("checked above");
            super::call::RxCallId(crate::task::take_id(&mut t.counters.next_rx_call_id))
        };
        self.enqueue_call(Call {
            key,
            method: IPC_M_PHONE_HUNGUP,
            args: [0; 5],
            caller: owner,
            caller_phone: None,
            call_id: CallId(0),
            receiver: callee,
            rx_id,
            conn,
            forwarded_by: Vec::new(),
            dispatched: false,
            sync: None,
            buffer: CallBuffer::None,
            connect: None,
            discard_answer: true,
            offer_revoked: false,
        });
    }

    /// `task` hangs up its `phone`: the slot is freed; if the connection
    /// was still up, the callee receives IPC_M_PHONE_HUNGUP.
    pub fn ipc_hangup(&mut self, task: TaskId, phone: PhoneId) -> Result<(), Errno> {
        let t = self.tasks.get_mut(&task).ok_or(Errno::NoEntry)?;
        match t.phones.get(phone) {
            None => Err(Errno::NoEntry),
            Some(Phone::Connecting) => Err(Errno::Invalid),
            Some(Phone::Slammed { .. }) => {
                t.phones.free(phone);
                Ok(())
            }
            Some(Phone::Connected { callee, conn }) => {
                let (callee, conn) = (*callee, *conn);
                t.phones.free(phone);
                self.send_hungup(task, callee, conn);
                Ok(())
            }
        }
    }

    /// Queues a notification (no answer expected) for `task`.
    pub fn notify(&mut self, task: TaskId, method: u64, args: [u64; 5]) -> Result<(), KernelError> {
        let t = self.tasks.get_mut(&task).ok_or(KernelError::NoTask(task))?;
        t.answerbox
            .notifications
            .push_back(Notification { method, args });
        self.wake_answerbox(task);
        Ok(())
    }

    /// Connects a new phone of `from` to `to`'s answerbox, as the kernel
    /// does for a new task's first connection (to the naming service) or
    /// the loader does at restore. Returns the phone id (lowest free).
    pub fn connect_phone(&mut self, from: TaskId, to: TaskId) -> Result<PhoneId, KernelError> {
        if !self.tasks.contains_key(&to) {
            return Err(KernelError::NoTask(to));
        }
        let conn = self.take_conn_id(to);
        let t = self.tasks.get_mut(&from).ok_or(KernelError::NoTask(from))?;
        t.phones
            .alloc(Phone::Connected { callee: to, conn })
            .ok_or(KernelError::PhonesFull(from))
    }

    /// IPC side of a task's end (the task is removed afterwards):
    /// - calls it sent are dropped from its `out_calls`; their answers,
    ///   when they come, are discarded;
    /// - every call it holds (undelivered or dispatched, forwarded ones
    ///   included) is answered with EHANGUP, which goes to the original
    ///   caller;
    /// - its phones are hung up (callees receive IPC_M_PHONE_HUNGUP);
    /// - phones of other tasks connected to it are slammed.
    pub(crate) fn ipc_task_died(&mut self, task: TaskId) {
        let Some(t) = self.tasks.get_mut(&task) else {
            return;
        };
        let sent: Vec<CallKey> = std::mem::take(&mut t.out_calls).into_values().collect();
        for key in sent {
            if let Some(c) = self.calls.get_mut(&key) {
                c.discard_answer = true;
            }
        }
        let t = self.tasks.get_mut(&task).expect("checked above");
        let mut held: Vec<CallKey> = t.answerbox.calls.drain(..).collect();
        held.extend(std::mem::take(&mut t.answerbox.dispatched).into_values());
        held.sort();
        t.answerbox.answers.clear();
        t.answerbox.notifications.clear();
        t.answerbox.waiters.clear();
        for key in held {
            self.finish_call(key, Errno::Hangup.retval(), [0; 5]);
        }
        let t = self.tasks.get_mut(&task).expect("checked above");
        let phones: Vec<(PhoneId, Phone)> = t.phones.iter().map(|(i, p)| (i, p.clone())).collect();
        for (id, p) in phones {
            if let Some(t) = self.tasks.get_mut(&task) {
                t.phones.free(id);
            }
            if let Phone::Connected { callee, conn } = p
                && callee != task
            {
                self.send_hungup(task, callee, conn);
            }
        }
        for other in self.tasks.values_mut() {
            let slam: Vec<PhoneId> = other
                .phones
                .iter()
                .filter(|(_, p)| matches!(p, Phone::Connected { callee, .. } if *callee == task))
                .map(|(i, _)| i)
                .collect();
            for id in slam {
                if let Some(p) = other.phones.get_mut(id)
                    && let Phone::Connected { callee, conn } = *p
                {
                    *p = Phone::Slammed { callee, conn };
                }
            }
        }
    }
}
