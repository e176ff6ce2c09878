//! The scenario oracle: the thesis promise (sections 5.3-5.4) checked on
//! the situations the transparency oracle never builds. Its scenarios
//! always create the server before its clients and have one waiting thread
//! per task; these create callers before and after their servers, have
//! several callers, several threads of one task in `ipc_wait` and on one
//! futex, calls in flight on a hung-up (highest) phone, callers that exited
//! with calls undelivered, one area mapped twice in a task, and two tasks
//! creating threads alternately (bodies in `fixtures/wat/scenarios`).
//!
//! Each scenario runs uninterrupted, slice by slice, to virtual time `end`,
//! and predicates over kernel state pick cut points (the slices where the
//! server holds a received call, where a thread woken in `ipc_wait` has not
//! returned yet, ...); seeded random cuts are added. At every cut a world
//! booted the same way is stopped after the same number of slices and, by
//! mode:
//!
//! - `same_kernel`, `fresh_kernel`, `shifted_kernel`: checkpointed, killed,
//!   written as an image (which must validate), restored with
//!   `checkpoint::restore` alone (no clock advance, no scheduler cursor by
//!   hand: [`World::checkpoint_kill_restore_pure`]) into the same kernel, a
//!   fresh one, or a fresh one where other tasks and threads took ids first;
//! - `double`: restored, run on for a while, checkpointed and restored
//!   again (same kernel, then shifted; or the other way round);
//! - `freeze`: only stopped, captured and resumed (`checkpoint::freeze`);
//!   the capture is written and must validate.
//!
//! Then the run goes on to `end`, and what it showed must equal the
//! uninterrupted run: the scenario's own checks first (they name the hole:
//! a call received twice, calls of an exited caller lost, a wrong thread
//! id, an area no longer shared), then restored thread ids in creation
//! order, then the completed system calls with their results and times,
//! the kernel log, and the memory digests.

mod ckpt_common;

use std::collections::BTreeMap;

use ckpt_common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use snapfmt::{ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, Restored};
use spartan_kernel::guest::guest_space_ref;
use spartan_kernel::ipc::CallId;
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::syscall::{Sysno, WaitReason};
use spartan_kernel::task::ThreadState;

const SLOW_SERVER: &str = include_str!("../../fixtures/wat/scenarios/slow_server.wat");
const POOL_SERVER: &str = include_str!("../../fixtures/wat/scenarios/pool_server.wat");
const FUTEX_SLEEPERS: &str = include_str!("../../fixtures/wat/scenarios/futex_sleepers.wat");
const SPAWNER: &str = include_str!("../../fixtures/wat/scenarios/spawner.wat");
const SELF_SHARE: &str = include_str!("../../fixtures/wat/scenarios/self_share.wat");
const HANGUP_CLIENT: &str = include_str!("../../fixtures/wat/scenarios/hangup_client.wat");
const ONESHOT_CLIENT: &str = include_str!("../../fixtures/wat/scenarios/oneshot_client.wat");

/// Cuts per predicate (spread over the slices where it holds).
const PER_PREDICATE: usize = 4;
/// Random cuts per test.
const RANDOM_CUTS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    SameKernel,
    FreshKernel,
    ShiftedKernel,
    Double,
    Freeze,
}

type Pred = fn(&World) -> bool;
type Check = fn(&Shown, &Shown) -> Result<(), String>;

/// A scenario with its cut predicates and its own checks.
struct Spec {
    name: &'static str,
    make: fn(u64) -> Scenario,
    slice_fuel: u64,
    end: u64,
    seed: u64,
    min_log: usize,
    predicates: &'static [(&'static str, Pred)],
    /// Checks of a run's trace (`got`) against the uninterrupted one
    /// (`want`) that name the hole better than the first difference of
    /// the whole trace (which timing differences may reach first).
    checks: &'static [(&'static str, Check)],
    /// Checks of the uninterrupted run (that the scenario does something).
    sanity: fn(&Shown),
}

// ---------------------------------------------------------------- helpers

