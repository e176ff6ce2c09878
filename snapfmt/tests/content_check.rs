//! The content check: a chunk whose content is not what its address says
//! (its file swapped for another chunk's, the manifest's file checksums
//! made to agree) is refused by every way of reading it, whether its
//! address is checked alone or side by side with another chunk's.

mod common;

use common::*;
use snapfmt::object;
use snapfmt::*;
use std::path::{Path, PathBuf};

/// An image of one task with `pages` distinct pages, one chunk file per
/// page (not packed: a packed chunk given another's frame overlaps it,
/// which the manifest's rules refuse before any content is read).
fn image(dir: &Path, pages: u32) -> PathBuf {
    let path = dir.join("img");
    let opts = WriterOptions {
        threads: 2,
        chunk_pages: 1,
        pack_chunks: false,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create(&path, task_7_info(), opts).unwrap();
    for p in 0..pages {
        w.add_page(7, 0, p, &sample::sample_page(p)).unwrap();
    }
    w.add_task(sample::one_area_task(7, u64::from(pages)))
        .unwrap();
    w.finish().unwrap();
    path
}

/// Gives chunk `a` the file of chunk `b` (and the manifest entry's file
/// length and checksum to match): only the content check can tell.
fn swap_in(img: &Path, a: usize, b: usize) {
    let bytes = std::fs::read(img.join(object::MANIFEST_PATH)).unwrap();
    let (_, mut m): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest).unwrap();
    let file_b = std::fs::read(img.join(object::chunk_path(&m.chunks[b].content))).unwrap();
    std::fs::write(img.join(object::chunk_path(&m.chunks[a].content)), file_b).unwrap();
    m.chunks[a].home = m.chunks[b].home.clone();
    let file = object::encode_record(ObjectKind::Manifest, &m, None).unwrap();
    std::fs::write(img.join(object::MANIFEST_PATH), file).unwrap();
}

#[test]
fn a_chunk_with_another_chunks_content_is_refused_alone_or_in_a_pair() {
    for pages in [2u32, 5] {
        for bad in 0..pages as usize {
            let dir = tempfile::tempdir().unwrap();
            let img = image(dir.path(), pages);
            deep_read(&img).unwrap();
            swap_in(&img, bad, (bad + 1) % pages as usize);
            let image = Image::open(&img).unwrap();
            let task = image.task(7).unwrap();
            for threads in [1, 2, 3] {
                let r = image.for_each_page(&task.areas[0], threads, |_, _| Ok(()));
                let err = r.expect_err("a lying chunk must be refused").to_string();
                assert!(err.contains("has address"), "{threads} threads: {err}");
            }
            let mut page = [0u8; PAGE_SIZE];
            let err = image
                .read_area_page(&task.areas[0], bad as u32, &mut page)
                .expect_err("a lying chunk must be refused")
                .to_string();
            assert!(err.contains("has address"), "{err}");
            // Without the check the swapped content comes through.
            let mut image = Image::open(&img).unwrap();
            image.set_verify_content(false);
            image
                .for_each_page(&task.areas[0], 2, |_, _| Ok(()))
                .unwrap();
            assert!(!validate(&img).is_empty(), "validate must see it");
        }
    }
}
