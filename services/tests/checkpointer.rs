//! The checkpointer with real tasks: the naming service, a service with
//! per-connection state (a running total) that cooperates through the
//! framework, and a guest client connected to it through the naming
//! service. A checkpoint takes the client and its connection's state;
//! after a kill, a restore (in the same system, and in a freshly booted
//! one) gives the service the state back under the connection's new id,
//! and the client's totals go on exactly. A service that never settles
//! makes the checkpoint fail by its timeout, leaving nothing stopped or
//! held.

use std::path::Path;
use std::task::Poll;

use snapfmt::Image;
use spartan_kernel::checkpoint::PageLoading;
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME};
use spartan_kernel::ipc::{ConnId, EOK, Errno, Event, Phone, PhoneId, RxCallId};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};
use spartan_services::checkpointer::{
    CheckpointOptions, Checkpointer, CheckpointerError, Clients, DuplicateServer, MissingServer,
    RestoreOpts, checkpoint_set, checkpoint_set_with,
};
use spartan_services::coop::{ConnState, Coop};
use spartan_services::ns::{FIRST_USER_SERVICE, NamingService};

const TALLY: u64 = FIRST_USER_SERVICE + 1;
const ADD: u64 = 1024;
const STALL: u64 = 1025;

struct Total {
    total: u64,
    /// A call that never finishes (the connection never settles).
    stalled: Option<RxCallId>,
}

impl ConnState for Total {
    const VERSION: u32 = 3;
    fn checkpointable(&self) -> bool {
        self.stalled.is_none()
    }
    fn export(&self) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        if version != 3 {
            return Err(format!("version {version}"));
        }
        let b: [u8; 8] = bytes.try_into().map_err(|_| "length".to_string())?;
        Ok(Total {
            total: u64::from_le_bytes(b),
            stalled: None,
        })
    }
}

/// The tally service: registers with the naming service, keeps a total
/// per connection.
struct Tally {
    me: NativeTask,
    ns: PhoneId,
    registered: bool,
    coop: Coop<Total>,
}

impl Tally {
    fn spawn(k: &mut Kernel, ns: &NamingService) -> Tally {
        let me = k.spawn_native(
            "tally",
            TaskPolicy::Cooperative {
                service_id: "test.tally".into(),
            },
        );
        let phone = ns.connect(k, me.id()).unwrap();
        Tally {
            me,
            ns: phone,
            registered: false,
            coop: Coop::default(),
        }
    }

    fn handle(&mut self, k: &mut Kernel, ev: Event) {
        let Event::Call {
            rx_id,
            conn,
            method,
            args,
            ..
        } = ev
        else {
            return;
        };
        let answer = |k: &mut Kernel, rv, a1| self.me.answer(k, rx_id, rv, [a1, 0, 0, 0, 0]);
        match method {
            IPC_M_CONNECT_ME_TO => {
                self.coop.insert(
                    ConnId(args[4]),
                    Total {
                        total: 0,
                        stalled: None,
                    },
                );
                let _ = answer(k, EOK, 0);
            }
            ADD => match self.coop.get_mut(conn) {
                Some(t) => {
                    t.total += args[0];
                    let total = t.total;
                    let _ = answer(k, EOK, total);
                }
                None => {
                    let _ = answer(k, Errno::NoEntry.retval(), 0);
                }
            },
            STALL => {
                if let Some(t) = self.coop.get_mut(conn) {
                    t.stalled = Some(rx_id);
                }
            }
            _ => {}
        }
    }
}

impl NativeProgram for Tally {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        if !self.registered {
            self.me
                .call_async(k, self.ns, IPC_M_CONNECT_TO_ME, [TALLY, 0, 0, 0, 0])
                .unwrap();
            self.registered = true;
        }
        loop {
            if let Some(ev) = self.coop.released() {
                self.handle(k, ev);
                continue;
            }
            match self.me.wait(k, FOREVER) {
                Ok(Poll::Ready(ev)) => {
                    if let Some(ev) = self.coop.on_event(k, &self.me, ev).unwrap() {
                        self.handle(k, ev);
                    }
                    self.coop.settle(k, &self.me).unwrap();
                }
                Ok(Poll::Pending) => return Step::Continue,
                Err(_) => return Step::Done,
            }
        }
    }
}

