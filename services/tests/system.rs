//! The booted system ([`System`]): programs started from the VFS root
//! by the host and by a guest through the loader, the task list, kills,
//! and a checkpoint and restore through the system's operations.

use spartan_services::checkpointer::{CheckpointOptions, RestoreOpts};
use spartan_services::rt;
use spartan_services::system::{Program, System, SystemConfig, SystemError};

fn boot(root: &std::path::Path) -> System {
    let mut cfg = SystemConfig::new(root);
    cfg.sim = Some(7);
    cfg.audit = true;
    cfg.cols = 20;
    cfg.rows = 4;
    System::boot(&cfg).unwrap()
}

/// Logs its argument, then prints "n=ARG" on the console and sleeps,
/// forever.
const CHILD: &str = r#"
  (data (i32.const 0x400) "n=")
  (func (export "main") (param $n i64) (local $con i32)
    (call $log_num (local.get $n))
    (local.set $con (call $connect (i64.const 2)))
    (call $con_print (local.get $con) (i32.const 0x400) (i32.const 2))
    (call $con_num (local.get $con) (local.get $n))
    (loop $l (drop (call $sleep (i64.const 100000))) (br $l)))
"#;

/// Starts "child.wat 42" through the loader and logs the answer + 1000;
/// then a missing program, logging its (negative) answer.
const PARENT: &str = r#"
  (data (i32.const 0x400) "child.wat 42")
  (data (i32.const 0x420) "missing.wat")
  (func (export "main") (local $ld i32)
    (local.set $ld (call $connect (i64.const 3)))
    (call $log_num (i64.add (i64.const 1000)
      (call $load (local.get $ld) (i32.const 0x400) (i32.const 12))))
    (call $log_num (i64.sub (i64.const 0)
      (call $load (local.get $ld) (i32.const 0x420) (i32.const 11)))))
"#;

fn logs(sys: &System) -> Vec<String> {
    sys.k.log().iter().map(|l| l.text.clone()).collect()
}

#[test]
fn a_guest_starts_a_program_through_the_loader() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("child.wat"), rt::program(CHILD)).unwrap();
    std::fs::write(root.path().join("parent.wat"), rt::program(PARENT)).unwrap();
    let mut sys = boot(root.path());
    let parent = sys
        .spawn(&Program::Vfs("parent.wat".into()), &[], None)
        .unwrap();
    for _ in 0..200 {
        sys.run(1000);
    }
    let child = sys.find("child").expect("the loader started the child");
    let log = logs(&sys);
    assert!(log.contains(&"42".to_string()), "{log:?}");
    assert!(log.contains(&(1000 + child.0).to_string()), "{log:?}");
    // ENOENT's errno number, negated back.
    let enoent = (-spartan_kernel::ipc::Errno::NoEntry.as_result()).to_string();
    assert!(log.contains(&enoent), "{log:?}");
    assert!(sys.k.task(parent).is_none(), "the parent finished");
    assert!(
        sys.screen(0).text().starts_with("n=42"),
        "{}",
        sys.screen(0).text()
    );
    let rows = sys.tasks();
    let c = rows.iter().find(|r| r.name == "child").unwrap();
    assert!(c.checkpointable && !c.cooperative && c.threads == 1 && c.memory > 0);
    assert!(c.state == "blocked" || c.state == "running", "{}", c.state);
    let l = rows.iter().find(|r| r.name == "loader").unwrap();
    assert_eq!(l.service_id.as_deref(), Some("spartan.loader"));
}

