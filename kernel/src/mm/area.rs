//! An area: a page-aligned range of the address space with access flags and
//! a backing (anonymous pages of its own, or a shared backing).

use super::flags::AreaFlags;
use super::shared::SharedBacking;
use super::store::{Lost, PageStore};

/// Where the bytes of an area live.
#[derive(Clone, Debug)]
pub(crate) enum Backing {
    /// Pages private to this area (copy-on-write shared only with snapshots).
    Anonymous(PageStore),
    /// Pages of a backing other areas may map too.
    Shared(SharedBacking),
}

/// A non-primary area of an address space.
#[derive(Clone, Debug)]
pub(crate) struct Area {
    /// Unique among the areas of the process (`identity.rs`): an area
    /// destroyed and recreated at the same base gets a new one.
    pub(crate) id: u64,
    pub(crate) size: u64,
    pub(crate) flags: AreaFlags,
    pub(crate) backing: Backing,
}

impl Area {
    /// Copies bytes at offset `off` of the area into `buf` (a shared
    /// backing's pending pages are installed: its lock gives `&mut`).
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Lost> {
        match &self.backing {
            Backing::Anonymous(store) => store.read(off, buf),
            Backing::Shared(shared) => shared.lock().read_mut(off, buf),
        }
    }

    /// Writes `data` at offset `off` of the area.
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) -> Result<(), Lost> {
        match &mut self.backing {
            Backing::Anonymous(store) => store.write(off, data),
            Backing::Shared(shared) => shared.lock().write(off, data),
        }
    }

    /// Fills `len` bytes at offset `off` of the area.
    pub(crate) fn fill(&mut self, off: u64, byte: u8, len: u64) -> Result<(), Lost> {
        match &mut self.backing {
            Backing::Anonymous(store) => store.fill(off, byte, len),
            Backing::Shared(shared) => shared.lock().fill(off, byte, len),
        }
    }

    /// Loads the pending pages of `[off, off + len)` of the area.
    pub(crate) fn fault_in(&mut self, off: u64, len: u64) -> Result<(), Lost> {
        match &mut self.backing {
            Backing::Anonymous(store) => store.fault_in_range(off, len, false),
            Backing::Shared(shared) => shared.lock().fault_in_range(off, len, false),
        }
    }
}
