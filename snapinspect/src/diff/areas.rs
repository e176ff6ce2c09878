//! Comparing the areas of one task in two images, down to pages.
//!
//! Areas are matched by base address. For a matched pair the page maps are
//! walked together in page order. A page's identity is the content digest
//! of the chunk holding it plus its slot there, so two pages with the same
//! identity are equal without decompressing anything. Only pages whose
//! identities differ (or that are stored on one side only) are read and
//! compared byte by byte; equal bytes in different chunks are *not* a
//! change. When an area was resized, the missing tail of the smaller one is
//! compared as zero pages, so content written into a grown area shows up as
//! changed pages besides the resize itself.

use std::collections::BTreeMap;

use serde::Serialize;
use snapfmt::{AreaRecord, Digest, Image, PAGE_SIZE, PageLoc};

use super::{DiffError, FieldChange};
use crate::view::{PeerView, area_flags_text};

/// An area present in one image only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AreaSummary {
    pub base: u64,
    pub size: u64,
    pub flags: String,
    pub stored_pages: u64,
}

impl From<&AreaRecord> for AreaSummary {
    fn from(a: &AreaRecord) -> Self {
        AreaSummary {
            base: a.base,
            size: a.size,
            flags: area_flags_text(a.flags),
            stored_pages: a.pages.stored_pages(),
        }
    }
}

/// A run of consecutive changed pages, with the exact bytes that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageRange {
    /// First address of the first changed page.
    pub start: u64,
    /// One past the last address of the last changed page.
    pub end: u64,
    /// Number of pages in the run.
    pub pages: u64,
    /// First address whose byte differs.
    pub first_diff: u64,
    /// One past the last address whose byte differs.
    pub last_diff_end: u64,
}

/// The changed pages of an area.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageDiff {
    /// Number of pages whose content differs.
    pub changed_pages: u64,
    /// Those pages coalesced into runs, in address order.
    pub ranges: Vec<PageRange>,
}

/// An area present in both images that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AreaChange {
    pub base: u64,
    /// Size, flags, backing or sharing changes.
    pub fields: Vec<FieldChange>,
    pub pages: PageDiff,
}

/// Areas added, removed and changed for one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AreasDiff {
    pub added: Vec<AreaSummary>,
    pub removed: Vec<AreaSummary>,
    pub changed: Vec<AreaChange>,
}

impl AreasDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares the areas `aa` (of image `a`) with `ab` (of image `b`).
pub fn diff_areas(
    a: &Image,
    aa: &[AreaRecord],
    b: &Image,
    ab: &[AreaRecord],
) -> Result<AreasDiff, DiffError> {
    let by_base = |v: &[AreaRecord]| -> BTreeMap<u64, usize> {
        v.iter().enumerate().map(|(i, r)| (r.base, i)).collect()
    };
    let (ma, mb) = (by_base(aa), by_base(ab));
    let mut out = AreasDiff::default();
    for (base, &i) in &ma {
        match mb.get(base) {
            None => out.removed.push((&aa[i]).into()),
            Some(&j) => {
                let change = diff_area(a, &aa[i], b, &ab[j])?;
                if !change.fields.is_empty() || change.pages.changed_pages > 0 {
                    out.changed.push(change);
                }
            }
        }
    }
    for (base, &j) in &mb {
        if !ma.contains_key(base) {
            out.added.push((&ab[j]).into());
        }
    }
    Ok(out)
}

fn sharing_text(a: &AreaRecord) -> String {
    let v: Vec<String> = a
        .sharing
        .iter()
        .map(|s| format!("{} at {:#x}", PeerView::from(&s.with), s.base))
        .collect();
    if v.is_empty() {
        "not shared".into()
    } else {
        v.join(", ")
    }
}

