//! The naming service with real tasks: native services register under
//! service numbers, guest clients connect through phone 0 (before or
//! after the service starts), registrations are checked against the
//! provider's persistent id, an ended provider is replaced, and a
//! checkpointed client reconnects to its services by persistent id in a
//! freshly booted system where every task id differs.

use std::task::Poll;

use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, RestoreOptions};
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME};
use spartan_kernel::ipc::{EOK, Errno, Event, PhoneId};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};
use spartan_services::ns::{FIRST_USER_SERVICE, NamingService};

const ECHO: u64 = FIRST_USER_SERVICE;
const TRIPLE: u64 = 1024;

/// A service that registers with the naming service and answers every
/// call of method TRIPLE with 3 * ARG1.
struct Echo {
    me: NativeTask,
    ns: PhoneId,
    number: u64,
    sent: bool,
    registered: Option<u64>,
}

impl Echo {
    fn spawn(k: &mut Kernel, ns: &NamingService, service_id: &str, number: u64) -> Echo {
        let me = k.spawn_native(
            service_id,
            TaskPolicy::Cooperative {
                service_id: service_id.into(),
            },
        );
        let phone = ns.connect(k, me.id()).expect("phone to ns");
        Echo {
            me,
            ns: phone,
            number,
            sent: false,
            registered: None,
        }
    }
}

impl NativeProgram for Echo {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        if !self.sent {
            self.me
                .call_async(k, self.ns, IPC_M_CONNECT_TO_ME, [self.number, 0, 0, 0, 0])
                .expect("register");
            self.sent = true;
        }
        loop {
            match self.me.wait(k, FOREVER) {
                Ok(Poll::Pending) => return Step::Continue,
                Err(_) => return Step::Done,
                Ok(Poll::Ready(Event::Answer(a))) => self.registered = Some(a.retval),
                Ok(Poll::Ready(Event::Call {
                    rx_id,
                    method,
                    args,
                    ..
                })) => {
                    let reply = match method {
                        IPC_M_CONNECT_ME_TO => (EOK, [0; 5]),
                        TRIPLE => (EOK, [args[0] * 3, 0, 0, 0, 0]),
                        _ => (Errno::NotSupported.retval(), [0; 5]),
                    };
                    let _ = self.me.answer(k, rx_id, reply.0, reply.1);
                }
                Ok(Poll::Ready(_)) => {}
            }
        }
    }
}

/// Connects to service $svc through phone 0, then calls it 40 times,
/// logging each answer, sleeping 1 us between calls.
const CLIENT: &str = r#"
  (func (export "main") (param $svc i64) (local $phone i32) (local $i i64)
    (if (i64.ne (call $call_sync (i32.const 0) (i64.const 4) (local.get $svc)) (i64.const 0))
      (then unreachable))
    (local.set $phone (i32.wrap_i64 (call $answer_word (i32.const 5))))
    (loop $calls
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (if (i64.ne (call $call_sync (local.get $phone) (i64.const 1024) (local.get $i)) (i64.const 0))
        (then unreachable))
      (call $log_num (call $answer_word (i32.const 1)))
      (drop (call $sleep (i64.const 1000)))
      (br_if $calls (i64.lt_u (local.get $i) (i64.const 40)))))
"#;

struct System {
    k: Kernel,
    s: Scheduler,
    ns_task: TaskId,
}

impl System {
    fn boot(seed: u64) -> (System, NamingService) {
        let mut k = Kernel::new(KernelConfig::simulation(seed));
        let s = Scheduler::new(SchedConfig {
            slice_fuel: 200,
            ..SchedConfig::default()
        });
        let ns = NamingService::spawn(&mut k);
        let ns_task = ns.task();
        (System { k, s, ns_task }, ns)
    }

    fn client(&mut self, ns: &NamingService, service: u64) -> TaskId {
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                "client",
                TaskPolicy::Checkpointable,
                rt::program(CLIENT).as_bytes(),
                "main",
                &[Value::I64(service)],
            )
            .expect("client loads");
        assert_eq!(ns.connect(&mut self.k, task).expect("phone 0"), PhoneId(0));
        task
    }

    fn run(&mut self, slices: u64) -> RunEnd {
        self.s.run(&mut self.k, slices)
    }

    /// The answers the clients logged, in order.
    fn answers(&self) -> Vec<String> {
        self.k
            .log()
            .iter()
            .filter(|l| self.k.task(l.task).is_none_or(|t| t.name == "client"))
            .map(|l| l.text.clone())
            .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
            .collect()
    }
}

fn expected() -> Vec<String> {
    (1..=40).map(|i| (i * 3).to_string()).collect()
}

#[test]
fn a_client_connects_through_the_naming_service_and_calls_the_service() {
    let (mut sys, ns) = System::boot(1);
    let echo = Echo::spawn(&mut sys.k, &ns, "test.echo", ECHO);
    let client = sys.client(&ns, ECHO);
    sys.s.add_native(Box::new(ns));
    sys.s.add_native(Box::new(echo));
    sys.run(100_000);
    assert_eq!(sys.answers(), expected());
    assert!(sys.k.task(client).is_none(), "the client finished");
    sys.k.check_invariants().expect("consistent");
}

