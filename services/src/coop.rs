//! The cooperation framework (thesis 4.4.4 to 4.4.6, 5.4): what a service
//! does so that the checkpointer can take and restore the distributed
//! state its clients share with it.
//!
//! The checkpointer talks to a service over one connection with six
//! messages, each naming a connection of the service by its
//! receiver-side id (`conn`, the id the service's answerbox gave it; the
//! checkpointer learns it from the kernel's phone of the client):
//!
//! | message | ARG1 | answer |
//! |---|---|---|
//! | [`IPC_M_CHKPNT_REQUEST`] | conn | `EOK` once `conn` is in a checkpointable state; from then on it is *held* |
//! | [`IPC_M_CHKPNT_INIT`] | conn | `EOK`, ARG1 = length, ARG2 = version of the exported state; the checkpointer's next `IPC_M_DATA_READ` on the same connection reads it |
//! | [`IPC_M_CHKPNT_END`] | conn | `EOK`; `conn` is released and the calls that arrived while it was held are handled, in order |
//! | [`IPC_M_RECONNECT_ME`] | - | `ENOTSUP`: the kernel recreates a restored client's phones itself (to a service, as a new connection whose id the checkpointer passes on) |
//! | [`IPC_M_RSTR_INIT`] | conn, ARG2 version, ARG3 length | `EOK`; the checkpointer's next `IPC_M_DATA_WRITE` on the same connection carries the state, which becomes `conn`'s, held |
//! | [`IPC_M_RSTR_END`] | conn | `EOK` once the restored state is checked; `conn` is released |
//! | [`IPC_M_CHKPNT_FILE`] | conn, ARG2 index, ARG3 offset | `EOK`, ARG1 = length of the item, ARG2 = bytes staged; the next `IPC_M_DATA_READ` reads them |
//! | [`IPC_M_RSTR_NEED`] | conn, ARG2 index | `EOK`, ARG1 = saved files the imported state needs; below it, ARG2..ARG5 = the SHA-256 of the `index`th (four u64 LE) |
//! | [`IPC_M_RSTR_FILE`] | conn, ARG2 offset, ARG3 length | `EOK`; the next `IPC_M_DATA_WRITE` carries bytes `offset..` of a saved file's content of `length` bytes |
//!
//! *Saved files* (thesis 4.4.8, the backup policies): an export may come
//! with copies of files, fixed when the state is exported
//! ([`ConnState::backups`]); `IPC_M_CHKPNT_INIT` answers their number in
//! ARG3. Item `index`'s record (a `snapfmt::FileBackup`, postcard) is read
//! with offset `u64::MAX`, its content from offset 0 on, at most
//! [`MAX_CHUNK`] bytes a time; the checkpointer stores both in the image.
//! At restore the service says which contents the imported state needs
//! (`IPC_M_RSTR_NEED`, by SHA-256) and the checkpointer writes each in
//! pieces (`IPC_M_RSTR_FILE`); the service checks the state (and uses the
//! contents) at `IPC_M_RSTR_END`.
//!
//! *Lazy cooperation*: a request for a connection in the middle of an
//! operation is answered when the operation is over (the service calls
//! [`Coop::settle`] after each change); meanwhile the connection goes on.
//! While held, new calls on it are kept back ([`Coop::on_event`] returns
//! `None` for them) and handed to the service after `IPC_M_CHKPNT_END` or
//! `IPC_M_RSTR_END` ([`Coop::released`]), so the exported state stays
//! what the image holds. The checkpointer bounds every wait with its
//! timeout.
//!
//! *Retractable blocking calls*: a connection whose only outstanding work
//! is a blocking call that has changed nothing yet (a console read with no
//! key) is checkpointable ([`ConnState::checkpointable`] says so): the
//! call stays unanswered in the service and the client's image holds it
//! as sent, so a restore issues it again, and after the checkpoint the
//! service answers it as before. Checkpointing never waits for a key.
//!
//! *Calls of a client being restored*: a restore files a restored
//! client's unanswered asynchronous calls to a service again (through the
//! same phone, on the connection the kernel made for it) before the
//! checkpointer hands over the connection's state. A call on a connection
//! the service does not know, from a task that is stopped, is therefore
//! kept back ([`Coop::on_event`] returns `None`) until that connection's
//! state arrives; it is then handled after `IPC_M_RSTR_END` like any call
//! kept while held. If the client hangs up first, or the restore of the
//! connection fails, the calls kept for it are answered `EHANGUP`.
//!
//! Only the checkpointer may send these messages (a task whose persistent
//! id is [`CHECKPOINTER_ID`]); anyone else is refused (`EREFUSED`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use snapfmt::FileBackup;

