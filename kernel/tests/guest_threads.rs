//! Guest threads created by guests (`thread_create`, `thread_exit`): two
//! threads of one task meeting on futexes in their shared memory, a thread
//! blocked in a system call while another runs, per-thread globals, bad
//! entries, the thread limit, and determinism.

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::syscall::{MAX_GUEST_THREADS, SyscallReturn, Sysno, WaitReason};
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadState};

mod guest_common;
use guest_common::{kernel, log_of, spawn};

/// The worker sleeps on the futex at its argument until main stores a
/// value there, doubles it into the next word, wakes main and exits
/// through `thread_exit` (the line after it never runs). Main computes a
/// sum meanwhile (many slices), then hands the value over and joins on
/// the result word. Global `$g` shows each thread has its own copy, taken
/// from the creator at `thread_create`.
const PAIR: &str = r#"
  (global $g (mut i64) (i64.const 5))
  (table 1 funcref)
  (elem (i32.const 0) $worker)
  (func $worker (param $arg i64) (local $p i32)
    (local.set $p (i32.wrap_i64 (local.get $arg)))
    (call $log_num (global.get $g))
    (global.set $g (i64.const 100))
    (loop $w
      (if (i32.eqz (i32.load (local.get $p)))
        (then
          (drop (call $futex_wait (local.get $p) (i32.const 0) (i64.const -1)))
          (br $w))))
    (call $log_num (i64.extend_i32_u (i32.load (local.get $p))))
    (i32.store (i32.add (local.get $p) (i32.const 4))
      (i32.mul (i32.load (local.get $p)) (i32.const 2)))
    (drop (call $futex_wake (i32.add (local.get $p) (i32.const 4)) (i32.const 1)))
    (drop (call $thread_exit))
    (call $log_num (i64.const 666)))
  (func (export "main") (local $t i64) (local $i i64) (local $sum i64)
    (global.set $g (i64.const 7))
    (local.set $t (call $thread_create (i32.const 0) (i64.const 0x500)))
    (call $log_num (i64.extend_i32_u (i64.gt_s (local.get $t) (i64.const 0))))
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $sum (i64.add (local.get $sum) (local.get $i)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 3000))))
    (call $log_num (local.get $sum))
    (i32.store (i32.const 0x500) (i32.const 21))
    (drop (call $futex_wake (i32.const 0x500) (i32.const 1)))
    (loop $j
      (if (i32.eqz (i32.load (i32.const 0x504)))
        (then
          (drop (call $futex_wait (i32.const 0x504) (i32.const 0) (i64.const -1)))
          (br $j))))
    (call $log_num (i64.extend_i32_u (i32.load (i32.const 0x504))))
    (call $log_num (global.get $g)))
"#;

fn pair_run(seed: u64) -> (Kernel, TaskId) {
    let mut k = kernel(seed);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 100,
        ..SchedConfig::default()
    });
    let (task, main) = spawn(&mut s, &mut k, "threads", PAIR, &[]);
    // Part way: the worker sleeps in futex_wait while main computes.
    assert_eq!(s.run(&mut k, 30), RunEnd::StepLimit);
    let threads = s.threads();
    assert_eq!(threads.len(), 2, "{threads:?}");
    let worker = threads[1];
    assert!(worker > main);
    assert!(
        matches!(
            k.thread(worker).map(|t| &t.state),
            Some(ThreadState::Blocked(WaitReason::Futex(_)))
        ),
        "{:?}",
        k.thread(worker).map(|t| &t.state)
    );
    assert_eq!(
        k.thread(main).map(|t| &t.state),
        Some(&ThreadState::Runnable)
    );
    assert_eq!(log_of(&k, task), vec!["1", "7"]);
    assert_eq!(s.run(&mut k, 100_000), RunEnd::AllDone);
    (k, task)
}

#[test]
fn two_guest_threads_meet_on_futexes_while_one_blocks() {
    let (k, task) = pair_run(1);
    // Worker: its copy of $g (7, the creator's), the value handed over.
    // Main: the sum, the joined result, its own $g (7, not the worker's 100).
    assert_eq!(
        log_of(&k, task),
        vec!["1", "7", "4501500", "21", "42", "7", "task 1 exited"]
    );
    assert!(k.task_ids().is_empty());
    k.check_invariants().expect("invariants");
}

