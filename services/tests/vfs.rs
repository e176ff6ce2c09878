//! The VFS with a guest program writing a file through it: checkpointed
//! with the file open in the middle, killed, restored (same system, and a
//! freshly booted one on a copy of the directory), it goes on writing at
//! the right place and the file ends as without the checkpoint. A file
//! changed behind the image's back refuses the restore, naming the file.

use std::path::{Path, PathBuf};

use snapfmt::FilePolicy;
use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::task::{TaskId, TaskPolicy};
use spartan_services::checkpointer::{
    CheckpointOptions, Checkpointer, CheckpointerError, RestoreOpts,
};
use spartan_services::ns::NamingService;
use spartan_services::rt;
use spartan_services::vfs::{FS_ID_FILE, Vfs};

/// Opens "out.txt" (write, create, truncate) and writes "line i\n" for
/// i = 1..=30, sleeping between lines; then reads it back from the start
/// and logs the first 7 bytes.
const WRITER: &str = r#"
  (data (i32.const 0x400) "out.txt")
  (data (i32.const 0x410) "line ")
  (func (export "main") (local $c i32) (local $fd i64) (local $i i64)
    (local.set $c (call $connect (i64.const 1)))
    (local.set $fd (call $vfs_open (local.get $c) (i32.const 0x400) (i32.const 7) (i64.const 14)))
    (if (i64.lt_s (local.get $fd) (i64.const 0)) (then unreachable))
    (loop $lines
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (drop (call $vfs_write (local.get $c) (local.get $fd) (i32.const 0x410) (i32.const 5)))
      (i64.store8 (i32.const 0x420) (i64.add (i64.const 48) (i64.div_u (local.get $i) (i64.const 10))))
      (i64.store8 (i32.const 0x421) (i64.add (i64.const 48) (i64.rem_u (local.get $i) (i64.const 10))))
      (i32.store8 (i32.const 0x422) (i32.const 10))
      (drop (call $vfs_write (local.get $c) (local.get $fd) (i32.const 0x420) (i32.const 3)))
      (drop (call $sleep (i64.const 3000)))
      (br_if $lines (i64.lt_u (local.get $i) (i64.const 30))))
    (drop (call $vfs_close (local.get $c) (local.get $fd)))
    (call $log_num (i64.const 99)))
"#;

fn expected() -> String {
    (1..=30).map(|i| format!("line {i:02}\n")).collect()
}

struct System {
    k: Kernel,
    s: Scheduler,
    ck: Checkpointer,
}

fn boot(seed: u64, root: &Path, filler: usize) -> System {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    for i in 0..filler {
        k.spawn_native(&format!("filler{i}"), TaskPolicy::Neither);
    }
    let ns = NamingService::spawn(&mut k);
    let vfs = Vfs::spawn(&mut k, &ns, root).unwrap();
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(vfs));
    s.add_native(Box::new(ns));
    System { k, s, ck }
}

