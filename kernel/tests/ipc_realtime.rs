//! The real-time clock mode (the live system): kernel time follows the
//! host's monotonic clock. Only properties that hold however loaded the
//! host is are checked: time never goes back, a timeout never fires before
//! its deadline and always fires once the deadline has passed. Waiting is
//! bounded by a generous wall-clock limit so a broken timeout fails the
//! test instead of hanging it. An idle kernel must sleep rather than spin:
//! that is checked by slice budgets too small to reach a deadline by
//! spinning, never by measuring how fast something ran.

use std::task::Poll;
use std::time::{Duration, Instant};

use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::ipc::Errno;
use spartan_kernel::ipc::Event;
use spartan_kernel::kernel::{ClockMode, Kernel, KernelConfig};
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Simulation, Step};
use spartan_kernel::syscall::{SyscallReturn, Sysno};
use spartan_kernel::task::TaskPolicy;
use spartan_kernel::task::native::{NativeError, NativeTask};

const LIMIT: Duration = Duration::from_secs(20);
const MS: u64 = 1_000_000;

fn live() -> Kernel {
    Kernel::new(KernelConfig {
        seed: 1,
        clock: ClockMode::RealTime,
        audit: true,
        trace: true,
    })
}

/// Lets real time pass (firing due timeouts) until `t` is runnable.
fn until_runnable(k: &mut Kernel, t: &NativeTask) {
    let start = Instant::now();
    while !t.is_runnable(k) {
        assert!(start.elapsed() < LIMIT, "the timeout never fired");
        std::thread::sleep(Duration::from_micros(200));
        k.advance_time(0);
    }
}

#[test]
fn clock_is_monotonic_and_moves_by_itself() {
    let mut k = live();
    let t = k.spawn_native("t", TaskPolicy::Neither);
    let mut last = 0i64;
    for _ in 0..1000 {
        let SyscallReturn::Done(now) = t.syscall(&mut k, Sysno::ClockNow, &[]).unwrap() else {
            panic!("clock_now blocked");
        };
        assert!(now >= last, "{now} < {last}");
        last = now;
    }
    let before = k.now();
    std::thread::sleep(Duration::from_millis(2));
    // No one advanced it: the host's clock did.
    assert!(k.now() >= before + 2 * MS);
}

#[test]
fn sleep_futex_and_ipc_wait_timeouts_fire_at_or_after_their_deadline() {
    let mut k = live();
    let t = k.spawn_native("t", TaskPolicy::Neither);

    let issued = k.now();
    assert_eq!(t.sleep(&mut k, 3 * MS).unwrap(), Poll::Pending);
    until_runnable(&mut k, &t);
    assert!(k.now() >= issued + 3 * MS);
    assert_eq!(t.sleep(&mut k, 3 * MS).unwrap(), Poll::Ready(()));

    let issued = k.now();
    assert_eq!(
        t.futex_wait(&mut k, 0x1000, 0, 2 * MS).unwrap(),
        Poll::Pending
    );
    // Polling before a timeout fired keeps it asleep.
    assert_eq!(
        t.futex_wait(&mut k, 0x1000, 0, 2 * MS).unwrap(),
        Poll::Pending
    );
    until_runnable(&mut k, &t);
    assert!(k.now() >= issued + 2 * MS);
    assert_eq!(
        t.futex_wait(&mut k, 0x1000, 0, 2 * MS),
        Err(NativeError::Errno(Errno::Timeout))
    );

    let issued = k.now();
    assert_eq!(t.wait(&mut k, MS).unwrap(), Poll::Pending);
    until_runnable(&mut k, &t);
    assert!(k.now() >= issued + MS);
    assert_eq!(t.wait(&mut k, MS), Err(NativeError::Errno(Errno::Timeout)));
    k.check_invariants().expect("invariants");
}

#[test]
fn a_guest_sleeps_in_real_time_under_the_scheduler() {
    let mut k = live();
    let mut s = Scheduler::new(SchedConfig::default());
    let body = r#"
      (func (export "main") (local $t0 i64) (local $t1 i64)
        (local.set $t0 (call $clock_now))
        (call $log_num (call $sleep (i64.const 2000000)))
        (local.set $t1 (call $clock_now))
        (call $log_num (i64.extend_i32_u (i64.ge_u (i64.sub (local.get $t1) (local.get $t0))
          (i64.const 2000000)))))
    "#;
    let (task, _) = s
        .spawn_guest(
            &mut k,
            "sleeper",
            TaskPolicy::Checkpointable,
            rt::program(body).as_bytes(),
            "main",
            &[],
        )
        .expect("loads");
    let start = Instant::now();
    let mut end = RunEnd::StepLimit;
    while end == RunEnd::StepLimit && start.elapsed() < LIMIT {
        end = s.run(&mut k, 10_000);
    }
    assert_eq!(end, RunEnd::AllDone);
    let log: Vec<&str> = k
        .log()
        .iter()
        .filter(|l| l.task == task)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(log, vec!["0", "1", "task 1 exited"]);
}