use spartan_kernel::ipc::method::{
    IPC_M_CONNECT_ME_TO, IPC_M_DATA_READ, IPC_M_DATA_WRITE, IPC_M_PHONE_HUNGUP,
};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::task::TaskPolicy;
use spartan_kernel::task::native::{NativeError, NativeTask};

/// First method number of the cooperation protocol.
pub const COOP_BASE: u64 = 0x1_0000;
pub const IPC_M_CHKPNT_REQUEST: u64 = COOP_BASE;
pub const IPC_M_CHKPNT_INIT: u64 = COOP_BASE + 1;
pub const IPC_M_CHKPNT_END: u64 = COOP_BASE + 2;
pub const IPC_M_RECONNECT_ME: u64 = COOP_BASE + 3;
pub const IPC_M_RSTR_INIT: u64 = COOP_BASE + 4;
pub const IPC_M_RSTR_END: u64 = COOP_BASE + 5;
pub const IPC_M_CHKPNT_FILE: u64 = COOP_BASE + 6;
pub const IPC_M_RSTR_NEED: u64 = COOP_BASE + 7;
pub const IPC_M_RSTR_FILE: u64 = COOP_BASE + 8;

/// Largest piece of a saved file moved by one data call.
pub const MAX_CHUNK: u64 = 8 << 20;
/// Largest saved file (the image format's limit for a file backup).
pub const MAX_SAVED_FILE: u64 = snapfmt::limits::MAX_FILE_BACKUP_BODY;

/// Persistent service id of the checkpointer, the only task that may
/// send the cooperation messages.
pub const CHECKPOINTER_ID: &str = "spartan.checkpointer";

/// Largest exported state of one connection.
pub const MAX_STATE: u64 = 1 << 20;

/// A saved file: its record and its content.
pub type SavedFile = (FileBackup, Arc<[u8]>);

/// The state a service keeps for one client connection.
pub trait ConnState: Sized {
    /// Version of the exported form (stored in images with the blob).
    const VERSION: u32;
    /// Whether the connection is in a checkpointable state: no operation
    /// half done (a blocking call that has changed nothing yet does not
    /// count: it is retracted, see the module doc).
    fn checkpointable(&self) -> bool;
    /// The exported form.
    fn export(&self) -> Vec<u8>;
    /// The state from an exported form of `version`; an error names what
    /// is wrong.
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String>;
    /// The state of a connection the service did not accept itself (one
    /// the kernel made, such as every task's phone 0 to the naming
    /// service), taken on its first call; `None` (the default): such a
    /// connection has no state and cannot be checkpointed.
    fn unaccepted() -> Option<Self> {
        None
    }
    /// Copies of files saved with the exported state (the backup
    /// policies): each file's record and content, as they were when
    /// [`export`](Self::export) ran. None by default.
    fn backups(&self) -> Vec<SavedFile> {
        Vec::new()
    }
    /// The saved contents (by SHA-256) an imported state needs before it
    /// is checked. None by default.
    fn needs(&self) -> Vec<[u8; 32]> {
        Vec::new()
    }
    /// Hands a saved content the imported state needs to it.
    fn give(&mut self, _content: Vec<u8>) {}
}

