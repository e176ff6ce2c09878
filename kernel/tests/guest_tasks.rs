//! Guest tasks bound to the kernel: WebAssembly programs (written with the
//! WAT runtime of `guest::rt`) doing IPC with each other and with a native
//! task, blocking in `ipc_wait`, `futex_wait` and `sleep`, trapping, and
//! running deterministically under the fuel scheduler.

use std::task::Poll;

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::ipc::Event;
use spartan_kernel::kernel::Kernel;
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Step};
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskPolicy, ThreadId};

mod guest_common;
use guest_common::{kernel, log_of, spawn};

/// A server: answers `n` protocol calls with `a1 * 2`, then exits (kernel
/// methods such as a client's hangup are answered but not counted).
const DOUBLER: &str = r#"
  (func (export "main") (param $n i32) (local $kind i64)
    (loop $serve
      (local.set $kind (call $wait (i64.const -1)))
      (if (i64.eq (local.get $kind) (i64.const 1))
        (then
          (drop (call $answer (call $ev (i32.const 1)) (i64.const 0)
            (i64.mul (call $ev (i32.const 5)) (i64.const 2))))
          (if (i64.ge_u (call $ev (i32.const 4)) (i64.const 1024))
            (then (local.set $n (i32.sub (local.get $n) (i32.const 1)))))))
      (br_if $serve (i32.ne (local.get $n) (i32.const 0)))))
"#;

/// A sync client: calls `n` times with a1 = 1..n through `phone`, logs the
/// sum of the answers' ARG1.
const SYNC_CLIENT: &str = r#"
  (func (export "main") (param $phone i32) (param $n i32) (local $i i64) (local $sum i64) (local $r i64)
    (loop $calls
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $r (call $call_sync (local.get $phone) (i64.const 1024) (local.get $i)))
      (if (i64.ne (local.get $r) (i64.const 0))
        (then (call $log_num (local.get $r)) unreachable))
      (local.set $sum (i64.add (local.get $sum) (call $answer_word (i32.const 1))))
      (br_if $calls (i64.lt_u (local.get $i) (i64.extend_i32_u (local.get $n)))))
    (call $log_num (local.get $sum)))
"#;

/// An async client: sends `n` calls, then collects the `n` answers and logs
/// the sum of their ARG1.
const ASYNC_CLIENT: &str = r#"
  (func (export "main") (param $phone i32) (param $n i32) (local $i i64) (local $sum i64)
    (loop $send
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (if (i64.lt_s (call $call_async (local.get $phone) (i64.const 1024) (local.get $i)) (i64.const 1))
        (then unreachable))
      (br_if $send (i64.lt_u (local.get $i) (i64.extend_i32_u (local.get $n)))))
    (loop $collect
      (if (i64.ne (call $wait (i64.const -1)) (i64.const 2)) (then unreachable))
      (local.set $sum (i64.add (local.get $sum) (call $ev (i32.const 5))))
      (local.set $i (i64.sub (local.get $i) (i64.const 1)))
      (br_if $collect (i64.ne (local.get $i) (i64.const 0))))
    (call $log_num (local.get $sum)))
"#;

#[test]
fn guest_to_guest_sync_and_async_round_trips() {
    let mut k = kernel(1);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 50,
        ..SchedConfig::default()
    });
    let (server, _) = spawn(&mut s, &mut k, "doubler", DOUBLER, &[Value::I32(20)]);
    let (sync_c, _) = spawn(
        &mut s,
        &mut k,
        "sync",
        SYNC_CLIENT,
        &[Value::I32(0), Value::I32(10)],
    );
    let (async_c, _) = spawn(
        &mut s,
        &mut k,
        "async",
        ASYNC_CLIENT,
        &[Value::I32(0), Value::I32(10)],
    );
    assert_eq!(k.connect_phone(sync_c, server).expect("phone").0, 0);
    assert_eq!(k.connect_phone(async_c, server).expect("phone").0, 0);
    assert_eq!(s.run(&mut k, 100_000), RunEnd::AllDone);
    // 2 * (1 + ... + 10) each.
    assert_eq!(log_of(&k, sync_c), vec!["110", "task 2 exited"]);
    assert_eq!(log_of(&k, async_c), vec!["110", "task 3 exited"]);
    assert_eq!(log_of(&k, server), vec!["task 1 exited"]);
    assert!(k.task_ids().is_empty());
    assert!(s.stats.host_calls >= 60, "{:?}", s.stats);
    k.check_invariants().expect("invariants");
}

/// A native server answering with `a1 + 100`, as a scheduled program.
struct NativeServer {
    t: NativeTask,
    left: u32,
}

