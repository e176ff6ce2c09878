//! The Spartan snapshot image format.
//!
//! `FORMAT.md` beside this crate is the specification; this crate is its
//! reference implementation: the record types, their encoding, integrity
//! checks, page compression, the directory and tar containers, and deep
//! validation.
//!
//! - Write with [`ImageWriter`]: feed pages with
//!   [`ImageWriter::add_page`], task records with [`ImageWriter::add_task`]
//!   and their kernel state with [`ImageWriter::add_kernel_state`], then
//!   [`ImageWriter::finish`].
//! - Read with [`Image::open`] (directory or tar): [`Image::manifest`],
//!   [`Image::task`], [`Image::kernel_state`], [`Image::read_page`], [`Image::stats`],
//!   [`Image::parent_chain`].
//! - Check with [`validate()`], which returns every [`Problem`].

pub mod exec;

mod budget;
mod check;
mod compress;
mod container;
mod digest;
mod error;
pub mod header;
pub mod limits;
pub mod object;
mod prefetch;
mod reader;
mod records;
pub mod sample;
mod sink;
mod validate;
mod version;
mod writer;

pub use check::Problem;
pub use compress::SharedPage;
pub use container::describe as describe_file_type;
pub use digest::{Digest, chunk_address, chunk_address_of};
pub use error::{Error, ObjectError, Result};
pub use header::{ObjectHeader, ObjectKind};
pub use limits::PAGE_SIZE;
pub use reader::{ChainLink, Image, ImageStats, PageSource};
pub use records::*;
pub use sink::ImageForm;
pub use validate::{problem_of, validate};
pub use version::{FORMAT_1_0, FORMAT_1_4, FORMAT_VERSION, FormatVersion};
pub use writer::{Finished, ImageInfo, ImageWriter, WriteStats, WriterOptions};
