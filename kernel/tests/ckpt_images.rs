//! Restore from images that are wrong in one way each: a clear typed error
//! naming the task and what is wrong, and nothing half-created left in the
//! kernel or the scheduler. Also: an area shared by two checkpointable
//! tasks stays shared after restore, and a restored task keeps seeing its
//! own and its peers' ids after a reboot.

mod ckpt_common;

use std::path::Path;

use ckpt_common::*;
use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, Capture, RestoreError, RestoreOptions};
use spartan_kernel::guest::{guest_space, guest_space_ref};
use spartan_kernel::machine::Value;
use spartan_kernel::mm::{AreaFlags, BackingId, SharedBacking};
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

/// A world run for a while and its capture (tasks left stopped).
fn captured() -> (World, Capture) {
    let mut w = boot(&client_server(), 3);
    w.run_to(20_000);
    let stopped = checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
    let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
    (w, c)
}

fn write(c: &Capture, path: &Path) {
    let opts = WriterOptions {
        threads: 1,
        form: ImageForm::Directory,
        ..WriterOptions::default()
    };
    c.write(path, opts).expect("written");
}

/// Restores `path` into a fresh kernel and checks that a failure left
/// nothing behind.
fn restore_fails(path: &Path) -> RestoreError {
    let w = boot(&client_server(), 3);
    let mut fresh = w.reboot(4);
    let native = fresh
        .k
        .spawn_native("bystander", TaskPolicy::Checkpointable);
    let (tasks, threads) = (fresh.k.task_ids(), fresh.s.threads());
    let err = match Image::open(path) {
        Err(e) => RestoreError::Image(e),
        Ok(image) => checkpoint::restore(
            &mut fresh.k,
            &mut fresh.s,
            &std::sync::Arc::new(image),
            &RestoreOptions::default(),
        )
        .expect_err("restore must fail"),
    };
    assert_eq!(fresh.k.task_ids(), tasks, "no task left behind: {err}");
    assert_eq!(fresh.s.threads(), threads, "no thread left behind: {err}");
    assert!(fresh.k.task(native.id()).is_some());
    fresh.k.check_invariants().expect("kernel consistent");
    err
}

#[test]
fn a_module_that_does_not_load_is_named() {
    let (_w, mut c) = captured();
    c.tasks[0].module = b"\0asm\x01\0\0\0garbage".to_vec().into();
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        matches!(e, RestoreError::Load { task, .. } if task == c.tasks[0].task.0),
        "{e}"
    );
}

