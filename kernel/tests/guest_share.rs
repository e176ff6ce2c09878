//! Area sharing with guest tasks, written as WAT programs with the runtime
//! of `guest::rt`: guest to guest share-out with a futex across the two
//! tasks, a guest sharing in a native service's area, a native service
//! sharing out to a guest and waking it through a futex in the shared
//! page, refusals seen by guests, and the sharing query on guest tasks.

use std::task::Poll;

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::ipc::method::IPC_M_SHARE_IN;
use spartan_kernel::ipc::{AreaMapping, EOK, Event};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::machine::Value;
use spartan_kernel::mm::AreaFlags;
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Step};
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskPolicy, ThreadId};

mod guest_common;
use guest_common::{kernel, log_of, spawn};

/// Offers its area at 1 MiB (holding 21) to the server, then sleeps on the
/// futex at +4 until the server wrote the reply there. Stays alive at the
/// end (blocked) so the test can query its areas.
const OFFERER: &str = r#"
  (func (export "main") (param $phone i32)
    (call $log_num (call $as_area_create (i32.const 0x100000) (i64.const 4096) (i32.const 3)))
    (i32.store (i32.const 0x100000) (i32.const 21))
    ;; the primary area is never shared: ENOTSUP (8)
    (call $log_num (call $share_out (local.get $phone) (i64.const 0) (i64.const 65536) (i64.const 3)))
    ;; no area there: ENOENT (1)
    (call $log_num (call $share_out (local.get $phone) (i64.const 0x300000) (i64.const 4096) (i64.const 3)))
    (call $log_num (call $share_out (local.get $phone) (i64.const 0x100000) (i64.const 4096) (i64.const 3)))
    (call $log_num (call $answer_word (i32.const 1)))
    (loop $w
      (if (i32.eqz (i32.load (i32.const 0x100004)))
        (then
          (drop (call $futex_wait (i32.const 0x100004) (i32.const 0) (i64.const -1)))
          (br $w))))
    (call $log_num (i64.extend_i32_u (i32.load (i32.const 0x100004))))
    (drop (call $futex_wait (i32.const 0x500) (i32.const 0) (i64.const -1))))
"#;

/// Accepts the offered area (first at a base overlapping its primary area,
/// refused with EADDRINUSE, then at 2 MiB), doubles the word and wakes
/// the offerer through its own mapping.
const ACCEPTER: &str = r#"
  (func (export "main")
    (call $log_num (call $wait (i64.const -1)))
    (call $log_num (call $ev (i32.const 4)))
    (call $log_num (call $ev (i32.const 6)))
    (call $log_num (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x8000)))
    (call $log_num (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x200000)))
    (i32.store (i32.const 0x200004) (i32.mul (i32.load (i32.const 0x200000)) (i32.const 2)))
    (drop (call $futex_wake (i32.const 0x200004) (i32.const 1)))
    (drop (call $futex_wait (i32.const 0x500) (i32.const 0) (i64.const -1))))
"#;

#[test]
fn guest_shares_out_to_guest_and_they_meet_on_a_futex() {
    let mut k = kernel(1);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 40,
        ..SchedConfig::default()
    });
    let server = spawn(&mut s, &mut k, "accepter", ACCEPTER, &[]).0;
    let client = spawn(&mut s, &mut k, "offerer", OFFERER, &[Value::I32(0)]).0;
    k.connect_phone(client, server).expect("phone");
    // Both end blocked forever on a private futex.
    assert_eq!(s.run(&mut k, 100_000), RunEnd::Deadlock);
    assert_eq!(
        log_of(&k, client),
        vec!["0", "-8", "-1", "0", "2097152", "42"]
    );
    // Event kind 1 (call), method 5, size 4096, EADDRINUSE (11), then 0.
    assert_eq!(log_of(&k, server), vec!["1", "5", "4096", "-11", "0"]);
    // The sharing relation: the primary area is private; the area at
    // 1 MiB is mapped by the server at 2 MiB.
    let areas = k.task_areas(client).expect("task");
    assert_eq!(areas.len(), 2);
    assert!(areas[0].area.primary && areas[0].area.backing.is_none());
    assert_eq!(areas[1].area.base, 0x100000);
    assert_eq!(
        areas[1].others,
        vec![AreaMapping {
            task: server,
            base: 0x200000,
            flags: AreaFlags::RW
        }]
    );
    let backing = areas[1].area.backing.expect("shared");
    assert_eq!(
        k.task_areas(server).expect("task")[1].area.backing,
        Some(backing)
    );
    k.check_invariants().expect("invariants");
    // A dying sharer leaves the other mapping alone.
    k.kill_task(client).expect("kill");
    assert_eq!(k.backing_mappings(backing).len(), 1);
    k.check_invariants().expect("invariants");
}

