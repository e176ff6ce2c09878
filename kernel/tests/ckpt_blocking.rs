//! Checkpoints taken while a guest thread is blocked in each blocking
//! system call of kernel/ABI.md (`sleep`, `ipc_call_sync` for a protocol
//! call, a data write, a data read, a share-out and a share-in,
//! `ipc_wait` for a call, for an answer and to a timeout, `futex_wait`
//! woken within a task, across tasks and to a timeout), while a thread
//! made by `thread_create` is blocked or running, and while two tasks
//! meet through an area one shared out to the other (one backing after
//! restore). Also: results a wakeup delivered before the stop, pending
//! share calls queued or dispatched at the server, and sweeps of cuts all
//! along each scenario. Every cut goes through a real image on disk and is
//! restored into the same kernel or into a freshly booted one; the rest of
//! the run (system call results, log, memory) must equal the uninterrupted
//! run.

mod ckpt_common;

use ckpt_common::*;
use snapfmt::ImageForm;
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::syscall::WaitReason;
use spartan_kernel::task::{Thread, ThreadState};

const SLEEPER: &str = include_str!("../../fixtures/wat/ckpt/blocking_sleeper.wat");
const B_SERVER: &str = include_str!("../../fixtures/wat/ckpt/blocking_server.wat");
const B_CLIENT: &str = include_str!("../../fixtures/wat/ckpt/blocking_client.wat");
const THREAD_PAIR: &str = include_str!("../../fixtures/wat/ckpt/thread_pair.wat");
const OFFERER: &str = include_str!("../../fixtures/wat/ckpt/share_offerer.wat");
const ACCEPTER: &str = include_str!("../../fixtures/wat/ckpt/share_accepter.wat");

/// Virtual time by which every scenario here has ended.
const END: u64 = 10_000_000;
/// Slices after which a cut point counts as never reached.
const MAX_SLICES: u64 = 200_000;

/// Which blocking call a thread is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    Sleep,
    Wait,
    Sync,
    Futex,
    /// Woken by a wakeup that already delivered the result of call number
    /// `n` (thesis 5.3.6), but not yet run: the reissue must return it.
    Delivered(u32),
}

fn is_in(t: &Thread, call: In) -> bool {
    if let In::Delivered(n) = call {
        return t.state == ThreadState::Runnable
            && t.sys.completed.is_some()
            && t.sys.in_progress.as_ref().is_some_and(|p| p.number == n);
    }
    matches!(
        (&t.state, call),
        (ThreadState::Blocked(WaitReason::Sleep), In::Sleep)
            | (ThreadState::Blocked(WaitReason::Answerbox), In::Wait)
            | (ThreadState::Blocked(WaitReason::SyncAnswer(_)), In::Sync)
            | (ThreadState::Blocked(WaitReason::Futex(_)), In::Futex)
    )
}

/// A cut point: thread `thread` (index within its task) of program `prog`
/// is blocked in `call` (or, for `None`, runnable) after the task logged
/// exactly `lines` lines (any number for `None`).
#[derive(Clone, Copy, Debug)]
struct Cut {
    prog: usize,
    thread: u64,
    call: Option<In>,
    lines: Option<usize>,
}

fn blocked(prog: usize, call: In, lines: usize) -> Cut {
    Cut {
        prog,
        thread: 0,
        call: Some(call),
        lines: Some(lines),
    }
}

fn lines_of(w: &World, prog: usize) -> usize {
    let task = w.tasks[prog];
    w.k.log().iter().filter(|l| l.task == task).count()
}

fn at_cut(w: &World, cut: Cut) -> bool {
    let Some(task) = w.k.task(w.tasks[cut.prog]) else {
        return false;
    };
    if cut.lines.is_some_and(|n| lines_of(w, cut.prog) != n) {
        return false;
    }
    task.threads.iter().any(|&th| {
        w.k.thread(th).is_some_and(|t| {
            t.index == cut.thread
                && match cut.call {
                    Some(call) => is_in(t, call),
                    None => t.state == ThreadState::Runnable,
                }
        })
    })
}

/// One slice; names threads made meanwhile (so their calls are shown).
/// False once the run has ended.
fn step(w: &mut World) -> bool {
    let end = w.s.run(&mut w.k, 1);
    w.relabel();
    matches!(end, RunEnd::StepLimit) && w.k.now() < END
}

fn run_out(w: &mut World) {
    let mut n = 0;
    while step(w) {
        n += 1;
        assert!(n < MAX_SLICES, "the scenario does not end");
    }
}