/// Connects to the tally through the naming service, then adds 1, 2,
/// ... 60 (logging each total); if `$stall` is set, it stalls the
/// connection first and goes on forever. A failed call logs its return
/// value (`-errno`) and ends the program.
const CLIENT: &str = r#"
  (func (export "main") (param $svc i64) (param $stall i64) (local $phone i32) (local $i i64)
    (local $r i64)
    (if (i64.ne (call $call_sync (i32.const 0) (i64.const 4) (local.get $svc)) (i64.const 0))
      (then unreachable))
    (local.set $phone (i32.wrap_i64 (call $answer_word (i32.const 5))))
    (if (i64.ne (local.get $stall) (i64.const 0))
      (then (drop (call $call_async (local.get $phone) (i64.const 1025) (i64.const 0)))))
    (loop $calls
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $r (call $call_sync (local.get $phone) (i64.const 1024) (local.get $i)))
      (if (i64.ne (local.get $r) (i64.const 0))
        (then (call $log_num (local.get $r)) (return)))
      (call $log_num (call $answer_word (i32.const 1)))
      (drop (call $sleep (i64.const 2000)))
      (br_if $calls (i32.or (i64.lt_u (local.get $i) (i64.const 60)) (i32.wrap_i64 (local.get $stall))))))
"#;

struct System {
    k: Kernel,
    s: Scheduler,
    ck: Checkpointer,
}

fn boot(seed: u64, filler: usize) -> (System, NamingService) {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    for i in 0..filler {
        k.spawn_native(&format!("filler{i}"), TaskPolicy::Neither);
    }
    let ns = NamingService::spawn(&mut k);
    let tally = Tally::spawn(&mut k, &ns);
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(tally));
    (System { k, s, ck }, ns)
}

fn client(sys: &mut System, ns: &NamingService, stall: bool) -> TaskId {
    let (task, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "client",
            TaskPolicy::Checkpointable,
            rt::program(CLIENT).as_bytes(),
            "main",
            &[Value::I64(TALLY), Value::I64(u64::from(stall))],
        )
        .unwrap();
    ns.connect(&mut sys.k, task).unwrap();
    task
}

fn totals(k: &Kernel) -> Vec<u64> {
    k.log()
        .iter()
        .filter(|l| k.task(l.task).is_none_or(|t| t.name == "client"))
        .filter_map(|l| l.text.parse().ok())
        .collect()
}

fn expected() -> Vec<u64> {
    (1..=60u64).map(|i| i * (i + 1) / 2).collect()
}

fn run_until(sys: &mut System, n: usize) {
    for _ in 0..1_000_000 {
        if totals(&sys.k).len() >= n {
            return;
        }
        sys.s.run(&mut sys.k, 1);
    }
    panic!("the client stopped making progress");
}

fn checkpointed(path: &Path) -> (System, Vec<u64>) {
    let (mut sys, ns) = boot(1, 0);
    let c = client(&mut sys, &ns, false);
    sys.s.add_native(Box::new(ns));
    run_until(&mut sys, 20);
    let plan = checkpoint_set(&sys.k, c).unwrap();
    assert_eq!(plan.members, vec![c], "services are not members");
    assert_eq!(plan.links.len(), 2, "phones to ns and to the tally");
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, c, path, &opts)
        .unwrap();
    assert!(sys.k.task(c).is_none(), "killed after the checkpoint");
    assert_eq!(snapfmt::validate(path), vec![]);
    let image = Image::open(path).unwrap();
    let record = image.task(c.0).unwrap();
    let tally = record
        .coop_blobs
        .iter()
        .find(|b| b.service_id == "test.tally")
        .expect("the tally's state");
    let before = totals(&sys.k);
    let total = *before.last().unwrap();
    assert_eq!(&tally.data[..4], &3u32.to_le_bytes(), "the state's version");
    assert_eq!(
        u64::from_le_bytes(tally.data[4..].try_into().unwrap()),
        total
    );
    (sys, before)
}