#[test]
fn host_spawns_kills_checkpoints_and_restores() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("child.wat"), rt::program(CHILD)).unwrap();
    let mut sys = boot(root.path());
    // Bad input: each a clear error.
    let e = sys
        .spawn(&Program::Vfs("../child.wat".into()), &[], None)
        .unwrap_err();
    assert!(
        matches!(e, SystemError::Program { .. }) && e.is_usage(),
        "{e}"
    );
    let e = sys
        .spawn(&Program::Vfs("child.wat".into()), &["x".into()], None)
        .unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    let e = sys
        .spawn(&Program::Vfs("child.wat".into()), &[], None)
        .unwrap_err();
    assert!(
        matches!(e, SystemError::Spawn { .. }),
        "main takes one argument: {e}"
    );
    let e = sys
        .spawn(
            &Program::Bytes {
                name: "junk".into(),
                bytes: b"not wasm".to_vec(),
            },
            &[],
            None,
        )
        .unwrap_err();
    assert!(matches!(e, SystemError::Spawn { .. }), "{e}");
    let ns = sys.find("ns").unwrap();
    assert!(
        sys.kill(ns.0)
            .unwrap_err()
            .to_string()
            .contains("system service")
    );
    assert!(matches!(sys.kill(999), Err(SystemError::NoTask(999))));
    assert!(matches!(
        sys.checkpoint(ns.0, &root.path().join("x"), &CheckpointOptions::default()),
        Err(SystemError::Checkpointer(_))
    ));

    let t = sys
        .spawn(
            &Program::Vfs("child.wat".into()),
            &["5".into()],
            Some("kid"),
        )
        .unwrap();
    sys.run(2000);
    let images = tempfile::tempdir().unwrap();
    let full = images.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let e = sys
        .checkpoint(t.0, &full, &CheckpointOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("not an empty directory"), "{e}");
    let img = images.path().join("img");
    std::fs::create_dir(&img).unwrap();
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.checkpoint(t.0, &img, &opts).unwrap();
    assert!(snapfmt::validate(&img).is_empty());
    assert!(sys.k.task(t).is_none(), "killed after the checkpoint");
    let e = sys.checkpoint(t.0, &img, &opts).unwrap_err();
    assert!(matches!(e, SystemError::NoTask(_)), "{e}");

    // Restored into a freshly booted system, it goes on: its screen back.
    let mut fresh = boot(root.path());
    fresh.run(100);
    // Lazily, pages on touch only: the listing says what is still in the
    // image.
    let opts = RestoreOpts {
        pages: spartan_kernel::checkpoint::PageLoading::OnTouch,
        ..RestoreOpts::default()
    };
    let r = fresh.restore(&img, &opts).unwrap();
    assert_eq!(r.tasks.len(), 1);
    let new = *r.tasks.values().next().unwrap();
    let row = fresh.task_info(new).unwrap();
    assert!(
        row.in_image > 0 && row.in_image.is_multiple_of(4096),
        "{}",
        row.in_image
    );
    fresh.run(2000);
    assert!(fresh.screen(0).text().starts_with("n=5"));
    let kid = fresh.find("kid").unwrap();
    fresh.kill(kid.0).unwrap();
    assert!(fresh.find("kid").is_none());
}

/// Every 5 ms: "N\n" appended to log.txt.
const TICKER: &str = r#"
  (data (i32.const 0x400) "log.txt")
  (data (i32.const 0x420) "\n")
  (func (export "main") (local $fs i32) (local $fd i64) (local $i i64) (local $p i32)
    (local.set $fs (call $connect (i64.const 1)))
    (local.set $fd (call $vfs_open (local.get $fs) (i32.const 0x400) (i32.const 7) (i64.const 14)))
    (loop $ticks
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $p (call $num_text (local.get $i)))
      (drop (call $vfs_write (local.get $fs) (local.get $fd) (local.get $p)
        (i32.sub (call $num_end) (local.get $p))))
      (drop (call $vfs_write (local.get $fs) (local.get $fd) (i32.const 0x420) (i32.const 1)))
      (drop (call $sleep (i64.const 5000000)))
      (br $ticks)))
"#;

#[test]
fn a_sleeper_goes_on_in_a_fresh_simulated_system() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("t.wat"), rt::program(TICKER)).unwrap();
    std::fs::write(
        root.path().join("idle.wat"),
        rt::program(r#"(func (export "main") (loop $l (drop (call $sleep (i64.const 1000000000))) (br $l)))"#),
    )
    .unwrap();
    let lines = || {
        std::fs::read_to_string(root.path().join("log.txt"))
            .unwrap()
            .lines()
            .count()
    };
    let mut sys = boot(root.path());
    let t = sys.spawn(&Program::Vfs("t.wat".into()), &[], None).unwrap();
    while sys.k.now() < 100_000_000 {
        sys.run(10);
    }
    let img = tempfile::tempdir().unwrap();
    let path = img.path().join("i");
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.checkpoint(t.0, &path, &opts).unwrap();
    let n = lines();
    let mut fresh = boot(root.path());
    fresh
        .spawn(&Program::Vfs("idle.wat".into()), &[], None)
        .unwrap();
    // Its clock is behind the capture's.
    fresh.run(5);
    assert!(fresh.k.now() < 100_000_000);
    fresh.restore(&path, &RestoreOpts::default()).unwrap();
    let until = fresh.k.now() + 50_000_000;
    while fresh.k.now() < until {
        fresh.run(10);
    }
    assert!(lines() >= n + 5, "{n} -> {}", lines());
}