/// Runs to the cut point, checkpoints through a directory image, kills
/// the set, restores it (into this kernel or a rebooted one) and runs to
/// the end; everything shown and the memory must equal the uninterrupted
/// run. Returns the log lines of the whole run (before and after the cut)
/// that the programs wrote (not the kernel's own "task ... exited").
fn check(sc: &Scenario, cut: Cut, reboot: bool) -> Vec<(String, String)> {
    check_all(sc, &[cut], reboot)
}

/// [`check`] at the first slice boundary where all of `cuts` hold.
fn check_all(sc: &Scenario, cuts: &[Cut], reboot: bool) -> Vec<(String, String)> {
    check_when(sc, cuts, &|_| true, reboot)
}

/// [`check_all`] where `also` holds too.
fn check_when(
    sc: &Scenario,
    cuts: &[Cut],
    also: &dyn Fn(&World) -> bool,
    reboot: bool,
) -> Vec<(String, String)> {
    let mut whole = boot(sc, 1);
    run_out(&mut whole);
    let mut w = boot(sc, 1);
    let mut n = 0;
    while !(cuts.iter().all(|&c| at_cut(&w, c)) && also(&w)) {
        assert!(step(&mut w), "the run ended before {cuts:?}");
        n += 1;
        assert!(n < MAX_SLICES, "{cuts:?} never reached");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let (mut w, mut shown, _) =
        w.checkpoint_kill_restore(&path, ImageForm::Directory, reboot.then_some(7));
    run_out(&mut w);
    shown.extend(w.shown());
    let expected = whole.shown();
    assert_same("calls", &shown.calls, &expected.calls);
    assert_same("log", &shown.log, &expected.log);
    assert_eq!(w.digests(), whole.digests());
    program_lines(&shown)
}

fn program_lines(shown: &Shown) -> Vec<(String, String)> {
    shown
        .log
        .iter()
        .filter(|l| !l.2.starts_with("task "))
        .map(|l| (l.1.clone(), l.2.clone()))
        .collect()
}

fn lines_by(lines: &[(String, String)], name: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.0 == name)
        .map(|l| l.1.clone())
        .collect()
}

fn both(sc: &Scenario, cut: Cut) {
    check(sc, cut, false);
    check(sc, cut, true);
}

fn sleeper() -> Scenario {
    Scenario {
        progs: vec![prog("sleeper", SLEEPER, &[])],
        phones: vec![],
        slice_fuel: 50,
    }
}

fn client_server() -> Scenario {
    Scenario {
        progs: vec![
            prog("server", B_SERVER, &[]),
            prog("client", B_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0)],
        slice_fuel: 50,
    }
}

#[test]
fn the_uninterrupted_runs_show_what_the_programs_say() {
    let mut w = boot(&client_server(), 1);
    run_out(&mut w);
    let all = program_lines(&w.shown());
    let log = |name: &str| lines_by(&all, name);
    assert_eq!(
        log("client"),
        [
            "41",
            "0",
            "12",
            "0",
            "9",
            "pong-data",
            "4",
            "2",
            "11",
            "0",
            "2097152",
            "0",
            "99",
            "21",
            "1"
        ]
    );
    assert_eq!(
        log("server"),
        [
            "1",
            "1024",
            "1",
            "7",
            "hello-server",
            "1",
            "8",
            "1",
            "1024",
            "1",
            "5",
            "0",
            "1",
            "6",
            "0",
            "1",
            "55",
            "1",
            "-5"
        ]
    );
    let mut s = boot(&sleeper(), 1);
    run_out(&mut s);
    let lines = lines_by(&program_lines(&s.shown()), "sleeper");
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(
        (&lines[1], &lines[3], &lines[5]),
        (&"0".into(), &"-5".into(), &"-5".into())
    );
}

// The table: every blocking call, each cut restored into the same kernel
// and into a rebooted one.

#[test]
fn sleep() {
    both(&sleeper(), blocked(0, In::Sleep, 1));
}

#[test]
fn futex_wait_that_times_out() {
    both(&sleeper(), blocked(0, In::Futex, 3));
}

#[test]
fn ipc_wait_that_times_out() {
    both(&sleeper(), blocked(0, In::Wait, 5));
}

#[test]
fn ipc_wait_for_a_call() {
    both(&client_server(), blocked(0, In::Wait, 0));
}

#[test]
fn ipc_wait_for_an_answer() {
    both(&client_server(), blocked(1, In::Wait, 7));
}

#[test]
fn ipc_call_sync_protocol_call() {
    both(&client_server(), blocked(1, In::Sync, 0));
}

