//! Presentation types shared by `show` and `diff`: the image's records
//! turned into plain, serializable values with stable, readable names.
//!
//! Digests become hex strings, peers and queues lower-case tagged values,
//! flag bits a `rwxc` string, so that the JSON output is pleasant for
//! scripts and the human renderer has little left to do.

use serde::Serialize;
use snapfmt::exec::Value;
use snapfmt::{
    BufferKind, CallQueue, CoopBlob, Digest, FileBackup, ModuleRef, Peer, PendingCall, PhoneSlot,
    area_flags,
};

/// How many values a list rendering shows before eliding the rest.
pub const MAX_VALUES_SHOWN: usize = 12;

/// The other end of a phone, call or shared area.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerView {
    /// A checkpointable task of the image's checkpoint set.
    Task(u64),
    /// A cooperative service, by persistent service id.
    Service(String),
    /// A task outside the checkpoint set.
    Outside(u64),
}

impl From<&Peer> for PeerView {
    fn from(p: &Peer) -> Self {
        match p {
            Peer::Task(t) => PeerView::Task(*t),
            Peer::Service(s) => PeerView::Service(s.clone()),
            Peer::Outside(t) => PeerView::Outside(*t),
        }
    }
}

impl std::fmt::Display for PeerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerView::Task(t) => write!(f, "task {t}"),
            PeerView::Service(s) => write!(f, "service {s}"),
            PeerView::Outside(t) => write!(f, "outside task {t}"),
        }
    }
}

/// `rwxc` flags of an area, `-` for a missing bit.
pub fn area_flags_text(flags: u32) -> String {
    let bit = |b: u32, c: char| if flags & b != 0 { c } else { '-' };
    let mut s: String = [
        bit(area_flags::READ, 'r'),
        bit(area_flags::WRITE, 'w'),
        bit(area_flags::EXEC, 'x'),
        bit(area_flags::CACHEABLE, 'c'),
    ]
    .into_iter()
    .collect();
    let known = area_flags::READ | area_flags::WRITE | area_flags::EXEC | area_flags::CACHEABLE;
    if flags & !known != 0 {
        s.push_str(&format!("+{:#x}", flags & !known));
    }
    s
}

/// A value as `i32:5`, `f64:0x3ff0000000000000`, `funcref:null` ...
pub fn value_text(v: &Value) -> String {
    match v {
        Value::I32(x) => format!("i32:{}", *x as i32),
        Value::I64(x) => format!("i64:{}", *x as i64),
        Value::F32(x) => format!("f32:{}", f32::from_bits(*x)),
        Value::F64(x) => format!("f64:{}", f64::from_bits(*x)),
        Value::FuncRef(None) => "funcref:null".into(),
        Value::FuncRef(Some(i)) => format!("funcref:{i}"),
        Value::ExternRef(None) => "externref:null".into(),
        Value::ExternRef(Some(i)) => format!("externref:{i}"),
    }
}

/// A list of values, `[i32:1, i32:2]`, eliding after [`MAX_VALUES_SHOWN`].
pub fn values_text(vs: &[Value]) -> String {
    let mut parts: Vec<String> = vs.iter().take(MAX_VALUES_SHOWN).map(value_text).collect();
    if vs.len() > MAX_VALUES_SHOWN {
        parts.push(format!("… {} more", vs.len() - MAX_VALUES_SHOWN));
    }
    format!("[{}]", parts.join(", "))
}

/// A short digest for human output (the first 12 hex digits).
pub fn short(d: &Digest) -> String {
    let mut s = d.to_hex();
    s.truncate(12);
    s
}

/// One phone slot. Free slots (holes) are listed too: restore recreates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneView {
    /// The phone's sender-side id (its slot).
    pub phone: u32,
    /// The other end; `None` for a free slot.
    pub peer: Option<PeerView>,
    /// The id the callee knows the connection by; `None` for a free slot.
    pub receiver_side_id: Option<u64>,
}

impl PhoneView {
    pub fn of(phone: u32, slot: &PhoneSlot) -> Self {
        match slot {
            PhoneSlot::Free => PhoneView {
                phone,
                peer: None,
                receiver_side_id: None,
            },
            PhoneSlot::Connected(p) => PhoneView {
                phone,
                peer: Some((&p.peer).into()),
                receiver_side_id: Some(p.receiver_side_id),
            },
        }
    }

    /// `task 2 (rid 7)` or `free`.
    pub fn text(&self) -> String {
        match (&self.peer, self.receiver_side_id) {
            (Some(p), Some(r)) => format!("{p} (receiver id {r})"),
            _ => "free".into(),
        }
    }
}

/// Lower-case name of a call queue.
pub fn queue_name(q: CallQueue) -> &'static str {
    match q {
        CallQueue::Sent => "sent",
        CallQueue::Forwarded => "forwarded",
        CallQueue::UndeliveredAnswer => "undelivered_answer",
        CallQueue::Dispatched => "dispatched",
        CallQueue::Undispatched => "undispatched",
        CallQueue::Synchronous => "synchronous",
    }
}

