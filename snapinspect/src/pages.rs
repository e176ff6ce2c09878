//! `snapinspect pages`: read a range of a task's memory from an image.
//!
//! Pages are read lazily through [`snapfmt::Image::read_page`]: only the
//! chunks holding the range are decompressed, zero pages cost nothing, and
//! pages of an incremental image come from its parent chain as needed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use snapfmt::{Image, PAGE_SIZE, PageSource};

use crate::addr::AddrRange;
use crate::input::{InputError, located};

/// The largest range one call reads (bounds the allocation).
pub const MAX_RANGE: u32 = 16 << 20;

/// Why a range could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// The path cannot be read as an image at all.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The image could not be opened.
    #[error("{}", located(path, source))]
    Open {
        path: PathBuf,
        source: Box<snapfmt::Error>,
    },
    /// A page of the range could not be read (no such task, an address in
    /// no area, a damaged chunk).
    #[error("{}: reading {addr:#x} of task {task}: {source}", path.display())]
    Read {
        path: PathBuf,
        task: u64,
        addr: u64,
        source: Box<snapfmt::Error>,
    },
    /// The range is longer than [`MAX_RANGE`].
    #[error("a range of {len} bytes is longer than the limit of {MAX_RANGE} bytes")]
    TooLong { len: u32 },
}

/// A range of memory and where each of its pages came from.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRange {
    pub task: u64,
    pub addr: u32,
    #[serde(serialize_with = "as_hex")]
    pub bytes: Vec<u8>,
    /// Per page touched by the range, in address order.
    pub pages: Vec<PageOrigin>,
}

/// Where one page of a range came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageOrigin {
    /// First address of the page.
    pub addr: u64,
    /// `zero` (not stored), `local` (this image) or `parent` (an ancestor).
    pub source: &'static str,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn source_name(s: PageSource) -> &'static str {
    match s {
        PageSource::Zero => "zero",
        PageSource::Local => "local",
        PageSource::Parent => "parent",
    }
}

/// Reads `range` of task `task` from an opened image.
pub fn read_range(image: &Image, task: u64, range: AddrRange) -> Result<MemoryRange, PagesError> {
    if range.len > MAX_RANGE {
        return Err(PagesError::TooLong { len: range.len });
    }
    let page = PAGE_SIZE as u64;
    let mut bytes = Vec::with_capacity(range.len as usize);
    let mut pages = Vec::new();
    let mut buf = [0u8; PAGE_SIZE];
    let mut at = u64::from(range.addr);
    while at < range.end() {
        let page_start = at - at % page;
        let src = image
            .read_page(task, at, &mut buf)
            .map_err(|source| PagesError::Read {
                path: image.path().to_path_buf(),
                task,
                addr: at,
                source: Box::new(source),
            })?;
        pages.push(PageOrigin {
            addr: page_start,
            source: source_name(src),
        });
        let from = (at - page_start) as usize;
        let to = (range.end().min(page_start + page) - page_start) as usize;
        bytes.extend_from_slice(&buf[from..to]);
        at = page_start + page;
    }
    Ok(MemoryRange {
        task,
        addr: range.addr,
        bytes,
        pages,
    })
}

/// Opens the image at `path` and reads `range` of task `task`.
pub fn pages(path: &Path, task: u64, range: AddrRange) -> Result<MemoryRange, PagesError> {
    crate::input::probe(path)?;
    let image = Image::open(path).map_err(|source| PagesError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    read_range(&image, task, range)
}
