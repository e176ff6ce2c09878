//! The real-time clock mode (the live system): kernel time follows the
//! host's monotonic clock. Only properties that hold however loaded the
//! host is are checked: time never goes back, a timeout never fires before
//! its deadline and always fires once the deadline has passed. Waiting is
//! bounded by a generous wall-clock limit so a broken timeout fails the
//! test instead of hanging it.

use std::task::Poll;
use std::time::{Duration, Instant};

use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::ipc::Errno;
use spartan_kernel::kernel::{ClockMode, Kernel, KernelConfig};
use spartan_kernel::sched::sim::RunEnd;
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