fn log_of(k: &Kernel, task: spartan_kernel::task::TaskId) -> Vec<String> {
    k.log()
        .iter()
        .filter(|l| l.task == task)
        .map(|l| l.text.clone())
        .collect()
}

/// A native program that sleeps once for `ns`, then is done.
struct Sleeper {
    t: NativeTask,
    ns: u64,
}

impl NativeProgram for Sleeper {
    fn thread(&self) -> spartan_kernel::task::ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        match self.t.sleep(k, self.ns).expect("sleep") {
            Poll::Ready(()) => Step::Done,
            Poll::Pending => Step::Continue,
        }
    }
}

#[test]
fn an_idle_kernel_sleeps_until_the_next_deadline_instead_of_spinning() {
    // Run, block, idle until the deadline, run to the end: a handful of
    // slices whatever the host's speed, where spinning until the deadline
    // would need as many as fit in 100 ms.
    let mut k = live();
    let mut s = Scheduler::new(SchedConfig::default());
    let body = r#"
      (func (export "main")
        (call $log_num (call $sleep (i64.const 100000000))))
    "#;
    let (task, _) = s
        .spawn_guest(
            &mut k,
            "sleeper",
            TaskPolicy::Checkpointable,
            rt::program(body).as_bytes(),
            "main",
            &[],
        )
        .expect("loads");
    let issued = k.now();
    assert_eq!(s.run(&mut k, 5), RunEnd::AllDone);
    assert!(k.now() >= issued + 100 * MS);
    assert_eq!(log_of(&k, task), vec!["0", "task 1 exited"]);

    // The native driver idles the same way.
    let t = k.spawn_native("native sleeper", TaskPolicy::Neither);
    let mut sim = Simulation::new(1000);
    sim.add(Box::new(Sleeper { t, ns: 50 * MS }));
    let issued = k.now();
    assert_eq!(sim.run(&mut k, 5), RunEnd::AllDone);
    assert!(k.now() >= issued + 50 * MS);
    k.check_invariants().expect("invariants");
}

#[test]
fn a_ring_from_another_host_thread_ends_the_idle_wait() {
    let mut k = live();
    let mut s = Scheduler::new(SchedConfig::default());
    // Waits for one call (for at most 30 s), logs the event kind and ARG1.
    let body = r#"
      (func (export "main")
        (call $log_num (call $wait (i64.const 30000000000)))
        (call $log_num (call $ev (i32.const 5)))
        (drop (call $answer (call $ev (i32.const 1)) (i64.const 0) (i64.const 0))))
    "#;
    let (guest, _) = s
        .spawn_guest(
            &mut k,
            "reader",
            TaskPolicy::Checkpointable,
            rt::program(body).as_bytes(),
            "main",
            &[],
        )
        .expect("loads");
    let console = k.spawn_native("console", TaskPolicy::Neither);
    let phone = k.connect_phone(console.id(), guest).expect("phone");

    // A "keyboard" thread: the key goes into a channel, then the bell.
    let waker = k.waker().expect("live kernels have a doorbell");
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let keyboard = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.send(42).expect("driver listens");
        waker.ring();
    });
    let start = Instant::now();
    assert_eq!(s.run(&mut k, 100), RunEnd::Woken);
    assert!(start.elapsed() < LIMIT);
    let key = rx.try_recv().expect("the key was sent before the ring");
    console
        .call_async(&mut k, phone, 1024, [key, 0, 0, 0, 0])
        .expect("sent");
    keyboard.join().expect("keyboard");
    assert_eq!(s.run(&mut k, 100), RunEnd::AllDone);
    assert_eq!(log_of(&k, guest), vec!["1", "42", "task 1 exited"]);
    match console.wait(&mut k, 0).expect("wait") {
        Poll::Ready(Event::Answer(a)) => assert_eq!(a.retval, 0),
        other => panic!("expected the answer, got {other:?}"),
    }

    // With no waker left and no deadline, an idle kernel could wait
    // forever: the run ends at once instead.
    let body = r#"(func (export "main") (drop (call $wait (i64.const -1))))"#;
    s.spawn_guest(
        &mut k,
        "forever",
        TaskPolicy::Checkpointable,
        rt::program(body).as_bytes(),
        "main",
        &[],
    )
    .expect("loads");
    assert_eq!(s.run(&mut k, 100), RunEnd::Deadlock);
    k.check_invariants().expect("invariants");
}