fn prog2(name: &'static str, body: &'static str, args: &[Value], threads: &[&'static str]) -> Prog {
    let mut p = prog(name, body, args);
    p.threads = threads.to_vec();
    p
}

fn texts(s: &Shown, task: &str) -> Vec<String> {
    s.log
        .iter()
        .filter(|(_, t, _)| t == task)
        .map(|(_, _, x)| x.clone())
        .collect()
}

/// The shorter of two sequences is a prefix of the longer (a run that went
/// on longer, e.g. because its clock restarted, still agrees on content).
fn prefix_agrees(what: &str, got: &[String], want: &[String]) -> Result<(), String> {
    let n = got.len().min(want.len());
    match (0..n).find(|&i| got[i] != want[i]) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: line {i} differs (got {:?}, want {:?}; before: {:?})",
            &got[i..(i + 3).min(got.len())],
            &want[i..(i + 3).min(want.len())],
            &want[i.saturating_sub(3)..i]
        )),
    }
}

/// Server lines of slow_server.wat: (sender, method, a1).
fn decode_server(line: &str) -> Option<(u64, u64, u64)> {
    let v: u64 = line.parse().ok()?;
    Some((v / 1_000_000_000, (v / 100_000) % 10_000, v % 100_000))
}

fn threads_of(w: &World, idx: usize) -> Vec<&spartan_kernel::task::Thread> {
    let Some(t) = w.k.task(w.tasks[idx]) else {
        return Vec::new();
    };
    t.threads.iter().filter_map(|th| w.k.thread(*th)).collect()
}

fn holds_received_call(w: &World, idx: usize) -> bool {
    w.k.task(w.tasks[idx])
        .is_some_and(|t| !t.answerbox.dispatched.is_empty())
}

fn queued_calls(w: &World, idx: usize) -> usize {
    w.k.task(w.tasks[idx])
        .map_or(0, |t| t.answerbox.calls.len())
}

fn woken_in_wait_not_returned(w: &World, idx: usize) -> bool {
    threads_of(w, idx).iter().any(|t| {
        t.state == ThreadState::Runnable
            && t.sys.completed.is_none()
            && t.sys
                .in_progress
                .as_ref()
                .is_some_and(|p| p.number == Sysno::IpcWait as u32)
    })
}

fn in_ipc_wait(w: &World, idx: usize) -> usize {
    threads_of(w, idx)
        .iter()
        .filter(|t| t.state == ThreadState::Blocked(WaitReason::Answerbox))
        .count()
}

fn most_on_one_futex(w: &World, idx: usize) -> usize {
    let keys: Vec<_> = threads_of(w, idx)
        .iter()
        .filter_map(|t| match &t.state {
            ThreadState::Blocked(WaitReason::Futex(k)) => Some(*k),
            _ => None,
        })
        .collect();
    keys.iter()
        .map(|k| keys.iter().filter(|x| *x == k).count())
        .max()
        .unwrap_or(0)
}

fn live_threads(w: &World, idx: usize) -> usize {
    threads_of(w, idx)
        .iter()
        .filter(|t| t.state != ThreadState::Exited)
        .count()
}

/// A restore into a fresh kernel numbers the live threads 1..=n; the next
/// thread created gets n + 1 from the kernel. Holds when a live thread of
/// the set has that id (as its task sees it).
fn next_fresh_id_is_live(w: &World) -> bool {
    let live: Vec<u64> = (0..w.tasks.len())
        .flat_map(|i| threads_of(w, i))
        .filter(|t| t.state != ThreadState::Exited)
        .map(|t| w.k.peek_thread_id_seen(t.id))
        .collect();
    live.contains(&(live.len() as u64 + 1))
}

// -------------------------------------------------------------- scenarios

/// Three callers created before their server (their task ids are lower):
/// two synchronous, one asynchronous; the server holds every call it
/// received for a while before answering.
fn callers_first(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog("sync1", SYNC_CLIENT, &[Value::I32(0)]),
            prog("sync2", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
            prog("server", SLOW_SERVER, &[Value::I32(150), Value::I64(0)]),
        ],
        phones: vec![(0, 3), (1, 3), (2, 3)],
        slice_fuel,
    }
}

/// No call is received twice by the server: every (sender, method, a1)
/// of a protocol call is unique in the uninterrupted run.
fn no_call_received_twice(got: &Shown, _want: &Shown) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (i, line) in texts(got, "server").iter().enumerate() {
        if let Some(c @ (_, 1024, _)) = decode_server(line)
            && let Some(first) = seen.insert(c, i)
        {
            return Err(format!(
                "server received call (sender, method, a1) = {c:?} twice: as its call {first} and {i}"
            ));
        }
    }
    Ok(())
}