#[test]
fn same_seed_same_trace_with_threads() {
    let (k1, _) = pair_run(7);
    let (k2, _) = pair_run(7);
    assert!(k1.trace().len() > 6);
    assert_eq!(k1.trace(), k2.trace());
    assert_eq!(k1.log(), k2.log());
}

const BAD_ENTRIES: &str = r#"
  (table 4 funcref)
  (elem (i32.const 0) $ok $noarg $imported)
  (func $ok (param i64))
  (func $noarg)
  (func $imported (param i64) (drop (call $abi_version)))
  (func (export "main")
    ;; wrong signature, null element, past the end, far past the end
    (call $log_num (call $thread_create (i32.const 1) (i64.const 0)))
    (call $log_num (call $thread_create (i32.const 3) (i64.const 0)))
    (call $log_num (call $thread_create (i32.const 4) (i64.const 0)))
    (call $log_num (call $thread_create (i32.const -1) (i64.const 0)))
    (call $log_num (i64.extend_i32_u (i64.gt_s
      (call $thread_create (i32.const 0) (i64.const 0)) (i64.const 0)))))
"#;

#[test]
fn bad_entries_are_refused_with_einval() {
    let mut k = kernel(2);
    let mut s = Scheduler::new(SchedConfig::default());
    let (task, _) = spawn(&mut s, &mut k, "threads", BAD_ENTRIES, &[]);
    assert_eq!(s.run(&mut k, 1000), RunEnd::AllDone);
    assert_eq!(
        log_of(&k, task),
        vec!["-2", "-2", "-2", "-2", "1", "task 1 exited"]
    );
    // Refusals are in the trace like any call.
    let creates = k
        .trace()
        .iter()
        .filter(|e| e.number == Sysno::ThreadCreate as u32)
        .count();
    assert_eq!(creates, 5);

    // No table at all.
    let (task, _) = spawn(
        &mut s,
        &mut k,
        "threads",
        r#"(func (export "main")
             (call $log_num (call $thread_create (i32.const 0) (i64.const 0))))"#,
        &[],
    );
    assert_eq!(s.run(&mut k, 1000), RunEnd::AllDone);
    assert_eq!(log_of(&k, task)[0], "-2");
}

const MANY: &str = r#"
  (table 1 funcref)
  (elem (i32.const 0) $sleeper)
  (func $sleeper (param i64)
    (drop (call $futex_wait (i32.const 0x600) (i32.const 0) (i64.const -1))))
  (func (export "main") (local $n i64) (local $r i64)
    (loop $l
      (local.set $r (call $thread_create (i32.const 0) (i64.const 0)))
      (if (i64.gt_s (local.get $r) (i64.const 0))
        (then (local.set $n (i64.add (local.get $n) (i64.const 1))) (br $l))))
    (call $log_num (local.get $n))
    (call $log_num (local.get $r))
    (i32.store (i32.const 0x600) (i32.const 1))
    (drop (call $futex_wake (i32.const 0x600) (i32.const 1000))))
"#;

#[test]
fn thread_limit_and_native_tasks() {
    let mut k = kernel(3);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 1_000_000,
        ..SchedConfig::default()
    });
    let (task, _) = spawn(&mut s, &mut k, "threads", MANY, &[]);
    assert_eq!(s.run(&mut k, 10_000), RunEnd::AllDone);
    let log = log_of(&k, task);
    assert_eq!(log[0], (MAX_GUEST_THREADS - 1).to_string());
    assert_eq!(log[1], "-4");
    k.check_invariants().expect("invariants");

    // Native tasks make threads through the Rust API, not this call.
    let n = k.spawn_native("svc", TaskPolicy::Neither);
    assert_eq!(
        n.syscall(&mut k, Sysno::ThreadCreate, &[0, 0])
            .expect("call"),
        SyscallReturn::Done(-8)
    );
    // thread_exit ends a native thread as well.
    assert_eq!(
        n.syscall(&mut k, Sysno::ThreadExit, &[]).expect("call"),
        SyscallReturn::Done(0)
    );
    assert_eq!(
        k.thread(n.thread()).map(|t| &t.state),
        Some(&ThreadState::Exited)
    );
}