fn start(sys: &mut System) -> TaskId {
    let (task, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "writer",
            TaskPolicy::Checkpointable,
            rt::program(WRITER).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    // Phone 0 to the naming service (task 1 of this system... found by
    // its policy).
    let ns = sys
        .k
        .task_ids()
        .into_iter()
        .find(|t| sys.k.task(*t).unwrap().name == "ns")
        .unwrap();
    sys.k.connect_phone(task, ns).unwrap();
    task
}

fn run_until_done(sys: &mut System) {
    for _ in 0..200_000 {
        if sys.k.log().iter().any(|l| l.text == "99") {
            return;
        }
        sys.s.run(&mut sys.k, 1);
    }
    panic!("the writer did not finish");
}

/// Runs a writer until it wrote `lines` lines, then checkpoints and kills
/// it. Returns the system and the image.
fn checkpointed(root: &Path, dir: &Path, lines: usize) -> (System, PathBuf) {
    checkpointed_as(root, dir, lines, FilePolicy::Unchangeable)
}

fn checkpointed_as(root: &Path, dir: &Path, lines: usize, policy: FilePolicy) -> (System, PathBuf) {
    let mut sys = boot(1, root, 0);
    let t = start(&mut sys);
    while std::fs::read_to_string(root.join("out.txt")).map_or(0, |s| s.lines().count()) < lines {
        sys.s.run(&mut sys.k, 1);
    }
    let path = dir.join("img");
    let opts = CheckpointOptions {
        kill: true,
        file_policy: policy,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, t, &path, &opts)
        .unwrap();
    let image = snapfmt::Image::open(&path).unwrap();
    assert_eq!(image.manifest().options.file_policy, policy);
    assert!(image.manifest().options.kill_after);
    assert_eq!(snapfmt::validate(&path), vec![]);
    (sys, path)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_writer_writes_its_file() {
    let root = tempfile::tempdir().unwrap();
    let mut sys = boot(1, root.path(), 0);
    start(&mut sys);
    run_until_done(&mut sys);
    assert_eq!(
        std::fs::read_to_string(root.path().join("out.txt")).unwrap(),
        expected()
    );
    assert!(root.path().join(FS_ID_FILE).exists());
}

#[test]
fn an_open_file_is_restored_at_its_position_in_the_same_system() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sys, path) = checkpointed(root.path(), dir.path(), 12);
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    run_until_done(&mut sys);
    assert_eq!(
        std::fs::read_to_string(root.path().join("out.txt")).unwrap(),
        expected()
    );
    sys.k.check_invariants().unwrap();
}

#[test]
fn an_open_file_is_restored_after_a_reboot_on_the_same_file_system() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_old, path) = checkpointed(root.path(), dir.path(), 7);
    // A new system mounting the same directory (its identity file says
    // it is the same file system), under other task ids.
    let mut sys = boot(2, root.path(), 3);
    sys.s.run(&mut sys.k, 100);
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    run_until_done(&mut sys);
    assert_eq!(
        std::fs::read_to_string(root.path().join("out.txt")).unwrap(),
        expected()
    );
}

#[test]
fn a_file_changed_behind_the_images_back_refuses_the_restore_by_name() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sys, path) = checkpointed(root.path(), dir.path(), 5);
    std::fs::write(root.path().join("out.txt"), "someone else\n").unwrap();
    let e = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointerError::Refused { service_id, .. } if service_id == "spartan.vfs"),
        "{e}"
    );
    let why = sys
        .k
        .log()
        .iter()
        .rev()
        .find(|l| l.text.contains("restore of connection"))
        .map(|l| l.text.clone());
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("file out.txt: changed since the checkpoint")),
        "{why:?}"
    );
    assert!(
        sys.k
            .task_ids()
            .iter()
            .all(|t| sys.k.task(*t).unwrap().name != "writer"),
        "the restored writer was killed"
    );
    // Another directory is another file system.
    let other = tempfile::tempdir().unwrap();
    copy_dir(root.path(), other.path());
    std::fs::remove_file(other.path().join(FS_ID_FILE)).unwrap();
    let mut fresh = boot(3, other.path(), 0);
    let e = fresh
        .ck
        .restore(&mut fresh.k, &mut fresh.s, &path, &RestoreOpts::default())
        .unwrap_err();
    assert!(matches!(e, CheckpointerError::Refused { .. }), "{e}");
    assert!(
        fresh
            .k
            .log()
            .iter()
            .any(|l| l.text.contains("on another file system"))
    );
}

#[test]
fn under_the_volatile_policy_a_changed_file_is_taken_as_it_is() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sys, path) = checkpointed_as(root.path(), dir.path(), 10, FilePolicy::Volatile);
    // Shortened behind the image's back: the writer goes on from the end.
    std::fs::write(root.path().join("out.txt"), "short\n").unwrap();
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    run_until_done(&mut sys);
    let got = std::fs::read_to_string(root.path().join("out.txt")).unwrap();
    let tail: String = (11..=30).map(|i| format!("line {i:02}\n")).collect();
    assert!(got.starts_with("short\n"), "{got}");
    assert!(got.ends_with(&tail), "{got}");
}