/// The server receives the calls in the same order (timing-free).
fn server_order_agrees(got: &Shown, want: &Shown) -> Result<(), String> {
    prefix_agrees(
        "calls the server received, in order",
        &texts(got, "server"),
        &texts(want, "server"),
    )
}

/// A client whose phones 0 and 1 both go to a server created before it;
/// it hangs up phone 1 (the highest) while its call on it is pending.
fn hangup_highest(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog("server", SLOW_SERVER, &[Value::I32(800), Value::I64(0)]),
            prog("client", HANGUP_CLIENT, &[Value::I32(0), Value::I32(1)]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (1, 0), (2, 0)],
        slice_fuel,
    }
}

/// A server (created first) asleep while a client sends three
/// asynchronous calls, hangs up and exits; a synchronous client keeps the
/// server busy afterwards.
fn exited_caller(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog(
                "server",
                SLOW_SERVER,
                &[Value::I32(100), Value::I64(25_000)],
            ),
            prog("oneshot", ONESHOT_CLIENT, &[Value::I32(0)]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (2, 0)],
        slice_fuel,
    }
}

/// The server receives the exited client's three calls and its hangup
/// exactly as in the uninterrupted run (by sender: the client's id as the
/// server saw it).
fn exited_callers_calls_arrive(got: &Shown, want: &Shown) -> Result<(), String> {
    // The exited client's id as the server saw it: the sender of the first
    // call of the uninterrupted run (the client sent while the server slept).
    let lines = |s: &Shown| -> Vec<(u64, u64, u64)> {
        texts(s, "server")
            .iter()
            .filter_map(|l| decode_server(l))
            .collect()
    };
    let Some(client) = lines(want).first().map(|c| c.0) else {
        return Err("the uninterrupted server received nothing".into());
    };
    let from = |s: &Shown| -> Vec<(u64, u64, u64)> {
        lines(s).into_iter().filter(|c| c.0 == client).collect()
    };
    let (g, w) = (from(got), from(want));
    if g != w {
        return Err(format!(
            "the server received from the exited client (sender {client}) {g:?}, \
             uninterrupted {w:?}; its first calls were {:?}",
            &lines(got)[..4.min(lines(got).len())]
        ));
    }
    Ok(())
}

/// Three threads of one server in `ipc_wait` (queued in the reverse of
/// their id order) and three clients.
fn pool(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog2("server", POOL_SERVER, &[], &["w1", "w2"]),
            prog("sync1", SYNC_CLIENT, &[Value::I32(0)]),
            prog("sync2", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (2, 0), (3, 0)],
        slice_fuel,
    }
}

/// Which server thread took which call, in order (timing-free).
fn pool_assignment_agrees(got: &Shown, want: &Shown) -> Result<(), String> {
    let served = |s: &Shown| -> Vec<(u64, u64, u64)> {
        texts(s, "server")
            .iter()
            .filter_map(|l| l.parse::<u64>().ok())
            .map(|v| (v / 1_000_000, (v / 10_000) % 100, v % 10_000))
            .collect()
    };
    let (g, w) = (served(got), served(want));
    let n = g.len().min(w.len());
    if let Some(i) = (0..n).find(|&i| g[i] != w[i]) {
        return Err(format!(
            "server threads (thread, sender, a1) took calls in another order at call {i}: \
             got {:?}, want {:?}",
            &g[i..(i + 3).min(g.len())],
            &w[i..(i + 3).min(w.len())]
        ));
    }
    Ok(())
}

/// Three threads asleep on one futex (queued in the reverse of their id
/// order), woken one by one.
fn futex_sleepers(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![prog2("sleepers", FUTEX_SLEEPERS, &[], &["s1", "s2", "s3"])],
        phones: vec![],
        slice_fuel,
    }
}

fn futex_order_agrees(got: &Shown, want: &Shown) -> Result<(), String> {
    prefix_agrees(
        "futex sleepers woken (oldest first), by thread id",
        &texts(got, "sleepers"),
        &texts(want, "sleepers"),
    )
}