/// Where a connection stands in a checkpoint or restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Serving normally.
    Live,
    /// A checkpoint asked for it; answered once it is checkpointable.
    Requested(RxCallId),
    /// Held for a checkpoint or restore: its new calls are kept back.
    Held,
}

struct Conn<C> {
    state: C,
    hold: Hold,
    kept: VecDeque<Event>,
}

/// A transfer announced by INIT and carried by the next data call on the
/// checkpointer's connection.
enum Staged {
    Export(Vec<u8>),
    Import {
        conn: ConnId,
        version: u32,
        len: u64,
    },
    /// A piece of a saved file for an imported state.
    Piece {
        conn: ConnId,
        offset: u64,
        total: u64,
    },
}

/// The service side of the protocol, for connection states `C`.
pub struct Coop<C> {
    conns: BTreeMap<ConnId, Conn<C>>,
    /// Connections whose restored state was refused, and why (their
    /// `IPC_M_RSTR_END` is refused).
    failed: BTreeMap<ConnId, String>,
    /// By the checkpointer's connection.
    staged: BTreeMap<ConnId, Staged>,
    released: VecDeque<Event>,
    /// Calls on connections the service does not know yet, from stopped
    /// tasks (restored clients waiting for their connection's state).
    early: BTreeMap<ConnId, VecDeque<Event>>,
    /// Saved files of exported connections, until their end.
    saved: BTreeMap<ConnId, Vec<SavedFile>>,
    /// A saved file being written back, by imported connection.
    incoming: BTreeMap<ConnId, Vec<u8>>,
    /// Imported connections not checked yet (at their `IPC_M_RSTR_END`).
    unchecked: BTreeSet<ConnId>,
}

impl<C> Default for Coop<C> {
    fn default() -> Self {
        Coop {
            conns: BTreeMap::new(),
            failed: BTreeMap::new(),
            staged: BTreeMap::new(),
            released: VecDeque::new(),
            early: BTreeMap::new(),
            saved: BTreeMap::new(),
            incoming: BTreeMap::new(),
            unchecked: BTreeSet::new(),
        }
    }
}

/// Whether `sender` (a sender id as `me`'s events show it) is the
/// checkpointer.
pub fn is_checkpointer(k: &Kernel, me: &NativeTask, sender: u64) -> bool {
    let t = k.task_meant_by(me.id(), sender);
    matches!(
        k.task(t).map(|t| &t.policy),
        Some(TaskPolicy::Cooperative { service_id }) if service_id == CHECKPOINTER_ID
    )
}

impl<C: ConnState> Coop<C> {
    /// A new client connection (the service accepted its
    /// `IPC_M_CONNECT_ME_TO`, which named the new id in ARG5).
    pub fn insert(&mut self, conn: ConnId, state: C) {
        self.conns.insert(
            conn,
            Conn {
                state,
                hold: Hold::Live,
                kept: VecDeque::new(),
            },
        );
    }

    /// The state of a connection.
    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut C> {
        self.conns.get_mut(&conn).map(|c| &mut c.state)
    }

    pub fn get(&self, conn: ConnId) -> Option<&C> {
        self.conns.get(&conn).map(|c| &c.state)
    }

    /// Where a connection stands.
    pub fn hold(&self, conn: ConnId) -> Option<Hold> {
        self.conns.get(&conn).map(|c| c.hold)
    }

    /// The connections, by id.
    pub fn ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// Takes an event of the service's answerbox. Cooperation messages
    /// (and the data calls they announce) are handled here; a call on a
    /// held connection is kept back; anything else is returned for the
    /// service to handle. A client's hangup of a connection that is not
    /// held removes its state (after the service saw the event).
    pub fn on_event(
        &mut self,
        k: &mut Kernel,
        me: &NativeTask,
        ev: Event,
    ) -> Result<Option<Event>, NativeError> {
        self.on_event_checking(k, me, ev, |_| Ok(()))
    }