#[test]
fn a_thread_state_that_does_not_fit_the_module_is_named() {
    let (_w, mut c) = captured();
    c.tasks[1].record.threads[0].exec.frames[0].func_index = 9999;
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(matches!(e, RestoreError::Thread { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("task {}", c.tasks[1].task.0)),
        "{e}"
    );
}

#[test]
fn a_kernel_state_that_does_not_fit_the_record_is_refused() {
    let (_w, mut c) = captured();
    c.tasks[0].kernel_state.threads.clear();
    let dir = tempfile::tempdir().expect("tempdir");
    // The writer refuses to write it as a kernel state record ...
    let opts = WriterOptions {
        threads: 1,
        ..WriterOptions::default()
    };
    let e = c
        .write(&dir.path().join("r"), opts.clone())
        .expect_err("refused");
    assert!(e.to_string().contains("thread details"), "{e}");
    // ... and restore refuses it in a 1.1 supplement.
    c.write_v1_1_supplements(&dir.path().join("i"), opts)
        .expect("written");
    let e = restore_fails(&dir.path().join("i"));
    assert!(matches!(e, RestoreError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("thread details"), "{e}");
}

#[test]
fn images_carry_kernel_state_records_and_no_supplements() {
    let (_w, c) = captured();
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let image = Image::open(dir.path().join("i")).expect("opens");
    // No 1.1 supplements: the only entries are the set's schedule (1.3).
    let extra = &image.manifest().options.extra;
    assert!(
        extra.keys().all(|k| !k.starts_with("kernel.task.")),
        "{extra:?}"
    );
    assert!(extra.contains_key("kernel.next_thread_id"), "{extra:?}");
    for t in &c.tasks {
        let k = image
            .kernel_state(t.task.0)
            .expect("readable")
            .expect("every task has one");
        assert_eq!(*k, t.kernel_state);
    }
    assert_eq!(snapfmt::validate(dir.path().join("i")), vec![]);
}

#[test]
fn an_image_without_kernel_state_is_refused_by_name() {
    let (_w, c) = captured();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i");
    write(&c, &path);
    // Drop one task's kernel state record and its manifest listing.
    let id = c.tasks[1].task.0;
    let rel = format!("tasks/{id}.spk");
    std::fs::remove_file(path.join(&rel)).expect("removed");
    let bytes = std::fs::read(path.join("manifest.spm")).expect("manifest");
    let (_, mut m): (_, snapfmt::Manifest) =
        snapfmt::object::open_record(&bytes, snapfmt::ObjectKind::Manifest).expect("decodes");
    m.objects.retain(|o| o.path != rel);
    let file =
        snapfmt::object::encode_record(snapfmt::ObjectKind::Manifest, &m, None).expect("encodes");
    std::fs::write(path.join("manifest.spm"), file).expect("rewritten");
    let e = restore_fails(&path);
    assert!(
        matches!(e, RestoreError::Supplement { task, .. } if task == id),
        "{e}"
    );
    assert!(e.to_string().contains("no kernel state record"), "{e}");
}

#[test]
fn a_missing_server_fails_the_import_and_leaves_nothing() {
    // Only the client is checkpointed; its server is not running at restore.
    let mut w = boot(&client_server(), 3);
    w.run_to(20_000);
    let client = vec![w.tasks[1]];
    let stopped = checkpoint::stop(&mut w.k, &client).expect("stop");
    let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(matches!(e, RestoreError::Import(_)), "{e}");
}

#[test]
fn a_corrupt_record_is_refused_by_the_image_reader() {
    let (_w, c) = captured();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i");
    write(&c, &path);
    let rec = path.join(format!("tasks/{}.spt", c.tasks[0].task.0));
    let mut bytes = std::fs::read(&rec).expect("record");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&rec, bytes).expect("rewrite");
    let e = restore_fails(&path);
    assert!(matches!(e, RestoreError::Image(_)), "{e}");
}

#[test]
fn an_area_shared_by_two_checkpointable_tasks_stays_shared() {
    let mut w = boot(&client_server(), 3);
    w.run_to(5_000);
    let (a, b) = (w.tasks[0], w.tasks[1]);
    let shared = SharedBacking::new(BackingId(900), 8 * 4096).expect("backing");
    for (t, base) in [(a, 0x10_0000u64), (b, 0x20_0000)] {
        guest_space(&mut w.k, t)
            .expect("guest")
            .map_shared(base, &shared, AreaFlags::RW)
            .expect("mapped");
    }
    guest_space(&mut w.k, a)
        .expect("guest")
        .store(0x10_0000 + 4096 * 3, *b"shared!!")
        .expect("store");
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, _, restored) =
        w.checkpoint_kill_restore(&dir.path().join("i"), ImageForm::Tar, Some(9));
    let (na, nb) = (restored.tasks[&a.0], restored.tasks[&b.0]);
    let sa = guest_space_ref(&w.k, na)
        .expect("guest")
        .shared_backing(0x10_0000);
    let sb = guest_space_ref(&w.k, nb)
        .expect("guest")
        .shared_backing(0x20_0000);
    let (sa, sb) = (sa.expect("shared in a"), sb.expect("shared in b"));
    assert!(sa.same_backing(sb), "one backing for both");
    let mut w = w;
    let got: [u8; 8] = guest_space_ref(&w.k, nb)
        .expect("guest")
        .load(0x20_0000 + 4096 * 3)
        .expect("load");
    assert_eq!(&got, b"shared!!");
    guest_space(&mut w.k, nb)
        .expect("guest")
        .store(0x20_0000, *b"back....")
        .expect("store");
    let seen: [u8; 8] = guest_space_ref(&w.k, na)
        .expect("guest")
        .load(0x10_0000)
        .expect("load");
    assert_eq!(&seen, b"back....");
}