#[test]
fn a_client_and_its_connections_state_are_restored_in_the_same_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let (mut sys, before) = checkpointed(&path);
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    run_until(&mut sys, 60);
    let mut all = before.clone();
    all.extend(totals(&sys.k).into_iter().skip(before.len()));
    assert_eq!(all, expected());
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_client_restored_with_its_pages_on_touch_runs_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let (mut sys, before) = checkpointed(&path);
    let opts = RestoreOpts {
        pages: PageLoading::OnTouch,
        ..RestoreOpts::default()
    };
    let r = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &opts)
        .unwrap();
    let in_image: u64 = r
        .tasks
        .values()
        .filter_map(|t| spartan_kernel::guest::guest_space_ref(&sys.k, *t))
        .map(|space| space.pending_pages().0 * 4096)
        .sum();
    assert!(in_image > 0, "nothing loaded yet");
    run_until(&mut sys, 60);
    let mut all = before.clone();
    all.extend(totals(&sys.k).into_iter().skip(before.len()));
    assert_eq!(all, expected(), "the same run, its pages loaded on touch");
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_client_and_its_connections_state_are_restored_after_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let (_old, before) = checkpointed(&path);
    // Another system: other task ids, the tally's connection counter
    // starting again, a client of its own already connected.
    let (mut sys, ns) = boot(2, 3);
    let other = client(&mut sys, &ns, false);
    sys.s.add_native(Box::new(ns));
    run_until(&mut sys, 5);
    let restored = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    let new = *restored.tasks.values().next().unwrap();
    for _ in 0..1_000_000 {
        if sys.k.task(new).is_none() && sys.k.task(other).is_none() {
            break;
        }
        sys.s.run(&mut sys.k, 1);
    }
    let logs = |t: &str| -> Vec<u64> {
        sys.k
            .log()
            .iter()
            .filter(|l| l.task.0 == t.parse::<u64>().unwrap())
            .filter_map(|l| l.text.parse().ok())
            .collect()
    };
    let mut all = before;
    all.extend(logs(&new.0.to_string()));
    assert_eq!(all, expected(), "the restored client went on");
    assert_eq!(
        logs(&other.0.to_string()),
        expected(),
        "the other client too"
    );
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_service_that_never_settles_fails_the_checkpoint_and_leaves_nothing_held() {
    let (mut sys, ns) = boot(3, 0);
    let c = client(&mut sys, &ns, true);
    sys.s.add_native(Box::new(ns));
    sys.s.run(&mut sys.k, 500);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let opts = CheckpointOptions {
        timeout_ns: 50_000,
        ..CheckpointOptions::default()
    };
    let e = sys
        .ck
        .checkpoint(&mut sys.k, &mut sys.s, c, &path, &opts)
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::Timeout { service_id, .. } if service_id == "test.tally"),
        "{e}"
    );
    assert!(!path.exists(), "no image");
    assert!(
        !sys.k.is_stopped(c).unwrap(),
        "the client was not left stopped"
    );
    sys.k.check_invariants().unwrap();
    // The service's connection was released when the checkpoint gave up.
    let plan = checkpoint_set(&sys.k, c).unwrap();
    assert!(plan.links.iter().any(|l| l.service_id == "test.tally"));
}

/// Kills `victim` once virtual time reaches `at` (a fault injected while
/// the checkpointer runs the system).
struct Killer {
    me: NativeTask,
    at: u64,
    victim: TaskId,
}

impl NativeProgram for Killer {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        let now = k.now();
        if now < self.at {
            let _ = self.me.sleep(k, self.at - now);
            return Step::Continue;
        }
        let _ = k.kill_task(self.victim);
        Step::Done
    }
}

fn killer(sys: &mut System, victim: TaskId, after: u64) {
    let me = sys.k.spawn_native("killer", TaskPolicy::Neither);
    let at = sys.k.now() + after;
    sys.s.add_native(Box::new(Killer { me, at, victim }));
}

fn tally_task(k: &Kernel) -> TaskId {
    k.task_ids()
        .into_iter()
        .find(|t| k.task(*t).unwrap().name == "tally")
        .unwrap()
}

