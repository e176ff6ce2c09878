//! Keeping a whole area's clean pages from the parent in one call
//! (incremental images): [`ImageWriter::keep_parent_area`] walks the
//! parent area's page map run by run, instead of looking the task, the
//! area and the page up again for every page as
//! [`ImageWriter::keep_parent_page`] does.

use super::ImageWriter;
use crate::error::{Error, Result};
use crate::object::MANIFEST_PATH;
use std::sync::Arc;

use crate::records::{ChunkEntry, ChunkHome, PageLoc, TaskRecord};

impl ImageWriter {
    /// The manifest digest of the parent of an incremental image being
    /// written (the parent it opened), or `None` for a full image.
    pub fn parent_digest(&self) -> Option<crate::digest::Digest> {
        self.parent.as_ref().map(|p| p.reference.manifest_digest)
    }

    /// Keeps, as pages of the area at `area_base` of task `task_id` of
    /// this image, every stored page of the parent's area at the same base
    /// of the parent's task `parent_task` for which `keep(page index)` is
    /// true (the others must be fed with [`add_page`](Self::add_page) or
    /// [`add_shared_page`](Self::add_shared_page), or are zero). Pages the
    /// parent does not store are zero there and stay so. `parent_task`
    /// may differ from `task_id`: a task restored from the parent has a
    /// new id. Returns how many pages were kept. Costs O(stored pages of
    /// the parent's area).
    pub fn keep_parent_area(
        &mut self,
        task_id: u64,
        area_base: u64,
        parent_task: u64,
        mut keep: impl FnMut(u32) -> bool,
    ) -> Result<u64> {
        let (task, area) = self.parent_area("keep_parent_area", parent_task, area_base)?;
        let area = &task.areas[area];
        let mut out = Vec::new();
        for run in &area.pages.runs {
            // The parent chunk gets an entry here only once a page of it
            // is kept (an image lists no chunk it does not use).
            let mut ours: Option<u32> = None;
            for i in 0..run.count {
                let (Some(page), Some(slot)) =
                    (run.first_page.checked_add(i), run.first_slot.checked_add(i))
                else {
                    return Err(Error::invalid(
                        crate::object::task_path(parent_task),
                        "areas.pages",
                        "a page run overflows",
                    ));
                };
                if !keep(page) {
                    continue;
                }
                let chunk = match ours {
                    Some(c) => c,
                    None => *ours.insert(self.parent_chunk(run.chunk)?),
                };
                out.push((page, PageLoc { chunk, slot }));
            }
        }
        let kept = out.len() as u64;
        self.area_pages
            .entry((task_id, area_base))
            .or_default()
            .extend(out);
        self.stats.parent_pages += kept;
        Ok(kept)
    }