/// A native service that supplies its area at 16 MiB (holding "hello") to
/// a share-in, then answers one protocol call with the byte at +4096.
struct Supplier {
    t: NativeTask,
    state: u32,
}

const SUPPLIER_BASE: u64 = 0x100_0000;

impl NativeProgram for Supplier {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        let Poll::Ready(ev) = self.t.wait(k, u64::MAX).expect("wait") else {
            return Step::Continue;
        };
        let Event::Call {
            rx_id,
            method,
            args,
            ..
        } = ev
        else {
            return Step::Continue;
        };
        match self.state {
            0 => {
                assert_eq!((method, args[1], args[2]), (IPC_M_SHARE_IN, 8192, 3));
                self.t
                    .answer_share_in(k, rx_id, SUPPLIER_BASE)
                    .expect("supplied");
            }
            _ => {
                let b = self
                    .t
                    .mem_read(k, SUPPLIER_BASE + 4096, 1)
                    .expect("own area")[0];
                self.t
                    .answer(k, rx_id, EOK, [u64::from(b), 0, 0, 0, 0])
                    .expect("answer");
            }
        }
        self.state += 1;
        if self.state == 2 {
            Step::Done
        } else {
            Step::Continue
        }
    }
}

const SHARER_IN: &str = r#"
  (func (export "main") (param $phone i32)
    (call $log_num (call $share_in (local.get $phone) (i64.const 0x100000) (i64.const 8192) (i64.const 3)))
    (call $print (i32.const 0x100000) (i32.const 5))
    (i32.store8 (i32.const 0x101000) (i32.const 33))
    (call $log_num (call $call_sync (local.get $phone) (i64.const 1024) (i64.const 0)))
    (call $log_num (call $answer_word (i32.const 1))))
"#;

#[test]
fn guest_shares_in_a_native_services_area() {
    let mut k = kernel(2);
    let mut s = Scheduler::new(SchedConfig::default());
    let native = k.spawn_native(
        "console",
        TaskPolicy::Cooperative {
            service_id: "console".into(),
        },
    );
    native
        .area_create(&mut k, SUPPLIER_BASE, 8192, AreaFlags::RW)
        .expect("area");
    native
        .mem_write(&mut k, SUPPLIER_BASE, b"hello")
        .expect("write");
    let guest = spawn(&mut s, &mut k, "client", SHARER_IN, &[Value::I32(0)]).0;
    k.connect_phone(guest, native.id()).expect("phone");
    s.add_native(Box::new(Supplier {
        t: native,
        state: 0,
    }));
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    assert_eq!(
        log_of(&k, guest),
        vec!["0", "hello", "0", "33", "task 2 exited"]
    );
    // The guest is gone; the service keeps its area, shared with no one.
    let areas = k.task_areas(native.id()).expect("task");
    assert_eq!(areas.len(), 1);
    assert!(areas[0].others.is_empty());
    k.check_invariants().expect("invariants");
}

/// A native service that offers an area to a guest and, once accepted,
/// writes 99 at +4 and wakes the guest's futex there.
struct Offerer {
    t: NativeTask,
    phone: spartan_kernel::ipc::PhoneId,
    state: u32,
}

impl NativeProgram for Offerer {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        if self.state == 0 {
            self.t
                .share_out_start(k, self.phone, SUPPLIER_BASE, AreaFlags::RW, 7)
                .expect("offered");
            self.state = 1;
            return Step::Continue;
        }
        match self.t.wait(k, u64::MAX).expect("wait") {
            Poll::Ready(Event::Answer(a)) => {
                assert_eq!((a.retval, a.args[0]), (EOK, 0x300000));
                self.t
                    .mem_write(k, SUPPLIER_BASE + 4, &99u32.to_le_bytes())
                    .expect("write");
                self.t.futex_wake(k, SUPPLIER_BASE + 4, 1).expect("wake");
                Step::Done
            }
            _ => Step::Continue,
        }
    }
}

