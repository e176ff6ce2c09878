//! Sharing an area in place (`AddressSpace::share_area`): the pages and
//! dirty bits move into the new backing, nothing is copied, a second share
//! returns the same backing, the primary area is refused, and
//! `check_new_area` refuses exactly what `create_area` would.

use super::space_with_primary;
use crate::mm::{AreaFlags, AreaKind, BackingId, MmError, PAGE_SIZE};

#[test]
fn an_anonymous_area_becomes_shared_in_place() {
    let mut a = space_with_primary(1);
    let base = 0x10_0000;
    a.create_area(base, 4 * PAGE_SIZE, AreaFlags::RW).unwrap();
    a.write(base + PAGE_SIZE + 3, b"kept").unwrap();
    a.clear_dirty();
    a.write(base + 2 * PAGE_SIZE, b"dirty").unwrap();
    let before = a.resident_bytes();

    let (shared, flags) = a.share_area(base, BackingId(7)).unwrap();
    assert_eq!(
        (shared.id(), shared.size(), flags),
        (BackingId(7), 4 * PAGE_SIZE, AreaFlags::RW)
    );
    // The pages moved: the space's own memory shrank by them, the backing
    // holds them, the bytes and the dirty bit are the same.
    assert_eq!(a.resident_bytes(), before - 2 * PAGE_SIZE);
    assert_eq!(a.shared_resident_bytes(), 2 * PAGE_SIZE);
    let mut buf = [0u8; 4];
    a.read(base + PAGE_SIZE + 3, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    assert_eq!(
        a.dirty_pages().collect::<Vec<_>>(),
        vec![base + 2 * PAGE_SIZE]
    );
    let snap = a.snapshot();
    assert_eq!(
        snap.areas[1].kind,
        AreaKind::Shared {
            backing: BackingId(7)
        }
    );

    // Sharing again hands out the same backing (the new id is unused).
    let (again, _) = a.share_area(base, BackingId(8)).unwrap();
    assert!(again.same_backing(&shared));

    // Another space mapping it sees and makes the same bytes.
    let mut b = space_with_primary(1);
    b.map_shared(0x20_0000, &shared, AreaFlags::READ).unwrap();
    b.read(0x20_0000 + PAGE_SIZE + 3, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    a.write(base, b"new!").unwrap();
    b.read(0x20_0000, &mut buf).unwrap();
    assert_eq!(&buf, b"new!");
    assert!(b.write(0x20_0000, b"x").is_err());
}

#[test]
fn refusals() {
    let mut a = space_with_primary(1);
    assert_eq!(
        a.share_area(0, BackingId(1)).unwrap_err(),
        MmError::PrimaryNotDestroyable
    );
    assert_eq!(
        a.share_area(0x10_0000, BackingId(1)).unwrap_err(),
        MmError::NotFound { base: 0x10_0000 }
    );
    a.create_area(0x10_0000, PAGE_SIZE, AreaFlags::RW).unwrap();
    for (base, size) in [
        (0x10_0000, PAGE_SIZE),
        (0x8000, PAGE_SIZE),
        (0x10_0001, PAGE_SIZE),
        (0, 0),
        (0xffff_f000, 2 * PAGE_SIZE),
    ] {
        let checked = a.check_new_area(base, size);
        assert!(checked.is_err(), "{base:#x} {size:#x}");
        assert_eq!(
            a.create_area(base, size, AreaFlags::RW).unwrap_err(),
            checked.unwrap_err()
        );
    }
    assert_eq!(a.check_new_area(0x20_0000, PAGE_SIZE), Ok(()));
}
