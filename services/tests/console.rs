//! The console with a guest program: it draws, waits for keys and echoes
//! them. A checkpoint taken while it waits for a key returns without a
//! key; after a kill and a restore (same system, and a freshly booted
//! one whose console gets the screen from the image) the keys pushed
//! afterwards give the same screen as without the checkpoint.

use std::path::Path;

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::task::{TaskId, TaskPolicy};
use spartan_services::Shared;
use spartan_services::checkpointer::{CheckpointOptions, Checkpointer, RestoreOpts};
use spartan_services::console::Console;
use spartan_services::ns::NamingService;
use spartan_services::rt;

/// Connects to the console (service 2), clears it, writes "hello ", then
/// echoes every key until 'q' (with the service runtime's helpers).
const ECHO: &str = r#"
  (data (i32.const 0x400) "hello ")
  (func (export "main") (local $c i32) (local $key i64)
    (local.set $c (call $connect (i64.const 2)))
    (call $con_clear (local.get $c))
    (call $con_print (local.get $c) (i32.const 0x400) (i32.const 6))
    (loop $keys
      (local.set $key (call $con_key (local.get $c)))
      (i64.store8 (i32.const 0x500) (local.get $key))
      (call $con_print (local.get $c) (i32.const 0x500) (i32.const 1))
      (br_if $keys (i64.ne (local.get $key) (i64.const 113)))))
"#;

struct System {
    k: Kernel,
    s: Scheduler,
    console: Shared<Console>,
    ck: Checkpointer,
    ns: NamingService,
}

fn boot(seed: u64, filler: usize) -> System {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    for i in 0..filler {
        k.spawn_native(&format!("filler{i}"), TaskPolicy::Neither);
    }
    let ns = NamingService::spawn(&mut k);
    let console = Shared::new(Console::spawn(&mut k, &ns, 20, 4).unwrap());
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 300,
        ..SchedConfig::default()
    });
    s.add_native(Box::new(console.clone()));
    System {
        k,
        s,
        console,
        ck,
        ns,
    }
}

impl System {
    fn start(mut self) -> (System, TaskId) {
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                "echo",
                TaskPolicy::Checkpointable,
                rt::program(ECHO).as_bytes(),
                "main",
                &[],
            )
            .unwrap();
        self.ns.connect(&mut self.k, task).unwrap();
        (self.with_ns(), task)
    }

    /// Hands the naming service to the scheduler.
    fn with_ns(mut self) -> System {
        let ns = std::mem::replace(&mut self.ns, NamingService::spawn(&mut self.k));
        // The placeholder left behind is no second naming service.
        let _ = self.k.kill_task(self.ns.task());
        self.s.add_native(Box::new(ns));
        self
    }

    fn settle(&mut self) {
        self.s.run(&mut self.k, 5_000);
    }

    fn key(&mut self, c: char) {
        self.console
            .0
            .borrow_mut()
            .push_key(&mut self.k, 0, u64::from(c), 0);
        self.settle();
    }

    fn screen(&self) -> String {
        self.console.0.borrow_mut().screen(0).text()
    }
}

fn uninterrupted() -> String {
    let (mut sys, _) = boot(1, 0).start();
    sys.settle();
    for c in "abcq".chars() {
        sys.key(c);
    }
    sys.screen()
}

fn checkpointed(path: &Path) -> System {
    let (mut sys, task) = boot(1, 0).start();
    sys.settle();
    sys.key('a');
    sys.key('b');
    // It waits for a key now; the checkpoint needs none.
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, task, path, &opts)
        .expect("a checkpoint while it waits for a key");
    assert_eq!(snapfmt::validate(path), vec![]);
    assert!(sys.k.task(task).is_none());
    sys
}

#[test]
fn the_program_draws_and_echoes_keys() {
    assert_eq!(uninterrupted(), "hello abcq\n\n\n\n");
}

#[test]
fn a_checkpoint_while_it_waits_for_a_key_needs_no_key_and_restores_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let mut sys = checkpointed(&path);
    assert_eq!(sys.screen(), "hello ab\n\n\n\n");
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    sys.settle();
    for c in "cq".chars() {
        sys.key(c);
    }
    assert_eq!(sys.screen(), uninterrupted());
    sys.k.check_invariants().unwrap();
}

#[test]
fn a_restore_after_a_reboot_brings_the_screen_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let _old = checkpointed(&path);
    let mut sys = boot(2, 2).with_ns();
    sys.settle();
    assert_eq!(sys.screen(), "\n\n\n\n", "a fresh console");
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    sys.settle();
    assert_eq!(
        sys.screen(),
        "hello ab\n\n\n\n",
        "the screen from the image"
    );
    for c in "cq".chars() {
        sys.key(c);
    }
    assert_eq!(sys.screen(), uninterrupted());
    sys.k.check_invariants().unwrap();
}
