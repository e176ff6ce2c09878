//! Pages pending in a source (lazy restore): what they read as, how they
//! come in, and what a lost one does.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::space_with_primary;
use crate::mm::{
    AddressSpace, AreaFlags, BackingId, Fault, LostPage, MemLimits, PAGE_SIZE, Page, PageSource,
    Pending, SharedBacking,
};

/// Page `i` of the source is filled with byte `i + 1`, except the pages
/// in `lost`; counts its reads.
#[derive(Debug, Default)]
struct Source {
    lost: Mutex<BTreeSet<u64>>,
    reads: AtomicU64,
}

impl PageSource for Source {
    fn read(&self, index: u64, out: &mut Page) -> Result<(), LostPage> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if self.lost.lock().unwrap().contains(&index) {
            return Err(LostPage(format!("page {index} fails its check")));
        }
        out.fill(index as u8 + 1);
        Ok(())
    }
}

/// A primary area of one wasm page (16 kernel pages) with pages 0..8
/// pending in a fresh source.
fn lazy_space() -> (AddressSpace, Arc<Source>) {
    let mut space = space_with_primary(1);
    let src = Arc::new(Source::default());
    space
        .set_pending(0, Pending::new(src.clone(), 0..8))
        .expect("primary exists");
    (space, src)
}

fn reads(src: &Source) -> u64 {
    src.reads.load(Ordering::Relaxed)
}

#[test]
fn pending_pages_read_as_the_source_and_come_in_on_a_mut_load() {
    let (mut space, src) = lazy_space();
    assert_eq!(space.pending_pages(), (8, 0));
    // Through `&self`: copied through the source, nothing installed, and
    // the access cache must not remember the empty slot as zeros.
    assert_eq!(space.load::<1>(3 * PAGE_SIZE), Ok([4]));
    assert_eq!(space.load::<1>(3 * PAGE_SIZE + 1), Ok([4]));
    let mut buf = [0u8; 8];
    space.read(PAGE_SIZE - 4, &mut buf).unwrap();
    assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 2]);
    assert_eq!(space.pending_pages(), (8, 0));
    // Through `&mut`: installed once, then read from the table.
    assert_eq!(space.load_mut::<1>(3 * PAGE_SIZE), Ok([4]));
    let before = reads(&src);
    assert_eq!(space.load_mut::<1>(3 * PAGE_SIZE + 9), Ok([4]));
    assert_eq!(reads(&src), before);
    assert_eq!(space.pending_pages(), (7, 0));
    // Coming in is not a write.
    assert_eq!(space.dirty_pages().count(), 0);
    // A page never pending still reads as zero.
    assert_eq!(space.load_mut::<1>(9 * PAGE_SIZE), Ok([0]));
}

#[test]
fn a_store_faults_the_page_in_and_keeps_its_other_bytes() {
    let (mut space, _src) = lazy_space();
    space.store::<1>(2 * PAGE_SIZE + 5, [0xaa]).unwrap();
    let mut page = [0u8; PAGE_SIZE as usize];
    space.read(2 * PAGE_SIZE, &mut page).unwrap();
    assert_eq!(page[5], 0xaa);
    assert!(page.iter().enumerate().all(|(i, &b)| i == 5 || b == 3));
    assert_eq!(space.pending_pages(), (7, 0));
    assert_eq!(space.dirty_pages().collect::<Vec<_>>(), [2 * PAGE_SIZE]);
}

#[test]
fn a_whole_page_zero_fill_needs_no_read() {
    let (mut space, src) = lazy_space();
    src.lost.lock().unwrap().insert(4);
    space.fill(4 * PAGE_SIZE, 0, PAGE_SIZE).unwrap();
    assert_eq!(reads(&src), 0);
    assert_eq!(space.load_mut::<8>(4 * PAGE_SIZE), Ok([0; 8]));
    assert_eq!(space.pending_pages(), (7, 0));
    // A partial fill does read it.
    space.fill(5 * PAGE_SIZE + 1, 7, 2).unwrap();
    assert_eq!(space.load_mut::<4>(5 * PAGE_SIZE), Ok([6, 7, 7, 6]));
}

#[test]
fn a_lost_page_faults_and_nothing_is_written() {
    let (mut space, src) = lazy_space();
    src.lost.lock().unwrap().insert(6);
    assert_eq!(
        space.load_mut::<4>(6 * PAGE_SIZE + 8),
        Err(Fault::Lost {
            addr: 6 * PAGE_SIZE + 8
        })
    );
    let mut buf = [0u8; 2];
    assert_eq!(
        space.read(6 * PAGE_SIZE, &mut buf),
        Err(Fault::Lost {
            addr: 6 * PAGE_SIZE
        })
    );
    // A write over pages 5 and 6 faults at page 6 and leaves page 5 as it
    // was (it may have come in: its bytes are the source's).
    let data = [0xffu8; 16];
    assert_eq!(
        space.write(6 * PAGE_SIZE - 8, &data),
        Err(Fault::Lost {
            addr: 6 * PAGE_SIZE
        })
    );
    assert_eq!(space.load_mut::<8>(6 * PAGE_SIZE - 8), Ok([6; 8]));
    assert_eq!(
        space.store::<4>(6 * PAGE_SIZE + 100, [1; 4]),
        Err(Fault::Lost {
            addr: 6 * PAGE_SIZE + 100
        })
    );
    assert_eq!(
        space.copy_within(0, 6 * PAGE_SIZE, 8),
        Err(Fault::Lost {
            addr: 6 * PAGE_SIZE
        })
    );
    assert_eq!(space.load::<1>(0), Ok([1]));
    assert_eq!(space.dirty_pages().count(), 0);
}

