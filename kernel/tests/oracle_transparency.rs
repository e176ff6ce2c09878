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

use std::collections::BTreeMap;

use ckpt_common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use snapfmt::ImageForm;
use spartan_kernel::checkpoint::PageLoading;
use spartan_kernel::machine::Value;

const END: u64 = 60_000;
const CUTS: usize = 50;

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

/// The scenario `make` builds for `seed` (its slice drawn from `rng`),
/// and what its uninterrupted run to `END` shows, with the final memory
/// digests.
fn uninterrupted(
    make: fn(u64) -> Scenario,
    seed: u64,
    rng: &mut ChaCha8Rng,
) -> (Scenario, Shown, BTreeMap<String, String>) {
    let sc = make(30 + rng.next_u64() % 60);
    let mut whole = boot(&sc, seed);
    whole.run_to(END);
    let (want, digests) = (whole.shown(), whole.digests());
    (sc, want, digests)
}

fn oracle(name: &str, make: fn(u64) -> Scenario, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (sc, want, digests) = uninterrupted(make, seed, &mut rng);
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

/// Writes 32 pages above its first wasm page, then reads one of them
/// every 1500 virtual ns (in order, round and round) and logs the running
/// sum: after a lazy restore, most of its pages stay pending for a while.
const PAGE_READER: &str = r#"
  (func (export "main") (local $i i32) (local $sum i64)
    (drop (memory.grow (i32.const 2)))
    (loop $write
      (i64.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 12)))
        (i64.extend_i32_u (i32.add (i32.mul (local.get $i) (i32.const 7)) (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $write (i32.lt_u (local.get $i) (i32.const 32))))
    (local.set $i (i32.const 0))
    (loop $read
      (drop (call $sleep (i64.const 1500)))
      (local.set $sum (i64.add (local.get $sum)
        (i64.load (i32.add (i32.const 65536)
          (i32.shl (i32.rem_u (local.get $i) (i32.const 32)) (i32.const 12))))))
      (call $log_num (local.get $sum))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $read)))
"#;

/// The client/server scenario beside a [`PAGE_READER`].
fn client_server_and_reader(slice_fuel: u64) -> Scenario {
    let mut sc = client_server(slice_fuel);
    sc.progs.push(prog("reader", PAGE_READER, &[]));
    sc
}

/// Lazy restores under the oracle: 25 runs of two cuts each, the second
/// while pages of the first restore may still be pending (with pages
/// loaded only on first touch, every other run; with the background fill
/// racing the tasks, the others), so a checkpoint of a half-loaded set
/// and the fill's timing are both covered.
fn oracle_lazy(name: &str, make: fn(u64) -> Scenario, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (sc, want, digests) = uninterrupted(make, seed, &mut rng);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut pending_at_second_cut = 0;
    for i in 0..CUTS / 2 {
        let loading = if i % 2 == 0 {
            PageLoading::OnTouch
        } else {
            PageLoading::Background
        };
        let first = 1 + rng.next_u64() % (END / 2);
        let second = first + 1 + rng.next_u64() % (END - first - 1);
        let (reboot1, reboot2) = (i % 4 < 2, i % 3 == 0);
        let mut w = boot(&sc, seed);
        w.loading = loading;
        w.run_to(first);
        let p1 = dir.path().join(format!("{name}-{i}-a"));
        let (mut w, mut got, _) =
            w.checkpoint_kill_restore(&p1, ImageForm::Directory, reboot1.then_some(seed + 1));
        w.run_to(second);
        pending_at_second_cut += w.pending_pages();
        let p2 = dir.path().join(format!("{name}-{i}-b"));
        let form = if i % 2 == 0 {
            ImageForm::Tar
        } else {
            ImageForm::Directory
        };
        let (mut w, more, _) = w.checkpoint_kill_restore(&p2, form, reboot2.then_some(seed + 2));
        got.extend(more);
        w.run_to(END);
        got.extend(w.shown());
        let what = format!("{name}: {loading:?} run {i}, cuts at {first} and {second}");
        assert_same(&format!("{what}: calls"), &got.calls, &want.calls);
        assert_same(&format!("{what}: log"), &got.log, &want.log);
        assert_eq!(w.digests(), digests, "{what}: memory");
    }
    assert!(
        pending_at_second_cut > 0,
        "{name}: some second cut came while pages were pending"
    );
}

#[test]
fn lazy_restores_are_transparent_with_cuts_while_pages_load() {
    oracle_lazy("lazy-client-server", client_server_and_reader, 13);
    oracle_lazy("lazy-forward-futex", forward_and_futex, 17);
}

#[test]
fn client_server_is_transparent_at_50_cuts() {
    oracle("client-server", client_server, 7);
}

#[test]
fn forwarding_and_futexes_are_transparent_at_50_cuts() {
    oracle("forward-futex", forward_and_futex, 11);
}