#[test]
fn a_client_started_before_its_service_waits_for_it() {
    let (mut sys, ns) = System::boot(2);
    sys.client(&ns, ECHO);
    sys.s.add_native(Box::new(ns));
    // No service yet: the client's connection request waits in ns.
    sys.run(2_000);
    assert!(sys.answers().is_empty());
    let ns_task = sys.ns_task;
    let me = sys.k.spawn_native(
        "test.echo",
        TaskPolicy::Cooperative {
            service_id: "test.echo".into(),
        },
    );
    let phone = sys.k.connect_phone(me.id(), ns_task).expect("phone");
    let echo = Echo {
        me,
        ns: phone,
        number: ECHO,
        sent: false,
        registered: None,
    };
    sys.s.add_native(Box::new(echo));
    sys.run(100_000);
    assert_eq!(sys.answers(), expected());
}

/// Registers `task` (through `phone` to ns) under `number`; the answer.
fn register(sys: &mut System, me: &NativeTask, phone: PhoneId, number: u64) -> u64 {
    me.call_async(&mut sys.k, phone, IPC_M_CONNECT_TO_ME, [number, 0, 0, 0, 0])
        .expect("sent");
    for _ in 0..1_000 {
        sys.run(1);
        if let Ok(Poll::Ready(Event::Answer(a))) = me.wait(&mut sys.k, 0) {
            return a.retval;
        }
    }
    panic!("no answer from ns");
}

#[test]
fn registrations_are_checked_against_the_providers_persistent_id() {
    let (mut sys, ns) = System::boot(3);
    let ns_task = ns.task();
    sys.s.add_native(Box::new(ns));
    let spawn = |sys: &mut System, policy: TaskPolicy| {
        let me = sys.k.spawn_native("p", policy);
        let phone = sys.k.connect_phone(me.id(), ns_task).expect("phone");
        (me, phone)
    };
    let coop = |id: &str| TaskPolicy::Cooperative {
        service_id: id.into(),
    };
    let refused = Errno::Refused.retval();
    // A checkpointable task may not provide a service.
    let (me, p) = spawn(&mut sys, TaskPolicy::Checkpointable);
    assert_eq!(register(&mut sys, &me, p, ECHO), refused);
    // A well-known number only under its persistent id.
    let (me, p) = spawn(&mut sys, coop("test.echo"));
    assert_eq!(register(&mut sys, &me, p, 1), refused, "1 is spartan.vfs");
    let (vfs, p) = spawn(&mut sys, coop("spartan.vfs"));
    assert_eq!(register(&mut sys, &vfs, p, 1), EOK);
    // One provider per number while it lives ...
    let (other, p) = spawn(&mut sys, coop("spartan.vfs"));
    assert_eq!(register(&mut sys, &other, p, 1), refused);
    // ... and the next one once it has ended.
    sys.k.kill_task(vfs.id()).expect("kill");
    assert_eq!(register(&mut sys, &other, p, 1), EOK);
    sys.k.check_invariants().expect("consistent");
}

#[test]
fn a_checkpointed_client_reconnects_to_its_services_by_persistent_id_after_a_reboot() {
    let (mut sys, ns) = System::boot(4);
    let echo = Echo::spawn(&mut sys.k, &ns, "test.echo", ECHO);
    let client = sys.client(&ns, ECHO);
    sys.s.add_native(Box::new(ns));
    sys.s.add_native(Box::new(echo));
    // Run until the client has some answers, then checkpoint it.
    while sys.answers().len() < 15 {
        assert_eq!(sys.run(1), RunEnd::StepLimit);
    }
    let before = sys.answers();
    let stopped = checkpoint::stop(&mut sys.k, &[client]).expect("stop");
    let capture = checkpoint::capture(&mut sys.k, &sys.s, &stopped).expect("capture");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("client");
    capture
        .write(
            &path,
            WriterOptions {
                form: ImageForm::Directory,
                threads: 1,
                ..WriterOptions::default()
            },
        )
        .expect("written");
    assert_eq!(snapfmt::validate(&path), vec![]);

    // A new system: the service starts first, so every task id differs.
    let mut k = Kernel::new(KernelConfig::simulation(5));
    let filler = k.spawn_native("filler", TaskPolicy::Neither);
    let ns = NamingService::spawn(&mut k);
    let mut fresh = System {
        k,
        s: Scheduler::new(SchedConfig {
            slice_fuel: 200,
            ..SchedConfig::default()
        }),
        ns_task: ns.task(),
    };
    let echo = Echo::spawn(&mut fresh.k, &ns, "test.echo", ECHO);
    fresh.s.add_native(Box::new(ns));
    fresh.s.add_native(Box::new(echo));
    fresh.run(200);
    let image = std::sync::Arc::new(Image::open(&path).expect("opens"));
    let restored = checkpoint::restore(
        &mut fresh.k,
        &mut fresh.s,
        &image,
        &RestoreOptions::default(),
    )
    .expect("restores: both peers are running services");
    let new = restored.tasks[&client.0];
    assert_ne!(new, client);
    fresh.run(100_000);
    let mut all = before;
    all.extend(fresh.answers());
    assert_eq!(all, expected(), "the client went on where it stopped");
    assert!(fresh.k.task(filler.id()).is_some());
    fresh.k.check_invariants().expect("consistent");
}

