//! Checkpoint/restore of a guest task with 64 MiB and 1 GiB of touched
//! memory, side by side (DESIGN section 8):
//!
//! - freeze: the time the task is stopped (stop, capture of every kernel
//!   and machine state and of copy-on-write page references, resume);
//!   target under 1 ms, independent of memory size;
//! - export: writing the captured set as an image (directory, zstd level 3,
//!   2 threads, fsynced), done while the task runs on; next to it, zstd
//!   alone on the same page bytes (every materialised page, in page
//!   order, streamed through one multithreaded zstd encoder at the same
//!   level and thread count, into memory: no file, no hashing) and the
//!   ratio of the two throughputs (export / zstd alone; the goal of issue
//!   15 is at least 0.8). Both are timed `SPARTAN_CKPT_EXPORTS` times
//!   (default 3), alternating, on the same capture; the medians are
//!   compared and every run is shown, and so are the CPU seconds (all
//!   threads, user and system) of each, which a machine shared with other
//!   work disturbs less than the wall clock;
//! - import: opening the image and restoring the task until it is ready to
//!   run (target under 10 ms independent of image size); `decode` is the
//!   reader's share of it alone (every page decoded, none installed);
//! - incremental: after the exports the guest writes 1% of its pages (its
//!   `dirty` export, run as a thread: real stores, real dirty bits), the
//!   task is frozen again and an incremental image is written with the
//!   exported one as parent; its stored bytes against the full image's
//!   (target about 1%).
//!
//! A bench binary (`harness = false`): `cargo bench -p spartan-kernel
//! --bench checkpoint` prints a table. `SPARTAN_CKPT_MIB` (default
//! `64,1024`) picks the sizes, `SPARTAN_CKPT_FREEZES` (default 50) the
//! number of timed freezes (median and maximum are shown),
//! `SPARTAN_CKPT_EXPORTS` the number of timed exports. Knobs for
//! locating costs: `SPARTAN_CKPT_FORM=tar` writes one tar file instead of
//! a directory, `SPARTAN_CKPT_CHUNK_PAGES=n` sets the writer's pages per
//! chunk (one chunk file each in a directory image), and
//! `SPARTAN_CKPT_VERIFY=0` skips the reader's chunk content check.

use std::time::{Duration, Instant};

use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, RestoreOptions};
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::task::TaskPolicy;

/// Grows memory by `$pages` wasm pages, writes each 4 KiB page's index at
/// its start (every page touched and distinct), then waits forever.
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
  (func (export "dirty") (param $step i32) (param $n i32) (local $i i32)
    (loop $again
      (i64.store offset=8 (i32.shl (i32.mul (local.get $i) (local.get $step)) (i32.const 12))
        (i64.const -1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $n)))))
"#;

fn config() -> SchedConfig {
    SchedConfig {
        slice_fuel: 1 << 40,
        ..SchedConfig::default()
    }
}

/// The writer options the knobs ask for.
fn writer_options() -> WriterOptions {
    let mut opts = WriterOptions {
        threads: 2,
        ..WriterOptions::default()
    };
    if std::env::var("SPARTAN_CKPT_FORM").is_ok_and(|f| f == "tar") {
        opts.form = ImageForm::Tar;
    }
    if let Some(n) = std::env::var("SPARTAN_CKPT_CHUNK_PAGES")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        opts.chunk_pages = n;
    }
    opts
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    mib: u64,
    freeze_median: Duration,
    freeze_max: Duration,
    export: Duration,
    exports: Vec<Duration>,
    zstd: Duration,
    zstds: Vec<Duration>,
    zstd_mib: f64,
    export_cpu: Vec<f64>,
    zstd_cpu: Vec<f64>,
    stored_mib: f64,
    decode: Duration,
    import: Duration,
    incremental: Incremental,
}

/// An incremental image after 1% of the pages were dirtied.
struct Incremental {
    dirtied: u64,
    /// Time to plan and write it (parent checks included).
    write: Duration,
    parent_pages: u64,
    stored_bytes: u64,
    full_stored_bytes: u64,
    /// Bytes of every file of each image (manifest, records, chunks).
    files_bytes: u64,
    full_files_bytes: u64,
}