#[test]
fn ipc_call_sync_data_write() {
    both(&client_server(), blocked(1, In::Sync, 1));
}

#[test]
fn ipc_call_sync_data_read() {
    both(&client_server(), blocked(1, In::Sync, 3));
}

#[test]
fn ipc_call_sync_share_out_pending() {
    both(&client_server(), blocked(1, In::Sync, 9));
}

#[test]
fn ipc_call_sync_share_in_pending() {
    both(&client_server(), blocked(1, In::Sync, 11));
}

#[test]
fn futex_wait_on_a_shared_out_area_woken_by_the_other_task() {
    both(&client_server(), blocked(1, In::Futex, 13));
}

#[test]
fn futex_wait_on_a_shared_in_area_woken_by_the_other_task() {
    both(
        &client_server(),
        Cut {
            prog: 0,
            thread: 0,
            call: Some(In::Futex),
            lines: None,
        },
    );
}

// Threads made by thread_create.

fn thread_pair() -> Scenario {
    Scenario {
        progs: vec![prog("threads", THREAD_PAIR, &[])],
        phones: vec![],
        slice_fuel: 50,
    }
}

#[test]
fn a_created_thread_blocked_in_futex_wait() {
    both(
        &thread_pair(),
        Cut {
            prog: 0,
            thread: 1,
            call: Some(In::Futex),
            lines: None,
        },
    );
}

#[test]
fn a_created_thread_running_while_its_creator_is_blocked() {
    // Main has logged its thread id and sum; the worker its global copy
    // and the value; the worker computes, main sleeps on 0x504.
    let sc = thread_pair();
    let cut = Cut {
        prog: 0,
        thread: 1,
        call: None,
        lines: Some(4),
    };
    let main_blocked = Cut {
        prog: 0,
        thread: 0,
        call: Some(In::Futex),
        lines: Some(4),
    };
    check_all(&sc, &[cut, main_blocked], false);
    let lines = lines_by(&check_all(&sc, &[cut, main_blocked], true), "threads");
    // The creator's 7 copied into the worker and main's own 7 at the end;
    // main's sum, the value handed over, and the worker's 100 + 3 after
    // the restore.
    let count = |v: &str| lines.iter().filter(|l| *l == v).count();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(count("7"), 2, "{lines:?}");
    assert_eq!(
        (count("2001000"), count("21"), count("103")),
        (1, 1, 1),
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("7"));
}

// An area shared between two checkpointable tasks through IPC share-out.

fn share_pair() -> Scenario {
    Scenario {
        progs: vec![
            prog("accepter", ACCEPTER, &[]),
            prog("offerer", OFFERER, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0)],
        slice_fuel: 40,
    }
}

fn one_backing(w: &World) {
    let find = |name: &str| {
        w.k.task_ids()
            .into_iter()
            .find(|&t| w.k.task(t).is_some_and(|x| x.name == name))
            .expect("task lives")
    };
    let a = w.k.task_areas(find("offerer")).expect("offerer");
    let b = w.k.task_areas(find("accepter")).expect("accepter");
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    assert!(a[1].area.backing.is_some());
    assert_eq!(a[1].area.backing, b[1].area.backing);
}

