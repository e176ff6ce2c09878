//! Checkpoint and restore through the checkpointer, with the services
//! cooperating (DESIGN section 8, issue 12):
//!
//! - a set of `SPARTAN_SVC_TASKS` (default 100) small guest tasks, each
//!   connected to the naming service, the console and the VFS (an open
//!   file each), linked into one set by phones from each to the next;
//! - one task with `SPARTAN_SVC_MIB` (default 1024) MiB of memory touched
//!   (every 4 KiB page written, all distinct), connected to the same
//!   services.
//!
//! For each: the time the set was frozen (host time, from stop to resume,
//! the services' exports included) in total and per task, the whole
//! checkpoint (the freeze and writing the image, directory form, fsynced),
//! the restore into the same system after the set was killed (reading the
//! image, recreating the tasks, the services taking their connections'
//! states back), and the image's size on disk.
//!
//! A bench binary (`harness = false`): `cargo bench -p spartan-services
//! --bench checkpointer`. Run without `--bench` (as `cargo test
//! --benches` would) it is a smoke run: 10 tasks and 16 MiB.

use std::path::Path;
use std::time::{Duration, Instant};

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::task::{TaskId, TaskPolicy};
use spartan_services::Shared;
use spartan_services::checkpointer::{CheckpointOptions, Checkpointer, RestoreOpts};
use spartan_services::console::Console;
use spartan_services::ns::NamingService;
use spartan_services::rt;
use spartan_services::vfs::Vfs;

/// Connects to the console and the VFS, opens `log.txt` for appending,
/// writes a line to both, then every 1 ms writes a dot to the console.
const SMALL: &str = r#"
  (data (i32.const 0x400) "log.txt")
  (data (i32.const 0x410) "hello\n")
  (func (export "main") (local $con i32) (local $vfs i32) (local $fd i64)
    (local.set $con (call $connect (i64.const 2)))
    (local.set $vfs (call $connect (i64.const 1)))
    (local.set $fd (call $vfs_open (local.get $vfs) (i32.const 0x400) (i32.const 7) (i64.const 22)))
    (if (i64.lt_s (local.get $fd) (i64.const 0)) (then unreachable))
    (drop (call $vfs_write (local.get $vfs) (local.get $fd) (i32.const 0x410) (i32.const 6)))
    (call $con_print (local.get $con) (i32.const 0x410) (i32.const 6))
    (loop $dots
      (drop (call $sleep (i64.const 1000000)))
      (br $dots)))
"#;

/// Grows memory by `$pages` wasm pages and writes each 4 KiB page's index
/// at its start (every page touched and distinct), connects to the
/// console and the VFS like [`SMALL`], then sleeps in a loop.
const BIG: &str = r#"
  (data (i32.const 0x400) "big.txt")
  (func (export "main") (param $wasm_pages i32) (local $i i32) (local $n i32)
    (local $con i32) (local $vfs i32)
    (drop (memory.grow (local.get $wasm_pages)))
    (local.set $n (i32.shl (i32.add (local.get $wasm_pages) (i32.const 1)) (i32.const 4)))
    (loop $touch
      (i64.store (i32.shl (local.get $i) (i32.const 12))
        (i64.add (i64.extend_i32_u (local.get $i)) (i64.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (local.get $n))))
    (local.set $con (call $connect (i64.const 2)))
    (local.set $vfs (call $connect (i64.const 1)))
    (drop (call $vfs_open (local.get $vfs) (i32.const 0x400) (i32.const 7) (i64.const 14)))
    (call $log_num (i64.const 77))
    (loop $naps
      (drop (call $sleep (i64.const 1000000)))
      (br $naps)))
"#;

struct System {
    k: Kernel,
    s: Scheduler,
    ck: Checkpointer,
    ns_task: TaskId,
}

fn boot(root: &Path) -> System {
    let mut k = Kernel::new(KernelConfig {
        audit: false,
        trace: false,
        ..KernelConfig::simulation(1)
    });
    let ns = NamingService::spawn(&mut k);
    let console = Console::spawn(&mut k, &ns, 80, 25).expect("console");
    let vfs = Vfs::spawn(&mut k, &ns, root).expect("vfs");
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel: 1 << 20,
        ..SchedConfig::default()
    });
    let ns_task = ns.task();
    s.add_native(Box::new(Shared::new(console)));
    s.add_native(Box::new(vfs));
    s.add_native(Box::new(ns));
    System { k, s, ck, ns_task }
}

fn spawn(sys: &mut System, name: &str, body: &str, args: &[Value]) -> TaskId {
    let (t, _) = sys
        .s
        .spawn_guest(
            &mut sys.k,
            name,
            TaskPolicy::Checkpointable,
            rt::program(body).as_bytes(),
            "main",
            args,
        )
        .expect("guest loads");
    sys.k.connect_phone(t, sys.ns_task).expect("phone 0");
    t
}