    /// [`on_event`](Self::on_event), with `check` run on every imported
    /// state before it becomes the connection's (a service that must look
    /// at the world, like the VFS at its files): an error refuses the
    /// connection's restore (its `IPC_M_RSTR_END` is answered `EREFUSED`,
    /// and the reason is in the kernel log).
    pub fn on_event_checking(
        &mut self,
        k: &mut Kernel,
        me: &NativeTask,
        ev: Event,
        check: impl FnMut(&mut C) -> Result<(), String>,
    ) -> Result<Option<Event>, NativeError> {
        let Event::Call {
            rx_id,
            conn,
            sender,
            method,
            args,
        } = &ev
        else {
            return Ok(Some(ev));
        };
        let (rx, from, method, args) = (*rx_id, *conn, *method, *args);
        for id in [from, ConnId(args[0])] {
            if !self.conns.contains_key(&id)
                && (id == from || method == IPC_M_CHKPNT_REQUEST)
                && let Some(state) = C::unaccepted()
            {
                self.insert(id, state);
            }
        }
        let coop = (IPC_M_CHKPNT_REQUEST..=IPC_M_RSTR_FILE).contains(&method);
        let staged_data =
            matches!(method, IPC_M_DATA_READ | IPC_M_DATA_WRITE) && self.staged.contains_key(&from);
        if coop || staged_data {
            if !is_checkpointer(k, me, sender.0) {
                me.answer(k, rx, Errno::Refused.retval(), [0; 5])?;
                return Ok(None);
            }
            self.coop_call(k, me, rx, from, method, args, check)?;
            return Ok(None);
        }
        if let Some(c) = self.conns.get_mut(&from)
            && c.hold == Hold::Held
        {
            c.kept.push_back(ev);
            return Ok(None);
        }
        if !self.conns.contains_key(&from) {
            if method == IPC_M_PHONE_HUNGUP {
                self.drop_early(k, me, from)?;
            } else if method != IPC_M_CONNECT_ME_TO
                && k.is_stopped(k.task_meant_by(me.id(), sender.0)) == Ok(true)
            {
                self.early.entry(from).or_default().push_back(ev);
                return Ok(None);
            }
        }
        if method == IPC_M_PHONE_HUNGUP
            && let Some(c) = self.conns.remove(&from)
            && let Hold::Requested(req) = c.hold
        {
            // The client is gone while a checkpoint waited for it.
            me.answer(k, req, Errno::Hangup.retval(), [0; 5])?;
        }
        Ok(Some(ev))
    }

