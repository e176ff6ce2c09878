//! The cooperation framework with real tasks: a service with a running
//! total per connection and a two-step operation, a client, and a native
//! task standing in for the checkpointer (the only one allowed to send
//! the protocol's messages). Lazy cooperation (a request waits for the
//! operation to end), holding (calls on a held connection wait for the
//! end), export and import of a connection's state, refusal of anyone
//! but the checkpointer, a restored client's calls that arrive before its
//! connection's state.

use std::task::Poll;

use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_DATA_READ};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::task::TaskPolicy;
use spartan_kernel::task::native::{NativeTask, SyncAnswer};
use spartan_services::coop::*;

const ADD: u64 = 1024;
const SLOW_ADD: u64 = 1025;

#[derive(Debug, PartialEq)]
struct Tally {
    total: u64,
    /// A slow addition accepted and not finished: not checkpointable.
    busy: Option<(RxCallId, u64)>,
}

impl ConnState for Tally {
    const VERSION: u32 = 1;
    fn checkpointable(&self) -> bool {
        self.busy.is_none()
    }
    fn export(&self) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("version {version}, this service reads 1"));
        }
        let b: [u8; 8] = bytes.try_into().map_err(|_| "not 8 bytes".to_string())?;
        Ok(Tally {
            total: u64::from_le_bytes(b),
            busy: None,
        })
    }
}

struct Service {
    me: NativeTask,
    coop: Coop<Tally>,
}

impl Service {
    /// Handles everything in the answerbox (and what was released).
    fn step(&mut self, k: &mut Kernel) {
        loop {
            let ev = match self.coop.released() {
                Some(ev) => ev,
                None => match self.me.wait(k, 0) {
                    Ok(Poll::Ready(ev)) => match self.coop.on_event(k, &self.me, ev).unwrap() {
                        Some(ev) => ev,
                        None => continue,
                    },
                    _ => return,
                },
            };
            let Event::Call {
                rx_id,
                conn,
                method,
                args,
                ..
            } = ev
            else {
                continue;
            };
            match method {
                IPC_M_CONNECT_ME_TO => {
                    self.coop.insert(
                        ConnId(args[4]),
                        Tally {
                            total: 0,
                            busy: None,
                        },
                    );
                    self.me.answer(k, rx_id, EOK, [0; 5]).unwrap();
                }
                ADD => {
                    let t = self.coop.get_mut(conn).expect("connected");
                    t.total += args[0];
                    let total = t.total;
                    self.me.answer(k, rx_id, EOK, [total, 0, 0, 0, 0]).unwrap();
                }
                SLOW_ADD => {
                    self.coop.get_mut(conn).expect("connected").busy = Some((rx_id, args[0]));
                }
                _ => self
                    .me
                    .answer(k, rx_id, Errno::NotSupported.retval(), [0; 5])
                    .unwrap(),
            }
        }
    }

    /// Finishes the slow additions.
    fn finish(&mut self, k: &mut Kernel) {
        for id in self.coop.ids() {
            let t = self.coop.get_mut(id).unwrap();
            if let Some((rx, x)) = t.busy.take() {
                t.total += x;
                let total = t.total;
                self.me.answer(k, rx, EOK, [total, 0, 0, 0, 0]).unwrap();
            }
        }
        self.coop.settle(k, &self.me).unwrap();
    }
}

struct World {
    k: Kernel,
    svc: Service,
    client: NativeTask,
    /// The client's connection (phone, and its id at the service).
    phone: PhoneId,
    conn: ConnId,
    ck: NativeTask,
    ck_phone: PhoneId,
}

/// Polls a synchronous call until it is answered (stepping the service).
fn sync(w: &mut World, who: NativeTask, phone: PhoneId, method: u64, args: [u64; 5]) -> SyncAnswer {
    for _ in 0..10 {
        if let Poll::Ready(a) = who.call_sync(&mut w.k, phone, method, args).unwrap() {
            return a;
        }
        w.svc.step(&mut w.k);
    }
    panic!("no answer to {method:#x}");
}

/// Sends a synchronous call and steps the service once: the answer, if
/// one came (the call stays in progress otherwise).
fn try_sync(
    w: &mut World,
    who: NativeTask,
    phone: PhoneId,
    method: u64,
    args: [u64; 5],
) -> Option<SyncAnswer> {
    if let Poll::Ready(a) = who.call_sync(&mut w.k, phone, method, args).unwrap() {
        return Some(a);
    }
    w.svc.step(&mut w.k);
    match who.call_sync(&mut w.k, phone, method, args).unwrap() {
        Poll::Ready(a) => Some(a),
        Poll::Pending => None,
    }
}

