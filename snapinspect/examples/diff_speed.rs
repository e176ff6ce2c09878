//! Measures `snapinspect diff` on two large images that differ in 1% of
//! their pages, against reading every page of both (what a diff without
//! digest comparison would have to do).
//!
//! `cargo run --release -p snapinspect --example diff_speed -- [MiB]`
//! (default 256 MiB of address space; a third of the pages are zero).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use snapfmt::exec::{ExecState, InstanceState, Suspension};
use snapfmt::*;
use snapinspect::diff::{DiffOptions, diff_images};

fn page(n: u32, flip: bool) -> Vec<u8> {
    let mut p: Vec<u8> = format!("page {n:08} of a large image; ")
        .bytes()
        .cycle()
        .take(PAGE_SIZE)
        .collect();
    if flip {
        p[7] ^= 0xff;
    }
    p
}

fn write(path: &Path, pages: u32, changed: impl Fn(u32) -> bool) -> anyhow::Result<()> {
    let info = ImageInfo {
        tool_version: "diff_speed".into(),
        kernel_build_hash: Digest::of(b"k"),
        kernel_abi_version: 1,
        created: Timestamp::default(),
        task_zero: 1,
        options: CheckpointOptions::default(),
        checkpoint_set: vec![SetMember {
            task_id: 1,
            name: "big".into(),
            role: Role::Checkpointable,
        }],
    };
    let mut w = ImageWriter::create(path, info, WriterOptions::default())?;
    for n in 0..pages {
        if n % 3 != 2 {
            w.add_page(1, 0, n, &page(n, changed(n)))?;
        }
    }
    w.add_task(TaskRecord {
        meta: TaskMeta {
            task_id: 1,
            name: "big".into(),
            args: vec![],
            cwd: "/".into(),
            module: ModuleRef::External {
                path: "/big.wasm".into(),
                sha256: Digest::of(b"m"),
            },
            id_view: vec![],
        },
        instance: InstanceState::default(),
        threads: vec![ThreadContext {
            thread_id: 1,
            exec: ExecState {
                frames: vec![],
                globals: vec![],
                suspension: Suspension::Ready,
                fuel_left: 0,
            },
            syscall: SyscallState::None,
            active_sync_call: None,
            kernel_build_hash: Digest::of(b"k"),
        }],
        areas: vec![AreaRecord {
            base: 0,
            size: u64::from(pages) * PAGE_SIZE as u64,
            flags: area_flags::READ | area_flags::WRITE,
            backing: Backing::Anonymous,
            sharing: vec![],
            pages: PageMap::default(),
        }],
        phones: vec![],
        calls: vec![],
        coop_blobs: vec![],
        file_backups: vec![],
    })?;
    w.finish()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mib: u32 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("the argument is a size in MiB")?,
        None => 256,
    };
    let pages = mib * 256;
    let tmp = tempfile::tempdir()?;
    let a = tmp.path().join("a");
    write(&a, pages, |_| false)?;
    // 1% of the pages differ: clustered in one run (as dirty pages of a
    // running task tend to be), or scattered evenly, which touches nearly
    // every chunk of 64 pages and so leaves little to skip.
    let (lo, hi) = (pages / 2, pages / 2 + pages / 100);
    let patterns: [(&str, &dyn Fn(u32) -> bool); 2] = [
        ("clustered", &|n: u32| n % 3 != 2 && (lo..hi).contains(&n)),
        ("scattered", &|n: u32| n % 3 != 2 && n % 100 == 50),
    ];
    for (name, changed) in patterns {
        let b = tmp.path().join(name);
        write(&b, pages, changed)?;
        let expected = (0..pages).filter(|&n| changed(n)).count() as u64;
        let (ia, ib) = (Image::open(&a)?, Image::open(&b)?);
        let t = Instant::now();
        let report = diff_images(&ia, &ib, DiffOptions::default())?;
        let diff_s = t.elapsed().as_secs_f64();
        let found: u64 = report
            .tasks_changed
            .iter()
            .flat_map(|t| &t.areas.changed)
            .map(|a| a.pages.changed_pages)
            .sum();
        anyhow::ensure!(
            found == expected,
            "diff found {found} changed pages, expected {expected}"
        );

        let (ra, rb) = (Image::open(&a)?, Image::open(&b)?);
        let t = Instant::now();
        let mut buf = [0u8; PAGE_SIZE];
        for img in [&ra, &rb] {
            let task = img.task(1)?;
            for n in 0..pages {
                img.read_area_page(&task.areas[0], n, &mut buf)?;
            }
        }
        let read_s = t.elapsed().as_secs_f64();
        println!(
            "{mib} MiB area, {pages} pages, {expected} changed ({name}): diff {diff_s:.3} s, \
             reading every page of both {read_s:.3} s (ratio {:.3})",
            diff_s / read_s
        );
    }
    Ok(())
}
