//! The transparency oracle at system level: a guest task drawing on the
//! console and writing a file through the VFS runs with the naming
//! service, the console, the VFS and the checkpointer. For 50 seeded cut
//! points the checkpointer checkpoints it (with the services'
//! cooperation), kills it and restores it (alternately into the same
//! system and into a freshly booted one on a copy of the directory); the
//! run goes on to the end. The console screen, the file on disk, the
//! task's log and its memory digest equal the uninterrupted run's.

use std::path::Path;

use sha2::{Digest, Sha256};
use spartan_kernel::guest::{SchedConfig, Scheduler, guest_space_ref};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::task::{TaskId, TaskPolicy};
use spartan_services::Shared;
use spartan_services::checkpointer::{CheckpointOptions, Checkpointer, RestoreOpts};
use spartan_services::console::Console;
use spartan_services::ns::NamingService;
use spartan_services::rt;
use spartan_services::vfs::Vfs;

const CUTS: u64 = 50;

/// Draws "tick NN" on row NN % 4 and appends "NN\n" to log.txt, forty
/// times, sleeping between; then closes the file and logs "done".
const DASH: &str = r#"
  (data (i32.const 0x400) "log.txt")
  (data (i32.const 0x410) "tick ")
  (func (export "main") (local $con i32) (local $fs i32) (local $fd i64) (local $i i64)
    (local.set $con (call $connect (i64.const 2)))
    (local.set $fs (call $connect (i64.const 1)))
    (local.set $fd (call $vfs_open (local.get $fs) (i32.const 0x400) (i32.const 7) (i64.const 14)))
    (if (i64.lt_s (local.get $fd) (i64.const 0)) (then unreachable))
    (call $con_clear (local.get $con))
    (loop $ticks
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (call $con_goto (local.get $con) (i64.const 0) (i64.rem_u (local.get $i) (i64.const 4)))
      (call $con_print (local.get $con) (i32.const 0x410) (i32.const 5))
      (call $con_num (local.get $con) (local.get $i))
      (i64.store8 (i32.const 0x420) (i64.add (i64.const 48) (i64.div_u (local.get $i) (i64.const 10))))
      (i64.store8 (i32.const 0x421) (i64.add (i64.const 48) (i64.rem_u (local.get $i) (i64.const 10))))
      (i32.store8 (i32.const 0x422) (i32.const 10))
      (drop (call $vfs_write (local.get $fs) (local.get $fd) (i32.const 0x420) (i32.const 3)))
      (call $log_num (local.get $i))
      (drop (call $sleep (i64.const 4000)))
      (br_if $ticks (i64.lt_u (local.get $i) (i64.const 40))))
    (drop (call $vfs_close (local.get $fs) (local.get $fd)))
    (call $log_num (i64.const 1000)))
"#;

struct System {
    k: Kernel,
    s: Scheduler,
    console: Shared<Console>,
    ck: Checkpointer,
}

fn boot(seed: u64, root: &Path, filler: usize) -> System {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    for i in 0..filler {
        k.spawn_native(&format!("filler{i}"), TaskPolicy::Neither);
    }
    let ns = NamingService::spawn(&mut k);
    let console = Shared::new(Console::spawn(&mut k, &ns, 16, 4).unwrap());
    let vfs = Vfs::spawn(&mut k, &ns, root).unwrap();
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 250,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(console.clone()));
    s.add_native(Box::new(vfs));
    s.add_native(Box::new(ns));
    System { k, s, console, ck }
}

impl System {
    fn start(&mut self) -> TaskId {
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                "dash",
                TaskPolicy::Checkpointable,
                rt::program(DASH).as_bytes(),
                "main",
                &[],
            )
            .unwrap();
        let ns = self.find("ns");
        self.k.connect_phone(task, ns).unwrap();
        task
    }

    fn find(&self, name: &str) -> TaskId {
        self.k
            .task_ids()
            .into_iter()
            .find(|t| self.k.task(*t).unwrap().name == name)
            .unwrap()
    }

    fn dash_log(&self) -> Vec<String> {
        self.k
            .log()
            .iter()
            .filter(|l| self.k.task(l.task).is_none_or(|t| t.name == "dash"))
            .map(|l| l.text.clone())
            .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
            .collect()
    }

    fn done(&self) -> bool {
        self.dash_log().iter().any(|l| l == "1000")
    }

    /// Runs until the task is done; its memory digest just before it
    /// ends.
    fn run_to_end(&mut self) -> String {
        let mut digest = String::new();
        for _ in 0..500_000 {
            if self.done() {
                return digest;
            }
            if let Some(t) = self
                .k
                .task_ids()
                .into_iter()
                .find(|t| self.k.task(*t).unwrap().name == "dash")
                && let Some(space) = guest_space_ref(&self.k, t)
            {
                let snap = space.snapshot();
                let mut h = Sha256::new();
                for a in &snap.areas {
                    for (i, page) in a.pages() {
                        h.update(a.base.to_le_bytes());
                        h.update(i.to_le_bytes());
                        h.update(&page[..]);
                    }
                }
                digest = hex::encode(h.finalize());
            }
            self.s.run(&mut self.k, 1);
        }
        panic!("the task did not finish");
    }

    fn screen(&self) -> String {
        self.console.0.borrow_mut().screen(0).text()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_task_using_console_and_files_is_transparent_at_50_cuts() {
    let root = tempfile::tempdir().unwrap();
    let mut whole = boot(1, root.path(), 0);
    whole.start();
    let digest = whole.run_to_end();
    let end = whole.k.now();
    let (screen, log) = (whole.screen(), whole.dash_log());
    let file = std::fs::read_to_string(root.path().join("log.txt")).unwrap();
    assert_eq!(file.lines().count(), 40, "the task does something");
    assert!(screen.contains("tick 40"), "{screen}");

    let mut seed = 12345u64;
    for i in 0..CUTS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cut = 1 + (seed >> 33) % (end * 9 / 10);
        let reboot = i % 2 == 1;
        let what = format!("cut {i} at {cut} (reboot {reboot})");
        let root = tempfile::tempdir().unwrap();
        let images = tempfile::tempdir().unwrap();
        let mut sys = boot(1, root.path(), 0);
        let task = sys.start();
        while sys.k.now() < cut {
            sys.s.run(&mut sys.k, 1);
        }
        let path = images.path().join("img");
        let opts = CheckpointOptions {
            kill: true,
            ..CheckpointOptions::default()
        };
        sys.ck
            .checkpoint(&mut sys.k, &mut sys.s, task, &path, &opts)
            .unwrap_or_else(|e| panic!("{what}: checkpoint: {e}"));
        assert_eq!(snapfmt::validate(&path), vec![], "{what}");
        let before = sys.dash_log();
        let (mut sys, dir) = if reboot {
            let again = tempfile::tempdir().unwrap();
            copy_dir(root.path(), again.path());
            let mut fresh = boot(2 + i, again.path(), (i % 3) as usize);
            fresh.s.run(&mut fresh.k, 50);
            (fresh, again)
        } else {
            (sys, root)
        };
        sys.ck
            .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
            .unwrap_or_else(|e| panic!("{what}: restore: {e}"));
        sys.k
            .check_invariants()
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let got_digest = sys.run_to_end();
        let mut got_log = if reboot { before } else { Vec::new() };
        got_log.extend(sys.dash_log());
        assert_eq!(got_log, log, "{what}: log");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log.txt")).unwrap(),
            file,
            "{what}: file"
        );
        assert_eq!(sys.screen(), screen, "{what}: screen");
        assert_eq!(got_digest, digest, "{what}: memory");
    }
}