#[test]
fn restored_tasks_keep_seeing_their_ids_after_a_reboot() {
    // The rebooted kernel gives a bystander task id 1 first, so the
    // restored server (id 1 in the image) cannot get its old id back.
    let mut w = boot(&client_server(), 3);
    w.run_to(20_000);
    let (server, client) = (w.tasks[0], w.tasks[1]);
    let stopped = checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
    let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let mut fresh = w.reboot(5);
    let bystander = fresh
        .k
        .spawn_native("bystander", TaskPolicy::Checkpointable);
    assert_eq!(bystander.id(), server);
    let image = std::sync::Arc::new(Image::open(dir.path().join("i")).expect("opens"));
    let r = checkpoint::restore(
        &mut fresh.k,
        &mut fresh.s,
        &image,
        &RestoreOptions::default(),
    )
    .expect("restore");
    let (ns, nc) = (r.tasks[&server.0], r.tasks[&client.0]);
    assert_ne!(ns, server);
    assert_eq!(fresh.k.task_id_seen_by(ns, ns), server.0);
    assert_eq!(fresh.k.task_id_seen_by(nc, ns), server.0);
    assert_eq!(fresh.k.task_id_seen_by(nc, nc), client.0);
    // The bystander really has the server's old number: the restored
    // tasks see it under an alias.
    let alias = fresh.k.task_id_seen_by(nc, bystander.id());
    assert!(alias >= checkpoint::id_view::ALIAS_BASE, "{alias}");
    assert_eq!(fresh.k.task_meant_by(nc, alias), bystander.id());
    assert_eq!(fresh.k.task_meant_by(nc, server.0), ns);
}

