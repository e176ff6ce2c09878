//! Incremental images from the mm dirty bits (issue 15): a capture takes
//! each task's dirty bits into its history under an epoch; an image with a
//! parent stores only the pages dirtied since the parent's capture, and
//! only when the kernel can prove it (same run and task, or restored from
//! the parent; areas that existed then; not shared). A restore of an
//! incremental image gives the same memory as a restore of a full image of
//! the same capture.

mod ckpt_common;

use std::collections::BTreeMap;
use std::path::Path;

use snapfmt::{Finished, Image, WriterOptions};
use spartan_kernel::checkpoint::{self, Capture, RestoreOptions, epochs};
use spartan_kernel::guest::{SchedConfig, Scheduler, guest_space, guest_space_ref, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::mm::AreaFlags;
use spartan_kernel::task::{TaskId, TaskPolicy};

/// `main(wasm pages)` grows memory and writes every 4 KiB page's index + 1
/// at its start, then waits forever; `dirty(first, step, count, value)`
/// (a thread of its own) writes `value` at offset 8 of pages first,
/// first + step, ... (`count` of them) and returns.
const TOUCHER: &str = r#"
  (func (export "main") (param $wasm_pages i32) (local $i i32) (local $n i32)
    (drop (memory.grow (local.get $wasm_pages)))
    (local.set $n (i32.shl (i32.add (local.get $wasm_pages) (i32.const 1)) (i32.const 4)))
    (loop $touch
      (i64.store (i32.shl (local.get $i) (i32.const 12))
        (i64.add (i64.extend_i32_u (local.get $i)) (i64.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (local.get $n))))
    (loop $forever
      (drop (call $wait (i64.const -1)))
      (br $forever)))
  (func (export "dirty") (param $first i32) (param $step i32) (param $count i32) (param $value i64)
    (local $i i32)
    (loop $again
      (i64.store offset=8
        (i32.shl (i32.add (local.get $first) (i32.mul (local.get $i) (local.get $step))) (i32.const 12))
        (local.get $value))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $count)))))
"#;

/// Kernel pages of the toucher's memory with `WASM_PAGES` grown.
const WASM_PAGES: u32 = 3;
const PAGES: u64 = (WASM_PAGES as u64 + 1) * 16;

struct Sys {
    k: Kernel,
    s: Scheduler,
}

fn sys(seed: u64) -> Sys {
    Sys {
        k: Kernel::new(KernelConfig::simulation(seed)),
        s: Scheduler::new(SchedConfig {
            slice_fuel: 1 << 30,
            ..SchedConfig::default()
        }),
    }
}

impl Sys {
    fn toucher(&mut self) -> TaskId {
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                "toucher",
                TaskPolicy::Checkpointable,
                rt::program(TOUCHER).as_bytes(),
                "main",
                &[Value::I32(WASM_PAGES)],
            )
            .expect("guest loads");
        self.s.run(&mut self.k, 8);
        task
    }

    /// The guest writes `value` into `count` pages from `first` by `step`.
    fn dirty(&mut self, task: TaskId, first: u32, step: u32, count: u32, value: i64) {
        self.s
            .spawn_thread(
                &mut self.k,
                task,
                "dirty",
                &[
                    Value::I32(first),
                    Value::I32(step),
                    Value::I32(count),
                    Value::I64(value as u64),
                ],
            )
            .expect("thread starts");
        self.s.run(&mut self.k, 8);
    }

    fn freeze(&mut self, task: TaskId) -> Capture {
        checkpoint::freeze(&mut self.k, &self.s, &[task]).expect("freeze")
    }

    /// A full image of `c`, made known to the kernel.
    fn full(&mut self, c: &Capture, path: &Path) -> Finished {
        let done = c.write(path, opts()).expect("written");
        epochs::note_written(&mut self.k, c, done.manifest_digest);
        done
    }

    /// An incremental image of `c` on `parent`, made known to the kernel.
    fn incremental(&mut self, c: &Capture, path: &Path, parent: &Path) -> (Finished, Vec<String>) {
        let image = epochs::check_parent(parent).expect("parent checks");
        let plan = epochs::plan(&self.k, c, &image).expect("plan");
        let done = c
            .write_incremental(path, parent, &plan, opts())
            .expect("written");
        epochs::note_written(&mut self.k, c, done.manifest_digest);
        (done, plan.notes)
    }

    /// Restores `path` here, lazily with pages on touch only (so the
    /// incremental checkpoints after it meet pages still pending in their
    /// parent); the new id of each image task.
    fn restore(&mut self, path: &Path) -> BTreeMap<u64, TaskId> {
        let image = std::sync::Arc::new(Image::open(path).expect("image opens"));
        let opts = RestoreOptions {
            pages: checkpoint::PageLoading::OnTouch,
            ..RestoreOptions::default()
        };
        checkpoint::restore(&mut self.k, &mut self.s, &image, &opts)
            .expect("restore")
            .tasks
    }

    fn memory(&self, task: TaskId) -> String {
        ckpt_common::space_digest(guest_space_ref(&self.k, task).expect("guest"))
    }
}