impl NativeProgram for NativeServer {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        match self.t.wait(k, u64::MAX).expect("wait") {
            Poll::Pending => Step::Continue,
            Poll::Ready(Event::Call { rx_id, args, .. }) => {
                self.t
                    .answer(k, rx_id, 0, [args[0] + 100, 0, 0, 0, 0])
                    .expect("answer");
                self.left -= 1;
                if self.left == 0 {
                    Step::Done
                } else {
                    Step::Continue
                }
            }
            Poll::Ready(_) => Step::Continue,
        }
    }
}

#[test]
fn guest_calls_native_and_native_calls_guest() {
    let mut k = kernel(2);
    let mut s = Scheduler::new(SchedConfig::default());
    let native = k.spawn_native("natsrv", TaskPolicy::Checkpointable);
    let (client, _) = spawn(
        &mut s,
        &mut k,
        "client",
        SYNC_CLIENT,
        &[Value::I32(0), Value::I32(5)],
    );
    k.connect_phone(client, native.id()).expect("phone");
    s.add_native(Box::new(NativeServer { t: native, left: 5 }));
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    // (1+100) + ... + (5+100)
    assert_eq!(log_of(&k, client)[0], "515");
    // And a live guest answers a native caller.
    let (server, _) = spawn(&mut s, &mut k, "doubler2", DOUBLER, &[Value::I32(1)]);
    let phone = k.connect_phone(native.id(), server).expect("phone");
    assert_eq!(
        native
            .call_sync(&mut k, phone, 1024, [21, 0, 0, 0, 0])
            .expect("sent"),
        Poll::Pending
    );
    s.run(&mut k, 1000);
    match native
        .call_sync(&mut k, phone, 1024, [21, 0, 0, 0, 0])
        .expect("answer")
    {
        Poll::Ready(a) => assert_eq!(a.args[0], 42),
        Poll::Pending => panic!("not answered"),
    }
}

const BLOCKERS: &str = r#"
  (data (i32.const 0x400) "woken")
  (func (export "main")
    (drop (call $futex_wait (i32.const 0x500) (i32.const 0) (i64.const -1)))
    (call $print (i32.const 0x400) (i32.const 5))
    (call $log_num (call $clock_now)))
  (func (export "waker")
    (call $log_num (call $sleep (i64.const 1000000)))
    (call $log_num (call $clock_now))
    (i32.store (i32.const 0x500) (i32.const 1))
    (call $log_num (call $futex_wake (i32.const 0x500) (i32.const 1))))
  (func (export "waiter")
    (call $log_num (call $wait (i64.const 5000000)))
    (call $log_num (call $clock_now)))
"#;

#[test]
fn guest_threads_block_in_futex_sleep_and_ipc_wait() {
    let mut k = kernel(3);
    let mut s = Scheduler::new(SchedConfig::default());
    let (task, _) = spawn(&mut s, &mut k, "blockers", BLOCKERS, &[]);
    s.spawn_thread(&mut k, task, "waker", &[]).expect("thread");
    s.spawn_thread(&mut k, task, "waiter", &[]).expect("thread");
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    let log = log_of(&k, task);
    let num = |i: usize| log[i].parse::<u64>().unwrap_or_else(|_| panic!("{log:?}"));
    // Order: the sleeper wakes at 1 ms, wakes the futex waiter (1 woken),
    // which then runs; the ipc_wait times out at 5 ms with -ETIMEOUT.
    assert_eq!(log[0], "0", "{log:?}");
    assert!((1_000_000..1_100_000).contains(&num(1)), "{log:?}");
    assert_eq!(log[2], "1", "{log:?}");
    assert_eq!(log[3], "woken", "{log:?}");
    assert!(num(4) >= num(1), "{log:?}");
    assert_eq!(log[5], "-5", "{log:?}");
    assert!((5_000_000..5_100_000).contains(&num(6)), "{log:?}");
    assert_eq!(log[7], "task 1 exited");
}

const TRAPPER: &str = r#"
  (func (export "main") (local $kind i64)
    (local.set $kind (call $wait (i64.const -1)))
    unreachable)
"#;

#[test]
fn a_trap_kills_the_task_and_answers_its_calls() {
    let mut k = kernel(4);
    let mut s = Scheduler::new(SchedConfig::default());
    let (server, _) = spawn(&mut s, &mut k, "trapper", TRAPPER, &[]);
    let (client, _) = spawn(
        &mut s,
        &mut k,
        "client",
        r#"
      (func (export "main") (param $phone i32)
        (call $log_num (call $call_sync (local.get $phone) (i64.const 1024) (i64.const 7))))
    "#,
        &[Value::I32(0)],
    );
    k.connect_phone(client, server).expect("phone");
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    let trap = log_of(&k, server);
    assert!(
        trap[0].contains("trapper") && trap[0].contains("unreachable"),
        "{trap:?}"
    );
    assert!(k.task(server).is_none());
    // The dispatched call was answered with EHANGUP (3) by the death.
    assert_eq!(log_of(&k, client)[0], "-3");
    k.check_invariants().expect("invariants");
}