/// Maps the naming service's time area at 1 MiB, then 40 times logs the
/// clock it shows and sleeps 5 ms.
const CLOCK_READER: &str = r#"
  (func (export "main") (local $i i64)
    (if (i64.ne (call $ns_time_map (i64.const 0x100000)) (i64.const 0)) (then unreachable))
    (loop $reads
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $log_num (i64.load (i32.const 0x100000)))
      (drop (call $sleep (i64.const 5000000)))
      (br_if $reads (i64.lt_u (local.get $i) (i64.const 40)))))
"#;

fn clock_reader(k: &mut Kernel, s: &mut Scheduler, ns: &NamingService, name: &str) -> TaskId {
    let (t, _) = s
        .spawn_guest(
            k,
            name,
            TaskPolicy::Checkpointable,
            spartan_services::rt::program(CLOCK_READER).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    ns.connect(k, t).unwrap();
    t
}

fn clock_reads(k: &Kernel, t: TaskId) -> Vec<u64> {
    k.log()
        .iter()
        .filter(|l| l.task == t)
        .filter_map(|l| l.text.parse().ok())
        .collect()
}

#[test]
fn the_time_area_is_shared_by_the_naming_service_and_reshared_at_restore() {
    use spartan_services::checkpointer::{
        CheckpointOptions, Checkpointer, RestoreOpts, checkpoint_set,
    };
    use spartan_services::ns::{TIME_AREA_BASE, TIME_TICK_NS};
    let mut k = Kernel::new(KernelConfig::simulation(21));
    let ns = NamingService::spawn(&mut k);
    let mut ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    let a = clock_reader(&mut k, &mut s, &ns, "a");
    let b = clock_reader(&mut k, &mut s, &ns, "b");
    s.add_native(Box::new(ns));
    for _ in 0..1_000_000 {
        if clock_reads(&k, a).len() >= 10 {
            break;
        }
        s.run(&mut k, 1);
    }
    // The clock it reads is the kernel's (within a tick) and moves.
    let reads = clock_reads(&k, a);
    assert!(
        reads.windows(2).all(|w| w[1] >= w[0] + 4_000_000),
        "{reads:?}"
    );
    assert!(*reads.last().unwrap() + TIME_TICK_NS + 5_000_000 >= k.now());
    // Two tasks map the same area of the naming service, yet the set of
    // one does not take the other in: only the naming service's link.
    let plan = checkpoint_set(&k, a).unwrap();
    assert_eq!(plan.members, vec![a]);
    assert!(plan.links.iter().all(|l| l.service_id == "spartan.ns"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    ck.checkpoint(&mut k, &mut s, a, &path, &opts).unwrap();
    let image = Image::open(&path).unwrap();
    let record = image.task(a.0).unwrap();
    let area = record.areas.iter().find(|x| x.base == 0x100000).unwrap();
    assert_eq!(area.sharing.len(), 1, "{:?}", area.sharing);
    assert_eq!(
        area.sharing[0].with,
        snapfmt::Peer::Service("spartan.ns".into())
    );
    assert_eq!(area.sharing[0].base, TIME_AREA_BASE);
    let at_cut = *clock_reads(&k, a).last().unwrap();
    assert!(k.task(b).is_some(), "b goes on");

    // A fresh system whose clock is 10 s later: the restored task reads
    // that clock (the area is reshared with the running naming service,
    // not copied from the image).
    let mut k2 = Kernel::new(KernelConfig::simulation(22));
    let ns2 = NamingService::spawn(&mut k2);
    let mut ck2 = Checkpointer::spawn(&mut k2);
    let mut s2 = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    let (sleeper, _) = s2
        .spawn_guest(
            &mut k2,
            "sleeper",
            TaskPolicy::Checkpointable,
            rt::program(r#"(func (export "main") (drop (call $sleep (i64.const 20000000000))))"#)
                .as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    s2.add_native(Box::new(ns2));
    for _ in 0..1_000_000 {
        if k2.now() >= at_cut + 10_000_000_000 {
            break;
        }
        s2.run(&mut k2, 1);
    }
    assert!(k2.now() >= at_cut + 10_000_000_000);
    let _ = k2.kill_task(sleeper);
    let restored = ck2
        .restore(&mut k2, &mut s2, &path, &RestoreOpts::default())
        .unwrap();
    let new = restored.tasks[&a.0];
    let t0 = k2.now();
    for _ in 0..1_000_000 {
        if clock_reads(&k2, new).len() >= 5 {
            break;
        }
        s2.run(&mut k2, 1);
    }
    let after = clock_reads(&k2, new);
    assert!(after[0] + TIME_TICK_NS >= t0, "{after:?} vs {t0}");
    assert!(after.windows(2).all(|w| w[1] > w[0]), "{after:?}");
    k2.check_invariants().unwrap();
}
