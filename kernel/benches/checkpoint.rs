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
//! - import: opening the image and restoring the task eagerly (every page
//!   loaded) until it is ready to run; `decode` is the reader's share of
//!   it alone (every page decoded, none installed);
//! - restore to first instruction (issue 15: under 10 ms, independent of
//!   size): from opening the image until the restored thread has run its
//!   first slice (it wakes from a timed wait and increments a counter in
//!   third page, so that page is faulted in), lazily (pages on first
//!   touch plus the background fill, `rstr`'s default), lazily on touch
//!   only, and eagerly for comparison; for the background fill also when
//!   every page was in;
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
//! chunk, `SPARTAN_CKPT_PACK=0` writes a directory image's chunks as one
//! file each instead of frames of a few packs (format 1.4),
//! `SPARTAN_CKPT_VERIFY=0` skips the reader's chunk content check, and
//! `SPARTAN_CKPT_LAZY_DETAIL=1` splits each restore to first instruction
//! into opening the image, the restore and the first slice (on stderr).

use std::time::{Duration, Instant};

use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{self, PageLoading, RestoreOptions};
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::task::TaskPolicy;

/// Grows memory by `$pages` wasm pages and fills every 4 KiB page, then
/// wakes every millisecond (virtual) to increment a counter at address
/// 0x2008 (in a text-like page, so the page count below holds). The pages are a fixed mix meant to compress like real
/// memory (zstd level 3 makes about a third of it, 2.5-3x, instead of
/// the 1000x of nearly empty pages, which let zstd alone run faster than
/// any hash and flattered it), repeating every 8 pages:
///
/// - 2 zero pages (memory touched but never written: freed heap, bss);
///   the writer drops them, zstd alone still reads them;
/// - 4 text-like pages: 16-byte pieces of a 923-byte English, code and log
///   text at offsets from a fixed-seed xorshift64 generator (heaps of
///   strings and structures: zstd makes about a quarter of them);
/// - 2 pseudo-random pages from the same generator (compressed or
///   encrypted data, pointers, hashes: incompressible).
///
/// Every page is distinct (no deduplication), and the same on every run.
const TOUCHER: &str = r#"
  (data $text "The quick brown fox jumps over the lazy dog while the kernel keeps its tasks in order. A checkpoint stops every thread of the set, captures the areas, phones and calls of each task, and writes them to an image. Restoring the image brings the tasks back where they were, with their memory, their connections and the calls they had in flight. int main(void) { for (i = 0; i < n; i++) { sum += table[i] * weight[i]; } return sum; } error: file not found; warning: unused variable; note: see the manual. GET /index.html HTTP/1.1 Host: example.invalid User-Agent: spartan/0.1 Accept: text/html 200 OK Content-Length: 4096 Content-Type: text/plain. name=alice id=7 role=admin; name=bob id=8 role=user; name=carol id=9 role=guest; the scheduler runs each thread for a slice of fuel and then moves on to the next one in round robin order, waking sleepers whose deadline has passed and delivering the answers that arrived meanwhile.")
  (func $next (param $x i64) (result i64)
    (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
    (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
    (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
  (func (export "main") (param $wasm_pages i32)
    (local $i i32) (local $n i32) (local $p i32) (local $end i32) (local $kind i32) (local $x i64)
    (drop (memory.grow (local.get $wasm_pages)))
    (local.set $n (i32.shl (i32.add (local.get $wasm_pages) (i32.const 1)) (i32.const 4)))
    (local.set $x (i64.const 0x2545F4914F6CDD1D))
    (loop $touch
      (local.set $p (i32.shl (local.get $i) (i32.const 12)))
      (local.set $end (i32.add (local.get $p) (i32.const 4096)))
      (local.set $kind (i32.and (local.get $i) (i32.const 7)))
      (if (i32.lt_u (local.get $kind) (i32.const 2))
        (then (i64.store (local.get $p) (i64.const 0)))
        (else (if (i32.lt_u (local.get $kind) (i32.const 6))
          (then (loop $piece
            (local.set $x (call $next (local.get $x)))
            (memory.init $text (local.get $p)
              (i32.rem_u (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 32)))
                (i32.const 908))
              (i32.const 16))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br_if $piece (i32.lt_u (local.get $p) (local.get $end)))))
          (else (loop $word
            (local.set $x (call $next (local.get $x)))
            (i64.store (local.get $p) (local.get $x))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (br_if $word (i32.lt_u (local.get $p) (local.get $end))))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $touch (i32.lt_u (local.get $i) (local.get $n))))
    (loop $forever
      (drop (call $wait (i64.const 1000000)))
      (i64.store (i32.const 0x2008) (i64.add (i64.load (i32.const 0x2008)) (i64.const 1)))
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
    if std::env::var("SPARTAN_CKPT_PACK").is_ok_and(|p| p == "0") {
        opts.pack_chunks = false;
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
    /// Restore to first instruction: background fill, on touch, eager.
    first: [Duration; 3],
    /// Background fill: until every page was in.
    all_in: Duration,
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

/// Timed lazy restores per size and kind (the median is shown).
const LAZY_RUNS: usize = 5;

/// Restores the image at `path` into a fresh kernel with `loading` and
/// runs it until the restored thread has used fuel (its first slice after
/// its timed wait). Returns the time from opening the image to then, and
/// (background fill) to when no page was pending any more.
fn first_instruction(
    path: &std::path::Path,
    verify: bool,
    loading: PageLoading,
) -> (Duration, Duration) {
    let mut k = Kernel::new(KernelConfig {
        audit: false,
        trace: false,
        ..KernelConfig::simulation(3)
    });
    let mut s = Scheduler::new(config());
    let t0 = Instant::now();
    let mut image = Image::open(path).expect("image opens");
    image.set_verify_content(verify);
    let opened = t0.elapsed();
    let opts = RestoreOptions {
        pages: loading,
        ..RestoreOptions::default()
    };
    checkpoint::restore(&mut k, &mut s, &std::sync::Arc::new(image), &opts).expect("restore");
    let restored = t0.elapsed();
    let mut slices = 0;
    while s.stats.fuel == 0 {
        s.run(&mut k, 1);
        slices += 1;
        assert!(slices < 1000, "the restored thread runs");
    }
    let first = t0.elapsed();
    if std::env::var_os("SPARTAN_CKPT_LAZY_DETAIL").is_some() {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "{loading:?}: image open {:.2} ms, restore {:.2} ms, first slice {:.2} ms",
            ms(opened),
            ms(restored - opened),
            ms(first - restored)
        );
    }
    // (Pages loaded on touch only stay pending: nothing to wait for.)
    while loading == PageLoading::Background && !s.lazy_fills().is_empty() {
        s.pump_lazy(&mut k);
        std::thread::yield_now();
    }
    (first, t0.elapsed())
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
    let restored = checkpoint::restore(
        &mut k2,
        &mut s2,
        &std::sync::Arc::new(image),
        &RestoreOptions::default(),
    )
    .expect("restore");
    let import = t0.elapsed();
    let new = restored.tasks[&task.0];
    let space = spartan_kernel::guest::guest_space_ref(&k2, new).expect("guest");
    // The image holds no zero pages (2 of every 8), and a restore does not
    // materialise them.
    assert_eq!(
        space.resident_bytes(),
        (mib << 20) / 8 * 6,
        "all non-zero memory restored"
    );
    drop((k2, s2));
    // Lazy restores are cheap: the median of 5 of each (the first one
    // also pays for a cold page cache of the image's records).
    let runs = |loading| {
        let mut v: Vec<(Duration, Duration)> = (0..LAZY_RUNS)
            .map(|_| first_instruction(&path, verify, loading))
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let (lazy, all_in) = runs(PageLoading::Background);
    let (on_touch, _) = runs(PageLoading::OnTouch);
    let (eager, _) = first_instruction(&path, verify, PageLoading::Eager);
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
        first: [lazy, on_touch, eager],
        all_in,
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
        let [lazy, touch, eager] = r.first.map(|d| d.as_secs_f64() * 1e3);
        println!(
            "{:>5} MiB restore to first instruction (median of {LAZY_RUNS}): lazy {lazy:.2} ms (every page in after {:.0} ms) | on touch only {touch:.2} ms | eager {eager:.0} ms | eager / lazy {:.0}x",
            r.mib,
            r.all_in.as_secs_f64() * 1e3,
            eager / lazy
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
