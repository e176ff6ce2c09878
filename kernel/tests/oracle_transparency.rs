//! The transparency oracle at kernel level: scenarios of communicating WAT
//! guest tasks run in simulation to virtual time `END` while what they
//! show is traced (log lines; completed system calls with their results,
//! by task name and the thread id the task sees). For 50 seeded random cut
//! points per scenario the set is stopped at `t`, captured, killed, written
//! as a real image on disk (directory or tar, alternately), and restored
//! (alternately into the same kernel and into a freshly booted one), then
//! run on to `END`. The trace and the final memory digests must equal the
//! uninterrupted run's. The same seed twice gives the same trace.

mod ckpt_common;

use ckpt_common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use snapfmt::ImageForm;
use spartan_kernel::machine::Value;

const END: u64 = 60_000;
const CUTS: usize = 50;

/// A server with a synchronous and an asynchronous client (timeouts,
/// sleeps, answers queued while the client is busy, task ids in answers).
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

/// A client calling a forwarder that forwards to a worker (the answer goes
/// straight back to the client), next to a task of two threads playing
/// ping-pong through futexes.
fn forward_and_futex(slice_fuel: u64) -> Scenario {
    let mut pair = prog("futex", FUTEX_PAIR, &[]);
    pair.threads.push("pong");
    Scenario {
        progs: vec![
            prog("worker", WORKER, &[]),
            prog("forwarder", FORWARDER, &[Value::I32(0)]),
            prog("client", SYNC_CLIENT, &[Value::I32(0)]),
            pair,
        ],
        phones: vec![(1, 0), (2, 1)],
        slice_fuel,
    }
}

fn oracle(name: &str, make: fn(u64) -> Scenario, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sc = make(30 + rng.next_u64() % 60);
    let mut whole = boot(&sc, seed);
    whole.run_to(END);
    let want = whole.shown();
    let digests = whole.digests();
    assert!(want.log.len() > 50, "{name}: the scenario does something");
    let mut again = boot(&sc, seed);
    again.run_to(END);
    assert_eq!(again.shown(), want, "{name}: same seed, same trace");

    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..CUTS {
        let cut = 1 + rng.next_u64() % (END - 1);
        let reboot = i % 2 == 1;
        let form = if i % 4 < 2 {
            ImageForm::Directory
        } else {
            ImageForm::Tar
        };
        let mut w = boot(&sc, seed);
        w.run_to(cut);
        let path = dir.path().join(format!("{name}-{i}"));
        let (mut w, mut got, _) =
            w.checkpoint_kill_restore(&path, form, reboot.then_some(seed + 1));
        w.run_to(END);
        got.extend(w.shown());
        let what = format!("{name}: cut {i} at {cut} (reboot {reboot})");
        assert_same(&format!("{what}: calls"), &got.calls, &want.calls);
        assert_same(&format!("{what}: log"), &got.log, &want.log);
        assert_eq!(w.digests(), digests, "{what}: memory");
    }
}

#[test]
fn client_server_is_transparent_at_50_cuts() {
    oracle("client-server", client_server, 7);
}

#[test]
fn forwarding_and_futexes_are_transparent_at_50_cuts() {
    oracle("forward-futex", forward_and_futex, 11);
}
