//! Checkpoint and restore of guest task sets through real images on disk:
//! one cut each into the same kernel and into a rebooted one, directory
//! and tar images, compared with the uninterrupted run; and an image in
//! the form a format 1.1 kernel wrote (kernel state in the manifest's
//! `options.extra`), which restore still reads.

mod ckpt_common;

use ckpt_common::*;
use snapfmt::ImageForm;

fn one_cut(sc: &Scenario, cut: u64, end: u64, form: ImageForm, reboot: bool) {
    one_cut_as(sc, cut, end, form, reboot, false);
}

fn one_cut_as(sc: &Scenario, cut: u64, end: u64, form: ImageForm, reboot: bool, v1_1: bool) {
    let mut whole = boot(sc, 1);
    whole.run_to(end);
    let mut w = boot(sc, 1);
    w.run_to(cut);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let (mut w, mut shown, _) =
        w.checkpoint_kill_restore_as(&path, form, reboot.then_some(2), v1_1);
    if v1_1 {
        let image = snapfmt::Image::open(&path).expect("opens");
        assert_eq!(image.manifest().format_version.minor, 1);
        assert!(!image.manifest().options.extra.is_empty());
        assert_eq!(snapfmt::validate(&path), vec![], "a sound 1.1 image");
    }
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
        &client_server(50),
        40_000,
        120_000,
        ImageForm::Directory,
        false,
    );
}

#[test]
fn a_set_round_trips_into_a_rebooted_kernel_from_a_tar_image() {
    one_cut(&client_server(50), 55_555, 120_000, ImageForm::Tar, true);
}

#[test]
fn a_cut_where_a_thread_stopped_at_a_call_at_a_function_entry() {
    // At 55,555 a thread stood at a call that is the first instruction of
    // its function: the entry and the call share a wasm offset, and the
    // restored thread used to pay that block's fuel twice.
    one_cut(
        &client_server(50),
        55_555,
        120_000,
        ImageForm::Directory,
        false,
    );
}

#[test]
fn a_format_1_1_image_with_kernel_supplements_still_restores() {
    one_cut_as(
        &client_server(50),
        55_555,
        120_000,
        ImageForm::Directory,
        true,
        true,
    );
}
