//! Address-space benchmarks: taking copy-on-write page references of a task
//! with 1 GiB of touched memory (the freeze-time target: well under 1 ms),
//! the cost of the first write after a snapshot, and the primary-area
//! load/store hot path against a plain byte vector.

use std::hint::black_box;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spartan_kernel::mm::{AddressSpace, MemLimits, PAGE_SIZE, WASM_PAGE_SIZE};

/// 1 GiB in wasm pages.
const GIB_WASM_PAGES: u32 = 16384;

/// A space whose primary area of 1 GiB has every one of its 262,144 pages
/// materialised (one non-zero byte written per page).
fn touched_gib() -> AddressSpace {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space
        .create_primary(GIB_WASM_PAGES, None)
        .expect("1 GiB primary area");
    let len = u64::from(GIB_WASM_PAGES) * WASM_PAGE_SIZE;
    for page in 0..len / PAGE_SIZE {
        space
            .store(page * PAGE_SIZE, [(page % 251) as u8 + 1])
            .expect("touch page");
    }
    assert_eq!(space.resident_bytes(), len, "1 GiB must be resident");
    space
}

fn snapshot_gib(c: &mut Criterion) {
    let mut space = touched_gib();
    let mut group = c.benchmark_group("snapshot");
    group.bench_function("page_refs_1GiB_touched", |b| {
        b.iter_with_large_drop(|| space.snapshot());
    });
    group.bench_function("page_refs_and_drop_1GiB_touched", |b| {
        b.iter(|| drop(black_box(space.snapshot())));
    });
    // The task runs on after a snapshot: the first write to a page the
    // snapshot holds copies its leaf (512 references) and the page.
    group.bench_function("first_write_after_snapshot", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let snap = space.snapshot();
                let start = Instant::now();
                space.store(12_345 * PAGE_SIZE + 8, [7]).expect("store");
                total += start.elapsed();
                drop(snap);
            }
            total
        });
    });
    let snap = space.snapshot();
    let pages = snap.areas[0].pages().count();
    assert_eq!(pages, 262_144);
    group.finish();
}

fn hot_path(c: &mut Criterion) {
    const LEN: u64 = 1 << 20;
    let mut group = c.benchmark_group("primary_access_1MiB");
    group.throughput(Throughput::Bytes(LEN));
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(16, None).expect("primary");
    let mut vec = vec![0u8; LEN as usize];
    group.bench_function("mm_store_u32", |b| {
        b.iter(|| {
            for addr in (0..LEN).step_by(4) {
                space
                    .store(black_box(addr), (addr as u32).to_le_bytes())
                    .expect("in bounds");
            }
        });
    });
    group.bench_function("vec_store_u32", |b| {
        b.iter(|| {
            for addr in (0..LEN).step_by(4) {
                let a = black_box(addr) as usize;
                vec[a..a + 4].copy_from_slice(&(addr as u32).to_le_bytes());
            }
        });
    });
    group.bench_function("mm_load_u32", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for addr in (0..LEN).step_by(4) {
                let bytes = space.load::<4>(black_box(addr)).expect("in bounds");
                sum = sum.wrapping_add(u32::from_le_bytes(bytes));
            }
            sum
        });
    });
    group.bench_function("vec_load_u32", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for addr in (0..LEN).step_by(4) {
                let a = black_box(addr) as usize;
                let bytes: [u8; 4] = vec[a..a + 4].try_into().expect("4 bytes");
                sum = sum.wrapping_add(u32::from_le_bytes(bytes));
            }
            sum
        });
    });
    group.finish();
}

criterion_group!(benches, snapshot_gib, hot_path);
criterion_main!(benches);