/// Two tasks creating threads alternately; the threads compute, log and
/// end, so threads of both tasks interleave in the round robin.
fn interleaved_threads(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog("spawnA", SPAWNER, &[Value::I64(1_000)]),
            prog("spawnB", SPAWNER, &[Value::I64(4_000)]),
        ],
        phones: vec![],
        slice_fuel,
    }
}

fn thread_ids_agree(got: &Shown, want: &Shown) -> Result<(), String> {
    for task in ["spawnA", "spawnB"] {
        if let Some(i) = texts(got, task).iter().position(|l| l == "tid-bad") {
            return Err(format!(
                "{task}: a thread's thread_id is not what thread_create returned for it \
                 (\"tid-bad\" at its line {i})"
            ));
        }
        let created = |s: &Shown| -> Vec<i64> {
            s.calls
                .iter()
                .filter(|c| c.1 == task && c.3 == Sysno::ThreadCreate as u32)
                .map(|c| c.5)
                .collect()
        };
        let (g, w) = (created(got), created(want));
        let n = g.len().min(w.len());
        if let Some(i) = (0..n).find(|&i| g[i] != w[i]) {
            return Err(format!(
                "{task}: thread_create returned other ids than uninterrupted from its call {i} \
                 on: got {:?}, want {:?}",
                &g[i..(i + 4).min(g.len())],
                &w[i..(i + 4).min(w.len())]
            ));
        }
    }
    Ok(())
}

/// A task sharing an area with itself: phone 0 connected to itself, one
/// thread offers its area (IPC_M_SHARE_OUT), the other maps it a second
/// time; writes through one mapping are read through the other.
fn self_share(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![prog2("alias", SELF_SHARE, &[], &["acceptor"])],
        phones: vec![(0, 0)],
        slice_fuel,
    }
}

fn alias_agrees(got: &Shown, want: &Shown) -> Result<(), String> {
    prefix_agrees(
        "one area at two addresses: what one mapping shows of the other's writes",
        &texts(got, "alias"),
        &texts(want, "alias"),
    )
}

/// The transparency oracle's client and server (server first, one waiting
/// thread): only the clock and the round-robin position are at stake.
fn client_server(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog("server", SERVER, &[]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (2, 0)],
        slice_fuel,
    }
}

// ------------------------------------------------------------------ specs

fn server_lines(s: &Shown, task: &str, at_least: usize) {
    let n = texts(s, task).len();
    assert!(n >= at_least, "{task} logged only {n} lines");
}

const CALLERS_FIRST: Spec = Spec {
    name: "callers-first",
    make: callers_first,
    slice_fuel: 47,
    end: 80_000,
    seed: 21,
    min_log: 60,
    predicates: &[
        ("the server holds a received call", |w| {
            holds_received_call(w, 3)
        }),
        ("two calls queued at the server", |w| {
            queued_calls(w, 3) >= 2
        }),
    ],
    checks: &[("no call received twice", no_call_received_twice)],
    sanity: |s| {
        server_lines(s, "server", 40);
        let senders: std::collections::BTreeSet<u64> = texts(s, "server")
            .iter()
            .filter_map(|l| decode_server(l).map(|c| c.0))
            .collect();
        assert_eq!(senders.len(), 3, "all three callers reach the server");
    },
};

/// The callers-first scenario cut only where calls of several callers are
/// queued at the server and it holds none: their queue order is at stake.
const CALLERS_QUEUE: Spec = Spec {
    name: "callers-queue",
    predicates: &[("two calls queued at the server, none held", |w| {
        queued_calls(w, 3) >= 2 && !holds_received_call(w, 3)
    })],
    checks: &[
        ("no call received twice", no_call_received_twice),
        ("calls received in queue order", server_order_agrees),
    ],
    ..CALLERS_FIRST
};

const HANGUP_HIGHEST: Spec = Spec {
    name: "hangup-highest",
    make: hangup_highest,
    slice_fuel: 41,
    end: 80_000,
    seed: 22,
    min_log: 25,
    predicates: &[("a call pending on the hung-up highest phone", |w| {
        w.k.task(w.tasks[1])
            .is_some_and(|t| t.phones.slots().len() == 1 && t.out_calls.contains_key(&CallId(1)))
    })],
    checks: &[],
    sanity: |s| {
        let c = texts(s, "client");
        assert_eq!(&c[..4], ["1", "0", "2", "156"], "call, hangup, answer");
        server_lines(s, "client", 10);
    },
};

