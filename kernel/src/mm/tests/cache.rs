//! The access cache of loads and stores: every event that shares, replaces,
//! releases or cleans a primary page must make the next store copy and
//! mark dirty again, and the next load see the current bytes.

use super::super::*;
use super::space_with_primary;

fn dirty(space: &AddressSpace) -> Vec<u64> {
    space.dirty_pages().collect()
}

#[test]
fn store_after_snapshot_copies_again_and_marks_dirty() {
    let mut space = space_with_primary(1);
    // Two stores to one page: the second goes through the cached page.
    space.store(8, [1u8; 4]).expect("store");
    space.store(12, [2u8; 4]).expect("store");
    let first = space.snapshot();
    space.clear_dirty();
    assert!(dirty(&space).is_empty());
    space.store(8, [9u8; 4]).expect("store after snapshot");
    let mut buf = [0u8; 8];
    first.read(8, &mut buf).expect("mapped");
    assert_eq!(
        buf,
        [1, 1, 1, 1, 2, 2, 2, 2],
        "the snapshot saw a later store"
    );
    assert_eq!(dirty(&space), vec![0], "store after clear_dirty not marked");
    assert_eq!(space.load::<4>(8), Ok([9; 4]));
    // A second snapshot, then stores to the same page again.
    let second = space.snapshot();
    space.store(12, [7u8; 4]).expect("store");
    space.store(13, [6u8; 1]).expect("store");
    second.read(8, &mut buf).expect("mapped");
    assert_eq!(buf, [9, 9, 9, 9, 2, 2, 2, 2]);
    assert_eq!(space.load::<4>(12), Ok([7, 6, 7, 7]));
}

#[test]
fn clear_dirty_alone_makes_the_next_store_mark_again() {
    let mut space = space_with_primary(1);
    space.store(100, [1u8; 8]).expect("store");
    space.clear_dirty();
    space.store(108, [2u8; 8]).expect("store");
    assert_eq!(dirty(&space), vec![0]);
}

#[test]
fn load_sees_writes_through_every_path() {
    let mut space = space_with_primary(1);
    // Cache the zero page for reading, then materialise it by a bulk write.
    assert_eq!(space.load::<2>(PAGE_SIZE + 4), Ok([0, 0]));
    space.write(PAGE_SIZE + 4, &[5, 6]).expect("write");
    assert_eq!(space.load::<2>(PAGE_SIZE + 4), Ok([5, 6]));
    // A shared page cached for reading, then copied by a store.
    let snap = space.snapshot();
    assert_eq!(space.load::<1>(PAGE_SIZE + 4), Ok([5]));
    space.store(PAGE_SIZE + 4, [8]).expect("store");
    assert_eq!(space.load::<1>(PAGE_SIZE + 4), Ok([8]));
    let mut b = [0u8];
    snap.read(PAGE_SIZE + 4, &mut b).expect("mapped");
    assert_eq!(b, [5]);
    // Filling the whole page with zeros releases it; then store again.
    space.fill(PAGE_SIZE, 0, PAGE_SIZE).expect("fill");
    assert_eq!(space.load::<1>(PAGE_SIZE + 4), Ok([0]));
    space.store(PAGE_SIZE + 4, [3]).expect("store");
    assert_eq!(space.load::<1>(PAGE_SIZE + 4), Ok([3]));
    // Restoring a page replaces it under the cache.
    let mut page = [0u8; PAGE_SIZE as usize];
    page[4] = 42;
    space.restore_page(PAGE_SIZE, &page).expect("restore");
    assert_eq!(space.load::<1>(PAGE_SIZE + 4), Ok([42]));
    space.store(PAGE_SIZE + 5, [43]).expect("store");
    assert_eq!(space.load::<2>(PAGE_SIZE + 4), Ok([42, 43]));
}

