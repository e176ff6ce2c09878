//! Hostile images found by the restore fuzz target (`kernel/fuzz`, target
//! `restore`): well-formed, checksums valid, but contradicting themselves
//! in a way the restore did not see. Each must be refused with a clear
//! error and leave nothing behind.

mod ckpt_common;

use std::path::Path;

use ckpt_common::*;
use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, Capture, RestoreError, RestoreOptions};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::TaskPolicy;

fn client_server() -> Scenario {
    Scenario {
        progs: vec![
            prog("server", SERVER, &[]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0)],
        slice_fuel: 40,
    }
}

/// A capture of the client/server scenario at a point where the client
/// waits in a synchronous call.
fn captured_in_sync_call() -> (World, Capture) {
    for t in (2_000..200_000).step_by(1_000) {
        let mut w = boot(&client_server(), 3);
        w.run_to(t);
        let stopped = checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
        let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
        if c.tasks.iter().any(|t| {
            t.record
                .threads
                .iter()
                .any(|th| th.active_sync_call.is_some())
        }) {
            return (w, c);
        }
    }
    panic!("the client never waits in a synchronous call");
}

fn write(c: &Capture, path: &Path) {
    let opts = WriterOptions {
        threads: 1,
        form: ImageForm::Directory,
        ..WriterOptions::default()
    };
    c.write(path, opts).expect("written");
}

/// Restores `path` into a fresh kernel; a restore that succeeds is run
/// for a while with the invariants checked (so that a test fails rather
/// than passes when the restore takes the image). A failure must leave
/// nothing behind.
fn restore_fails(path: &Path) -> RestoreError {
    let w = boot(&client_server(), 3);
    let mut fresh = w.reboot(4);
    let native = fresh
        .k
        .spawn_native("bystander", TaskPolicy::Checkpointable);
    let (tasks, threads) = (fresh.k.task_ids(), fresh.s.threads());
    let image = std::sync::Arc::new(Image::open(path).expect("opens"));
    let r = checkpoint::restore(
        &mut fresh.k,
        &mut fresh.s,
        &image,
        &RestoreOptions::default(),
    );
    let err = match r {
        Err(e) => e,
        Ok(_) => {
            for _ in 0..200 {
                if let RunEnd::AllDone | RunEnd::Deadlock = fresh.s.run(&mut fresh.k, 1) {
                    break;
                }
                fresh
                    .k
                    .check_invariants()
                    .expect("invariants after running a restored image");
            }
            panic!("restore took the image");
        }
    };
    assert_eq!(fresh.k.task_ids(), tasks, "no task left behind: {err}");
    assert_eq!(fresh.s.threads(), threads, "no thread left behind: {err}");
    assert!(fresh.k.task(native.id()).is_some());
    fresh.k.check_invariants().expect("kernel consistent");
    err
}

/// Two threads of a task waiting for the same synchronous call: once the
/// first had its answer, the second waited for a call that was gone
/// (`kernel invariant violated: ... waits for CallId(1) which is not
/// pending`).
#[test]
fn two_threads_waiting_for_one_synchronous_call_are_refused() {
    let (_w, mut c) = captured_in_sync_call();
    let all_threads: Vec<u64> = c
        .tasks
        .iter()
        .flat_map(|t| t.record.threads.iter().map(|th| th.thread_id))
        .collect();
    let fresh_id = all_threads.iter().max().expect("threads") + 1;
    let t = c
        .tasks
        .iter_mut()
        .find(|t| {
            t.record
                .threads
                .iter()
                .any(|th| th.active_sync_call.is_some())
        })
        .expect("a waiting task");
    let task = t.task.0;
    let i = t
        .record
        .threads
        .iter()
        .position(|th| th.active_sync_call.is_some())
        .expect("waiting thread");
    let mut twin = t.record.threads[i].clone();
    twin.thread_id = fresh_id;
    t.record.threads.push(twin);
    let detail = t.kernel_state.threads[i].clone();
    t.kernel_state.threads.push(detail);
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        matches!(e, RestoreError::Inconsistent { task: t, .. } if t == task),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("thread {fresh_id} waits for synchronous call")),
        "{e}"
    );
}