/// What happens to the file behind the image's back between the
/// checkpoint and the restore.
#[derive(Clone, Copy, Debug)]
enum Behind {
    Unchanged,
    Changed,
    Deleted,
}

/// Checkpoints the writer after 10 lines under `policy`, does `behind` to
/// the file, restores (or fails to) and runs to the end; the file's
/// content at the end, or the restore's error.
fn under(policy: FilePolicy, behind: Behind) -> Result<String, CheckpointerError> {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut sys, path) = checkpointed_as(root.path(), dir.path(), 10, policy);
    let file = root.path().join("out.txt");
    match behind {
        Behind::Unchanged => {}
        Behind::Changed => std::fs::write(&file, "short\n").unwrap(),
        Behind::Deleted => std::fs::remove_file(&file).unwrap(),
    }
    let r = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default());
    if let Err(e) = r {
        assert!(
            sys.k
                .task_ids()
                .iter()
                .all(|t| !sys.k.is_stopped(*t).unwrap_or(false)),
            "nothing is left stopped"
        );
        return Err(e);
    }
    run_until_done(&mut sys);
    sys.k.check_invariants().unwrap();
    Ok(std::fs::read_to_string(&file).unwrap_or_default())
}

fn tail_from(line: usize) -> String {
    (line..=30).map(|i| format!("line {i:02}\n")).collect()
}

#[test]
fn a_file_open_at_the_cut_under_each_of_the_four_policies() {
    use Behind::*;
    use FilePolicy::*;
    // Unchanged: every policy ends as without the checkpoint.
    for p in [Unchangeable, Volatile, BackupOverwrite, BackupSkip] {
        assert_eq!(under(p, Unchanged).unwrap(), expected(), "{p:?}");
    }
    // Changed: unchangeable refuses, volatile and skip take it as it is
    // (the writer goes on from its end), overwrite writes the saved copy
    // back.
    assert!(matches!(
        under(Unchangeable, Changed),
        Err(CheckpointerError::Refused { .. })
    ));
    for p in [Volatile, BackupSkip] {
        let got = under(p, Changed).unwrap();
        assert_eq!(got, format!("short\n{}", tail_from(11)), "{p:?}");
    }
    assert_eq!(under(BackupOverwrite, Changed).unwrap(), expected());
    // Deleted: both backups bring the file back; volatile leaves the
    // descriptor closed (the writer's writes fail, nothing is written).
    for p in [BackupOverwrite, BackupSkip] {
        assert_eq!(under(p, Deleted).unwrap(), expected(), "{p:?}");
    }
    assert_eq!(under(Volatile, Deleted).unwrap(), "");
    assert!(matches!(
        under(Unchangeable, Deleted),
        Err(CheckpointerError::Refused { .. })
    ));
}

#[test]
fn a_backup_is_stored_in_the_image_and_restores_on_an_empty_file_system() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_old, path) = checkpointed_as(root.path(), dir.path(), 8, FilePolicy::BackupOverwrite);
    let image = snapfmt::Image::open(&path).unwrap();
    let backups: Vec<_> = image
        .task_ids()
        .into_iter()
        .flat_map(|t| image.task(t).unwrap().file_backups.clone())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let fb = &backups[0];
    assert_eq!(fb.path, "out.txt");
    assert_eq!(fb.policy, FilePolicy::BackupOverwrite);
    assert!(fb.stored);
    let content = image.file_backup(&fb.sha256).unwrap();
    assert_eq!(content.len() as u64, fb.size);
    assert_eq!(String::from_utf8(content).unwrap(), {
        let s: String = (1..=8).map(|i| format!("line {i:02}\n")).collect();
        s
    });
    // Another, empty directory: the saved copy is the file.
    let other = tempfile::tempdir().unwrap();
    let mut sys = boot(5, other.path(), 2);
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    run_until_done(&mut sys);
    assert_eq!(
        std::fs::read_to_string(other.path().join("out.txt")).unwrap(),
        expected()
    );
}