/// One pending call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CallView {
    pub queue: &'static str,
    pub sender_side_id: u64,
    pub receiver_side_id: u64,
    pub phone: Option<u32>,
    pub peer: PeerView,
    /// Method (or return value) and five arguments.
    pub words: [u64; 6],
    pub thread: Option<u64>,
    /// `data_write` or `data_read`, if a buffer travels with the call.
    pub buffer_kind: Option<&'static str>,
    /// Length of that buffer in bytes.
    pub buffer_len: Option<u64>,
    /// SHA-256 of that buffer (hex).
    pub buffer_sha256: Option<String>,
}

impl From<&PendingCall> for CallView {
    fn from(c: &PendingCall) -> Self {
        CallView {
            queue: queue_name(c.queue),
            sender_side_id: c.sender_side_id,
            receiver_side_id: c.receiver_side_id,
            phone: c.phone,
            peer: (&c.peer).into(),
            words: c.words,
            thread: c.thread,
            buffer_kind: c.buffer.as_ref().map(|b| match b.kind {
                BufferKind::DataWrite => "data_write",
                BufferKind::DataRead => "data_read",
            }),
            buffer_len: c.buffer.as_ref().map(|b| b.bytes.len() as u64),
            buffer_sha256: c.buffer.as_ref().map(|b| Digest::of(&b.bytes).to_hex()),
        }
    }
}

impl CallView {
    /// One line: queue, ids, peer, method and arguments, buffer.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:<18} sid {:<4} rid {:<4} {} method {} args {:?}",
            self.queue,
            self.sender_side_id,
            self.receiver_side_id,
            self.peer,
            self.words[0],
            &self.words[1..]
        );
        if let Some(p) = self.phone {
            s.push_str(&format!(" phone {p}"));
        }
        if let Some(t) = self.thread {
            s.push_str(&format!(" thread {t}"));
        }
        if let (Some(k), Some(n)) = (self.buffer_kind, self.buffer_len) {
            s.push_str(&format!(" buffer {k} {n} B"));
        }
        s
    }
}

/// One cooperative-state blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobView {
    pub service_id: String,
    /// The task's phone of the connection.
    pub connection: u32,
    pub len: u64,
    pub sha256: String,
}

impl From<&CoopBlob> for BlobView {
    fn from(b: &CoopBlob) -> Self {
        BlobView {
            service_id: b.service_id.clone(),
            connection: b.connection,
            len: b.data.len() as u64,
            sha256: Digest::of(&b.data).to_hex(),
        }
    }
}

/// One file the task depended on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileView {
    pub path: String,
    pub policy: String,
    pub fs_identity: String,
    pub size: u64,
    pub mtime: i64,
    pub sha256: String,
    /// Whether the content is stored in the image.
    pub stored: bool,
}

impl From<&FileBackup> for FileView {
    fn from(f: &FileBackup) -> Self {
        FileView {
            path: f.path.clone(),
            policy: format!("{:?}", f.policy),
            fs_identity: f.fs_identity.clone(),
            size: f.size,
            mtime: f.mtime,
            sha256: f.sha256.to_hex(),
            stored: f.stored,
        }
    }
}

/// The module a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModuleView {
    /// Bundled in the image.
    Embedded { sha256: String, len: u64 },
    /// Loaded from a path at restore.
    External { path: String, sha256: String },
}

impl From<&ModuleRef> for ModuleView {
    fn from(m: &ModuleRef) -> Self {
        match m {
            ModuleRef::Embedded { sha256, len } => ModuleView::Embedded {
                sha256: sha256.to_hex(),
                len: *len,
            },
            ModuleRef::External { path, sha256 } => ModuleView::External {
                path: path.clone(),
                sha256: sha256.to_hex(),
            },
        }
    }
}

impl ModuleView {
    pub fn text(&self) -> String {
        match self {
            ModuleView::Embedded { sha256, len } => {
                format!(
                    "embedded, {len} B, sha256 {}",
                    &sha256[..sha256.len().min(12)]
                )
            }
            ModuleView::External { path, sha256 } => {
                format!(
                    "external {path}, sha256 {}",
                    &sha256[..sha256.len().min(12)]
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_values_render() {
        assert_eq!(
            area_flags_text(area_flags::READ | area_flags::WRITE),
            "rw--"
        );
        assert_eq!(area_flags_text(0x11), "r---+0x10");
        assert_eq!(value_text(&Value::I32(u32::MAX)), "i32:-1");
        assert_eq!(value_text(&Value::F64(1.5f64.to_bits())), "f64:1.5");
        assert_eq!(value_text(&Value::FuncRef(None)), "funcref:null");
        let many: Vec<Value> = (0..20).map(Value::I32).collect();
        assert!(values_text(&many).ends_with("… 8 more]"));
    }
}