#[test]
fn a_shared_area_is_one_backing_after_restore() {
    let sc = share_pair();
    for (lines, reboot) in [(1, false), (6, true), (12, false), (25, true)] {
        // The accepter waits for round `lines`, the offerer for its ack.
        let cut = Cut {
            prog: 0,
            thread: 0,
            call: Some(In::Futex),
            lines: None,
        };
        let mut w = boot(&sc, 1);
        while !(at_cut(&w, cut) && lines_of(&w, 1) == lines) {
            assert!(step(&mut w), "no cut at {lines}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut r, mut shown, _) = w.checkpoint_kill_restore(
            &dir.path().join("image"),
            ImageForm::Directory,
            reboot.then_some(9),
        );
        one_backing(&r);
        run_out(&mut r);
        shown.extend(r.shown());
        let mut whole = boot(&sc, 1);
        run_out(&mut whole);
        let expected = whole.shown();
        assert_same("calls", &shown.calls, &expected.calls);
        assert_same("log", &shown.log, &expected.log);
        let all = program_lines(&shown);
        let last = |name: &str| lines_by(&all, name);
        let off = last("offerer");
        assert_eq!(off.len(), 32, "{off:?}");
        // 1000 + (1+..+30) + 10*(1+..+30), and the accepter's 2000.
        assert_eq!(off[30..], ["6115".to_string(), "2000".to_string()][..]);
        assert_eq!(
            last("accepter")[2..],
            ["6115".to_string(), "2000".to_string()][..]
        );
    }
}

#[test]
fn a_pending_share_out_between_two_tasks_answered_after_restore() {
    both(&share_pair(), blocked(1, In::Sync, 0));
}

// Results delivered by a wakeup before the stop, not yet seen by the
// thread: the restored thread gets them without the call running again
// (a synchronous call is never sent twice, its answer reaches it).

const IPC_CALL_SYNC: u32 = 7;
const FUTEX_WAIT: u32 = 12;

fn delivered(prog: usize, thread: u64, n: u32) -> Cut {
    Cut {
        prog,
        thread,
        call: Some(In::Delivered(n)),
        lines: None,
    }
}

#[test]
fn an_answer_delivered_before_the_stop() {
    both(&client_server(), delivered(1, 0, IPC_CALL_SYNC));
}

#[test]
fn a_futex_wake_delivered_before_the_stop_across_tasks() {
    both(&share_pair(), delivered(0, 0, FUTEX_WAIT));
}

#[test]
fn a_futex_wake_delivered_before_the_stop_to_a_created_thread() {
    both(&thread_pair(), delivered(0, 1, FUTEX_WAIT));
}

/// Cuts at every `every`-th slice of a scenario while all its tasks live,
/// alternately into the same kernel and a rebooted one; the number of
/// cuts.
fn sweep(sc: &Scenario, every: u64) -> usize {
    let mut whole = boot(sc, 1);
    run_out(&mut whole);
    let expected = whole.shown();
    let digests = whole.digests();
    let mut cuts = 0;
    let mut at = every;
    loop {
        let mut w = boot(sc, 1);
        let mut ran = 0;
        while ran < at && step(&mut w) {
            ran += 1;
        }
        if ran < at || w.tasks.iter().any(|&t| w.k.task(t).is_none()) {
            return cuts;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let reboot = (cuts % 2 == 1).then_some(11);
        let (mut r, mut shown, _) =
            w.checkpoint_kill_restore(&dir.path().join("image"), ImageForm::Directory, reboot);
        run_out(&mut r);
        shown.extend(r.shown());
        assert_same(
            &format!("calls, cut at slice {at}"),
            &shown.calls,
            &expected.calls,
        );
        assert_same(
            &format!("log, cut at slice {at}"),
            &shown.log,
            &expected.log,
        );
        assert_eq!(r.digests(), digests, "memory, cut at slice {at}");
        cuts += 1;
        at += every;
    }
}

#[test]
fn cuts_all_along_the_client_and_server() {
    let cuts = sweep(&client_server(), 3);
    assert!(cuts > 50, "{cuts}");
}

#[test]
fn cuts_all_along_the_shared_area_ping_pong() {
    let cuts = sweep(&share_pair(), 3);
    assert!(cuts > 50, "{cuts}");
}

#[test]
fn cuts_all_along_the_thread_pair() {
    let cuts = sweep(&thread_pair(), 8);
    assert!(cuts > 50, "{cuts}");
}

// A pending share call in the states of thesis 5.4.8 that the server can
// see: sent and queued (the server woken, not yet fetched it), and
// dispatched (fetched, being worked on, unanswered). The third state,
// answered but not yet seen by the caller, is `an_answer_delivered_...`.

fn server_at(lines: usize) -> Cut {
    Cut {
        prog: 0,
        thread: 0,
        call: None,
        lines: Some(lines),
    }
}

/// Whether the server's answerbox holds `queued` calls not yet fetched
/// and `dispatched` fetched but unanswered ones.
fn server_box(queued: usize, dispatched: usize) -> impl Fn(&World) -> bool {
    move |w: &World| {
        w.k.task(w.tasks[0]).is_some_and(|t| {
            t.answerbox.calls.len() == queued && t.answerbox.dispatched.len() == dispatched
        })
    }
}

fn pending_share(client_lines: usize, server_lines: usize, queued: bool) {
    let (q, d) = if queued { (1, 0) } else { (0, 1) };
    for reboot in [false, true] {
        check_when(
            &client_server(),
            &[blocked(1, In::Sync, client_lines), server_at(server_lines)],
            &server_box(q, d),
            reboot,
        );
    }
}

#[test]
fn a_share_out_queued_at_the_server() {
    pending_share(9, 9, true);
}

#[test]
fn a_share_out_dispatched_and_unanswered() {
    pending_share(9, 11, false);
}

#[test]
fn a_share_in_queued_at_the_server() {
    pending_share(11, 12, true);
}

#[test]
fn a_share_in_dispatched_and_unanswered() {
    pending_share(11, 14, false);
}
