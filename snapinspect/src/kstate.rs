//! A task's kernel state record (format 1.2, `tasks/<task id>.spk`) as
//! plain data for `show`, its text lines, and its differences for `diff`.
//!
//! The record's `calls` and `threads` are parallel to the task record's,
//! so each entry is shown with the call (queue and sender-side id) or
//! thread (id) it belongs to.

use std::collections::BTreeMap;

use serde::Serialize;
use snapfmt::{CallDetail, ConnectDetail, KernelTaskState, PhoneState, TaskRecord};

use crate::diff::FieldChange;
use crate::view::{PeerView, queue_name, values_text};

/// Everything the kernel state record says about a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelStateView {
    pub next_call_id: u64,
    pub next_rx_call_id: u64,
    pub next_conn_id: u64,
    /// Phone slots in a state beyond free or connected.
    pub phones: Vec<SpecialPhoneView>,
    /// One per pending call of the task record, in its order.
    pub calls: Vec<CallDetailView>,
    /// Notifications not yet fetched: method and five arguments.
    pub notifications: Vec<NotificationView>,
    /// One per thread of the task record, in its order.
    pub threads: Vec<ThreadDetailView>,
}

/// A phone slot in a special state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecialPhoneView {
    pub slot: u32,
    /// `connecting` or `slammed`.
    pub state: &'static str,
}

/// The kernel's view of one pending call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallDetailView {
    /// Queue of the task record's call this entry belongs to.
    pub queue: &'static str,
    /// Its sender-side id.
    pub sender_side_id: u64,
    /// `call`, or `answer` for an undelivered answer (nothing more known).
    pub kind: &'static str,
    pub caller: Option<PeerView>,
    pub receiver: Option<PeerView>,
    pub caller_phone: Option<u32>,
    pub conn: Option<u64>,
    pub forwarded_by: Vec<PeerView>,
    pub answer_ptr: Option<u64>,
    /// Destination address and size of a data-read request.
    pub read: Option<(u64, u64)>,
    /// A connection the call is making, as text.
    pub connect: Option<String>,
    pub discard_answer: bool,
    pub offer_revoked: bool,
}

/// A notification not yet fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationView {
    pub method: u64,
    pub args: [u64; 5],
}

/// The kernel's view of one thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadDetailView {
    /// The task record's thread this entry belongs to.
    pub thread_id: u64,
    /// The id the task sees for it.
    pub seen_id: u64,
    pub index: u64,
    /// Nanoseconds from the checkpoint to its system call's deadline.
    pub remaining_ns: Option<u64>,
    /// Asleep in its system call when stopped.
    pub asleep: bool,
    /// The entry still to run after the start function, as text.
    pub then: Option<String>,
}

impl KernelStateView {
    /// The view of `k`, the kernel state of task record `t`.
    pub fn of(t: &TaskRecord, k: &KernelTaskState) -> KernelStateView {
        KernelStateView {
            next_call_id: k.counters.next_call_id,
            next_rx_call_id: k.counters.next_rx_call_id,
            next_conn_id: k.counters.next_conn_id,
            phones: k
                .phones
                .iter()
                .map(|p| SpecialPhoneView {
                    slot: p.slot,
                    state: match p.state {
                        PhoneState::Connecting => "connecting",
                        PhoneState::Slammed => "slammed",
                    },
                })
                .collect(),
            calls: k
                .calls
                .iter()
                .zip(&t.calls)
                .map(|(d, c)| call_view(d, queue_name(c.queue), c.sender_side_id))
                .collect(),
            notifications: k
                .notifications
                .iter()
                .map(|n| NotificationView {
                    method: n.method,
                    args: n.args,
                })
                .collect(),
            threads: k
                .threads
                .iter()
                .zip(&t.threads)
                .map(|(d, th)| ThreadDetailView {
                    thread_id: th.thread_id,
                    seen_id: d.seen_id,
                    index: d.index,
                    remaining_ns: d.remaining_ns,
                    asleep: d.asleep,
                    then: d
                        .then
                        .as_ref()
                        .map(|e| format!("func {} {}", e.func_index, values_text(&e.args))),
                })
                .collect(),
        }
    }

    /// The counters as one line.
    pub fn counters_text(&self) -> String {
        format!(
            "next call id {}, next receiver call id {}, next connection id {}",
            self.next_call_id, self.next_rx_call_id, self.next_conn_id
        )
    }

    /// Every entry as `(key, text)`, keys naming what the entry belongs to
    /// (`phones[1]`, `calls[sent sid 4]`, `threads[2]`, ...): the lines
    /// `show` prints and the fields `diff` compares.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out = vec![("counters".to_string(), self.counters_text())];
        for p in &self.phones {
            out.push((format!("phones[{}]", p.slot), p.state.to_string()));
        }
        let mut seen = BTreeMap::new();
        for c in &self.calls {
            let mut key = format!("calls[{} sid {}]", c.queue, c.sender_side_id);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                key = format!("calls[{} sid {} #{n}]", c.queue, c.sender_side_id);
            }
            out.push((key, c.text()));
        }
        for (i, n) in self.notifications.iter().enumerate() {
            out.push((
                format!("notifications[{i}]"),
                format!("method {} args {:?}", n.method, n.args),
            ));
        }
        for t in &self.threads {
            out.push((format!("threads[{}]", t.thread_id), t.text()));
        }
        out
    }
}