#[test]
fn a_service_killed_mid_checkpoint_fails_it_and_leaves_nothing_stopped() {
    let (mut sys, ns) = boot(4, 0);
    let c = client(&mut sys, &ns, true);
    sys.s.add_native(Box::new(ns));
    sys.s.run(&mut sys.k, 300);
    let tally = tally_task(&sys.k);
    killer(&mut sys, tally, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let e = sys
        .ck
        .checkpoint(
            &mut sys.k,
            &mut sys.s,
            c,
            &path,
            &CheckpointOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &e,
            CheckpointerError::Refused {
                errno: Errno::Hangup,
                ..
            }
        ),
        "{e}"
    );
    assert!(sys.k.task(tally).is_none());
    assert!(!path.exists());
    // The client is not stopped (it may have ended: its service is gone).
    assert!(sys.k.task(c).is_none_or(|t| !t.stopped));
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_task_killed_mid_checkpoint_fails_it_cleanly() {
    let (mut sys, ns) = boot(5, 0);
    let c = client(&mut sys, &ns, true);
    sys.s.add_native(Box::new(ns));
    sys.s.run(&mut sys.k, 300);
    killer(&mut sys, c, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let e = sys
        .ck
        .checkpoint(
            &mut sys.k,
            &mut sys.s,
            c,
            &path,
            &CheckpointOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &e,
            CheckpointerError::Refused {
                errno: Errno::Hangup,
                ..
            }
        ),
        "{e}"
    );
    assert!(!path.exists());
    assert!(sys.k.task(c).is_none());
    // The service goes on serving.
    let tally = tally_task(&sys.k);
    assert!(sys.k.task(tally).is_some());
    sys.k.check_invariants().unwrap();
}

#[test]
fn an_image_naming_a_service_that_is_not_running_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let _old = checkpointed(&path);
    // A system without the tally service.
    let mut k = Kernel::new(KernelConfig::simulation(6));
    let ns = NamingService::spawn(&mut k);
    let mut ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig::default());
    s.add_native(Box::new(ns));
    let before = k.task_ids();
    let e = ck
        .restore(&mut k, &mut s, &path, &RestoreOpts::default())
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::MissingService(id) if id == "test.tally"),
        "{e}"
    );
    assert_eq!(k.task_ids(), before, "nothing was created");
}

/// A system without the tally (only the naming service), or with a
/// second, silent task claiming the tally's id before the real one: it
/// never runs, so it never registers nor answers.
fn system_without_tally(seed: u64) -> System {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    let ns = NamingService::spawn(&mut k);
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(ns));
    System { k, s, ck }
}

fn system_with_a_duplicate(seed: u64) -> (System, TaskId, TaskId) {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    let ns = NamingService::spawn(&mut k);
    let silent = Tally::spawn(&mut k, &ns).me.id();
    let tally = Tally::spawn(&mut k, &ns);
    let real = tally.me.id();
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(tally));
    s.add_native(Box::new(ns));
    s.run(&mut k, 50);
    (System { k, s, ck }, silent, real)
}

fn nothing_stopped(k: &Kernel) -> bool {
    k.task_ids()
        .iter()
        .all(|t| !k.is_stopped(*t).unwrap_or(false))
}

/// Runs until the restored client logged a hangup (`-EHANGUP`).
fn hung_up(sys: &mut System) -> bool {
    let hangup = format!("-{}", Errno::Hangup as u64);
    for _ in 0..100_000 {
        if sys.k.log().iter().any(|l| l.text == hangup) {
            return true;
        }
        sys.s.run(&mut sys.k, 1);
    }
    false
}

#[test]
fn a_missing_server_is_refused_or_hung_up_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let _old = checkpointed(&path);
    let mut sys = system_without_tally(7);
    let before = sys.k.task_ids();
    let e = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap_err();
    assert!(matches!(&e, CheckpointerError::MissingService(id) if id == "test.tally"));
    assert_eq!(sys.k.task_ids(), before, "nothing was created");
    // Hung up: the client is restored, its next call to the tally fails
    // with EHANGUP (it logs that and ends), its naming service phone works.
    let opts = RestoreOpts {
        missing: MissingServer::HangUp,
        ..RestoreOpts::default()
    };
    let r = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &opts)
        .unwrap();
    assert_eq!(r.tasks.len(), 1);
    assert!(nothing_stopped(&sys.k));
    assert!(
        sys.k
            .task_ids()
            .iter()
            .all(|t| !sys.k.task(*t).unwrap().name.starts_with("stand-in")),
        "the stand-in is gone"
    );
    assert!(hung_up(&mut sys), "{:?}", sys.k.log());
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_duplicate_server_is_refused_hung_up_or_replaced_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let (_old, before) = checkpointed(&path);

    let (mut sys, silent, real) = system_with_a_duplicate(8);
    let tasks = sys.k.task_ids();
    let e = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap_err();
    match &e {
        CheckpointerError::DuplicateService { service_id, tasks } => {
            assert_eq!(service_id, "test.tally");
            assert_eq!(tasks, &vec![silent.0, real.0]);
        }
        e => panic!("{e}"),
    }
    assert!(e.to_string().contains("test.tally"), "{e}");
    assert_eq!(sys.k.task_ids(), tasks, "nothing was created");

    let (mut sys, _, _) = system_with_a_duplicate(9);
    let opts = RestoreOpts {
        duplicate: DuplicateServer::HangUp,
        ..RestoreOpts::default()
    };
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &opts)
        .unwrap();
    assert!(nothing_stopped(&sys.k));
    assert!(hung_up(&mut sys));

    // Replaced: the registered provider serves the restored client (the
    // silent one, with the lower id, would never answer), the other is
    // killed, and the totals go on exactly.
    let (mut sys, silent, real) = system_with_a_duplicate(10);
    let opts = RestoreOpts {
        duplicate: DuplicateServer::Replace,
        timeout_ns: 100_000_000,
        ..RestoreOpts::default()
    };
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &opts)
        .unwrap();
    assert!(sys.k.task(silent).is_none(), "the duplicate was killed");
    assert!(sys.k.task(real).is_some());
    run_until(&mut sys, 60 - before.len());
    let mut all = before.clone();
    all.extend(totals(&sys.k));
    assert_eq!(all, expected());
    sys.k.check_invariants().unwrap();
}