fn opts() -> WriterOptions {
    WriterOptions {
        threads: 1,
        chunk_pages: 8,
        ..WriterOptions::default()
    }
}

/// The memory a restore of `path` gives, in a fresh kernel.
fn restored_memory(path: &Path) -> String {
    let mut fresh = sys(99);
    let tasks = fresh.restore(path);
    assert_eq!(tasks.len(), 1);
    let t = *tasks.values().next().expect("a task");
    fresh.memory(t)
}

#[test]
fn only_pages_dirtied_since_the_parent_are_stored_and_a_chain_restores_the_same_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = sys(1);
    let task = w.toucher();
    let c1 = w.freeze(task);
    let full1 = w.full(&c1, &dir.path().join("full1"));
    assert_eq!(full1.stats.parent_pages, 0);

    // Two pages change; a capture in between that wrote no image must
    // not hide them (its bits stay in the history).
    w.dirty(task, 3, 37, 2, 0x5151);
    let _unwritten = w.freeze(task);
    w.dirty(task, 50, 1, 1, 0x5252);
    let c2 = w.freeze(task);
    let inc2 = dir.path().join("inc2");
    let (d2, notes) = w.incremental(&c2, &inc2, &dir.path().join("full1"));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(d2.stats.parent_pages, PAGES - 3, "{:?}", d2.stats);
    assert_eq!(d2.stats.pages_fed, 3, "pages 3, 40 and 50 written");
    let full2 = dir.path().join("full2");
    c2.write(&full2, opts())
        .expect("full image of the same capture");
    assert_eq!(restored_memory(&inc2), restored_memory(&full2));
    assert_eq!(restored_memory(&inc2), w.memory(task));
    assert!(snapfmt::validate(&inc2).is_empty());

    // A second link: one page more, on the incremental image.
    w.dirty(task, 10, 1, 1, 0x5353);
    let c3 = w.freeze(task);
    let inc3 = dir.path().join("inc3");
    let (d3, _) = w.incremental(&c3, &inc3, &inc2);
    assert_eq!(d3.stats.pages_fed, 1);
    assert_eq!(d3.stats.parent_pages, PAGES - 1);
    let full3 = dir.path().join("full3");
    c3.write(&full3, opts()).unwrap();
    assert_eq!(restored_memory(&inc3), restored_memory(&full3));
    let chain = Image::open(&inc3).unwrap().parent_chain().unwrap();
    assert_eq!(chain.len(), 2);
    assert!(snapfmt::validate(&inc3).is_empty());
    // The manifest records the epoch of each task.
    let m = Image::open(&inc3).unwrap();
    let key = epochs::extra_key(task.0);
    assert_eq!(
        m.manifest().options.extra.get(&key),
        Some(&c3.epochs[&task.0].epoch.to_text())
    );
}

#[test]
fn a_restored_task_counts_from_the_image_it_was_restored_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = sys(2);
    let task = w.toucher();
    let c = w.freeze(task);
    let base = dir.path().join("base");
    w.full(&c, &base);

    // Another kernel (another boot): the restored task's history starts
    // at the image.
    let mut r = sys(3);
    r.k.spawn_native("bystander", TaskPolicy::Checkpointable);
    let new = r.restore(&base)[&task.0];
    assert_ne!(
        new, task,
        "a new id, so the parent's task is found by the image"
    );
    let c0 = r.freeze(new);
    let (d0, notes) = r.incremental(&c0, &dir.path().join("same"), &base);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!((d0.stats.pages_fed, d0.stats.parent_pages), (0, PAGES));

    r.dirty(new, 7, 1, 1, 0x77);
    let c1 = r.freeze(new);
    let inc = dir.path().join("inc");
    let (d1, _) = r.incremental(&c1, &inc, &base);
    assert_eq!((d1.stats.pages_fed, d1.stats.parent_pages), (1, PAGES - 1));
    assert_eq!(restored_memory(&inc), r.memory(new));

    // Restoring the incremental image and checkpointing on it again.
    let mut r2 = sys(4);
    let again = r2.restore(&inc)[&new.0];
    r2.dirty(again, 8, 1, 2, 0x88);
    let c2 = r2.freeze(again);
    let inc2 = dir.path().join("inc2");
    let (d2, _) = r2.incremental(&c2, &inc2, &inc);
    assert_eq!((d2.stats.pages_fed, d2.stats.parent_pages), (2, PAGES - 2));
    assert_eq!(restored_memory(&inc2), r2.memory(again));
}