const ACCEPT_AND_WAIT: &str = r#"
  (func (export "main")
    (drop (call $wait (i64.const -1)))
    (call $log_num (call $ev (i32.const 8)))
    (call $log_num (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x300000)))
    (loop $w
      (if (i32.eqz (i32.load (i32.const 0x300004)))
        (then
          (drop (call $futex_wait (i32.const 0x300004) (i32.const 0) (i64.const -1)))
          (br $w))))
    (call $log_num (i64.extend_i32_u (i32.load (i32.const 0x300004)))))
"#;

#[test]
fn native_service_shares_out_to_a_guest_and_wakes_it() {
    let mut k = kernel(3);
    let mut s = Scheduler::new(SchedConfig::default());
    let native = k.spawn_native("svc", TaskPolicy::Neither);
    native
        .area_create(&mut k, SUPPLIER_BASE, 4096, AreaFlags::RW)
        .expect("area");
    let guest = spawn(&mut s, &mut k, "guest", ACCEPT_AND_WAIT, &[]).0;
    let phone = k.connect_phone(native.id(), guest).expect("phone");
    s.add_native(Box::new(Offerer {
        t: native,
        phone,
        state: 0,
    }));
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    // ARG4 of the offer, the accepted answer, the value after the wake.
    assert_eq!(log_of(&k, guest), vec!["7", "0", "99", "task 2 exited"]);
    k.check_invariants().expect("invariants");
}

/// A worker thread sleeps on a word of a private area; then main shares
/// the area out. The server's wake through its own mapping must reach the
/// sleeper (whose futex key changed when the area became shared).
const SLEEPER_THEN_SHARE: &str = r#"
  (table 1 funcref)
  (elem (i32.const 0) $worker)
  (func $worker (param i64)
    (loop $w
      (if (i32.eqz (i32.load (i32.const 0x100008)))
        (then
          (drop (call $futex_wait (i32.const 0x100008) (i32.const 0) (i64.const -1)))
          (br $w))))
    (call $log_num (i64.extend_i32_u (i32.load (i32.const 0x100008)))))
  (func (export "main") (param $phone i32)
    (drop (call $as_area_create (i32.const 0x100000) (i64.const 4096) (i32.const 3)))
    (drop (call $thread_create (i32.const 0) (i64.const 0)))
    (drop (call $sleep (i64.const 1000000)))
    (call $log_num (call $share_out (local.get $phone) (i64.const 0x100000) (i64.const 4096) (i64.const 3))))
"#;

const WAKER: &str = r#"
  (func (export "main")
    (drop (call $wait (i64.const -1)))
    (drop (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x200000)))
    (i32.store (i32.const 0x200008) (i32.const 5))
    (call $log_num (call $futex_wake (i32.const 0x200008) (i32.const 1))))
"#;

#[test]
fn a_sleeper_on_an_area_that_becomes_shared_is_woken_through_the_other_mapping() {
    let mut k = kernel(4);
    let mut s = Scheduler::new(SchedConfig::default());
    let server = spawn(&mut s, &mut k, "waker", WAKER, &[]).0;
    let client = spawn(
        &mut s,
        &mut k,
        "sleeper",
        SLEEPER_THEN_SHARE,
        &[Value::I32(0)],
    )
    .0;
    k.connect_phone(client, server).expect("phone");
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    // One sleeper woken; main's share answered 0; the worker saw 5.
    assert_eq!(log_of(&k, server), vec!["1", "task 1 exited"]);
    assert_eq!(log_of(&k, client), vec!["0", "5", "task 2 exited"]);
    k.check_invariants().expect("invariants");
}

/// Supplies its area at 3 MiB (holding "abc") to one share-in, first
/// trying a base where it has no area (ENOENT, the call stays dispatched).
const GUEST_SUPPLIER: &str = r#"
  (data (i32.const 0x400) "abc")
  (func (export "main")
    (drop (call $as_area_create (i32.const 0x300000) (i64.const 8192) (i32.const 3)))
    (memory.copy (i32.const 0x300000) (i32.const 0x400) (i32.const 3))
    (drop (call $wait (i64.const -1)))
    (call $log_num (call $ev (i32.const 4)))
    (call $log_num (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x500000)))
    (call $log_num (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0x300000))))
