//! Lazy restore (`checkpoint::lazy`): tasks run before their pages are
//! loaded; a checkpoint of a half-loaded set holds every page; a page
//! that fails its checks at first touch, or an image removed meanwhile,
//! ends the restore with every task of it killed and the reason logged,
//! while other tasks run on; the background fill completes and lets the
//! image go. (The transparency oracle covers cuts while pages load:
//! `oracle_transparency.rs`.)

mod ckpt_common;

use std::collections::BTreeMap;
use std::path::Path;

use ckpt_common::*;
use snapfmt::ImageForm;
use spartan_kernel::checkpoint::PageLoading;
use spartan_kernel::task::TaskPolicy;

/// Damages the last byte of every chunk frame of the directory image at
/// `dir` (format 1.4: frames back to back in `packs/<n>.spp`), or of the
/// last frame only.
fn damage_chunks(dir: &Path, every: bool) {
    let image = snapfmt::Image::open(dir).expect("image opens");
    let mut frames: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for c in &image.manifest().chunks {
        if let snapfmt::ChunkHome::Packed { pack, offset, .. } = c.home {
            frames.entry(pack).or_default().push(offset);
        }
    }
    assert!(!frames.is_empty(), "the image stores pages in packs");
    let mut targets = Vec::new();
    for (pack, mut offsets) in frames {
        let path = dir.join(format!("packs/{pack}.spp"));
        let len = std::fs::metadata(&path).expect("pack").len();
        offsets.sort();
        let ends: Vec<u64> = offsets.iter().skip(1).copied().chain([len]).collect();
        targets.extend(ends.into_iter().map(|end| (path.clone(), end - 1)));
    }
    if !every {
        targets.drain(..targets.len() - 1);
    }
    for (path, at) in targets {
        let mut bytes = std::fs::read(&path).expect("pack");
        bytes[at as usize] ^= 0x5a;
        std::fs::write(&path, bytes).expect("pack written");
    }
}

/// A world at `t` checkpointed, killed and restored with `loading` into
/// a rebooted kernel that also runs a bystander task.
fn restored(
    dir: &Path,
    t: u64,
    loading: PageLoading,
    damage: impl FnOnce(&Path),
) -> (World, spartan_kernel::task::TaskId) {
    let mut w = boot(&client_server(50), 5);
    w.loading = loading;
    w.run_to(t);
    let path = dir.join("image");
    // The bystander is created in the rebooted kernel below, so write the
    // image first through the usual helper into this same kernel, then
    // damage it and restore into a fresh one.
    let stopped = spartan_kernel::checkpoint::stop(&mut w.k, &w.tasks).expect("stop");
    let capture = spartan_kernel::checkpoint::capture(&mut w.k, &w.s, &stopped).expect("capture");
    capture
        .write(
            &path,
            snapfmt::WriterOptions {
                threads: 1,
                ..Default::default()
            },
        )
        .expect("image written");
    damage(&path);
    let mut fresh = w.reboot(6);
    let bystander = fresh
        .k
        .spawn_native("bystander", TaskPolicy::Checkpointable);
    let image = std::sync::Arc::new(snapfmt::Image::open(&path).expect("opens"));
    let opts = spartan_kernel::checkpoint::RestoreOptions {
        pages: loading,
        ..Default::default()
    };
    let r = spartan_kernel::checkpoint::restore(&mut fresh.k, &mut fresh.s, &image, &opts)
        .expect("a lazy restore reads no page");
    fresh.tasks = r.tasks.values().copied().collect();
    fresh.relabel();
    (fresh, bystander.id())
}

fn assert_restore_ended(w: &World, bystander: spartan_kernel::task::TaskId, what: &str) {
    for t in &w.tasks {
        assert!(
            w.k.task(*t).is_none(),
            "{what}: task {t:?} of the restore is still alive"
        );
    }
    assert!(w.k.task(bystander).is_some(), "{what}: bystander lives on");
    let log: Vec<String> = w.k.log().iter().map(|l| l.text.clone()).collect();
    assert!(
        log.iter().any(|l| l.contains("lost a page")),
        "{what}: the log says why: {log:#?}"
    );
    w.k.check_invariants().expect("kernel consistent");
}

#[test]
fn a_corrupted_chunk_found_at_first_touch_ends_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, bystander) = restored(dir.path(), 20_000, PageLoading::OnTouch, |p| {
        damage_chunks(p, true)
    });
    assert!(w.pending_pages() > 0, "nothing loaded at restore");
    w.run_to(60_000);
    assert_restore_ended(&w, bystander, "corrupted chunk, on touch");
    let log: Vec<String> = w.k.log().iter().map(|l| l.text.clone()).collect();
    assert!(
        log.iter().any(|l| l.contains("packs/0.spp")),
        "the log names the pack: {log:#?}"
    );
}

#[test]
fn a_corrupted_chunk_found_by_the_background_fill_ends_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, bystander) = restored(dir.path(), 20_000, PageLoading::Background, |p| {
        damage_chunks(p, false)
    });
    w.run_to(60_000);
    // The fill thread may find it before or after a task touches it:
    // either way the restore ends.
    for _ in 0..10_000 {
        if w.tasks.iter().all(|t| w.k.task(*t).is_none()) {
            break;
        }
        w.s.pump_lazy(&mut w.k);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_restore_ended(&w, bystander, "corrupted chunk, background");
}

#[test]
fn an_image_removed_before_its_pages_are_in_ends_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, bystander) = restored(dir.path(), 20_000, PageLoading::OnTouch, |_| {});
    std::fs::remove_dir_all(dir.path().join("image")).expect("image removed");
    w.run_to(60_000);
    assert_restore_ended(&w, bystander, "image removed");
}

#[test]
fn the_background_fill_loads_every_page_and_lets_the_image_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut w, bystander) = restored(dir.path(), 20_000, PageLoading::Background, |_| {});
    let digests = w.digests();
    for _ in 0..10_000 {
        if w.s.lazy_fills().is_empty() {
            break;
        }
        w.s.pump_lazy(&mut w.k);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(w.s.lazy_fills().is_empty(), "the fill ended");
    assert_eq!(w.pending_pages(), 0);
    assert_eq!(w.digests(), digests, "the fill installed the image's bytes");
    // The image is no longer needed.
    std::fs::remove_dir_all(dir.path().join("image")).expect("image removed");
    w.run_to(60_000);
    assert!(w.tasks.iter().any(|t| w.k.task(*t).is_some()));
    assert!(w.k.task(bystander).is_some());
    let log: Vec<String> = w.k.log().iter().map(|l| l.text.clone()).collect();
    assert!(!log.iter().any(|l| l.contains("lost a page")), "{log:#?}");
}

#[test]
fn a_checkpoint_of_a_half_loaded_set_holds_every_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = boot(&client_server(50), 5);
    w.run_to(20_000);
    let eager = w.digests();
    w.loading = PageLoading::OnTouch;
    let (mut w, _, _) =
        w.checkpoint_kill_restore(&dir.path().join("a"), ImageForm::Directory, None);
    assert!(w.pending_pages() > 0, "pages pending");
    assert_eq!(w.digests(), eager, "pending pages read as the image's");
    // Checkpointed at once, nothing touched: every page comes from the
    // first image; restored eagerly, the memory is the same.
    w.loading = PageLoading::Eager;
    let (w, _, _) = w.checkpoint_kill_restore(&dir.path().join("b"), ImageForm::Tar, Some(8));
    assert_eq!(w.pending_pages(), 0);
    assert_eq!(w.digests(), eager);
}
