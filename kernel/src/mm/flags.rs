//! Area access flags and the per-space memory limits.

use serde::{Deserialize, Serialize};

/// What a thread may do with the bytes of an area: read, write, or both.
///
/// The primary area (memory 0 of the module) is always [`AreaFlags::RW`];
/// further areas choose their flags when created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AreaFlags(u32);

impl AreaFlags {
    /// No access at all: every access faults (a guard area).
    pub const NONE: AreaFlags = AreaFlags(0);
    /// Loads are permitted.
    pub const READ: AreaFlags = AreaFlags(1);
    /// Stores are permitted.
    pub const WRITE: AreaFlags = AreaFlags(2);
    /// Loads and stores are permitted.
    pub const RW: AreaFlags = AreaFlags(3);

    /// Every bit this type defines; other bits are rejected by [`AreaFlags::from_bits`].
    const ALL: u32 = 3;

    /// The raw bits (for images and the system-call ABI).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits, or `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<AreaFlags> {
        if bits & !Self::ALL == 0 {
            Some(AreaFlags(bits))
        } else {
            None
        }
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: AreaFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both flag sets.
    pub const fn union(self, other: AreaFlags) -> AreaFlags {
        AreaFlags(self.0 | other.0)
    }

    /// True if loads are permitted.
    pub const fn readable(self) -> bool {
        self.contains(AreaFlags::READ)
    }

    /// True if stores are permitted.
    pub const fn writable(self) -> bool {
        self.contains(AreaFlags::WRITE)
    }
}

impl std::ops::BitOr for AreaFlags {
    type Output = AreaFlags;
    fn bitor(self, rhs: AreaFlags) -> AreaFlags {
        self.union(rhs)
    }
}

/// Configurable limits of one address space.
///
/// A hostile module can exhaust only these: exceeding them makes
/// `memory.grow` return -1 or an area creation fail, never touches other
/// tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemLimits {
    /// Cap on the sum of the sizes of all areas of the space (primary area,
    /// further areas and mapped shared areas), in bytes.
    pub max_bytes: u64,
}

impl MemLimits {
    /// No limit beyond the 4 GiB of the address space itself.
    pub const fn unlimited() -> MemLimits {
        MemLimits {
            max_bytes: crate::mm::ADDRESS_SPACE_SIZE,
        }
    }
}

impl Default for MemLimits {
    fn default() -> MemLimits {
        MemLimits::unlimited()
    }
}
