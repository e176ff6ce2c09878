//! Memory management: sparse 32-bit address spaces made of areas backed by
//! copy-on-write 4 KiB pages.
//!
//! - [`AddressSpace`]: the primary area (memory 0 of the module) at address
//!   0, grown by `memory.grow`, and further areas above it; checked loads,
//!   stores and bulk operations that fault with the offending address.
//! - Pages live in persistent two-level page tables (`page_table`): untouched
//!   pages read as zero and cost nothing, and a [`SpaceSnapshot`] takes
//!   references to every page in O(leaves) while the task runs on.
//! - A dirty bit per page since the last checkpoint ([`AddressSpace::dirty_pages`]).
//! - Pages still pending in an image after a lazy restore (`lazy.rs`):
//!   loaded on first touch or by the kernel's background fill.
//! - [`SharedBacking`]: pages mapped by areas of several spaces, identified by
//!   [`BackingId`] (futexes key shared pages by [`PageKey`]).

mod access;
mod area;
mod cache;
mod dirty;
mod fault;
mod flags;
mod identity;
mod lazy;
mod page_table;
mod shared;
mod snapshot;
mod space;
mod store;

#[cfg(test)]
mod tests;

pub(crate) use cache::Entries;
pub use dirty::DirtyBits;
pub use fault::{Fault, MmError};
pub use flags::{AreaFlags, MemLimits};
pub use identity::AreaId;
pub use lazy::{LostPage, PageSource, Pending};
pub use page_table::{LEAF_PAGES, Page, PageTable, ZERO_PAGE};
pub use shared::{BackingId, SharedBacking};
pub use snapshot::{AreaKind, AreaSnapshot, SpaceSnapshot};
pub use space::{AddressSpace, PageKey};

/// Size of a kernel page: the unit of sharing, copy-on-write and dirty bits.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a WebAssembly page: the unit of `memory.grow`.
pub const WASM_PAGE_SIZE: u64 = 65536;
/// Size of the 32-bit address space of a task.
pub const ADDRESS_SPACE_SIZE: u64 = 1 << 32;