const EXITED_CALLER: Spec = Spec {
    name: "exited-caller",
    make: exited_caller,
    slice_fuel: 53,
    end: 60_000,
    seed: 23,
    min_log: 30,
    predicates: &[(
        "the caller exited, its calls undelivered at the server",
        |w| w.k.task(w.tasks[1]).is_none() && queued_calls(w, 0) >= 2,
    )],
    checks: &[(
        "the exited caller's calls and hangup arrive",
        exited_callers_calls_arrive,
    )],
    sanity: |s| {
        let lines: Vec<_> = texts(s, "server")
            .iter()
            .filter_map(|l| decode_server(l))
            .collect();
        let first = lines[0].0;
        let from: Vec<_> = lines.iter().filter(|c| c.0 == first).collect();
        assert_eq!(
            from,
            [
                &(first, 1024, 1),
                &(first, 1024, 2),
                &(first, 1024, 3),
                &(first, 1, 0)
            ],
            "the server gets the exited client's three calls and its hangup"
        );
        assert!(
            s.log
                .iter()
                .any(|l| l.1 == "oneshot" && l.2.ends_with("exited")),
            "the client exits"
        );
    },
};

const POOL: Spec = Spec {
    name: "pool",
    make: pool,
    slice_fuel: 37,
    end: 70_000,
    seed: 24,
    min_log: 60,
    predicates: &[
        ("a thread woken in ipc_wait has not returned yet", |w| {
            woken_in_wait_not_returned(w, 0) && in_ipc_wait(w, 0) >= 1
        }),
        ("three server threads in ipc_wait", |w| {
            in_ipc_wait(w, 0) >= 3
        }),
        ("two server threads in ipc_wait", |w| in_ipc_wait(w, 0) == 2),
    ],
    checks: &[(
        "server threads take calls in the same order",
        pool_assignment_agrees,
    )],
    sanity: |s| {
        let threads: std::collections::BTreeSet<u64> = texts(s, "server")
            .iter()
            .filter_map(|l| l.parse::<u64>().ok().map(|v| v / 1_000_000))
            .collect();
        assert_eq!(threads.len(), 3, "all three server threads serve");
        server_lines(s, "server", 40);
    },
};

const FUTEX: Spec = Spec {
    name: "futex-sleepers",
    make: futex_sleepers,
    slice_fuel: 43,
    end: 80_000,
    seed: 25,
    min_log: 30,
    predicates: &[
        ("two threads asleep on one futex", |w| {
            most_on_one_futex(w, 0) == 2
        }),
        ("three threads asleep on one futex", |w| {
            most_on_one_futex(w, 0) >= 3
        }),
    ],
    checks: &[("futex sleepers woken oldest first", futex_order_agrees)],
    sanity: |s| {
        let ids: Vec<String> = texts(s, "sleepers")
            .into_iter()
            .filter(|l| l != "1")
            .take(3)
            .collect();
        assert_eq!(ids, ["4", "3", "2"], "woken oldest first: s3, s2, s1");
    },
};

const INTERLEAVED: Spec = Spec {
    name: "interleaved-threads",
    make: interleaved_threads,
    slice_fuel: 39,
    end: 80_000,
    seed: 26,
    min_log: 60,
    predicates: &[
        (
            "a kernel booted afresh would give a new thread the id of a live one",
            next_fresh_id_is_live,
        ),
        ("both tasks run several threads", |w| {
            live_threads(w, 0) >= 2 && live_threads(w, 1) >= 2
        }),
    ],
    checks: &[("thread ids as uninterrupted", thread_ids_agree)],
    sanity: |s| {
        assert!(texts(s, "spawnA").iter().filter(|l| *l == "tid-ok").count() >= 5);
        assert!(texts(s, "spawnB").iter().filter(|l| *l == "tid-ok").count() >= 5);
    },
};

/// The interleaved scenario without its thread id checks: restored
/// threads must keep their creation order across tasks (round robin).
const INTERLEAVED_RR: Spec = Spec {
    name: "interleaved-round-robin",
    predicates: &[("both tasks run several threads", |w| {
        live_threads(w, 0) >= 2 && live_threads(w, 1) >= 2
    })],
    checks: &[],
    ..INTERLEAVED
};

