//! Checkpoint and restore of guest task sets through real images on disk:
//! one cut each into the same kernel and into a rebooted one, directory
//! and tar images, compared with the uninterrupted run.

mod ckpt_common;

use ckpt_common::*;
use snapfmt::ImageForm;
use spartan_kernel::machine::Value;

fn client_server() -> Scenario {
    Scenario {
        progs: vec![
            prog("server", SERVER, &[]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (2, 0)],
        slice_fuel: 50,
    }
}

fn one_cut(sc: &Scenario, cut: u64, end: u64, form: ImageForm, reboot: bool) {
    let mut whole = boot(sc, 1);
    whole.run_to(end);
    let mut w = boot(sc, 1);
    w.run_to(cut);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let (mut w, mut shown, _) = w.checkpoint_kill_restore(&path, form, reboot.then_some(2));
    w.run_to(end);
    shown.extend(w.shown());
    let expected = whole.shown();
    assert!(expected.log.len() > 20, "the scenario does something");
    assert_same("calls", &shown.calls, &expected.calls);
    assert_same("log", &shown.log, &expected.log);
    assert_eq!(w.digests(), whole.digests());
}

#[test]
fn one_task_set_round_trips_in_the_same_kernel() {
    one_cut(
        &client_server(),
        40_000,
        120_000,
        ImageForm::Directory,
        false,
    );
}

#[test]
fn a_set_round_trips_into_a_rebooted_kernel_from_a_tar_image() {
    one_cut(&client_server(), 55_555, 120_000, ImageForm::Tar, true);
}

#[test]
fn a_cut_where_a_thread_stopped_at_a_call_at_a_function_entry() {
    // At 55,555 a thread stood at a call that is the first instruction of
    // its function: the entry and the call share a wasm offset, and the
    // restored thread used to pay that block's fuel twice.
    one_cut(
        &client_server(),
        55_555,
        120_000,
        ImageForm::Directory,
        false,
    );
}