fn call_view(d: &CallDetail, queue: &'static str, sender_side_id: u64) -> CallDetailView {
    let mut v = CallDetailView {
        queue,
        sender_side_id,
        kind: "answer",
        caller: None,
        receiver: None,
        caller_phone: None,
        conn: None,
        forwarded_by: Vec::new(),
        answer_ptr: None,
        read: None,
        connect: None,
        discard_answer: false,
        offer_revoked: false,
    };
    if let CallDetail::Call(p) = d {
        v.kind = "call";
        v.caller = Some((&p.caller).into());
        v.receiver = Some((&p.receiver).into());
        v.caller_phone = p.caller_phone;
        v.conn = Some(p.conn);
        v.forwarded_by = p.forwarded_by.iter().map(PeerView::from).collect();
        v.answer_ptr = p.answer_ptr;
        v.read = p.read.map(|r| (r.dst, r.room));
        v.connect = p.connect.as_ref().map(|c| match c {
            ConnectDetail::MeTo { phone, conn } => {
                format!("connect-me-to into phone {phone} (connection {conn})")
            }
            ConnectDetail::ToReceiver {
                target,
                conn,
                phone,
            } => {
                let slot = phone.map_or("no slot yet".to_string(), |p| format!("phone {p}"));
                format!(
                    "connect-to-me: receiver gets {} (connection {conn}), {slot}",
                    PeerView::from(target)
                )
            }
        });
        v.discard_answer = p.discard_answer;
        v.offer_revoked = p.offer_revoked;
    }
    v
}

impl CallDetailView {
    /// `task 7 -> service spartan.vfs via phone 2, connection 41, ...`.
    pub fn text(&self) -> String {
        let (Some(caller), Some(receiver)) = (&self.caller, &self.receiver) else {
            return "answer".into();
        };
        let mut s = format!("{caller} -> {receiver}");
        if let Some(p) = self.caller_phone {
            s.push_str(&format!(" via phone {p}"));
        }
        if let Some(c) = self.conn {
            s.push_str(&format!(", connection {c}"));
        }
        if !self.forwarded_by.is_empty() {
            let by: Vec<String> = self.forwarded_by.iter().map(|p| p.to_string()).collect();
            s.push_str(&format!(", forwarded by {}", by.join(", ")));
        }
        if let Some(a) = self.answer_ptr {
            s.push_str(&format!(", answer to {a:#x}"));
        }
        if let Some((dst, room)) = self.read {
            s.push_str(&format!(", read into {dst:#x} ({room} B)"));
        }
        if let Some(c) = &self.connect {
            s.push_str(&format!(", {c}"));
        }
        if self.discard_answer {
            s.push_str(", answer discarded");
        }
        if self.offer_revoked {
            s.push_str(", offer revoked");
        }
        s
    }
}

impl ThreadDetailView {
    /// `seen as 2, index 1, asleep, deadline in 2500000 ns, then ...`.
    pub fn text(&self) -> String {
        let mut s = format!("seen as {}, index {}", self.seen_id, self.index);
        if self.asleep {
            s.push_str(", asleep");
        }
        if let Some(ns) = self.remaining_ns {
            s.push_str(&format!(", deadline in {ns} ns"));
        }
        if let Some(t) = &self.then {
            s.push_str(&format!(", then {t}"));
        }
        s
    }
}

/// What differs between the kernel states of one task in two images
/// (`None`: the image has no kernel state record for it). Fields are
/// named `kernel_state.<entry key>`; when only one side has a record, one
/// change `kernel_state` says so.
pub fn diff(a: Option<&KernelStateView>, b: Option<&KernelStateView>) -> Vec<FieldChange> {
    let (a, b) = match (a, b) {
        (None, None) => return Vec::new(),
        (Some(a), Some(b)) => (a, b),
        (a, b) => {
            let side = |k: Option<&KernelStateView>| {
                k.map(|k| format!("{} calls, {} threads", k.calls.len(), k.threads.len()))
            };
            return FieldChange::of("kernel_state", side(a), side(b))
                .into_iter()
                .collect();
        }
    };
    let ea: BTreeMap<String, String> = a.entries().into_iter().collect();
    let eb: BTreeMap<String, String> = b.entries().into_iter().collect();
    let keys: std::collections::BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let side = |m: &BTreeMap<String, String>| m.get(k).cloned();
            FieldChange::of(format!("kernel_state.{k}"), side(&ea), side(&eb))
        })
        .collect()
}