fn scenario(seed: u64) -> (Vec<String>, usize, String) {
    let mut k = kernel(seed);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 37,
        ..SchedConfig::default()
    });
    let (server, _) = spawn(&mut s, &mut k, "doubler", DOUBLER, &[Value::I32(16)]);
    for name in ["a", "b"] {
        let (c, _) = spawn(
            &mut s,
            &mut k,
            name,
            SYNC_CLIENT,
            &[Value::I32(0), Value::I32(4)],
        );
        k.connect_phone(c, server).expect("phone");
        let (c, _) = spawn(
            &mut s,
            &mut k,
            name,
            ASYNC_CLIENT,
            &[Value::I32(0), Value::I32(4)],
        );
        k.connect_phone(c, server).expect("phone");
    }
    let (b, _) = spawn(&mut s, &mut k, "blockers", BLOCKERS, &[]);
    s.spawn_thread(&mut k, b, "waker", &[]).expect("thread");
    s.spawn_thread(&mut k, b, "waiter", &[]).expect("thread");
    assert_eq!(s.run(&mut k, 100_000), RunEnd::AllDone);
    let log = k
        .log()
        .iter()
        .map(|l| format!("{} {} {}", l.time, l.task.0, l.text))
        .collect();
    (log, k.trace().len(), format!("{:?}", k.trace()))
}

#[test]
fn same_seed_same_trace_and_log() {
    let (log1, n1, trace1) = scenario(9);
    let (log2, n2, trace2) = scenario(9);
    assert!(n1 > 50, "{n1}");
    assert_eq!(n1, n2);
    assert_eq!(trace1, trace2);
    assert_eq!(log1, log2);
    // 4 clients: result + exit; server: exit; blockers: 7 + exit.
    assert_eq!(log1.len(), 4 * 2 + 1 + 8, "{log1:?}");
}

#[test]
fn a_guest_learns_the_version_and_the_revision() {
    use spartan_kernel::syscall::ABI_REVISION;
    let mut k = kernel(3);
    let mut s = Scheduler::new(SchedConfig::default());
    let body = r#"
      (func (export "main")
        (call $log_num (call $abi_version))
        (call $log_num (call $abi_revision)))
    "#;
    let (task, _) = spawn(&mut s, &mut k, "abi", body, &[]);
    // A module written before revision 2: it imports only abi_version and
    // still reads the bare version.
    let old = r#"
      (module
        (import "spartan" "abi_version" (func $abi_version (result i64)))
        (import "spartan" "log" (func $log (param i32 i32) (result i64)))
        (memory 1)
        (data (i32.const 0) "v1")
        (func (export "main")
          (if (i64.eq (call $abi_version) (i64.const 1))
            (then (drop (call $log (i32.const 0) (i32.const 2)))))))
    "#;
    let (old_task, _) = s
        .spawn_guest(
            &mut k,
            "old",
            TaskPolicy::Checkpointable,
            old.as_bytes(),
            "main",
            &[],
        )
        .expect("a revision-0 module loads");
    assert_eq!(s.run(&mut k, 100), RunEnd::AllDone);
    assert_eq!(
        log_of(&k, task),
        vec![
            spartan_kernel::ABI_VERSION.to_string(),
            ABI_REVISION.to_string(),
            format!("task {} exited", task.0)
        ]
    );
    assert_eq!(ABI_REVISION, 2);
    assert_eq!(
        log_of(&k, old_task),
        vec!["v1".to_string(), format!("task {} exited", old_task.0)]
    );
}

#[test]
fn an_idle_simulation_jumps_exactly_to_the_next_deadline() {
    use spartan_kernel::syscall::Sysno;
    let mut k = kernel(5);
    // No doorbell: nothing outside the run can steer a simulation.
    assert!(k.waker().is_none());
    let mut s = Scheduler::new(SchedConfig::default());
    let body = r#"
      (func (export "main") (drop (call $sleep (i64.const 1000000000))))
    "#;
    spawn(&mut s, &mut k, "sleeper", body, &[]);
    assert_eq!(s.run(&mut k, 100), RunEnd::AllDone);
    let sleeps: Vec<(u64, Option<i64>)> = k
        .trace()
        .iter()
        .filter(|e| e.number == Sysno::Sleep as u32)
        .map(|e| (e.time, e.result))
        .collect();
    // Blocked at t0; nothing else could run, so virtual time jumped to the
    // deadline and the reissue ran there, not a nanosecond later.
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    let t0 = sleeps[0].0;
    assert_eq!(sleeps, vec![(t0, None), (t0 + 1_000_000_000, Some(0))]);
}
