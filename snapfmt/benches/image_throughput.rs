//! Image write and read throughput against zstd alone, in one run.
//!
//! `cargo bench -p snapfmt --bench image_throughput` uses 64 MiB of
//! synthetic memory; `SNAPFMT_BENCH_MIB=1024` (or the argument `--full`)
//! uses 1 GiB; `SNAPFMT_BENCH_LEVEL` sets the zstd level of both sides
//! (default: the writer's default, 3). The memory is one area of one task, page kinds interleaved
//! pseudo-randomly in fixed proportions:
//!
//! - mixed image: 50% zero pages, 30% text-like pages, 20% random pages;
//! - low-entropy image: 50% zero pages, 50% text-like pages.
//!
//! For each, it times (1) the image writer to a directory (including every
//! fsync and the rename), (2) zstd alone on the same bytes at the same
//! level and thread count, streamed into one file and fsynced, and prints
//! the ratio (writer MB/s / zstd MB/s); then (3) reading every page back
//! through `Image::read_area_page` (memory bytes per second, zero pages
//! included), with and without the content-digest check, each read timed
//! three times (the median is shown, with every run).
//!
//! With `SNAPFMT_BENCH_KEEP` set, the images stay (the path is printed),
//! to profile the reader alone on them or to inspect them.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snapfmt::*;
use std::io::Write;
use std::time::Instant;

fn text_page(rng: &mut ChaCha8Rng, words: &[String], out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let w = words[rng.random_range(0..words.len())].as_bytes();
        for &b in w.iter().chain(b" ") {
            if i < out.len() {
                out[i] = b;
                i += 1;
            }
        }
    }
}

/// `pages` pages: kinds chosen with the given per-mille shares of zero and text.
fn synth(pages: usize, zero_pm: u32, text_pm: u32, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words: Vec<String> = (0..2000)
        .map(|_| {
            let len = rng.random_range(2..10);
            (0..len)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect()
        })
        .collect();
    let mut mem = vec![0u8; pages * PAGE_SIZE];
    for page in mem.chunks_exact_mut(PAGE_SIZE) {
        let k = rng.random_range(0..1000u32);
        if k < zero_pm {
        } else if k < zero_pm + text_pm {
            text_page(&mut rng, &words, page);
        } else {
            rng.fill_bytes(page);
        }
    }
    mem
}

fn info() -> ImageInfo {
    ImageInfo {
        tool_version: "bench".into(),
        kernel_build_hash: Digest::default(),
        kernel_abi_version: 1,
        created: Timestamp::default(),
        task_zero: 1,
        options: CheckpointOptions::default(),
        checkpoint_set: vec![SetMember {
            task_id: 1,
            name: "bench".into(),
            role: Role::Checkpointable,
        }],
    }
}

