//! The Spartan snapshot image format.
//!
//! `FORMAT.md` beside this crate is the specification; this crate is its
//! reference implementation: the record types, their encoding, integrity
//! checks, page compression, the directory and tar containers, and deep
//! validation.

pub mod exec;