const SELF_SHARED: Spec = Spec {
    name: "self-share",
    make: self_share,
    slice_fuel: 45,
    end: 60_000,
    seed: 27,
    min_log: 30,
    predicates: &[("the area is mapped twice", |w| {
        guest_space_ref(&w.k, w.tasks[0]).is_some_and(|s| s.areas().len() >= 3)
    })],
    checks: &[("the two mappings stay one area", alias_agrees)],
    sanity: |s| {
        let t = texts(s, "alias");
        assert_eq!(
            &t[..6],
            ["5", "0", "0", "7", "1", "10"],
            "shared with itself"
        );
    },
};

const CLIENT_SERVER: Spec = Spec {
    name: "client-server",
    make: client_server,
    slice_fuel: 51,
    end: 60_000,
    seed: 28,
    min_log: 50,
    predicates: &[("the server holds a received call", |w| {
        holds_received_call(w, 0)
    })],
    checks: &[],
    sanity: |s| server_lines(s, "sync", 20),
};

// ----------------------------------------------------------------- oracle

/// The uninterrupted run: what it shows, its digests, how many slices it
/// took, and for each predicate the slices after which it held.
struct Baseline {
    want: Shown,
    digests: BTreeMap<String, String>,
    slices: u64,
    holds: Vec<Vec<u64>>,
}

fn baseline(spec: &Spec, sc: &Scenario) -> Baseline {
    let mut w = boot(sc, spec.seed);
    let mut slices = 0;
    let mut holds = vec![Vec::new(); spec.predicates.len()];
    while w.k.now() < spec.end {
        match w.s.run(&mut w.k, 1) {
            RunEnd::AllDone | RunEnd::Deadlock => break,
            _ => {}
        }
        slices += 1;
        w.relabel();
        for (i, (_, p)) in spec.predicates.iter().enumerate() {
            if p(&w) {
                holds[i].push(slices);
            }
        }
    }
    Baseline {
        want: w.shown(),
        digests: w.digests(),
        slices,
        holds,
    }
}

/// Runs `n` slices (fewer if virtual time reaches `end`), naming the
/// threads created meanwhile.
fn run_slices(w: &mut World, n: u64, end: u64) {
    for _ in 0..n {
        if w.k.now() >= end {
            break;
        }
        w.s.run(&mut w.k, 1);
        w.relabel();
    }
}

/// Restored thread ids keep the order the threads were created in
/// (across tasks): the round robin goes by thread id.
fn check_thread_order(r: &Restored) -> Result<(), String> {
    let mut by_old: Vec<_> = r.threads.iter().map(|(o, n)| (o.0, n.0)).collect();
    by_old.sort();
    for pair in by_old.windows(2) {
        if pair[0].1 > pair[1].1 {
            return Err(format!(
                "restore renumbered threads out of creation order: old {} -> new {}, old {} -> new {} \
                 (whole map old -> new: {by_old:?})",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            ));
        }
    }
    Ok(())
}

fn restore_into(
    w: World,
    path: &std::path::Path,
    form: ImageForm,
    target: Target,
    got: &mut Shown,
    maps: &mut Vec<(Restored, u64, u64)>,
) -> Result<World, String> {
    let captured_at = w.k.now();
    let (w, before, restored) = w.checkpoint_kill_restore_pure(path, form, target)?;
    got.extend(before);
    maps.push((restored, captured_at, w.k.now()));
    Ok(w)
}