/// A mute service: claims an id and takes connections, but never looks
/// at its answerbox.
struct Mute {
    me: NativeTask,
}

impl NativeProgram for Mute {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        let _ = self.me.sleep(k, u64::MAX / 4);
        Step::Continue
    }
}

#[test]
fn a_service_that_never_answers_times_out_and_the_system_keeps_serving() {
    let (mut sys, ns) = boot(11, 0);
    let c = client(&mut sys, &ns, false);
    sys.s.add_native(Box::new(ns));
    let mute = sys.k.spawn_native(
        "mute",
        TaskPolicy::Cooperative {
            service_id: "test.mute".into(),
        },
    );
    sys.s.add_native(Box::new(Mute { me: mute }));
    sys.k.connect_phone(c, mute.id()).unwrap();
    run_until(&mut sys, 5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let opts = CheckpointOptions {
        timeout_ns: 200_000,
        ..CheckpointOptions::default()
    };
    let e = sys
        .ck
        .checkpoint(&mut sys.k, &mut sys.s, c, &path, &opts)
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::Timeout { service_id, .. } if service_id == "test.mute"),
        "{e}"
    );
    assert!(!path.exists());
    assert!(nothing_stopped(&sys.k));
    // The client and the tally go on to the end.
    run_until(&mut sys, 60);
    assert_eq!(totals(&sys.k), expected());
    sys.k.check_invariants().unwrap();

    // At restore: the only provider of the tally's id never answers; the
    // restore times out, the restored client is killed, nothing is left
    // stopped and the naming service still serves.
    let (_old, _) = checkpointed(&path);
    let mut k = Kernel::new(KernelConfig::simulation(12));
    let ns = NamingService::spawn(&mut k);
    let mute = k.spawn_native(
        "mute",
        TaskPolicy::Cooperative {
            service_id: "test.tally".into(),
        },
    );
    let mut ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig::default());
    s.add_native(Box::new(ns));
    s.add_native(Box::new(Mute { me: mute }));
    let before = k.task_ids();
    let opts = RestoreOpts {
        timeout_ns: 200_000,
        ..RestoreOpts::default()
    };
    let e = ck.restore(&mut k, &mut s, &path, &opts).unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::Timeout { service_id, .. } if service_id == "test.tally"),
        "{e}"
    );
    assert_eq!(k.task_ids(), before, "the restored client was killed");
    assert!(nothing_stopped(&k));
    k.check_invariants().unwrap();
}

/// A guest server answering every call with its first argument plus one;
/// it logs 7777 when a connection is hung up.
const ECHO: &str = r#"
  (func (export "main") (local $kind i64)
    (loop $serve
      (local.set $kind (call $wait (i64.const -1)))
      (if (i32.and (i64.eq (local.get $kind) (i64.const 1))
            (i64.eq (call $ev (i32.const 4)) (i64.const 1)))
        (then (call $log_num (i64.const 7777))))
      (if (i64.eq (local.get $kind) (i64.const 1))
        (then (drop (call $answer (call $ev (i32.const 1)) (i64.const 0)
          (i64.add (call $ev (i32.const 3)) (i64.const 1))))))
      (br $serve)))
"#;

/// Calls phone 1 (the echo server) 1000 times, sleeping between calls.
const ECHO_CLIENT: &str = r#"
  (func (export "main") (local $i i64)
    (loop $calls
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (drop (call $call_sync (i32.const 1) (i64.const 1024) (local.get $i)))
      (drop (call $sleep (i64.const 1000)))
      (br_if $calls (i64.lt_u (local.get $i) (i64.const 1000)))))
"#;

