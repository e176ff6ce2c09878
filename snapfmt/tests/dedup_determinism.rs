//! The writer's output depends only on its input: the same pages give the
//! same bytes whatever the thread count, and a page whose content was
//! stored before (in an earlier chunk, or earlier in the same chunk) is
//! stored once, however the duplicates fall across chunks.

mod common;

use common::task_7_info;
use snapfmt::sample::one_area_task;
use snapfmt::sample::sample_page;
use snapfmt::*;

/// 40 pages: every third is a copy of page 1, every fifth is zero, pages
/// 30..36 repeat pages 10..16 (whole chunks of duplicates at 4 per chunk).
fn page(i: u32) -> Vec<u8> {
    match i {
        _ if i.is_multiple_of(5) => vec![0; PAGE_SIZE],
        _ if i.is_multiple_of(3) => sample_page(1),
        30..36 => page(i - 20),
        _ => sample_page(i),
    }
}

fn write(path: &std::path::Path, threads: usize) -> Finished {
    let info = task_7_info();
    let opts = WriterOptions {
        form: ImageForm::Tar,
        threads,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create(path, info, opts).unwrap();
    for i in 0..40 {
        w.add_page(7, 0, i, &page(i)).unwrap();
    }
    w.add_task(one_area_task(7, 40)).unwrap();
    w.finish().unwrap()
}

#[test]
fn same_input_same_bytes_and_every_content_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut tars = Vec::new();
    for threads in [1, 2, 3, 8] {
        let path = dir.path().join(format!("img-{threads}.tar"));
        let done = write(&path, threads);
        assert_eq!(done.stats.zero_pages, 8);
        tars.push(std::fs::read(&path).unwrap());
        assert_eq!(validate(&path), vec![]);
        let img = Image::open(&path).unwrap();
        let t = img.task(7).unwrap();
        let mut got = Vec::new();
        img.for_each_page(&t.areas[0], threads, |i, p| {
            got.push((i, p.to_vec()));
            Ok(())
        })
        .unwrap();
        for (i, p) in got {
            assert_eq!(p, page(i), "page {i}");
        }
        // Distinct non-zero contents, each stored exactly once.
        let mut distinct: Vec<Vec<u8>> = (0..40)
            .map(page)
            .filter(|p| p.iter().any(|&b| b != 0))
            .collect();
        distinct.sort();
        distinct.dedup();
        let stored = img.stats().unwrap().local_content_bytes / PAGE_SIZE as u64;
        assert_eq!(stored, distinct.len() as u64);
        assert_eq!(done.stats.duplicate_pages, 32 - distinct.len() as u64);
    }
    assert!(tars.windows(2).all(|w| w[0] == w[1]));
}