    #[allow(clippy::too_many_arguments)]
    fn coop_call(
        &mut self,
        k: &mut Kernel,
        me: &NativeTask,
        rx: RxCallId,
        from: ConnId,
        method: u64,
        args: [u64; 5],
        mut check: impl FnMut(&mut C) -> Result<(), String>,
    ) -> Result<(), NativeError> {
        let conn = ConnId(args[0]);
        let fail = |k: &mut Kernel, e: Errno| me.answer(k, rx, e.retval(), [0; 5]);
        match method {
            IPC_M_CHKPNT_REQUEST => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return fail(k, Errno::NoEntry);
                };
                if c.hold != Hold::Live {
                    return fail(k, Errno::Invalid);
                }
                if c.state.checkpointable() {
                    c.hold = Hold::Held;
                    me.answer(k, rx, EOK, [0; 5])
                } else {
                    c.hold = Hold::Requested(rx);
                    Ok(())
                }
            }
            IPC_M_CHKPNT_INIT => {
                let Some(c) = self.conns.get(&conn).filter(|c| c.hold == Hold::Held) else {
                    return fail(k, Errno::Invalid);
                };
                let blob = c.state.export();
                let len = blob.len() as u64;
                if len > MAX_STATE {
                    return fail(k, Errno::Limit);
                }
                let saved = c.state.backups();
                let n = saved.len() as u64;
                self.saved.insert(conn, saved);
                self.staged.insert(from, Staged::Export(blob));
                me.answer(k, rx, EOK, [len, u64::from(C::VERSION), n, 0, 0])
            }
            IPC_M_CHKPNT_FILE => {
                let (index, offset) = (args[1], args[2]);
                let Some((record, content)) = self
                    .saved
                    .get(&conn)
                    .and_then(|s| s.get(usize::try_from(index).ok()?))
                else {
                    return fail(k, Errno::NoEntry);
                };
                let record_bytes;
                let bytes: &[u8] = if offset == u64::MAX {
                    record_bytes = postcard::to_allocvec(record).unwrap_or_default();
                    &record_bytes
                } else {
                    content
                };
                let total = bytes.len() as u64;
                let from_at = if offset == u64::MAX { 0 } else { offset };
                if from_at > total {
                    return fail(k, Errno::Invalid);
                }
                let end = total.min(from_at.saturating_add(MAX_CHUNK));
                let piece = bytes[from_at as usize..end as usize].to_vec();
                let n = piece.len() as u64;
                self.staged.insert(from, Staged::Export(piece));
                me.answer(k, rx, EOK, [total, n, 0, 0, 0])
            }
            IPC_M_RSTR_NEED => {
                if self.failed.contains_key(&conn) {
                    // Its end says why.
                    return me.answer(k, rx, EOK, [0; 5]);
                }
                let Some(c) = self
                    .conns
                    .get(&conn)
                    .filter(|_| self.unchecked.contains(&conn))
                else {
                    return fail(k, Errno::NoEntry);
                };
                let needs = c.state.needs();
                let mut a = [needs.len() as u64, 0, 0, 0, 0];
                if let Some(sha) = usize::try_from(args[1]).ok().and_then(|i| needs.get(i)) {
                    for (w, word) in sha.chunks(8).enumerate() {
                        a[1 + w] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                    }
                }
                me.answer(k, rx, EOK, a)
            }
            IPC_M_RSTR_FILE => {
                let (offset, total) = (args[1], args[2]);
                if !self.unchecked.contains(&conn) || total > MAX_SAVED_FILE || offset > total {
                    return fail(k, Errno::Invalid);
                }
                let have = self.incoming.get(&conn).map_or(0, |b| b.len() as u64);
                if offset != have {
                    // Pieces come in order, from 0.
                    self.incoming.remove(&conn);
                    if offset != 0 {
                        return fail(k, Errno::Invalid);
                    }
                }
                self.staged.insert(
                    from,
                    Staged::Piece {
                        conn,
                        offset,
                        total,
                    },
                );
                me.answer(k, rx, EOK, [0; 5])
            }
            IPC_M_RSTR_INIT => {
                let (version, len) = (args[1], args[2]);
                let Ok(version) = u32::try_from(version) else {
                    return fail(k, Errno::Invalid);
                };
                if self.conns.contains_key(&conn) {
                    return fail(k, Errno::AddrInUse);
                }
                if len > MAX_STATE {
                    return fail(k, Errno::Limit);
                }
                self.staged
                    .insert(from, Staged::Import { conn, version, len });
                me.answer(k, rx, EOK, [0; 5])
            }
            IPC_M_DATA_READ => match self.staged.remove(&from) {
                Some(Staged::Export(blob)) => me.answer_data_read(k, rx, &blob),
                _ => fail(k, Errno::Invalid),
            },
            IPC_M_DATA_WRITE => match self.staged.remove(&from) {
                Some(Staged::Piece {
                    conn,
                    offset,
                    total,
                }) => {
                    let room = (total - offset).min(MAX_CHUNK);
                    let bytes = me.accept_data_write(k, rx, room)?;
                    let buf = self.incoming.entry(conn).or_default();
                    buf.extend_from_slice(&bytes);
                    if buf.len() as u64 >= total {
                        let content = self.incoming.remove(&conn).unwrap_or_default();
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.state.give(content);
                        }
                    }
                    Ok(())
                }
                Some(Staged::Import { conn, version, len }) => {
                    let bytes = me.accept_data_write(k, rx, len)?;
                    match C::import(version, &bytes) {
                        Ok(state) => {
                            // The client's calls that came before its state.
                            let kept = self.early.remove(&conn).unwrap_or_default();
                            // Checked at its end, once any saved files
                            // it needs have come.
                            self.unchecked.insert(conn);
                            self.conns.insert(
                                conn,
                                Conn {
                                    state,
                                    hold: Hold::Held,
                                    kept,
                                },
                            );
                        }
                        Err(why) => {
                            let _ = me.log(k, &format!("restore of connection {}: {why}", conn.0));
                            self.failed.insert(conn, why);
                            self.drop_early(k, me, conn)?;
                        }
                    }
                    Ok(())
                }
                _ => fail(k, Errno::Invalid),
            },
            IPC_M_CHKPNT_END | IPC_M_RSTR_END => {
                if method == IPC_M_RSTR_END && self.failed.remove(&conn).is_some() {
                    return fail(k, Errno::Refused);
                }
                if method == IPC_M_CHKPNT_END {
                    self.saved.remove(&conn);
                }
                if method == IPC_M_RSTR_END && self.unchecked.remove(&conn) {
                    self.incoming.remove(&conn);
                    let checked = match self.conns.get_mut(&conn) {
                        Some(c) => check(&mut c.state),
                        None => Ok(()),
                    };
                    if let Err(why) = checked {
                        let _ = me.log(k, &format!("restore of connection {}: {why}", conn.0));
                        // The client's calls that waited for the state
                        // will not be handled.
                        if let Some(c) = self.conns.remove(&conn) {
                            for ev in c.kept {
                                if let Event::Call { rx_id, .. } = ev {
                                    me.answer(k, rx_id, Errno::Hangup.retval(), [0; 5])?;
                                }
                            }
                        }
                        return fail(k, Errno::Refused);
                    }
                }
                let Some(c) = self.conns.get_mut(&conn) else {
                    return fail(k, Errno::NoEntry);
                };
                if let Hold::Requested(req) = c.hold {
                    // The checkpoint gave up waiting (its timeout).
                    me.answer(k, req, Errno::Timeout.retval(), [0; 5])?;
                }
                c.hold = Hold::Live;
                let kept = std::mem::take(&mut c.kept);
                for ev in kept {
                    if let Event::Call {
                        method: IPC_M_PHONE_HUNGUP,
                        ..
                    } = ev
                    {
                        self.conns.remove(&conn);
                    }
                    self.released.push_back(ev);
                }
                me.answer(k, rx, EOK, [0; 5])
            }
            _ => fail(k, Errno::NotSupported),
        }
    }

    /// After the service changed connection states: answers the pending
    /// requests of connections that became checkpointable (they are held
    /// from now on).
    pub fn settle(&mut self, k: &mut Kernel, me: &NativeTask) -> Result<(), NativeError> {
        for c in self.conns.values_mut() {
            if let Hold::Requested(req) = c.hold
                && c.state.checkpointable()
            {
                c.hold = Hold::Held;
                me.answer(k, req, EOK, [0; 5])?;
            }
        }
        Ok(())
    }

    /// Answers `EHANGUP` to the calls kept for a connection that will not
    /// get its state.
    fn drop_early(
        &mut self,
        k: &mut Kernel,
        me: &NativeTask,
        conn: ConnId,
    ) -> Result<(), NativeError> {
        for ev in self.early.remove(&conn).unwrap_or_default() {
            if let Event::Call { rx_id, .. } = ev {
                me.answer(k, rx_id, Errno::Hangup.retval(), [0; 5])?;
            }
        }
        Ok(())
    }

    /// Calls kept back while their connection was held and released since,
    /// oldest first: the service handles them now, as if they had just
    /// arrived.
    pub fn released(&mut self) -> Option<Event> {
        self.released.pop_front()
    }
}
