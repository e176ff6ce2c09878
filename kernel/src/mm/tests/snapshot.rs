//! Snapshots (copy-on-write isolation), dirty bits, restore and shared
//! backings.

use std::sync::Arc;

use super::super::*;
use super::space_with_primary;

#[test]
fn snapshot_is_isolated_from_later_writes() {
    let mut space = space_with_primary(2);
    space.fill(0, 1, 3 * PAGE_SIZE).expect("fill");
    let snap = space.snapshot();
    space.store(10, [2]).expect("store");
    space.store(5 * PAGE_SIZE, [3]).expect("store new page");
    space.fill(PAGE_SIZE, 0, PAGE_SIZE).expect("zero page 1");

    let mut buf = [0u8; 1];
    snap.read(10, &mut buf).expect("mapped");
    assert_eq!(buf, [1]);
    snap.read(5 * PAGE_SIZE, &mut buf).expect("mapped");
    assert_eq!(buf, [0]);
    snap.read(PAGE_SIZE + 7, &mut buf).expect("mapped");
    assert_eq!(buf, [1]);
    let pages: Vec<u64> = snap.areas[0].pages().map(|(i, _)| i).collect();
    assert_eq!(pages, vec![0, 1, 2]);
    assert_eq!(space.load::<1>(10), Ok([2]));
    // The untouched page 2 is still shared, not copied.
    let live = space.snapshot();
    let a = snap.areas[0].pages().find(|(i, _)| *i == 2).map(|(_, p)| p);
    let b = live.areas[0].pages().find(|(i, _)| *i == 2).map(|(_, p)| p);
    assert!(Arc::ptr_eq(a.expect("page 2"), b.expect("page 2")));
}

#[test]
fn snapshot_describes_areas() {
    let mut space = space_with_primary(1);
    space
        .create_area(0x10_0000, 2 * PAGE_SIZE, AreaFlags::READ)
        .expect("area");
    let backing = SharedBacking::new(BackingId(7), PAGE_SIZE).expect("backing");
    space
        .map_shared(0x20_0000, &backing, AreaFlags::RW)
        .expect("map");
    space
        .restore_page(0x10_1000, &[5; 4096])
        .expect("restore into ro");
    let snap = space.snapshot();
    let shape: Vec<(u64, u64, AreaFlags, AreaKind)> = snap
        .areas
        .iter()
        .map(|a| (a.base, a.size, a.flags, a.kind))
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                0,
                WASM_PAGE_SIZE,
                AreaFlags::RW,
                AreaKind::Primary { max_wasm_pages: 16 }
            ),
            (
                0x10_0000,
                2 * PAGE_SIZE,
                AreaFlags::READ,
                AreaKind::Anonymous
            ),
            (
                0x20_0000,
                PAGE_SIZE,
                AreaFlags::RW,
                AreaKind::Shared {
                    backing: BackingId(7)
                }
            ),
        ]
    );
    let pages: Vec<(u64, u8)> = snap.areas[1].pages().map(|(i, p)| (i, p[0])).collect();
    assert_eq!(pages, vec![(1, 5)]);
}

#[test]
fn dirty_bits_track_writes_since_clear() {
    let mut space = space_with_primary(1);
    space
        .create_area(0x10_0000, 4 * PAGE_SIZE, AreaFlags::RW)
        .expect("area");
    space.store(PAGE_SIZE + 3, [1]).expect("store");
    space
        .store(2 * PAGE_SIZE - 1, [1, 1])
        .expect("cross-page store");
    space
        .fill(0x10_2000, 0, 10)
        .expect("zero fill counts as a write");
    space.restore_page(0x10_3000, &[1; 4096]).expect("restore");
    let dirty: Vec<u64> = space.dirty_pages().collect();
    assert_eq!(dirty, vec![PAGE_SIZE, 2 * PAGE_SIZE, 0x10_2000]);
    space.clear_dirty();
    assert_eq!(space.dirty_pages().count(), 0);
    let _ = space.load::<4>(PAGE_SIZE).expect("load");
    assert_eq!(space.dirty_pages().count(), 0, "loads do not dirty");
    space.store(0x10_3000, [2]).expect("store");
    assert_eq!(space.dirty_pages().collect::<Vec<_>>(), vec![0x10_3000]);
}

#[test]
fn failed_store_does_not_dirty() {
    let mut space = space_with_primary(1);
    let _ = space.store(WASM_PAGE_SIZE - 1, [1, 2]);
    assert_eq!(space.dirty_pages().count(), 0);
}

#[test]
fn restore_from_snapshot_shares_pages() {
    let mut space = space_with_primary(2);
    space
        .create_area(0x10_0000, PAGE_SIZE, AreaFlags::READ)
        .expect("area");
    space.restore_page(0x10_0000, &[9; 4096]).expect("restore");
    space.fill(100, 3, 70_000).expect("fill");
    let snap = space.snapshot();
    let mut copy = AddressSpace::from_snapshot(space.limits(), &snap, |_| None).expect("restore");
    assert_eq!(copy.primary_wasm_pages(), 2);
    assert_eq!(copy.primary_max_wasm_pages(), 16);
    assert_eq!(copy.areas(), space.areas());
    assert_eq!(copy.load::<2>(0x10_0000), Ok([9, 9]));
    assert_eq!(copy.load::<2>(99), Ok([0, 3]));
    assert_eq!(copy.dirty_pages().count(), 0);
    copy.store(100, [4]).expect("store");
    assert_eq!(space.load::<1>(100), Ok([3]), "copies are isolated");
    assert_eq!(copy.grow_primary(1), Some(2));
}