"#;

/// Shares the supplier's area in at 1 MiB, prints it, then destroys its
/// mapping (again: ENOENT; the primary area: ENOTSUP).
const GUEST_REQUESTER: &str = r#"
  (func (export "main") (param $phone i32)
    (call $log_num (call $share_in (local.get $phone) (i64.const 0x100000) (i64.const 8192) (i64.const 1)))
    (call $log_num (call $answer_word (i32.const 1)))
    (call $print (i32.const 0x100000) (i32.const 3))
    (call $log_num (call $as_area_destroy (i32.const 0x100000)))
    (call $log_num (call $as_area_destroy (i32.const 0x100000)))
    (call $log_num (call $as_area_destroy (i32.const 0))))
"#;

#[test]
fn guest_supplies_a_share_in_to_another_guest() {
    let mut k = kernel(5);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 60,
        ..SchedConfig::default()
    });
    let supplier = spawn(&mut s, &mut k, "supplier", GUEST_SUPPLIER, &[]).0;
    let requester = spawn(
        &mut s,
        &mut k,
        "requester",
        GUEST_REQUESTER,
        &[Value::I32(0)],
    )
    .0;
    k.connect_phone(requester, supplier).expect("phone");
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    // Method 6; ENOENT (1) for the base without an area; then mapped.
    assert_eq!(log_of(&k, supplier), vec!["6", "-1", "0", "task 1 exited"]);
    assert_eq!(
        log_of(&k, requester),
        vec!["0", "1048576", "abc", "0", "-1", "-8", "task 2 exited"]
    );
    k.check_invariants().expect("invariants");
}

/// Offers its area at 1 MiB, replaces it by another of the same size at
/// the same base, then logs the answer's return value.
const REPLACER: &str = r#"
  (func (export "main") (param $phone i32)
    (drop (call $as_area_create (i32.const 0x100000) (i64.const 4096) (i32.const 3)))
    (call $log_num (call $ipc_call_async (local.get $phone) (i64.const 5)
      (i64.const 0x100000) (i64.const 4096) (i64.const 3) (i64.const 0) (i64.const 0)))
    (call $log_num (call $as_area_destroy (i32.const 0x100000)))
    (call $log_num (call $as_area_create (i32.const 0x100000) (i64.const 4096) (i32.const 3)))
    (i32.store (i32.const 0x100000) (i32.const 7))
    (call $log_num (call $wait (i64.const -1)))
    (call $log_num (call $ev (i32.const 4))))
"#;

#[test]
fn a_guest_offer_of_a_destroyed_area_never_shares_its_replacement() {
    let mut k = kernel(6);
    let mut s = Scheduler::new(SchedConfig::default());
    let srv = k.spawn_native("srv", TaskPolicy::Neither);
    let guest = spawn(&mut s, &mut k, "replacer", REPLACER, &[Value::I32(0)]).0;
    k.connect_phone(guest, srv.id()).expect("phone");
    assert_eq!(s.run(&mut k, 1000), RunEnd::Deadlock);
    let rx = match srv.wait(&mut k, 0).expect("wait") {
        Poll::Ready(Event::Call {
            rx_id, method: 5, ..
        }) => rx_id,
        other => panic!("expected the offer, got {other:?}"),
    };
    assert_eq!(
        srv.accept_share_out(&mut k, rx, 0x10_0000),
        Err(spartan_kernel::task::native::NativeError::Errno(
            spartan_kernel::ipc::Errno::Refused
        ))
    );
    assert!(k.task_areas(srv.id()).expect("srv").is_empty());
    assert_eq!(srv.mem_read(&k, 0x10_0000, 4).expect("read"), [0; 4]);
    assert_eq!(s.run(&mut k, 1000), RunEnd::AllDone);
    // Call id 1, destroy and create succeed, an answer (2) with -ENOENT.
    assert_eq!(
        log_of(&k, guest),
        vec![
            "1",
            "0",
            "0",
            "2",
            "-1",
            &format!("task {} exited", guest.0)
        ]
    );
}
