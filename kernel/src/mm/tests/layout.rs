//! Area layout: primary creation, memory.grow, further areas, limits.

use super::super::*;
use super::space_with_primary;

#[test]
fn primary_sizes_and_grow() {
    let mut space = space_with_primary(1);
    assert!(space.has_primary());
    assert_eq!(space.primary_wasm_pages(), 1);
    assert_eq!(space.grow_primary(2), Some(1));
    assert_eq!(space.primary_wasm_pages(), 3);
    assert_eq!(space.grow_primary(0), Some(3));
    // Maximum 16 pages.
    assert_eq!(space.grow_primary(14), None);
    assert_eq!(space.primary_wasm_pages(), 3);
    assert_eq!(space.grow_primary(13), Some(3));
    assert_eq!(space.grow_primary(1), None);
    assert_eq!(space.grow_primary(u32::MAX), None);
}

#[test]
fn grow_without_primary_fails() {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    assert!(!space.has_primary());
    assert_eq!(space.grow_primary(1), None);
    assert_eq!(space.primary_wasm_pages(), 0);
}

#[test]
fn primary_rejects_bad_sizes() {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    assert!(matches!(
        space.create_primary(3, Some(2)),
        Err(MmError::BadPrimarySize { .. })
    ));
    assert!(matches!(
        space.create_primary(65537, None),
        Err(MmError::BadPrimarySize { .. })
    ));
    space.create_primary(0, None).expect("empty primary");
    assert_eq!(space.create_primary(1, None), Err(MmError::PrimaryExists));
    assert_eq!(space.primary_max_wasm_pages(), 65536);
}

#[test]
fn full_4gib_primary_grows_to_the_end() {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(65535, None).expect("primary");
    assert_eq!(space.grow_primary(1), Some(65535));
    assert_eq!(space.grow_primary(1), None);
    space
        .store(ADDRESS_SPACE_SIZE - 4, [1, 2, 3, 4])
        .expect("last word");
    assert_eq!(space.load::<4>(ADDRESS_SPACE_SIZE - 4), Ok([1, 2, 3, 4]));
    assert_eq!(
        space.load::<4>(ADDRESS_SPACE_SIZE - 2),
        Err(Fault::Unmapped {
            addr: ADDRESS_SPACE_SIZE
        })
    );
    // Touching two pages of 4 GiB costs two pages.
    assert_eq!(space.resident_bytes(), PAGE_SIZE);
    space.store(0, [9]).expect("first byte");
    assert_eq!(space.resident_bytes(), 2 * PAGE_SIZE);
}

#[test]
fn grow_refuses_to_overlap_an_area() {
    let mut space = space_with_primary(1);
    space
        .create_area(3 * WASM_PAGE_SIZE, PAGE_SIZE, AreaFlags::RW)
        .expect("area above");
    assert_eq!(space.grow_primary(1), Some(1));
    assert_eq!(space.grow_primary(1), Some(2));
    assert_eq!(space.grow_primary(1), None, "would cover the area");
    assert_eq!(space.primary_wasm_pages(), 3);
    space.destroy_area(3 * WASM_PAGE_SIZE).expect("destroy");
    assert_eq!(space.grow_primary(1), Some(3));
}

#[test]
fn grow_refuses_beyond_the_limit() {
    let mut space = AddressSpace::new(MemLimits {
        max_bytes: 2 * WASM_PAGE_SIZE + PAGE_SIZE,
    });
    space.create_primary(1, None).expect("primary");
    space
        .create_area(1 << 30, PAGE_SIZE, AreaFlags::RW)
        .expect("area within the limit");
    assert_eq!(space.grow_primary(1), Some(1));
    assert_eq!(space.grow_primary(1), None);
    assert!(matches!(
        space.create_area(1 << 31, PAGE_SIZE, AreaFlags::RW),
        Err(MmError::LimitExceeded { .. })
    ));
    assert_eq!(space.mapped_bytes(), 2 * WASM_PAGE_SIZE + PAGE_SIZE);
    space.destroy_area(1 << 30).expect("destroy");
    space
        .create_area(1 << 31, PAGE_SIZE, AreaFlags::RW)
        .expect("fits again after destroy");
}

#[test]
fn primary_over_the_limit_is_refused() {
    let mut space = AddressSpace::new(MemLimits {
        max_bytes: WASM_PAGE_SIZE,
    });
    assert!(matches!(
        space.create_primary(2, None),
        Err(MmError::LimitExceeded { .. })
    ));
    assert!(!space.has_primary());
    space.create_primary(1, None).expect("one page fits");
}

#[test]
fn area_validation() {
    let mut space = space_with_primary(1);
    let rw = AreaFlags::RW;
    assert!(matches!(
        space.create_area(0x10001, PAGE_SIZE, rw),
        Err(MmError::Unaligned { .. })
    ));
    assert!(matches!(
        space.create_area(0x20000, 100, rw),
        Err(MmError::Unaligned { .. })
    ));
    assert!(matches!(
        space.create_area(0x20000, 0, rw),
        Err(MmError::OutOfRange { .. })
    ));
    assert!(matches!(
        space.create_area(ADDRESS_SPACE_SIZE - PAGE_SIZE, 2 * PAGE_SIZE, rw),
        Err(MmError::OutOfRange { .. })
    ));
    assert!(matches!(
        space.create_area(0, PAGE_SIZE, rw),
        Err(MmError::Overlap { existing: 0, .. })
    ));
    space.create_area(0x20000, 0x2000, rw).expect("area");
    assert!(matches!(
        space.create_area(0x1f000, 0x2000, rw),
        Err(MmError::Overlap {
            existing: 0x20000,
            ..
        })
    ));
    assert!(matches!(
        space.create_area(0x21000, PAGE_SIZE, rw),
        Err(MmError::Overlap { .. })
    ));
    space
        .create_area(0x22000, PAGE_SIZE, rw)
        .expect("adjacent area");
    space
        .create_area(ADDRESS_SPACE_SIZE - PAGE_SIZE, PAGE_SIZE, rw)
        .expect("last page");
    assert_eq!(space.destroy_area(0), Err(MmError::PrimaryNotDestroyable));
    assert_eq!(
        space.destroy_area(0x21000),
        Err(MmError::NotFound { base: 0x21000 })
    );
    let bases: Vec<u64> = space.areas().iter().map(|a| a.0).collect();
    assert_eq!(
        bases,
        vec![0, 0x20000, 0x22000, ADDRESS_SPACE_SIZE - PAGE_SIZE]
    );
}

#[test]
fn area_flags_bits() {
    assert!(AreaFlags::RW.contains(AreaFlags::READ));
    assert!(!AreaFlags::READ.contains(AreaFlags::WRITE));
    assert_eq!(AreaFlags::READ | AreaFlags::WRITE, AreaFlags::RW);
    assert_eq!(AreaFlags::from_bits(2), Some(AreaFlags::WRITE));
    assert_eq!(AreaFlags::from_bits(4), None);
}

#[test]
fn address_space_is_send_and_snapshot_is_send_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<AddressSpace>();
    send_sync::<SpaceSnapshot>();
    send_sync::<SharedBacking>();
}