#[test]
fn restore_page_checks_its_target() {
    let mut space = space_with_primary(1);
    assert!(matches!(
        space.restore_page(100, &[1; 4096]),
        Err(MmError::Unaligned { .. })
    ));
    assert_eq!(
        space.restore_page(WASM_PAGE_SIZE, &[1; 4096]),
        Err(MmError::NotMapped {
            addr: WASM_PAGE_SIZE
        })
    );
    space.restore_page(0, &[1; 4096]).expect("restore");
    space.restore_page(0, &[0; 4096]).expect("restore zero");
    assert_eq!(space.resident_bytes(), 0, "a zero page is not stored");
}

#[test]
fn shared_backing_is_visible_through_both_spaces() {
    let backing = SharedBacking::new(BackingId(1), 4 * PAGE_SIZE).expect("backing");
    let mut a = space_with_primary(1);
    let mut b = space_with_primary(1);
    a.map_shared(0x10_0000, &backing, AreaFlags::RW)
        .expect("map a");
    b.map_shared(0x40_0000, &backing, AreaFlags::READ)
        .expect("map b");
    a.store(0x10_1ffe, [1, 2, 3, 4]).expect("store through a");
    assert_eq!(b.load::<4>(0x40_1ffe), Ok([1, 2, 3, 4]));
    assert_eq!(
        b.store(0x40_0000, [1]),
        Err(Fault::Protection {
            addr: 0x40_0000,
            write: true
        })
    );
    assert_eq!(
        a.page_key(0x10_1004),
        Some(PageKey::Shared {
            backing: BackingId(1),
            page_index: 1
        })
    );
    assert_eq!(a.page_key(0x10_1004), b.page_key(0x40_1000));
    assert_eq!(a.page_key(0x123), Some(PageKey::Private { page_addr: 0 }));
    assert_eq!(a.page_key(0x9000_0000), None);
    // Dirty bits live with the backing.
    assert_eq!(
        b.dirty_pages().collect::<Vec<_>>(),
        vec![0x40_1000, 0x40_2000]
    );
    // Snapshots of both spaces name the same backing; a later write does
    // not change them.
    let sa = a.snapshot();
    a.store(0x10_1ffe, [9]).expect("store");
    let sb = b.snapshot();
    assert_eq!(sa.areas[1].kind, sb.areas[1].kind);
    assert_eq!(sa.areas[1].page(1).unwrap()[0xffe], 1);
    assert_eq!(sb.areas[1].page(1).unwrap()[0xffe], 9);
    assert_eq!(a.shared_resident_bytes(), 2 * PAGE_SIZE);
    assert_eq!(a.resident_bytes(), 0);
    // Unmapping from one space leaves the other working.
    a.destroy_area(0x10_0000).expect("unmap");
    assert_eq!(b.load::<1>(0x40_1ffe), Ok([9]));
    // Restore maps the snapshot's backing to a live one by id.
    let c = AddressSpace::from_snapshot(MemLimits::unlimited(), &sb, |id| {
        (id == backing.id()).then(|| backing.clone())
    })
    .expect("restore");
    b.store(0x40_0000, [0]).expect_err("b is read-only");
    a.map_shared(0x10_0000, &backing, AreaFlags::RW)
        .expect("map a again");
    a.store(0x10_0000, [42]).expect("store");
    assert_eq!(c.load::<1>(0x40_0000), Ok([42]));
}

#[test]
fn shared_backing_validation() {
    assert!(SharedBacking::new(BackingId(1), 0).is_err());
    assert!(SharedBacking::new(BackingId(1), 100).is_err());
    let backing = SharedBacking::new(BackingId(1), PAGE_SIZE).expect("backing");
    assert!(backing.restore_page(1, &[1; 4096]).is_err());
    backing.restore_page(0, &[1; 4096]).expect("restore");
    let mut space = space_with_primary(1);
    space
        .map_shared(0x10_0000, &backing, AreaFlags::READ)
        .expect("map");
    assert_eq!(space.load::<1>(0x10_0fff), Ok([1]));
    assert!(
        space
            .map_shared(0x10_0000, &backing, AreaFlags::READ)
            .is_err()
    );
}

#[test]
fn page_reference_snapshot_costs_leaves_not_pages() {
    // 8 MiB touched: 2048 pages in 4 leaves; the snapshot shares them all.
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(128, None).expect("primary");
    space.fill(0, 1, 128 * WASM_PAGE_SIZE).expect("touch");
    let before = space.resident_bytes();
    let snap = space.snapshot();
    assert_eq!(snap.areas[0].resident_pages(), 2048);
    assert_eq!(space.resident_bytes(), before);
    // Writing one page copies one leaf and one page, not more.
    space.store(0, [2]).expect("store");
    let live = space.snapshot();
    let shared = snap.areas[0]
        .pages()
        .zip(live.areas[0].pages())
        .filter(|((_, a), (_, b))| Arc::ptr_eq(a, b))
        .count();
    assert_eq!(shared, 2047);
}