fn task(size: u64) -> TaskRecord {
    TaskRecord {
        meta: TaskMeta {
            task_id: 1,
            name: "bench".into(),
            args: vec![],
            cwd: "/".into(),
            module: ModuleRef::External {
                path: "/bench.wasm".into(),
                sha256: Digest::default(),
            },
            id_view: vec![],
        },
        instance: Default::default(),
        threads: vec![],
        areas: vec![AreaRecord {
            base: 0,
            size,
            flags: area_flags::READ | area_flags::WRITE,
            backing: Backing::Anonymous,
            sharing: vec![],
            pages: PageMap::default(),
        }],
        phones: vec![],
        calls: vec![],
        coop_blobs: vec![],
        file_backups: vec![],
    }
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

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c, t) = (cpu_secs(), Instant::now());
    let r = f();
    (r, t.elapsed().as_secs_f64(), cpu_secs() - c)
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn run(
    level: i32,
    label: &str,
    mem: &[u8],
    threads: usize,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = mem.len();
    println!(
        "== {label}: {} MiB of memory, zstd level {level}, {threads} threads",
        n >> 20
    );

    // zstd alone: same bytes, same level, same threads, into a file, fsynced.
    let zpath = dir.join(format!("{label}.zst"));
    let (r, z_secs, z_cpu) = timed(|| -> Result<(), Box<dyn std::error::Error>> {
        let f = std::fs::File::create(&zpath)?;
        let mut enc =
            zstd::stream::Encoder::new(std::io::BufWriter::with_capacity(1 << 20, f), level)?;
        enc.multithread(threads as u32)?;
        for c in mem.chunks(1 << 20) {
            enc.write_all(c)?;
        }
        let f = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    });
    r?;
    let z_len = std::fs::metadata(&zpath)?.len();
    std::fs::remove_file(&zpath)?;

    // The image writer.
    let ipath = dir.join(label);
    let (done, w_secs, w_cpu) = timed(|| -> Result<Finished, Box<dyn std::error::Error>> {
        let opts = WriterOptions {
            threads,
            level,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&ipath, info(), opts)?;
        for (i, page) in mem.chunks_exact(PAGE_SIZE).enumerate() {
            w.add_page(1, 0, i as u32, page)?;
        }
        w.add_task(task(n as u64))?;
        Ok(w.finish()?)
    });
    let done = done?;
    let s = done.stats;
    println!(
        "pages: {} fed, {} zero, {} duplicate; chunks {}; stored {} MiB (zstd alone {} MiB)",
        s.pages_fed,
        s.zero_pages,
        s.duplicate_pages,
        s.chunks_written,
        s.chunk_stored_bytes >> 20,
        z_len >> 20
    );
    let (wm, zm) = (mbps(n, w_secs), mbps(n, z_secs));
    println!(
        "write: image writer {wm:8.1} MB/s | zstd alone {zm:8.1} MB/s | ratio {:.2} (wall clock)",
        wm / zm
    );
    let (wc, zc) = (mbps(n, w_cpu), mbps(n, z_cpu));
    println!(
        "write per CPU-second: image writer {wc:8.1} MB | zstd alone {zc:8.1} MB | ratio {:.2} (CPU time {w_cpu:.2} s vs {z_cpu:.2} s)",
        wc / zc
    );

    let expect: u64 = mem.chunks_exact(PAGE_SIZE).map(|p| u64::from(p[7])).sum();
    for verify in [true, false] {
        let check = if verify { "on " } else { "off" };
        let one = |how: Read| -> Result<(f64, f64), Box<dyn std::error::Error>> {
            let (sum, secs, cpu) = timed(|| read_all(&ipath, verify, how, threads));
            assert_eq!(sum?, expect, "read back differs");
            Ok((mbps(n, secs), mbps(n, cpu)))
        };
        for (how, what) in [
            (Read::PageByPage, "read_area_page, 1 thread".to_string()),
            (Read::Bulk, format!("for_each_page, {threads} threads")),
        ] {
            let mut runs = (0..READ_RUNS)
                .map(|_| one(how))
                .collect::<Result<Vec<_>, _>>()?;
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (wall, cpu) = runs[runs.len() / 2];
            let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.0)).collect();
            println!(
                "read ({what}, content check {check}): {wall:8.1} MB/s, {cpu:8.1} MB per CPU-second (median of {READ_RUNS}: {} MB/s)",
                all.join(", ")
            );
        }
    }
    // The image stays until the temporary directory goes at the end: on
    // an ext4 without a journal, every file created within minutes of a
    // deletion scans the recently deleted inodes of its group
    // (`recently_deleted` in the kernel), so removing the first image here
    // made the second writer pay for the first one's ~2,000 chunk files
    // (up to 13% of the bench's CPU time in `ext4_create`).
    Ok(())
}

/// How many times each read is timed (the median is shown: single runs on
/// a shared machine swing by a quarter).
const READ_RUNS: usize = 3;

#[derive(Clone, Copy)]
enum Read {
    /// `Image::read_area_page` for every page, on the calling thread.
    PageByPage,
    /// `Image::for_each_page` on `threads` threads.
    Bulk,
}

/// Opens the image and reads every page of its one area; returns the sum
/// of every page's byte 7 (to check what was read).
fn read_all(path: &std::path::Path, verify: bool, how: Read, threads: usize) -> Result<u64> {
    let mut img = Image::open(path)?;
    img.set_verify_content(verify);
    let rec = img.task(1)?;
    let area = &rec.areas[0];
    let mut sum = 0u64;
    match how {
        Read::PageByPage => {
            let mut page = [0u8; PAGE_SIZE];
            for i in 0..(area.size / PAGE_SIZE as u64) as u32 {
                img.read_area_page(area, i, &mut page)?;
                sum = sum.wrapping_add(u64::from(page[7]));
            }
        }
        Read::Bulk => img.for_each_page(area, threads, |_, p| {
            sum = sum.wrapping_add(u64::from(p[7]));
            Ok(())
        })?,
    }
    Ok(sum)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let full = std::env::args().any(|a| a == "--full");
    let mib: usize = std::env::var("SNAPFMT_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1024 } else { 64 });
    let threads: usize = std::env::var("SNAPFMT_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let level: i32 = std::env::var("SNAPFMT_BENCH_LEVEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WriterOptions::default().level);
    let pages = (mib << 20) / PAGE_SIZE;
    let base = std::env::var_os("SNAPFMT_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base)?;
    let mem = synth(pages, 500, 300, 1);
    run(
        level,
        "mixed (50% zero, 30% text, 20% random)",
        &mem,
        threads,
        dir.path(),
    )?;
    drop(mem);
    let mem = synth(pages, 500, 500, 2);
    run(
        level,
        "low-entropy (50% zero, 50% text)",
        &mem,
        threads,
        dir.path(),
    )?;
    if std::env::var_os("SNAPFMT_BENCH_KEEP").is_some() {
        println!("images kept in {}", dir.keep().display());
    }
    Ok(())
}