#[test]
fn clients_outside_the_set_are_included_excluded_or_refused_as_asked() {
    let (mut sys, ns) = boot(13, 0);
    let (server, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "echo",
            TaskPolicy::Checkpointable,
            rt::program(ECHO).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    ns.connect(&mut sys.k, server).unwrap();
    let (cl, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "echo-client",
            TaskPolicy::Checkpointable,
            rt::program(ECHO_CLIENT).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    ns.connect(&mut sys.k, cl).unwrap();
    sys.k.connect_phone(cl, server).unwrap();
    sys.s.add_native(Box::new(ns));
    sys.s.run(&mut sys.k, 2_000);
    let with = checkpoint_set_with(&sys.k, server, Clients::Include).unwrap();
    assert_eq!(with.members, vec![server, cl]);
    let without = checkpoint_set_with(&sys.k, server, Clients::Exclude).unwrap();
    assert_eq!(without.members, vec![server]);
    // From the client, the server is a dependency: included either way.
    let from_client = checkpoint_set_with(&sys.k, cl, Clients::Exclude).unwrap();
    assert_eq!(from_client.members, vec![cl, server]);

    let dir = tempfile::tempdir().unwrap();
    let refuse = CheckpointOptions {
        clients: Clients::Refuse,
        ..CheckpointOptions::default()
    };
    let e = sys
        .ck
        .checkpoint(
            &mut sys.k,
            &mut sys.s,
            server,
            &dir.path().join("a"),
            &refuse,
        )
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::ClientOutside { client, member, .. } if *client == cl.0 && *member == server.0),
        "{e}"
    );
    assert!(nothing_stopped(&sys.k));

    // Excluded: only the server is in the image; restored into a fresh
    // system it serves on (its clients are gone), and the old client goes
    // on with the old server.
    let path = dir.path().join("b");
    let exclude = CheckpointOptions {
        clients: Clients::Exclude,
        ..CheckpointOptions::default()
    };
    let report = sys
        .ck
        .checkpoint(&mut sys.k, &mut sys.s, server, &path, &exclude)
        .unwrap();
    assert_eq!(report.plan.members, vec![server]);
    let image = Image::open(&path).unwrap();
    assert_eq!(image.task_ids(), vec![server.0]);
    // The client's connection is listed, to be hung up at restore.
    let conn = match sys.k.task(cl).unwrap().phones.get(PhoneId(1)) {
        Some(Phone::Connected { conn, .. }) => conn.0,
        other => panic!("the client's phone 1: {other:?}"),
    };
    assert_eq!(
        image.manifest().options.extra["kernel.excluded_clients"],
        format!("{}:{conn}:{}", server.0, cl.0)
    );
    // The manifest lists the set's neighbours beside its member: the
    // naming service it is connected to, and the client left out.
    let roles: Vec<(u64, snapfmt::Role)> = image
        .manifest()
        .checkpoint_set
        .iter()
        .map(|m| (m.task_id, m.role.clone()))
        .collect();
    assert!(
        roles.contains(&(server.0, snapfmt::Role::Checkpointable)),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(cl.0, snapfmt::Role::ExcludedClient)),
        "{roles:?}"
    );
    assert!(
        roles.iter().any(|(_, r)| matches!(r, snapfmt::Role::Cooperative { service_id } if service_id == "spartan.ns")),
        "{roles:?}"
    );
    assert_eq!(snapfmt::validate(&path), vec![]);
    assert!(nothing_stopped(&sys.k));
    sys.s.run(&mut sys.k, 2_000);
    let mut fresh = system_without_tally(14);
    let r = fresh
        .ck
        .restore(&mut fresh.k, &mut fresh.s, &path, &RestoreOpts::default())
        .unwrap();
    let new = r.tasks[&server.0];
    fresh.s.run(&mut fresh.k, 2_000);
    assert!(fresh.k.task(new).is_some_and(|t| !t.stopped));
    // The restored server saw its excluded client hang up (thesis 4.4.3).
    let hangups = |k: &spartan_kernel::kernel::Kernel, t| {
        k.log()
            .iter()
            .filter(|l| l.task == t && l.text == "7777")
            .count()
    };
    assert_eq!(
        hangups(&fresh.k, new),
        1,
        "one hangup, for the excluded client"
    );
    assert_eq!(
        hangups(&sys.k, server),
        0,
        "the running server lost no client"
    );
    fresh.k.check_invariants().unwrap();
    sys.k.check_invariants().unwrap();
}