#[test]
fn the_fill_installs_only_pages_still_pending() {
    let (mut space, src) = lazy_space();
    let source: Arc<dyn PageSource> = src.clone();
    space.store::<1>(PAGE_SIZE, [0x55]).unwrap();
    let page = |b: u8| Arc::new([b; PAGE_SIZE as usize]);
    // Page 1 was written: it keeps the write.
    assert!(!space.fill_pending(0, &*source, 1, page(2)));
    assert_eq!(space.load::<1>(PAGE_SIZE), Ok([0x55]));
    // Another source's fill changes nothing.
    let other: Arc<dyn PageSource> = Arc::new(Source::default());
    assert!(!space.fill_pending(0, &*other, 0, page(9)));
    for i in [0, 2, 3, 4, 5, 6, 7] {
        assert!(space.fill_pending(0, &*source, i, page(i as u8 + 1)));
    }
    assert_eq!(space.pending_pages(), (0, 0));
    assert_eq!(space.load::<1>(7 * PAGE_SIZE), Ok([8]));
    assert_eq!(space.dirty_pages().collect::<Vec<_>>(), [PAGE_SIZE]);
}

#[test]
fn a_snapshot_of_a_half_loaded_space_holds_every_page() {
    let (mut space, src) = lazy_space();
    space.load_mut::<1>(0).unwrap();
    space.store::<1>(3 * PAGE_SIZE, [0xee]).unwrap();
    let snap = space.snapshot();
    let stored: Vec<(u64, u8)> = snap.areas[0]
        .stored_pages()
        .map(|r| r.map(|(i, p)| (i, p[0])))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        [
            (0, 1),
            (1, 2),
            (2, 3),
            (3, 0xee),
            (4, 5),
            (5, 6),
            (6, 7),
            (7, 8)
        ]
    );
    assert_eq!(snap.areas[0].resident_pages(), 2);
    // The space runs on: loading more does not change the snapshot, and a
    // space recreated from it is as lazy as it was.
    space.load_mut::<1>(5 * PAGE_SIZE).unwrap();
    assert_eq!(snap.areas[0].pending().map(|p| p.count()), Some(6));
    let mut again = AddressSpace::from_snapshot(MemLimits::unlimited(), &snap, |_| None).unwrap();
    assert_eq!(again.pending_pages(), (6, 0));
    assert_eq!(again.load_mut::<1>(6 * PAGE_SIZE), Ok([7]));
    // A lost page ends the walk with its error.
    src.lost.lock().unwrap().insert(7);
    assert!(snap.areas[0].stored_pages().any(|r| r.is_err()));
}

#[test]
fn pending_pages_of_a_shared_backing_come_in_for_every_mapping() {
    let backing = SharedBacking::new(BackingId(1), 4 * PAGE_SIZE).unwrap();
    let mut a = AddressSpace::new(MemLimits::unlimited());
    a.map_shared(0x10000, &backing, AreaFlags::RW).unwrap();
    let src = Arc::new(Source::default());
    a.set_pending(0x10000, Pending::new(src.clone(), [1, 2]))
        .unwrap();
    let mut b = AddressSpace::new(MemLimits::unlimited());
    b.map_shared(0x40000, &backing, AreaFlags::RW).unwrap();
    assert_eq!(b.pending_pages(), (0, 2));
    assert_eq!(b.load::<1>(0x40000 + PAGE_SIZE), Ok([2]));
    // The read through the lock installed it, for both spaces.
    assert_eq!(a.pending_pages(), (0, 1));
    b.store::<1>(0x40000 + 2 * PAGE_SIZE, [9]).unwrap();
    assert_eq!(a.load::<2>(0x10000 + 2 * PAGE_SIZE), Ok([9, 3]));
    assert_eq!(a.pending_pages(), (0, 0));
}

#[test]
fn pending_from_ranges_counts_each_page_once() {
    let src: Arc<dyn PageSource> = Arc::new(Source::default());
    let p = Pending::from_ranges(src.clone(), [3..70, 60..130, 200..200, 500..501]);
    assert_eq!(p.count(), 128);
    let q = Pending::new(src, (3..130).chain([500]));
    assert_eq!(p.iter().collect::<Vec<_>>(), q.iter().collect::<Vec<_>>());
}