#[test]
fn images_of_running_sets_validate_clean() {
    // Cut at many points of a forwarding scenario, so that calls sit in
    // every queue: each image passes snapfmt's deep validation.
    let mut pair = prog("futex", FUTEX_PAIR, &[]);
    pair.threads.push("pong");
    let sc = Scenario {
        progs: vec![
            prog("worker", WORKER, &[]),
            prog("forwarder", FORWARDER, &[Value::I32(0)]),
            prog("client", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
            pair,
        ],
        phones: vec![(1, 0), (2, 1), (3, 1)],
        slice_fuel: 37,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, cut) in (1..12u64).map(|i| i * 1_709).enumerate() {
        let mut w = boot(&sc, 1);
        w.run_to(cut);
        let stopped = checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
        let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
        let path = dir.path().join(format!("i{i}"));
        write(&c, &path);
        let problems = snapfmt::validate(&path);
        assert!(problems.is_empty(), "cut {cut}: {problems:?}");
    }
}

/// A capture taken while the server holds a synchronous call of the
/// sync client.
fn captured_with_sync_call() -> (World, Capture) {
    let mut w = boot(&client_server(), 3);
    w.run_to(20_000);
    for _ in 0..10_000 {
        let stopped = checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
        let c = checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
        if c.tasks[0].record.calls.iter().any(|pc| pc.thread.is_some()) {
            return (w, c);
        }
        stopped.resume(&mut w.k);
        w.s.run(&mut w.k, 1);
    }
    panic!("the server never held a synchronous call");
}

/// The index of a synchronous call the server holds and the sync client
/// sent, in the server's record.
fn held_sync_call(c: &Capture) -> usize {
    c.tasks[0]
        .record
        .calls
        .iter()
        .position(|pc| {
            pc.thread.is_some()
                && matches!(
                    pc.queue,
                    snapfmt::CallQueue::Undispatched | snapfmt::CallQueue::Dispatched
                )
        })
        .expect("the server holds the sync client's call")
}

#[test]
fn thread_ids_colliding_across_tasks_are_refused() {
    let (_w, mut c) = captured();
    let theirs = c.tasks[0].record.threads[0].thread_id;
    let mine = c.tasks[1].record.threads[0].thread_id;
    c.tasks[1].record.threads[0].thread_id = theirs;
    // Everything else that names the thread follows it (a synchronous
    // call it waits in, both copies), so the image is sound but for the
    // collision, whatever the cut point.
    for t in &mut c.tasks {
        for pc in &mut t.record.calls {
            if pc.thread == Some(mine) {
                pc.thread = Some(theirs);
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        e.to_string()
            .contains(&format!("thread {theirs} is a thread of another task too")),
        "{e}"
    );
}

#[test]
fn a_receiver_copy_naming_a_thread_that_does_not_exist_is_refused() {
    let (_w, mut c) = captured_with_sync_call();
    let i = held_sync_call(&c);
    c.tasks[0].record.calls[i].thread = Some(9999);
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    // The image reader cannot tell (the receiver's copy names a thread of
    // the caller); the restore compares it with the caller's copy.
    assert_eq!(snapfmt::validate(dir.path().join("i")), vec![]);
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        e.to_string()
            .contains("the caller's and the receiver's copies of call"),
        "{e}"
    );
}

#[test]
fn copies_of_one_call_that_disagree_are_refused() {
    let (_w, mut c) = captured_with_sync_call();
    let i = held_sync_call(&c);
    c.tasks[0].record.calls[i].words[1] ^= 1;
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        e.to_string()
            .contains("the caller's and the receiver's copies of call"),
        "{e}"
    );
}

#[test]
fn a_call_missing_from_its_callers_sent_calls_is_refused() {
    let (_w, mut c) = captured_with_sync_call();
    let i = held_sync_call(&c);
    let id = c.tasks[0].record.calls[i].sender_side_id;
    let client = &mut c.tasks[1];
    let j = client
        .record
        .calls
        .iter()
        .position(|pc| pc.sender_side_id == id && pc.queue == snapfmt::CallQueue::Synchronous)
        .expect("the client's copy");
    client.record.calls.remove(j);
    client.kernel_state.calls.remove(j);
    for t in &mut client.record.threads {
        t.active_sync_call = None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    write(&c, &dir.path().join("i"));
    let e = restore_fails(&dir.path().join("i"));
    assert!(
        e.to_string()
            .contains("is not among its caller's sent calls"),
        "{e}"
    );
}

#[test]
fn ids_and_counters_at_the_top_of_the_range_are_refused() {
    type Edit = fn(&mut Capture);
    let edits: [(&str, Edit); 6] = [
        ("counter next_call_id", |c| {
            c.tasks[0].kernel_state.counters.next_call_id = u64::MAX
        }),
        ("counter next_rx_call_id", |c| {
            c.tasks[1].kernel_state.counters.next_rx_call_id = u64::MAX
        }),
        ("counter next_conn_id", |c| {
            c.tasks[0].kernel_state.counters.next_conn_id = u64::MAX
        }),
        ("sender-side id", |c| {
            let i = held_sync_call(c);
            c.tasks[0].record.calls[i].sender_side_id = u64::MAX
        }),
        ("receiver-side id", |c| {
            let i = held_sync_call(c);
            c.tasks[0].record.calls[i].receiver_side_id = u64::MAX
        }),
        ("index", |c| {
            c.tasks[1].kernel_state.threads[0].index = u64::MAX
        }),
    ];
    for (what, edit) in edits {
        let (_w, mut c) = captured_with_sync_call();
        edit(&mut c);
        let dir = tempfile::tempdir().expect("tempdir");
        write(&c, &dir.path().join("i"));
        let e = restore_fails(&dir.path().join("i"));
        let msg = e.to_string();
        assert!(
            msg.contains(what) && msg.contains("out of range"),
            "{what}: {msg}"
        );
    }
}