fn oracle(spec: &Spec, mode: Mode) {
    let sc = (spec.make)(spec.slice_fuel);
    let base = baseline(spec, &sc);
    assert!(
        base.want.log.len() >= spec.min_log,
        "{}: the scenario does something ({} log lines)",
        spec.name,
        base.want.log.len()
    );
    (spec.sanity)(&base.want);

    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed * 1000 + mode as u64);
    let mut cuts: Vec<(String, u64)> = Vec::new();
    for ((what, _), holds) in spec.predicates.iter().zip(&base.holds) {
        assert!(
            !holds.is_empty(),
            "{}: no cut point where {what}",
            spec.name
        );
        for j in 0..PER_PREDICATE.min(holds.len()) {
            let at = holds[j * holds.len() / PER_PREDICATE.min(holds.len())];
            cuts.push((format!("where {what}"), at));
        }
    }
    for _ in 0..RANDOM_CUTS {
        cuts.push(("random".into(), 1 + rng.next_u64() % (base.slices - 1)));
    }

    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (why, at)) in cuts.iter().enumerate() {
        let what = format!(
            "{} ({mode:?}): cut {i} after slice {at} of {} ({why})",
            spec.name, base.slices
        );
        let form = if i % 2 == 0 {
            ImageForm::Directory
        } else {
            ImageForm::Tar
        };
        let path = dir.path().join(format!("cut-{i}"));
        let mut w = boot(&sc, spec.seed);
        run_slices(&mut w, *at, spec.end);
        let mut got = Shown::default();
        let mut maps = Vec::new();
        let result = match mode {
            Mode::Freeze => {
                let set = w.live_tasks();
                let capture = checkpoint::freeze(&mut w.k, &w.s, &set).expect("freeze");
                let opts = WriterOptions {
                    form,
                    threads: 1,
                    ..WriterOptions::default()
                };
                capture.write(&path, opts).expect("image written");
                let problems = snapfmt::validate(&path);
                assert!(
                    problems.is_empty(),
                    "{what}: the image the writer wrote does not validate: {problems:?}"
                );
                w.k.check_invariants()
                    .unwrap_or_else(|e| panic!("{what}: invariants after freeze: {e:?}"));
                Ok(w)
            }
            Mode::SameKernel => restore_into(w, &path, form, Target::Same, &mut got, &mut maps),
            Mode::FreshKernel => {
                restore_into(w, &path, form, Target::Fresh(99), &mut got, &mut maps)
            }
            Mode::ShiftedKernel => {
                restore_into(w, &path, form, Target::Shifted(98), &mut got, &mut maps)
            }
            Mode::Double => {
                let (first, second) = if i % 2 == 0 {
                    (Target::Same, Target::Shifted(97))
                } else {
                    (Target::Shifted(96), Target::Same)
                };
                let more = 1 + rng.next_u64() % 300;
                restore_into(w, &path, form, first, &mut got, &mut maps).and_then(|mut w| {
                    run_slices(&mut w, more, spec.end);
                    let path2 = dir.path().join(format!("cut-{i}-again"));
                    restore_into(w, &path2, form, second, &mut got, &mut maps)
                })
            }
        };
        let mut w = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        w.run_to(spec.end);
        got.extend(w.shown());
        for (name, check) in spec.checks {
            if let Err(e) = check(&got, &base.want) {
                panic!("{what}: {name}: {e}");
            }
        }
        for (r, captured_at, restored_at) in &maps {
            check_thread_order(r).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                restored_at, captured_at,
                "{what}: the kernel's clock right after the restore is not the capture time"
            );
        }
        assert_same_lines(&format!("{what}: calls"), &got.calls, &base.want.calls);
        assert_same_lines(&format!("{what}: log"), &got.log, &base.want.log);
        assert_eq!(w.digests(), base.digests, "{what}: memory digests");
    }
}

macro_rules! scenario_tests {
    ($($module:ident: $spec:expr;)*) => {$(
        mod $module {
            use super::*;
            #[test]
            fn same_kernel() {
                oracle(&$spec, Mode::SameKernel);
            }
            #[test]
            fn fresh_kernel() {
                oracle(&$spec, Mode::FreshKernel);
            }
            #[test]
            fn shifted_kernel() {
                oracle(&$spec, Mode::ShiftedKernel);
            }
            #[test]
            fn double() {
                oracle(&$spec, Mode::Double);
            }
            #[test]
            fn freeze() {
                oracle(&$spec, Mode::Freeze);
            }
        }
    )*};
}

scenario_tests! {
    callers_first: CALLERS_FIRST;
    callers_queue: CALLERS_QUEUE;
    hangup_highest: HANGUP_HIGHEST;
    exited_caller: EXITED_CALLER;
    pool_waiters: POOL;
    futex_sleepers: FUTEX;
    interleaved_threads: INTERLEAVED;
    interleaved_round_robin: INTERLEAVED_RR;
    self_share: SELF_SHARED;
    client_server: CLIENT_SERVER;
}