/// Bytes of the files under `path` (or of the file).
fn files_bytes(path: &std::path::Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| files_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// Has the guest write every 100th page, freezes it again and writes an
/// incremental image on top of the full one at `parent` (written from
/// `capture`, whose image `full` describes).
fn incremental(
    k: &mut Kernel,
    s: &mut Scheduler,
    task: spartan_kernel::task::TaskId,
    (capture, full, parent): (&checkpoint::Capture, &snapfmt::Finished, &std::path::Path),
    target: &std::path::Path,
) -> Incremental {
    checkpoint::epochs::note_written(k, capture, full.manifest_digest);
    let pages = capture.tasks[0].space.areas[0].size / 4096;
    let n = pages / 100;
    s.spawn_thread(k, task, "dirty", &[Value::I32(100), Value::I32(n as u32)])
        .expect("dirtying thread starts");
    s.run(k, 4);
    let c = checkpoint::freeze(k, s, &[task]).expect("freeze");
    let t0 = Instant::now();
    let image = checkpoint::epochs::check_parent(parent).expect("parent checks");
    let plan = checkpoint::epochs::plan(k, &c, &image).expect("plan");
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    let done = c
        .write_incremental(target, parent, &plan, writer_options())
        .expect("incremental image written");
    Incremental {
        dirtied: n,
        write: t0.elapsed(),
        parent_pages: done.stats.parent_pages,
        stored_bytes: done.stats.chunk_stored_bytes,
        full_stored_bytes: full.stats.chunk_stored_bytes,
        files_bytes: files_bytes(target),
        full_files_bytes: files_bytes(parent),
    }
}

/// Time to decode every page of the image without installing any (the
/// reader's share of an import), with the same verification and threads.
fn decode_only(path: &std::path::Path, verify: bool) -> Duration {
    let mut image = Image::open(path).expect("image opens");
    image.set_verify_content(verify);
    let t0 = Instant::now();
    let mut nonzero = 0u64;
    for id in image.task_ids() {
        let task = image.task(id).expect("task record");
        for area in &task.areas {
            image
                .for_each_page(area, 2, |_, bytes| {
                    nonzero += u64::from(bytes.iter().any(|b| *b != 0));
                    Ok(())
                })
                .expect("pages decode");
        }
    }
    std::hint::black_box(nonzero);
    t0.elapsed()
}

/// CPU time (user + system, all threads) this process has used, from
/// `/proc/self/stat` (clock ticks, assumed 100 per second); 0 if unreadable.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn median_f(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Counts what is written to it and keeps nothing.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// zstd alone on the capture's page bytes: every materialised page in the
/// order the export feeds them, through one encoder at the writer's level
/// and thread count, into memory. Returns the time and compressed size.
fn zstd_alone(capture: &checkpoint::Capture, opts: &WriterOptions) -> (Duration, u64) {
    use std::io::Write;
    let t0 = Instant::now();
    let mut enc = zstd::stream::Encoder::new(Counter(0), opts.level).expect("zstd encoder");
    enc.multithread(opts.threads as u32).expect("zstd threads");
    for t in &capture.tasks {
        for area in &t.space.areas {
            for (_, page) in area.pages() {
                enc.write_all(&page[..]).expect("zstd writes");
            }
        }
    }
    let out = enc.finish().expect("zstd finishes");
    (t0.elapsed(), out.0)
}

fn measure(mib: u64, freezes: usize, exports: usize) -> Row {
    let mut k = Kernel::new(KernelConfig {
        audit: false,
        trace: false,
        ..KernelConfig::simulation(1)
    });
    let mut s = Scheduler::new(config());
    let wasm_pages = (mib * 16) as u32 - 1;
    let (task, _) = s
        .spawn_guest(
            &mut k,
            "toucher",
            TaskPolicy::Checkpointable,
            rt::program(TOUCHER).as_bytes(),
            "main",
            &[Value::I32(wasm_pages)],
        )
        .expect("guest loads");
    s.run(&mut k, 4);
    let space = spartan_kernel::guest::guest_space_ref(&k, task).expect("guest");
    assert_eq!(space.resident_bytes(), mib << 20, "all memory touched");

    let mut times = Vec::with_capacity(freezes);
    let mut capture = None;
    for _ in 0..freezes {
        let t0 = Instant::now();
        let c = checkpoint::freeze(&mut k, &s, &[task]).expect("freeze");
        times.push(t0.elapsed());
        capture = Some(c);
    }
    let capture = capture.expect("at least one freeze");
    let freeze_max = *times.iter().max().expect("times");
    let freeze_median = median(&mut times);

    let dir = tempfile::tempdir().expect("tempdir");
    let opts = writer_options();
    let mut export_times = Vec::with_capacity(exports);
    let mut zstd_times = Vec::with_capacity(exports);
    let mut zstd_bytes = 0;
    let (mut export_cpu, mut zstd_cpu) = (Vec::new(), Vec::new());
    let mut done = None;
    let mut path = dir.path().join("image");
    for run in 0..exports {
        let c0 = cpu_secs();
        let (z, zb) = zstd_alone(&capture, &opts);
        zstd_cpu.push(cpu_secs() - c0);
        zstd_times.push(z);
        zstd_bytes = zb;
        path = dir.path().join(format!("image{run}"));
        let (c0, t0) = (cpu_secs(), Instant::now());
        done = Some(capture.write(&path, opts.clone()).expect("image written"));
        export_times.push(t0.elapsed());
        export_cpu.push(cpu_secs() - c0);
    }
    let done = done.expect("at least one export");
    let inc = incremental(
        &mut k,
        &mut s,
        task,
        (&capture, &done, &path),
        &dir.path().join("incremental"),
    );
    drop(capture);

    let mut k2 = Kernel::new(KernelConfig {
        audit: false,
        trace: false,
        ..KernelConfig::simulation(2)
    });
    let mut s2 = Scheduler::new(config());
    let verify = std::env::var("SPARTAN_CKPT_VERIFY").map_or(true, |v| v != "0");
    let decode = decode_only(&path, verify);
    let t0 = Instant::now();
    let mut image = Image::open(&path).expect("image opens");
    image.set_verify_content(verify);
    let restored =
        checkpoint::restore(&mut k2, &mut s2, &image, &RestoreOptions::default()).expect("restore");
    let import = t0.elapsed();
    let new = restored.tasks[&task.0];
    let space = spartan_kernel::guest::guest_space_ref(&k2, new).expect("guest");
    assert_eq!(space.resident_bytes(), mib << 20, "all memory restored");
    Row {
        mib,
        freeze_median,
        freeze_max,
        export: median(&mut export_times.clone()),
        exports: export_times,
        zstd: median(&mut zstd_times.clone()),
        zstds: zstd_times,
        zstd_mib: zstd_bytes as f64 / (1 << 20) as f64,
        export_cpu,
        zstd_cpu,
        stored_mib: done.stats.chunk_stored_bytes as f64 / (1 << 20) as f64,
        decode,
        import,
        incremental: inc,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported.
    let sizes: Vec<u64> = std::env::var("SPARTAN_CKPT_MIB")
        .unwrap_or_else(|_| "64,1024".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let freezes: usize = std::env::var("SPARTAN_CKPT_FREEZES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .max(1);
    let exports: usize = std::env::var("SPARTAN_CKPT_EXPORTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("checkpoint bench, load average at start: {}", load.trim());
    println!(
        "{:>8} {:>14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "memory", "freeze median", "freeze max", "export", "stored", "decode", "import"
    );
    for mib in sizes {
        let r = measure(mib, freezes, exports);
        println!(
            "{:>5} MiB {:>11.1} us {:>9.1} us {:>9.1} ms {:>8.2} MiB {:>9.1} ms {:>9.1} ms",
            r.mib,
            r.freeze_median.as_secs_f64() * 1e6,
            r.freeze_max.as_secs_f64() * 1e6,
            r.export.as_secs_f64() * 1e3,
            r.stored_mib,
            r.decode.as_secs_f64() * 1e3,
            r.import.as_secs_f64() * 1e3
        );
        let ms = |v: &[Duration]| {
            v.iter()
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mbs = |d: Duration| (r.mib << 20) as f64 / d.as_secs_f64() / 1e6;
        println!(
            "{:>5} MiB export {:.0} MB/s (median of {} ms) | zstd alone {:.0} MB/s (median of {} ms, {:.2} MiB) | ratio {:.2}",
            r.mib,
            mbs(r.export),
            ms(&r.exports),
            mbs(r.zstd),
            ms(&r.zstds),
            r.zstd_mib,
            r.zstd.as_secs_f64() / r.export.as_secs_f64()
        );
        let i = &r.incremental;
        println!(
            "{:>5} MiB incremental after {} pages (1%) dirtied: written in {:.1} ms, {} pages from the parent; chunks {:.3} MiB vs full {:.3} MiB | ratio {:.2}% (target about 1%); all files {:.3} MiB vs {:.3} MiB | {:.2}%",
            r.mib,
            i.dirtied,
            i.write.as_secs_f64() * 1e3,
            i.parent_pages,
            i.stored_bytes as f64 / (1 << 20) as f64,
            i.full_stored_bytes as f64 / (1 << 20) as f64,
            100.0 * i.stored_bytes as f64 / i.full_stored_bytes as f64,
            i.files_bytes as f64 / (1 << 20) as f64,
            i.full_files_bytes as f64 / (1 << 20) as f64,
            100.0 * i.files_bytes as f64 / i.full_files_bytes as f64
        );
        let (ec, zc) = (median_f(&r.export_cpu), median_f(&r.zstd_cpu));
        println!(
            "{:>5} MiB CPU seconds: export {ec:.2} | zstd alone {zc:.2} | ratio {:.2} (per CPU-second)",
            r.mib,
            if ec > 0.0 { zc / ec } else { f64::NAN }
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