/// Phones connected to services, over `tasks`.
fn service_phones(k: &Kernel, tasks: &[TaskId]) -> usize {
    tasks
        .iter()
        .map(|t| {
            k.task(*t).map_or(0, |t| {
                t.phones
                    .iter()
                    .filter(|(_, p)| {
                        matches!(p, spartan_kernel::ipc::Phone::Connected { callee, .. }
                            if k.task(*callee).is_some_and(|c| matches!(c.policy, TaskPolicy::Cooperative { .. })))
                    })
                    .count()
            })
        })
        .sum()
}

fn size_on_disk(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| size_on_disk(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.len()
    }
}

struct Row {
    what: String,
    tasks: usize,
    frozen: Duration,
    checkpoint: Duration,
    restore: Duration,
    image_bytes: u64,
}

/// Checkpoints the set of `zero` (killing it), restores it, checks the
/// restored tasks run.
fn measure(sys: &mut System, zero: TaskId, what: String, dir: &Path) -> Row {
    let path = dir.join(format!("img-{}", zero.0));
    let opts = CheckpointOptions {
        kill: true,
        timeout_ns: 60_000_000_000,
        ..CheckpointOptions::default()
    };
    let t0 = Instant::now();
    let report = sys
        .ck
        .checkpoint(&mut sys.k, &mut sys.s, zero, &path, &opts)
        .expect("checkpoint");
    let checkpoint = t0.elapsed();
    let tasks = report.plan.members.len();
    let ropts = RestoreOpts {
        timeout_ns: 60_000_000_000,
        ..RestoreOpts::default()
    };
    let t0 = Instant::now();
    let restored = sys
        .ck
        .restore(&mut sys.k, &mut sys.s, &path, &ropts)
        .expect("restore");
    let restore = t0.elapsed();
    assert_eq!(restored.tasks.len(), tasks);
    sys.s.run(&mut sys.k, 10 * tasks as u64);
    for t in restored.tasks.values() {
        assert!(
            sys.k.task(*t).is_some_and(|t| !t.stopped),
            "restored and running"
        );
    }
    Row {
        what,
        tasks,
        frozen: Duration::from_nanos(report.frozen_host_ns),
        checkpoint,
        restore,
        image_bytes: size_on_disk(&path),
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = env_or("SPARTAN_SVC_TASKS", if full { 100 } else { 10 }).max(1) as usize;
    let mib = env_or("SPARTAN_SVC_MIB", if full { 1024 } else { 16 }).max(1);
    let root = tempfile::tempdir().expect("tempdir");
    let images = tempfile::tempdir().expect("tempdir");
    let mut sys = boot(root.path());
    let mut rows = Vec::new();

    // The small tasks, chained into one set.
    let tasks: Vec<TaskId> = (0..n)
        .map(|i| spawn(&mut sys, &format!("small{i}"), SMALL, &[]))
        .collect();
    for w in tasks.windows(2) {
        sys.k.connect_phone(w[0], w[1]).expect("chain");
    }
    let want = 3 * n;
    for _ in 0..10_000_000 {
        if service_phones(&sys.k, &tasks) >= want {
            break;
        }
        sys.s.run(&mut sys.k, 1);
    }
    assert_eq!(
        service_phones(&sys.k, &tasks),
        want,
        "ns, console, vfs each"
    );
    sys.s.run(&mut sys.k, 4 * n as u64);
    rows.push(measure(
        &mut sys,
        tasks[0],
        format!("{n} small tasks"),
        images.path(),
    ));

    // The big one.
    let wasm_pages = (mib * 16 - 1) as u32;
    let big = spawn(&mut sys, "big", BIG, &[Value::I32(wasm_pages)]);
    for _ in 0..10_000_000 {
        if sys.k.log().iter().any(|l| l.task == big && l.text == "77") {
            break;
        }
        sys.s.run(&mut sys.k, 1);
    }
    rows.push(measure(
        &mut sys,
        big,
        format!("{mib} MiB task"),
        images.path(),
    ));

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "checkpointer bench{}, load average: {}",
        if full { "" } else { " (smoke)" },
        load.trim()
    );
    println!(
        "{:>16} {:>6} {:>12} {:>14} {:>12} {:>12} {:>12}",
        "set", "tasks", "frozen", "frozen/task", "checkpoint", "restore", "image"
    );
    for r in rows {
        println!(
            "{:>16} {:>6} {:>10.2}ms {:>12.1}us {:>10.1}ms {:>10.1}ms {:>10.2}MiB",
            r.what,
            r.tasks,
            r.frozen.as_secs_f64() * 1e3,
            r.frozen.as_secs_f64() * 1e6 / r.tasks as f64,
            r.checkpoint.as_secs_f64() * 1e3,
            r.restore.as_secs_f64() * 1e3,
            r.image_bytes as f64 / (1 << 20) as f64,
        );
    }
}
