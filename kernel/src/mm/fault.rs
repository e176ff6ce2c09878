//! The two error types of memory management: [`Fault`] for an access the
//! space refused (the thread traps) and [`MmError`] for a refused change to
//! the layout of the space.

/// A memory access the address space refused: the thread traps with it.
///
/// `addr` is the lowest address of the access that is not permitted (for an
/// access straddling the end of an area, the first byte past it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// No area covers the address (or it lies beyond the 4 GiB space).
    #[error("page fault at {addr:#x}: address not mapped")]
    Unmapped {
        /// The faulting address.
        addr: u64,
    },
    /// An area covers the address but its flags forbid this access.
    #[error("page fault at {addr:#x}: {} access not permitted by the area", if *write {"write"} else {"read"})]
    Protection {
        /// The faulting address.
        addr: u64,
        /// True for a store, false for a load.
        write: bool,
    },
    /// The page holding the address was restored lazily and its bytes
    /// could not be read from the image (a chunk that fails verification,
    /// an image removed): the restore ends.
    #[error("page fault at {addr:#x}: page lost by the lazy restore")]
    Lost {
        /// The faulting address.
        addr: u64,
    },
}

impl Fault {
    /// The faulting address.
    pub const fn addr(&self) -> u64 {
        match *self {
            Fault::Unmapped { addr } | Fault::Protection { addr, .. } | Fault::Lost { addr } => {
                addr
            }
        }
    }
}

/// A change to the layout of an address space that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MmError {
    /// The new area would overlap an existing one.
    #[error("area [{base:#x}, +{size:#x}) overlaps the area at {existing:#x}")]
    Overlap {
        /// Base of the requested area.
        base: u64,
        /// Size of the requested area.
        size: u64,
        /// Base of the area it would overlap.
        existing: u64,
    },
    /// The area would extend beyond the 4 GiB address space, or has size zero.
    #[error("area [{base:#x}, +{size:#x}) is empty or outside the 4 GiB address space")]
    OutOfRange {
        /// Base of the requested area.
        base: u64,
        /// Size of the requested area.
        size: u64,
    },
    /// Base or size is not a multiple of the 4 KiB page size.
    #[error("area [{base:#x}, +{size:#x}) is not page aligned")]
    Unaligned {
        /// Base of the requested area.
        base: u64,
        /// Size of the requested area.
        size: u64,
    },
    /// The space would exceed its configured memory limit.
    #[error("memory limit of {limit} bytes exceeded: {requested} bytes requested")]
    LimitExceeded {
        /// The configured limit.
        limit: u64,
        /// The total the operation would have reached.
        requested: u64,
    },
    /// No area starts at the given base.
    #[error("no area starts at {base:#x}")]
    NotFound {
        /// The base asked for.
        base: u64,
    },
    /// The space already has its primary area.
    #[error("the address space already has a primary area")]
    PrimaryExists,
    /// No area covers the address (restore of a page outside every area).
    #[error("no area covers {addr:#x}")]
    NotMapped {
        /// The address asked for.
        addr: u64,
    },
    /// The primary area was asked for but there is none.
    #[error("the address space has no primary area")]
    NoPrimary,
    /// The primary area cannot be destroyed like an ordinary area.
    #[error("the primary area cannot be destroyed")]
    PrimaryNotDestroyable,
    /// Initial size above the maximum, or above the 65536 wasm pages of 4 GiB.
    #[error("primary area of {initial} wasm pages with maximum {max} is invalid")]
    BadPrimarySize {
        /// Requested initial size in wasm pages.
        initial: u32,
        /// Effective maximum in wasm pages.
        max: u32,
    },
    /// A shared backing's size does not match the area mapping it.
    #[error("shared backing {backing} has {backing_size:#x} bytes, the area {size:#x}")]
    SharedSizeMismatch {
        /// The backing's id.
        backing: u64,
        /// The backing's size.
        backing_size: u64,
        /// The area's size.
        size: u64,
    },
}
