//! Loads, stores, bulk operations and the faults they raise.

use super::super::*;
use super::space_with_primary;

#[test]
fn untouched_memory_reads_zero_and_costs_nothing() {
    let space = space_with_primary(16);
    assert_eq!(space.load::<8>(0), Ok([0; 8]));
    assert_eq!(space.load::<4>(16 * WASM_PAGE_SIZE - 4), Ok([0; 4]));
    let mut buf = vec![1u8; 100_000];
    space.read(1000, &mut buf).expect("read");
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(space.resident_bytes(), 0);
}

#[test]
fn store_then_load_little_endian() {
    let mut space = space_with_primary(1);
    space
        .store(100, 0x1122_3344u32.to_le_bytes())
        .expect("store");
    assert_eq!(space.load::<1>(100), Ok([0x44]));
    assert_eq!(
        u32::from_le_bytes(space.load::<4>(100).expect("load")),
        0x1122_3344
    );
    assert_eq!(space.resident_bytes(), PAGE_SIZE);
}

#[test]
fn cross_page_accesses() {
    let mut space = space_with_primary(1);
    let bytes = 0x0102_0304_0506_0708u64.to_le_bytes();
    for addr in PAGE_SIZE - 7..PAGE_SIZE {
        space.store(addr, bytes).expect("store across pages");
        assert_eq!(space.load::<8>(addr), Ok(bytes));
    }
    assert_eq!(space.resident_bytes(), 2 * PAGE_SIZE);
    let mut buf = [0u8; 3];
    space.read(PAGE_SIZE - 1, &mut buf).expect("read");
    assert_eq!(buf, [bytes[0], bytes[1], bytes[2]]);
}

#[test]
fn accesses_across_adjacent_areas() {
    let mut space = space_with_primary(1);
    space
        .create_area(WASM_PAGE_SIZE, PAGE_SIZE, AreaFlags::RW)
        .expect("adjacent area");
    space
        .store(WASM_PAGE_SIZE - 2, [1, 2, 3, 4])
        .expect("store across primary and area");
    assert_eq!(space.load::<4>(WASM_PAGE_SIZE - 2), Ok([1, 2, 3, 4]));
    space.fill(WASM_PAGE_SIZE - 10, 7, 20).expect("fill across");
    assert_eq!(space.load::<2>(WASM_PAGE_SIZE + 9), Ok([7, 0]));
}

#[test]
fn faults_report_the_first_refused_address() {
    let mut space = space_with_primary(1);
    let end = WASM_PAGE_SIZE;
    assert_eq!(space.load::<4>(end), Err(Fault::Unmapped { addr: end }));
    assert_eq!(space.load::<4>(end - 2), Err(Fault::Unmapped { addr: end }));
    assert_eq!(
        space.store(end - 1, [0, 0]),
        Err(Fault::Unmapped { addr: end })
    );
    // Effective addresses beyond 4 GiB (u32 base + u32 offset).
    let beyond = u64::from(u32::MAX) + 5;
    assert_eq!(
        space.load::<1>(beyond),
        Err(Fault::Unmapped { addr: beyond })
    );
    assert_eq!(
        space.load::<8>(u64::MAX - 3),
        Err(Fault::Unmapped { addr: u64::MAX - 3 })
    );
    assert_eq!(
        space.store(beyond, [1]),
        Err(Fault::Unmapped { addr: beyond })
    );
    // The failed store straddling the end wrote nothing.
    assert_eq!(space.load::<1>(end - 1), Ok([0]));
    assert_eq!(space.resident_bytes(), 0);
}

#[test]
fn protection_faults() {
    let mut space = space_with_primary(1);
    let ro = 0x10_0000;
    let wo = 0x20_0000;
    let none = 0x30_0000;
    space
        .create_area(ro, PAGE_SIZE, AreaFlags::READ)
        .expect("ro");
    space
        .create_area(wo, PAGE_SIZE, AreaFlags::WRITE)
        .expect("wo");
    space
        .create_area(none, PAGE_SIZE, AreaFlags::NONE)
        .expect("guard");
    assert_eq!(space.load::<4>(ro + 8), Ok([0; 4]));
    assert_eq!(
        space.store(ro + 8, [1]),
        Err(Fault::Protection {
            addr: ro + 8,
            write: true
        })
    );
    space.store(wo + 8, [1]).expect("write-only store");
    assert_eq!(
        space.load::<1>(wo + 8),
        Err(Fault::Protection {
            addr: wo + 8,
            write: false
        })
    );
    assert_eq!(
        space.load::<1>(none),
        Err(Fault::Protection {
            addr: none,
            write: false
        })
    );
    // Writable area followed by a read-only one: the fault is at the boundary.
    space
        .create_area(ro - PAGE_SIZE, PAGE_SIZE, AreaFlags::RW)
        .expect("rw below ro");
    assert_eq!(
        space.write(ro - 2, &[1, 2, 3, 4]),
        Err(Fault::Protection {
            addr: ro,
            write: true
        })
    );
    assert_eq!(space.load::<2>(ro - 2), Ok([0, 0]), "nothing written");
    let fault = space.store(ro, [1]).expect_err("read-only");
    assert_eq!(
        fault.to_string(),
        "page fault at 0x100000: write access not permitted by the area"
    );
    assert_eq!(fault.addr(), ro);
}