#[test]
fn a_recreated_area_and_a_new_area_are_written_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = sys(5);
    let task = w.toucher();
    let (b1, b2, b3) = (0x100_0000u64, 0x200_0000u64, 0x300_0000u64);
    let backing = w.k.new_shared_backing_id();
    {
        let space = guest_space(&mut w.k, task).unwrap();
        space.create_area(b1, 4 << 12, AreaFlags::RW).unwrap();
        space.write(b1, &[1; 8192]).unwrap();
        // Shared: its dirty bits are every mapper's, so it is written in
        // full even though nothing changed.
        space.create_area(b3, 2 << 12, AreaFlags::RW).unwrap();
        space.write(b3, &[4; 4096]).unwrap();
        space.share_area(b3, backing).unwrap();
    }
    let c1 = w.freeze(task);
    let parent = dir.path().join("p");
    w.full(&c1, &parent);
    {
        let space = guest_space(&mut w.k, task).unwrap();
        space.destroy_area(b1).unwrap();
        space.create_area(b1, 4 << 12, AreaFlags::RW).unwrap();
        // Only the first page written again: the old second page must
        // not come back from the parent.
        space.write(b1, &[2; 4096]).unwrap();
        space.create_area(b2, 4 << 12, AreaFlags::RW).unwrap();
        space.write(b2 + 4096, &[3; 4096]).unwrap();
    }
    let c2 = w.freeze(task);
    let inc = dir.path().join("inc");
    let (d, notes) = w.incremental(&c2, &inc, &parent);
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("area 0x1000000") && notes[0].contains("created since"));
    assert!(notes[1].contains("area 0x2000000") && notes[1].contains("not in the parent"));
    assert!(notes[2].contains("area 0x3000000") && notes[2].contains("shared"));
    assert_eq!(d.stats.parent_pages, PAGES, "the primary area is kept");
    assert_eq!(d.stats.pages_fed, 3, "b1's new page, b2's page, b3's page");
    let full = dir.path().join("full");
    c2.write(&full, opts()).unwrap();
    assert_eq!(restored_memory(&inc), restored_memory(&full));
    assert_eq!(restored_memory(&inc), w.memory(task));
}

#[test]
fn what_the_kernel_cannot_prove_is_written_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = sys(7);
    let task = a.toucher();
    let c = a.freeze(task);
    let parent = dir.path().join("p");
    a.full(&c, &parent);

    // Another run with the same seed: the same run id and the same first
    // epoch, but not the image this run wrote.
    let mut b = sys(7);
    let tb = b.toucher();
    b.dirty(tb, 1, 1, 1, 0x99);
    let cb = b.freeze(tb);
    assert_eq!(cb.epochs[&tb.0].epoch, c.epochs[&task.0].epoch);
    let inc = dir.path().join("inc");
    let (d, notes) = b.incremental(&cb, &inc, &parent);
    assert_eq!(d.stats.parent_pages, 0);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("not written from this run"), "{notes:?}");
    assert_eq!(restored_memory(&inc), b.memory(tb));

    // A parent older than the history.
    for _ in 0..checkpoint::dirty_history::HISTORY_LEN {
        a.freeze(task);
    }
    let c2 = a.freeze(task);
    let (d, notes) = a.incremental(&c2, &dir.path().join("old"), &parent);
    assert_eq!(d.stats.parent_pages, 0);
    assert!(notes[0].contains("older than"), "{notes:?}");
}

#[test]
fn a_parent_missing_corrupted_or_replaced_is_refused_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = sys(8);
    let task = w.toucher();
    let c1 = w.freeze(task);
    let parent = dir.path().join("p");
    w.full(&c1, &parent);
    let c2 = w.freeze(task);

    let Err(e) = epochs::check_parent(&dir.path().join("nothing")) else {
        panic!("a missing parent checked");
    };
    assert!(e.contains("nothing"), "{e}");

    // Replaced after the plan was made: the writer sees another manifest.
    let image = epochs::check_parent(&parent).unwrap();
    let plan = epochs::plan(&w.k, &c2, &image).unwrap();
    drop(image);
    std::fs::remove_dir_all(&parent).unwrap();
    let mut other = sys(9);
    let t = other.toucher();
    let oc = other.freeze(t);
    oc.write(&parent, opts()).unwrap();
    let target = dir.path().join("inc");
    let e = c2
        .write_incremental(&target, &parent, &plan, opts())
        .unwrap_err();
    assert!(e.to_string().contains("replaced"), "{e}");
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the parent"
    );

    // Corrupted: a task record that fails its checksum.
    let rec = parent.join(snapfmt::object::task_path(t.0));
    let mut bytes = std::fs::read(&rec).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&rec, bytes).unwrap();
    let Err(e) = epochs::check_parent(&parent) else {
        panic!("a corrupted parent checked");
    };
    assert!(e.contains(&parent.display().to_string()), "{e}");
}