fn world() -> World {
    let mut k = Kernel::new(KernelConfig::simulation(1));
    let svc_task = k.spawn_native(
        "tally",
        TaskPolicy::Cooperative {
            service_id: "test.tally".into(),
        },
    );
    let mut svc = Service {
        me: svc_task,
        coop: Coop::default(),
    };
    let client = k.spawn_native("client", TaskPolicy::Checkpointable);
    let ck = k.spawn_native(
        "checkpointer",
        TaskPolicy::Cooperative {
            service_id: CHECKPOINTER_ID.into(),
        },
    );
    let first = k.connect_phone(client.id(), svc_task.id()).unwrap();
    let ck_phone = k.connect_phone(ck.id(), svc_task.id()).unwrap();
    // The client's connection, made by the service accepting it.
    client
        .call_async(&mut k, first, IPC_M_CONNECT_ME_TO, [0; 5])
        .unwrap();
    svc.step(&mut k);
    let Poll::Ready(Event::Answer(a)) = client.wait(&mut k, 0).unwrap() else {
        panic!("connected");
    };
    assert_eq!(a.retval, EOK);
    let phone = PhoneId(a.args[4] as u32);
    let conn = svc.coop.ids()[0];
    World {
        k,
        svc,
        client,
        phone,
        conn,
        ck,
        ck_phone,
    }
}

#[test]
fn a_request_waits_for_the_operation_and_held_calls_wait_for_the_end() {
    let mut w = world();
    let (client, phone, conn, ck, ckp) = (w.client, w.phone, w.conn, w.ck, w.ck_phone);
    assert_eq!(sync(&mut w, client, phone, ADD, [5, 0, 0, 0, 0]).args[0], 5);
    // A slow addition is in progress: the request waits (lazily).
    let slow = w
        .client
        .call_async(&mut w.k, phone, SLOW_ADD, [10, 0, 0, 0, 0])
        .unwrap();
    w.svc.step(&mut w.k);
    let req = [conn.0, 0, 0, 0, 0];
    assert!(try_sync(&mut w, ck, ckp, IPC_M_CHKPNT_REQUEST, req).is_none());
    assert!(matches!(w.svc.coop.hold(conn), Some(Hold::Requested(_))));
    // The operation ends: the request is answered, the connection held.
    w.svc.finish(&mut w.k);
    let a = sync(&mut w, ck, ckp, IPC_M_CHKPNT_REQUEST, req);
    assert_eq!(a.retval, EOK);
    assert_eq!(w.svc.coop.hold(conn), Some(Hold::Held));
    let Poll::Ready(Event::Answer(done)) = w.client.wait(&mut w.k, 0).unwrap() else {
        panic!("the slow addition was answered");
    };
    assert_eq!((done.call_id, done.args[0]), (slow, 15));
    // A call while held waits; the state exported is the state before it.
    assert!(try_sync(&mut w, client, phone, ADD, [1, 0, 0, 0, 0]).is_none());
    let init = sync(&mut w, ck, ckp, IPC_M_CHKPNT_INIT, req);
    assert_eq!((init.retval, init.args[0], init.args[1]), (EOK, 8, 1));
    let blob = loop {
        if let Poll::Ready(b) = ck.data_read(&mut w.k, ckp, 64).unwrap() {
            break b;
        }
        w.svc.step(&mut w.k);
    };
    assert_eq!(blob, 15u64.to_le_bytes());
    // The end releases the connection; the held call is handled.
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_CHKPNT_END, req).retval, EOK);
    w.svc.step(&mut w.k);
    let a = sync(&mut w, client, phone, ADD, [1, 0, 0, 0, 0]);
    assert_eq!(
        a.args[0], 16,
        "handled after the end, on the state exported"
    );
    assert_eq!(w.svc.coop.hold(conn), Some(Hold::Live));
    w.k.check_invariants().unwrap();
}

#[test]
fn a_connection_is_restored_from_its_exported_state() {
    let mut w = world();
    let (ck, ckp) = (w.ck, w.ck_phone);
    let restored = ConnId(77);
    let init = [restored.0, 1, 8, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_INIT, init).retval, EOK);
    ck.data_write_start(&mut w.k, ckp, &42u64.to_le_bytes())
        .unwrap();
    w.svc.step(&mut w.k);
    assert_eq!(
        w.svc.coop.get(restored),
        Some(&Tally {
            total: 42,
            busy: None
        })
    );
    assert_eq!(w.svc.coop.hold(restored), Some(Hold::Held));
    let end = [restored.0, 0, 0, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_END, end).retval, EOK);
    assert_eq!(w.svc.coop.hold(restored), Some(Hold::Live));
    // A state of another version is refused by the service.
    let other = [78, 2, 8, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_INIT, other).retval, EOK);
    ck.data_write_start(&mut w.k, ckp, &1u64.to_le_bytes())
        .unwrap();
    w.svc.step(&mut w.k);
    assert_eq!(w.svc.coop.get(ConnId(78)), None);
    // A connection id in use cannot be restored over.
    let taken = [w.conn.0, 1, 8, 0, 0];
    let a = sync(&mut w, ck, ckp, IPC_M_RSTR_INIT, taken);
    assert_eq!(a.retval, Errno::AddrInUse.retval());
}