fn diff_area(
    a: &Image,
    ra: &AreaRecord,
    b: &Image,
    rb: &AreaRecord,
) -> Result<AreaChange, DiffError> {
    let fields = [
        FieldChange::of("size", ra.size, rb.size),
        FieldChange::of(
            "flags",
            area_flags_text(ra.flags),
            area_flags_text(rb.flags),
        ),
        FieldChange::of(
            "backing",
            crate::show::BackingView::from(&ra.backing).text(),
            crate::show::BackingView::from(&rb.backing).text(),
        ),
        FieldChange::of("sharing", sharing_text(ra), sharing_text(rb)),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(AreaChange {
        base: ra.base,
        fields,
        pages: diff_pages(a, ra, b, rb)?,
    })
}

/// A page's identity: the content digest of its chunk and its slot there.
fn identity(image: &Image, loc: PageLoc) -> Option<(Digest, u32)> {
    image
        .manifest()
        .chunks
        .get(loc.chunk as usize)
        .map(|c| (c.content, loc.slot))
}

/// The exact differing byte span of one page, if any: `(first, end)`
/// offsets within the page.
fn byte_span(pa: &[u8], pb: &[u8]) -> Option<(usize, usize)> {
    let first = pa.iter().zip(pb).position(|(x, y)| x != y)?;
    let last = pa.iter().zip(pb).rposition(|(x, y)| x != y)?;
    Some((first, last + 1))
}

/// One page stored on at least one side whose identity differs: its index
/// and whether each side stores it (otherwise it reads as zero there).
type Candidate = (u32, bool, bool);

/// Pages whose bytes differ: page index, and the first and one-past-last
/// differing offsets inside the page.
type Changed = Vec<(u32, usize, usize)>;

/// The pages whose identities differ, in page order, from a merge of the
/// two page maps. Pages with equal identities are skipped unread.
fn candidates(a: &Image, ra: &AreaRecord, b: &Image, rb: &AreaRecord) -> Vec<Candidate> {
    let mut ia = ra.pages.iter().peekable();
    let mut ib = rb.pages.iter().peekable();
    let mut out = Vec::new();
    loop {
        let (index, la, lb) = match (ia.peek().copied(), ib.peek().copied()) {
            (None, None) => break,
            (Some((i, l)), None) => {
                ia.next();
                (i, Some(l), None)
            }
            (None, Some((j, l))) => {
                ib.next();
                (j, None, Some(l))
            }
            (Some((i, li)), Some((j, lj))) => {
                if i < j {
                    ia.next();
                    (i, Some(li), None)
                } else if j < i {
                    ib.next();
                    (j, None, Some(lj))
                } else {
                    ia.next();
                    ib.next();
                    (i, Some(li), Some(lj))
                }
            }
        };
        if let (Some(x), Some(y)) = (la, lb)
            && identity(a, x).is_some()
            && identity(a, x) == identity(b, y)
        {
            continue;
        }
        out.push((index, la.is_some(), lb.is_some()));
    }
    out
}

/// Reads the candidate pages on both sides and returns those whose bytes
/// differ, with the differing span inside the page.
fn compare(
    a: &Image,
    ra: &AreaRecord,
    b: &Image,
    rb: &AreaRecord,
    todo: &[Candidate],
) -> Result<Changed, DiffError> {
    let read =
        |img: &Image, area: &AreaRecord, index: u32, stored: bool, buf: &mut [u8; PAGE_SIZE]| {
            if !stored {
                buf.fill(0);
                return Ok(());
            }
            img.read_area_page(area, index, buf)
                .map(|_| ())
                .map_err(|source| DiffError::Read {
                    path: img.path().to_path_buf(),
                    source: Box::new(source),
                })
        };
    let mut pa = [0u8; PAGE_SIZE];
    let mut pb = [0u8; PAGE_SIZE];
    let mut out = Vec::new();
    for &(index, in_a, in_b) in todo {
        read(a, ra, index, in_a, &mut pa)?;
        read(b, rb, index, in_b, &mut pb)?;
        if let Some((first, end)) = byte_span(&pa, &pb) {
            out.push((index, first, end));
        }
    }
    Ok(out)
}

/// Compares the pages of two versions of one area (same base). Pages with
/// equal identities are not read; the others are read and compared byte by
/// byte, in page order. (Spreading the reads over threads was tried and
/// measured no faster on the shared, heavily loaded 2-core machine here.)
pub fn diff_pages(
    a: &Image,
    ra: &AreaRecord,
    b: &Image,
    rb: &AreaRecord,
) -> Result<PageDiff, DiffError> {
    let changed = compare(a, ra, b, rb, &candidates(a, ra, b, rb))?;
    let page = PAGE_SIZE as u64;
    let mut out = PageDiff::default();
    for (index, first, end) in changed {
        out.changed_pages += 1;
        let start = ra.base + u64::from(index) * page;
        match out.ranges.last_mut() {
            Some(r) if r.end == start => {
                r.end += page;
                r.pages += 1;
                r.last_diff_end = start + end as u64;
            }
            _ => out.ranges.push(PageRange {
                start,
                end: start + page,
                pages: 1,
                first_diff: start + first as u64,
                last_diff_end: start + end as u64,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::byte_span;

    #[test]
    fn byte_span_is_exact() {
        let a = [0u8; 16];
        let mut b = a;
        assert_eq!(byte_span(&a, &b), None);
        b[3] = 1;
        b[9] = 1;
        assert_eq!(byte_span(&a, &b), Some((3, 10)));
        b[15] = 2;
        assert_eq!(byte_span(&a, &b), Some((3, 16)));
    }
}