    /// The parent's task `parent_task` and the index of its area at
    /// `area_base`, for `what` (named in the error without a parent).
    pub(super) fn parent_area(
        &self,
        what: &str,
        parent_task: u64,
        area_base: u64,
    ) -> Result<(Arc<TaskRecord>, usize)> {
        let Some(parent) = self.parent.as_ref() else {
            return Err(Error::Usage(format!("{what} on an image without a parent")));
        };
        let task = parent.image.task(parent_task)?;
        let area = task
            .areas
            .iter()
            .position(|a| a.base == area_base)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "parent task {parent_task} has no area at {area_base:#x}"
                ))
            })?;
        Ok((task, area))
    }

    /// This image's index of the parent's chunk `parent_chunk`, listed
    /// (as a parent chunk) when first used: an image lists no chunk it
    /// does not use.
    pub(super) fn parent_chunk(&mut self, parent_chunk: u32) -> Result<u32> {
        let Some(parent) = self.parent.as_mut() else {
            return Err(Error::Usage(
                "parent chunk of an image without a parent".into(),
            ));
        };
        if let Some(&c) = parent.chunk_map.get(&parent_chunk) {
            return Ok(c);
        }
        let pentry = parent
            .image
            .manifest()
            .chunks
            .get(parent_chunk as usize)
            .ok_or_else(|| {
                Error::invalid(
                    MANIFEST_PATH,
                    "chunks",
                    "parent page map refers past the chunk table",
                )
            })?;
        let idx = self.chunks.len() as u32;
        self.chunks.push(Some(ChunkEntry {
            content: pentry.content,
            pages: pentry.pages,
            home: ChunkHome::Parent,
        }));
        parent.chunk_map.insert(parent_chunk, idx);
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ImageInfo, WriterOptions};
    use super::*;
    use crate::limits::PAGE_SIZE;
    use crate::reader::Image;
    use crate::sample::{one_area_task, sample_info, sample_page};
    use std::path::Path;

    fn info() -> ImageInfo {
        let mut info = sample_info();
        info.checkpoint_set.retain(|m| m.task_id == 7);
        info
    }

    fn opts() -> WriterOptions {
        WriterOptions {
            chunk_pages: 8,
            threads: 1,
            ..WriterOptions::default()
        }
    }

    /// 40 pages, every fourth zero.
    fn full(path: &Path) {
        let mut w = ImageWriter::create(path, info(), opts()).unwrap();
        for p in 0..40u32 {
            let page = if p % 4 == 3 {
                vec![0; PAGE_SIZE]
            } else {
                sample_page(p)
            };
            w.add_page(7, 0, p, &page).unwrap();
        }
        w.add_task(one_area_task(7, 40)).unwrap();
        w.finish().unwrap();
    }

    /// Pages 5 and 17 changed; the rest kept, by area or page by page.
    fn child(path: &Path, parent: &Path, by_area: bool) -> u64 {
        let mut w = ImageWriter::create_incremental(path, parent, info(), opts()).unwrap();
        let dirty = |p: u32| p == 5 || p == 17;
        let kept = if by_area {
            w.keep_parent_area(7, 0, 7, |p| !dirty(p)).unwrap()
        } else {
            for p in (0..40).filter(|p| !dirty(*p)) {
                w.keep_parent_page(7, 0, p).unwrap();
            }
            w.stats().parent_pages
        };
        for p in [5, 17] {
            w.add_page(7, 0, p, &sample_page(1000 + p)).unwrap();
        }
        w.add_task(one_area_task(7, 40)).unwrap();
        w.finish().unwrap();
        kept
    }

    #[test]
    fn an_area_kept_at_once_is_the_same_image_as_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("full");
        full(&base);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        assert_eq!(child(&a, &base, true), 28, "30 stored, 2 of them changed");
        assert_eq!(child(&b, &base, false), 28);
        let (ia, ib) = (Image::open(&a).unwrap(), Image::open(&b).unwrap());
        assert_eq!(ia.manifest().chunks, ib.manifest().chunks);
        assert_eq!(ia.task(7).unwrap().areas, ib.task(7).unwrap().areas);
        let area = &ia.task(7).unwrap().areas[0];
        for p in 0..40u32 {
            let mut got = [0; PAGE_SIZE];
            ia.read_area_page(area, p, &mut got).unwrap();
            let want = match p {
                5 | 17 => sample_page(1000 + p),
                p if p % 4 == 3 => vec![0; PAGE_SIZE],
                p => sample_page(p),
            };
            assert_eq!(got[..], want[..], "page {p}");
        }
        assert!(crate::validate(&a).is_empty());
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("full");
        full(&base);
        let mut w = ImageWriter::create(dir.path().join("x"), info(), opts()).unwrap();
        let e = w.keep_parent_area(7, 0, 7, |_| true).unwrap_err();
        assert!(e.to_string().contains("without a parent"), "{e}");
        let mut w =
            ImageWriter::create_incremental(dir.path().join("y"), &base, info(), opts()).unwrap();
        let e = w.keep_parent_area(7, 0x10000, 7, |_| true).unwrap_err();
        assert!(e.to_string().contains("no area at 0x10000"), "{e}");
        let e = w.keep_parent_area(7, 0, 9, |_| true).unwrap_err();
        assert!(e.to_string().contains('9'), "{e}");
    }
}