/// Lists the root, enters `a/b` by a path with `.` and `..`, checks `..`
/// cannot leave the root, then sleeps; after the sleep (the cut falls
/// there) logs the working directory and writes `here.txt` relative to
/// it, then lists the working directory.
const WANDERER: &str = r#"
  (data (i32.const 0x400) "./a/../a/b")
  (data (i32.const 0x410) "../../..")
  (data (i32.const 0x420) "here.txt")
  (data (i32.const 0x430) "/")
  (func $show (param $p i32) (param $n i64)
    (if (i64.lt_s (local.get $n) (i64.const 0)) (then (call $log_num (local.get $n)) (return)))
    (call $print (local.get $p) (i32.wrap_i64 (local.get $n))))
  (func (export "main") (local $c i32) (local $fd i64) (local $i i64)
    (local.set $c (call $connect (i64.const 1)))
    (call $show (i32.const 0x1000)
      (call $vfs_readdir (local.get $c) (i32.const 0x430) (i32.const 1) (i64.const 0)
        (i32.const 0x1000) (i32.const 256)))
    (call $log_num (call $vfs_chdir (local.get $c) (i32.const 0x400) (i32.const 10)))
    (call $log_num (call $vfs_chdir (local.get $c) (i32.const 0x410) (i32.const 8)))
    (call $show (i32.const 0x1000)
      (call $vfs_getcwd (local.get $c) (i32.const 0x1000) (i32.const 256)))
    (loop $nap
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (drop (call $sleep (i64.const 3000)))
      (br_if $nap (i64.lt_u (local.get $i) (i64.const 20))))
    (call $show (i32.const 0x1000)
      (call $vfs_getcwd (local.get $c) (i32.const 0x1000) (i32.const 256)))
    (local.set $fd (call $vfs_open (local.get $c) (i32.const 0x420) (i32.const 8) (i64.const 14)))
    (drop (call $vfs_write (local.get $c) (local.get $fd) (i32.const 0x420) (i32.const 4)))
    (drop (call $vfs_close (local.get $c) (local.get $fd)))
    (call $show (i32.const 0x1000)
      (call $vfs_readdir (local.get $c) (i32.const 0) (i32.const 0) (i64.const 0)
        (i32.const 0x1000) (i32.const 256)))
    (call $log_num (i64.const 99)))
"#;

fn lines_of(k: &Kernel) -> Vec<String> {
    k.log().iter().map(|l| l.text.clone()).collect()
}

