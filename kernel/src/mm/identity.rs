//! Area identities and taking the dirty bits, for incremental images
//! (`checkpoint::dirty_history`).
//!
//! Every area (the primary one included) gets an identity unique within
//! the process when it is created: an area destroyed and recreated at the
//! same base, or the areas of a space rebuilt by a restore, are new areas,
//! so dirty bits taken from an old one never speak for them. Identities
//! are never shown to a task nor written to an image, so drawing them
//! from a process-wide counter changes nothing a task can observe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::area::Backing;
use super::dirty::DirtyBits;
use super::space::AddressSpace;

/// The identity of an area (see the module docs).
pub type AreaId = u64;

static NEXT_AREA_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn new_area_id() -> AreaId {
    NEXT_AREA_ID.fetch_add(1, Ordering::Relaxed)
}

impl AddressSpace {
    /// Base and identity of every area in ascending base order (the
    /// primary area first, as base 0, when present), and whether it maps a
    /// shared backing (whose dirty bits other spaces share: see
    /// [`AddressSpace::take_dirty`]).
    pub fn area_ids(&self) -> Vec<(u64, AreaId, bool)> {
        let primary = self.has_primary.then_some((0, self.primary_id, false));
        primary
            .into_iter()
            .chain(
                self.areas
                    .iter()
                    .map(|(&base, a)| (base, a.id, matches!(a.backing, Backing::Shared(_)))),
            )
            .collect()
    }

    /// Takes the dirty bits of the primary area and of every anonymous
    /// area (each store's bitmap is moved out, leaving it clear: O(areas),
    /// not O(pages)), by area identity. Areas that map a shared backing
    /// are left out and keep their bits: other spaces mapping the backing
    /// share them, so they cannot say what changed since this space's
    /// last capture (an incremental image writes such areas in full).
    pub fn take_dirty(&mut self) -> BTreeMap<AreaId, DirtyBits> {
        let mut out = BTreeMap::new();
        if self.has_primary {
            let id = self.primary_id;
            // Through primary_mut: the access cache assumes its pages are
            // dirty already, so it must be forgotten with the bits.
            out.insert(id, std::mem::take(&mut self.primary_mut().dirty));
        }
        for area in self.areas.values_mut() {
            if let Backing::Anonymous(store) = &mut area.backing {
                out.insert(area.id, std::mem::take(&mut store.dirty));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AddressSpace, AreaFlags, BackingId, MemLimits, PAGE_SIZE};

    fn space_with_primary(pages: u32) -> AddressSpace {
        let mut space = AddressSpace::new(MemLimits::unlimited());
        space.create_primary(pages, Some(16)).expect("primary");
        space
    }

    #[test]
    fn take_dirty_moves_the_bits_out_and_a_cached_store_marks_again() {
        let mut space = space_with_primary(1);
        // The second store goes through the cached page.
        space.store(8, [1u8; 4]).expect("store");
        space.store(12, [2u8; 4]).expect("store");
        let primary = space.area_ids()[0].1;
        let taken = space.take_dirty();
        assert_eq!(taken[&primary].iter().collect::<Vec<_>>(), vec![0]);
        assert_eq!(space.dirty_pages().count(), 0, "the bits were moved out");
        space.store(16, [3u8; 4]).expect("store after take_dirty");
        assert_eq!(
            space.dirty_pages().collect::<Vec<_>>(),
            vec![0],
            "a cached store after take_dirty was not marked"
        );
    }

    #[test]
    fn identities_are_new_for_a_recreated_area_and_shared_areas_keep_their_bits() {
        let mut space = space_with_primary(1);
        let base = 0x10_0000;
        space
            .create_area(base, 4 * PAGE_SIZE, AreaFlags::RW)
            .expect("area");
        let first = space.area_ids()[1];
        space.destroy_area(base).expect("destroyed");
        space
            .create_area(base, 4 * PAGE_SIZE, AreaFlags::RW)
            .expect("area again");
        let second = space.area_ids()[1];
        assert_eq!((first.0, second.0), (base, base));
        assert_ne!(first.1, second.1, "a recreated area kept its identity");
        assert!(!second.2);
        space.write(base, &[1; 8]).expect("write");
        space.share_area(base, BackingId(77)).expect("shared");
        assert!(space.area_ids()[1].2, "shown as shared");
        let taken = space.take_dirty();
        assert!(!taken.contains_key(&second.1), "shared bits taken");
        assert_eq!(
            space.dirty_pages().collect::<Vec<_>>(),
            vec![base],
            "a shared backing's bits stay for the other spaces"
        );
    }
}
