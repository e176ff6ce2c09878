//! Unit tests of memory management: layout, accesses and faults, bulk
//! operations, snapshots and dirty bits, shared backings, and a property
//! test against a plain byte-vector model.

mod access;
mod cache;
mod layout;
mod lazy;
mod model;
mod share;
mod snapshot;

use super::{AddressSpace, MemLimits};

/// A space with a primary area of `pages` wasm pages (maximum 16).
fn space_with_primary(pages: u32) -> AddressSpace {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space
        .create_primary(pages, Some(16))
        .expect("primary area fits");
    space
}