#[test]
fn readdir_and_the_working_directory_survive_a_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("a/b")).unwrap();
    std::fs::write(root.path().join("a/b/old.txt"), "x").unwrap();
    std::fs::write(root.path().join("top.txt"), "x").unwrap();
    let mut sys = boot(1, root.path(), 0);
    let (t, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "wanderer",
            TaskPolicy::Checkpointable,
            rt::program(WANDERER).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    let ns = sys
        .k
        .task_ids()
        .into_iter()
        .find(|t| sys.k.task(*t).unwrap().name == "ns")
        .unwrap();
    sys.k.connect_phone(t, ns).unwrap();
    while !lines_of(&sys.k).iter().any(|l| l == "/a/b") {
        sys.s.run(&mut sys.k, 1);
    }
    let before = lines_of(&sys.k);
    // The root lists without the identity file; `..` above the root is
    // refused (-EINVAL), the working directory stays.
    assert!(before.contains(&"a/\ntop.txt\n".to_string()), "{before:?}");
    assert_eq!(before.iter().filter(|l| *l == "0").count(), 1, "{before:?}");
    assert!(before.contains(&"-2".to_string()), "{before:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, t, &path, &opts)
        .unwrap();
    // A fresh system on a directory where a/b is gone: the working
    // directory is recreated, the relative open lands in it.
    let other = tempfile::tempdir().unwrap();
    let mut fresh = boot(4, other.path(), 1);
    fresh
        .ck
        .restore(&mut fresh.k, &mut fresh.s, &path, &RestoreOpts::default())
        .unwrap();
    for _ in 0..200_000 {
        if lines_of(&fresh.k).iter().any(|l| l == "99") {
            break;
        }
        fresh.s.run(&mut fresh.k, 1);
    }
    let after = lines_of(&fresh.k);
    assert!(after.contains(&"/a/b".to_string()), "{after:?}");
    assert!(after.contains(&"here.txt\n".to_string()), "{after:?}");
    assert_eq!(
        std::fs::read_to_string(other.path().join("a/b/here.txt")).unwrap(),
        "here"
    );
}

#[test]
fn paths_resolve_against_the_working_directory_and_never_leave_the_root() {
    // Through a symbolic link out of the root: refused.
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("a")).unwrap();
    let mut sys = boot(1, root.path(), 0);
    let (t, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "wanderer",
            TaskPolicy::Checkpointable,
            rt::program(WANDERER).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    let ns = sys
        .k
        .task_ids()
        .into_iter()
        .find(|t| sys.k.task(*t).unwrap().name == "ns")
        .unwrap();
    sys.k.connect_phone(t, ns).unwrap();
    for _ in 0..5_000 {
        sys.s.run(&mut sys.k, 1);
    }
    let log = lines_of(&sys.k);
    // readdir of the root shows the link as a file (not followed);
    // chdir into it: ENOENT (-1); the working directory stays the root.
    assert!(log.contains(&"a\n".to_string()), "{log:?}");
    assert!(log.contains(&"-1".to_string()), "{log:?}");
    assert!(log.contains(&"/".to_string()), "{log:?}");
}

/// Opens "big.bin" for reading, then sleeps on.
const HOLDER: &str = r#"
  (data (i32.const 0x400) "big.bin")
  (func (export "main") (local $c i32)
    (local.set $c (call $connect (i64.const 1)))
    (if (i64.lt_s (call $vfs_open (local.get $c) (i32.const 0x400) (i32.const 7) (i64.const 1))
          (i64.const 0))
      (then unreachable))
    (call $log_num (i64.const 42))
    (loop $naps
      (drop (call $sleep (i64.const 100000)))
      (br $naps)))
"#;

#[test]
fn a_saved_file_bigger_than_one_piece_goes_into_the_image_and_back() {
    let (root, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 20 MiB, not compressible: three pieces each way.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let content: Vec<u8> = (0..20 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = root.path().join("big.bin");
    std::fs::write(&file, &content).unwrap();
    let mut sys = boot(1, root.path(), 0);
    let (t, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            "holder",
            TaskPolicy::Checkpointable,
            rt::program(HOLDER).as_bytes(),
            "main",
            &[],
        )
        .unwrap();
    let ns = sys
        .k
        .task_ids()
        .into_iter()
        .find(|t| sys.k.task(*t).unwrap().name == "ns")
        .unwrap();
    sys.k.connect_phone(t, ns).unwrap();
    while !lines_of(&sys.k).iter().any(|l| l == "42") {
        sys.s.run(&mut sys.k, 1);
    }
    let path = dir.path().join("img");
    let opts = CheckpointOptions {
        kill: true,
        file_policy: FilePolicy::BackupOverwrite,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, t, &path, &opts)
        .unwrap();
    assert_eq!(snapfmt::validate(&path), vec![]);
    std::fs::write(&file, b"replaced").unwrap();
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    assert!(
        std::fs::read(&file).unwrap() == content,
        "written back whole"
    );
}
