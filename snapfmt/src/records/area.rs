//! Address-space areas and their page maps.

use super::common::Peer;
use serde::{Deserialize, Serialize};

/// Bits of [`AreaRecord::flags`].
pub mod area_flags {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    pub const CACHEABLE: u32 = 8;
}

/// One area of a task's address space.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaRecord {
    /// First address (a multiple of 4096).
    pub base: u64,
    /// Size in bytes (a multiple of 4096).
    pub size: u64,
    /// [`area_flags`] bits.
    pub flags: u32,
    /// What backs the area.
    pub backing: Backing,
    /// The other tasks this area is shared with and the base address it
    /// has in each of their address spaces (thesis 5.4.9).
    pub sharing: Vec<Sharing>,
    /// Which pages are stored where; pages not listed read as zero.
    pub pages: PageMap,
}

/// What backs an area.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backing {
    /// Anonymous memory (`as_area_create`, shared areas).
    Anonymous,
    /// The module's memory 0 at address 0, grown by `memory.grow` up to
    /// `max_pages` wasm pages (64 KiB) if the module declares a maximum.
    Primary { max_pages: Option<u32> },
}

/// One other holder of a shared area.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    pub with: Peer,
    /// Base address of the area in `with`'s address space.
    pub base: u64,
}

/// Where one stored page is: chunk index in the manifest's chunk table and
/// page slot inside that chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageLoc {
    pub chunk: u32,
    pub slot: u32,
}

/// `count` consecutive pages of an area stored in consecutive slots of one
/// chunk.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    /// Page index inside the area (address = base + 4096 * index).
    pub first_page: u32,
    /// Number of pages (at least 1).
    pub count: u32,
    /// Index into [`crate::Manifest::chunks`].
    pub chunk: u32,
    /// Slot of the first page inside the chunk.
    pub first_slot: u32,
}

/// An area's page map: runs sorted by `first_page`, not overlapping. Pages
/// in no run are zero pages and are not stored.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMap {
    pub runs: Vec<PageRun>,
}

impl PageMap {
    /// Builds a map from `(page index, location)` pairs sorted by page
    /// index without duplicates, merging neighbours into runs.
    pub fn from_sorted(pages: impl IntoIterator<Item = (u32, PageLoc)>) -> PageMap {
        let mut runs: Vec<PageRun> = Vec::new();
        for (page, loc) in pages {
            if let Some(last) = runs.last_mut() {
                let next_page = last.first_page.checked_add(last.count);
                let next_slot = last.first_slot.checked_add(last.count);
                if last.chunk == loc.chunk && next_page == Some(page) && next_slot == Some(loc.slot)
                {
                    last.count += 1;
                    continue;
                }
            }
            runs.push(PageRun {
                first_page: page,
                count: 1,
                chunk: loc.chunk,
                first_slot: loc.slot,
            });
        }
        PageMap { runs }
    }

    /// Every stored page as `(page index, location)`, in page order.
    /// Saturates rather than overflows on a malformed map (validate first).
    pub fn iter(&self) -> impl Iterator<Item = (u32, PageLoc)> + '_ {
        self.runs.iter().flat_map(|r| {
            (0..r.count).map(move |i| {
                (
                    r.first_page.saturating_add(i),
                    PageLoc {
                        chunk: r.chunk,
                        slot: r.first_slot.saturating_add(i),
                    },
                )
            })
        })
    }

    /// Location of page `page`, or `None` for a zero page. Binary search;
    /// assumes the runs are sorted (validate first).
    pub fn lookup(&self, page: u32) -> Option<PageLoc> {
        let i = self.runs.partition_point(|r| r.first_page <= page);
        let r = self.runs.get(i.checked_sub(1)?)?;
        let off = page - r.first_page;
        (off < r.count).then(|| PageLoc {
            chunk: r.chunk,
            slot: r.first_slot.saturating_add(off),
        })
    }

    /// Number of stored (non-zero) pages.
    pub fn stored_pages(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.count)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_lookup() {
        let l = |chunk, slot| PageLoc { chunk, slot };
        let pages = vec![
            (0, l(0, 0)),
            (1, l(0, 1)),
            (2, l(0, 2)),
            (5, l(0, 3)),
            (6, l(1, 0)),
            (7, l(0, 0)),
        ];
        let m = PageMap::from_sorted(pages.clone());
        assert_eq!(m.runs.len(), 4);
        assert_eq!(m.iter().collect::<Vec<_>>(), pages);
        assert_eq!(m.lookup(1), Some(l(0, 1)));
        assert_eq!(m.lookup(3), None);
        assert_eq!(m.lookup(7), Some(l(0, 0)));
        assert_eq!(m.lookup(8), None);
        assert_eq!(m.stored_pages(), 6);
    }
}