#[test]
fn bulk_operations_write_nothing_on_fault() {
    let mut space = space_with_primary(1);
    let end = WASM_PAGE_SIZE;
    space.fill(0, 0xaa, end).expect("fill all");
    assert_eq!(
        space.fill(end - 100, 1, 101),
        Err(Fault::Unmapped { addr: end })
    );
    assert_eq!(space.load::<1>(end - 100), Ok([0xaa]));
    assert_eq!(
        space.write(end - 3, &[1, 2, 3, 4]),
        Err(Fault::Unmapped { addr: end })
    );
    assert_eq!(space.load::<3>(end - 3), Ok([0xaa; 3]));
    assert_eq!(
        space.copy_within(0, end - 10, 11),
        Err(Fault::Unmapped { addr: end })
    );
    assert_eq!(
        space.copy_within(end - 10, 0, 11),
        Err(Fault::Unmapped { addr: end })
    );
    let mut buf = [0u8; 11];
    space.read(end - 11, &mut buf).expect("read");
    assert_eq!(buf, [0xaa; 11]);
}

#[test]
fn zero_length_bulk_operations_at_the_end() {
    let mut space = space_with_primary(1);
    let end = WASM_PAGE_SIZE;
    space.fill(end, 1, 0).expect("zero fill at the end");
    space.copy_within(end, 0, 0).expect("zero copy at the end");
    assert_eq!(
        space.fill(end + 1, 1, 0),
        Err(Fault::Unmapped { addr: end + 1 })
    );
    assert_eq!(
        space.check_range(end + 1, 0, false),
        Err(Fault::Unmapped { addr: end + 1 })
    );
}

#[test]
fn copy_within_is_memmove() {
    let mut space = space_with_primary(1);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    space.write(100, &data).expect("write");
    // Forward overlapping move.
    space.copy_within(50, 100, 10_000).expect("copy down");
    let mut buf = vec![0u8; 10_000];
    space.read(50, &mut buf).expect("read");
    assert_eq!(buf, data);
    // Backward overlapping move.
    space.copy_within(5000, 50, 10_000).expect("copy up");
    space.read(5000, &mut buf).expect("read");
    assert_eq!(buf, data);
}

#[test]
fn zero_fill_of_whole_pages_releases_them() {
    let mut space = space_with_primary(1);
    space.fill(0, 1, 3 * PAGE_SIZE).expect("fill");
    assert_eq!(space.resident_bytes(), 3 * PAGE_SIZE);
    space.fill(10, 0, 3 * PAGE_SIZE - 10).expect("zero fill");
    assert_eq!(
        space.resident_bytes(),
        PAGE_SIZE,
        "first page stays (partly 1)"
    );
    assert_eq!(space.load::<1>(9), Ok([1]));
    assert_eq!(space.load::<1>(10), Ok([0]));
    assert_eq!(space.load::<1>(2 * PAGE_SIZE), Ok([0]));
}

#[test]
fn check_range_spans_areas() {
    let mut space = space_with_primary(1);
    space
        .create_area(WASM_PAGE_SIZE, PAGE_SIZE, AreaFlags::READ)
        .expect("ro area");
    space
        .check_range(0, WASM_PAGE_SIZE + PAGE_SIZE, false)
        .expect("readable all the way");
    assert_eq!(
        space.check_range(10, WASM_PAGE_SIZE, true),
        Err(Fault::Protection {
            addr: WASM_PAGE_SIZE,
            write: true
        })
    );
    assert_eq!(
        space.check_range(0, WASM_PAGE_SIZE + PAGE_SIZE + 1, false),
        Err(Fault::Unmapped {
            addr: WASM_PAGE_SIZE + PAGE_SIZE
        })
    );
}