#[test]
fn store_into_a_restored_page_does_not_write_the_source() {
    let mut space = space_with_primary(1);
    space.store(0, [1u8; 4]).expect("store");
    let snap = space.snapshot();
    let mut copy =
        AddressSpace::from_snapshot(MemLimits::unlimited(), &snap, |_| None).expect("restore");
    copy.store(0, [2u8; 4]).expect("store");
    copy.store(4, [3u8; 4]).expect("store");
    space.store(8, [4u8; 4]).expect("store");
    assert_eq!(space.load::<8>(0), Ok([1, 1, 1, 1, 0, 0, 0, 0]));
    assert_eq!(copy.load::<12>(0), Ok([2, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0, 0]));
    let mut b = [0u8; 4];
    snap.read(0, &mut b).expect("mapped");
    assert_eq!(b, [1; 4]);
}

#[test]
fn earlier_write_entries_retire_with_every_clear() {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(40, None).expect("primary area fits");
    let pages = [0, 3, 7, 2];
    // Each store replaces the last write entry; the earlier ones are kept.
    for (i, &p) in pages.iter().enumerate() {
        space.store(p * PAGE_SIZE, [i as u8 + 1]).expect("store");
    }
    // Back to the first page: recalled, and still the live page.
    space.store(1, [9]).expect("store");
    assert_eq!(space.load::<2>(0), Ok([1, 9]));
    // After a snapshot, a recalled entry would write into shared pages.
    let snap = space.snapshot();
    space.clear_dirty();
    for &p in &pages {
        space
            .store(p * PAGE_SIZE, [0xee])
            .expect("store after snapshot");
    }
    for (i, &p) in pages.iter().enumerate() {
        let mut b = [0u8];
        snap.read(p * PAGE_SIZE, &mut b).expect("mapped");
        assert_eq!(b, [i as u8 + 1], "page {p}: the snapshot saw a later store");
        assert_eq!(space.load::<1>(p * PAGE_SIZE), Ok([0xee]));
    }
    assert_eq!(
        dirty(&space),
        [0, 2, 3, 7].map(|p| p * PAGE_SIZE),
        "stores after clear_dirty"
    );
    // A bulk write (through `primary_mut`) retires them too; loads through
    // a recalled entry see it.
    space.store(7 * PAGE_SIZE + 1, [4]).expect("store");
    space.store(3 * PAGE_SIZE + 1, [4]).expect("store");
    space.write(7 * PAGE_SIZE, &[5, 6]).expect("write");
    assert_eq!(space.load::<2>(7 * PAGE_SIZE), Ok([5, 6]));
    // Pages whose index differs by the table size share a slot.
    let far = 512 + 3;
    space.store(far * PAGE_SIZE, [8]).expect("store");
    space.store(3 * PAGE_SIZE + 2, [8]).expect("store");
    assert_eq!(space.load::<3>(3 * PAGE_SIZE), Ok([0xee, 4, 8]));
    assert_eq!(space.load::<1>(far * PAGE_SIZE), Ok([8]));
}

#[test]
fn a_load_from_a_kept_page_leaves_the_write_entry() {
    // A copy loop: reading page 0, written once before, and writing page
    // 5. Recalling page 0 for a load must not take the write entry from
    // page 5, or every load and store of the loop would miss.
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(40, None).expect("primary area fits");
    space.store(0, [1]).expect("store");
    space.store(5 * PAGE_SIZE, [2]).expect("store");
    assert_eq!(space.load::<1>(0), Ok([1]));
    // Both entries hold: page 5 for writing, page 0 for reading.
    let entries = space.cache_entries();
    // Safety: taken just now, and nothing uses the space until the end.
    unsafe {
        assert!(entries.store::<1>(5 * PAGE_SIZE + 1, [3]));
        assert_eq!(entries.load::<1>(0), Some([1]));
    }
    // Reads see what the write entry wrote.
    assert_eq!(space.load::<2>(5 * PAGE_SIZE), Ok([2, 3]));
}