#[test]
fn only_the_checkpointer_may_cooperate() {
    let mut w = world();
    let (client, phone, conn) = (w.client, w.phone, w.conn);
    let req = [conn.0, 0, 0, 0, 0];
    for method in [IPC_M_CHKPNT_REQUEST, IPC_M_CHKPNT_INIT, IPC_M_RSTR_INIT] {
        let a = sync(&mut w, client, phone, method, req);
        assert_eq!(a.retval, Errno::Refused.retval(), "{method:#x}");
    }
    assert_eq!(w.svc.coop.hold(conn), Some(Hold::Live));
    // And the checkpointer's data read without an INIT is refused too.
    let (ck, ckp) = (w.ck, w.ck_phone);
    let a = sync(&mut w, ck, ckp, IPC_M_DATA_READ, [0x1000, 8, 0, 0, 0]);
    assert_eq!(a.retval, Errno::NotSupported.retval());
}

/// A connection the kernel made for a restored client (the service never
/// accepted it) and the client's call on it, as a restore files it again
/// before the checkpointer hands over the state: (client, phone, conn).
fn restored_client(w: &mut World) -> (NativeTask, PhoneId, ConnId) {
    let c = w.k.spawn_native("restored", TaskPolicy::Checkpointable);
    let phone = w.k.connect_phone(c.id(), w.svc.me.id()).unwrap();
    let Some(spartan_kernel::ipc::Phone::Connected { conn, .. }) =
        w.k.task(c.id()).unwrap().phones.get(phone).cloned()
    else {
        panic!("connected");
    };
    c.call_async(&mut w.k, phone, ADD, [1, 0, 0, 0, 0]).unwrap();
    w.k.stop_task(c.id()).unwrap();
    w.svc.step(&mut w.k);
    (c, phone, conn)
}

fn answer_of(w: &mut World, c: NativeTask) -> Option<(u64, u64)> {
    match c.wait(&mut w.k, 0) {
        Ok(Poll::Ready(Event::Answer(a))) => Some((a.retval, a.args[0])),
        _ => None,
    }
}

#[test]
fn a_restored_clients_early_call_waits_for_its_state() {
    let mut w = world();
    let (ck, ckp) = (w.ck, w.ck_phone);
    let (c, _, conn) = restored_client(&mut w);
    assert_eq!(w.svc.coop.get(conn), None, "not known yet, and not refused");
    let init = [conn.0, 1, 8, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_INIT, init).retval, EOK);
    ck.data_write_start(&mut w.k, ckp, &41u64.to_le_bytes())
        .unwrap();
    w.svc.step(&mut w.k);
    let end = [conn.0, 0, 0, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_END, end).retval, EOK);
    w.svc.step(&mut w.k);
    w.k.resume_task(c.id()).unwrap();
    assert_eq!(
        answer_of(&mut w, c),
        Some((EOK, 42)),
        "handled on the restored state"
    );
    w.k.check_invariants().unwrap();
}

#[test]
fn a_restored_clients_early_call_is_answered_when_its_restore_fails() {
    // The state is refused: the call is answered EHANGUP.
    let mut w = world();
    let (ck, ckp) = (w.ck, w.ck_phone);
    let (c, _, conn) = restored_client(&mut w);
    let init = [conn.0, 9, 8, 0, 0];
    assert_eq!(sync(&mut w, ck, ckp, IPC_M_RSTR_INIT, init).retval, EOK);
    ck.data_write_start(&mut w.k, ckp, &41u64.to_le_bytes())
        .unwrap();
    w.svc.step(&mut w.k);
    w.k.resume_task(c.id()).unwrap();
    assert_eq!(answer_of(&mut w, c), Some((Errno::Hangup.retval(), 0)));
    // The client hangs up before its state came: the same.
    let (c, phone, _) = restored_client(&mut w);
    w.k.resume_task(c.id()).unwrap();
    assert_eq!(answer_of(&mut w, c), None, "kept while it waits");
    c.hangup(&mut w.k, phone).unwrap();
    w.svc.step(&mut w.k);
    assert_eq!(answer_of(&mut w, c), Some((Errno::Hangup.retval(), 0)));
    w.k.check_invariants().unwrap();
}

#[test]
fn a_running_tasks_call_on_an_unknown_connection_is_not_kept() {
    let mut w = world();
    let c = w.k.spawn_native("stranger", TaskPolicy::Checkpointable);
    let phone = w.k.connect_phone(c.id(), w.svc.me.id()).unwrap();
    c.call_async(&mut w.k, phone, 4000, [0; 5]).unwrap();
    w.svc.step(&mut w.k);
    assert_eq!(
        answer_of(&mut w, c),
        Some((Errno::NotSupported.retval(), 0)),
        "the service answers it as ever"
    );
}
