//! Damaged images never make the library panic: bytes of every file of a
//! small image are flipped in turn (every header byte, every fifth body
//! byte), and show, validate, diff (against the intact image) and pages
//! all return a result or a typed error.

mod common;

use common::*;
use snapfmt::ImageForm;
use snapinspect::addr::AddrRange;
use snapinspect::{diff, pages, show, validate};

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_flipped_byte_gives_a_result_or_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    write_sample(&good, ImageForm::Directory);
    let bad = tmp.path().join("bad");
    write_sample(&bad, ImageForm::Directory);
    let range = AddrRange::new(0, 0x8000).unwrap();
    let mut variants = 0;
    let mut unsound = 0;
    for file in files(&bad) {
        let original = std::fs::read(&file).unwrap();
        let header = 64.min(original.len());
        let positions = (0..header).chain((header..original.len()).step_by(5));
        for i in positions {
            let mut bytes = original.clone();
            bytes[i] ^= 0x41;
            std::fs::write(&file, &bytes).unwrap();
            variants += 1;
            let report = validate::validate(&bad).expect("the path exists");
            if !report.sound {
                unsound += 1;
            }
            let _ = show::show(&bad, &[]);
            let _ = diff::diff(&good, &bad, diff::DiffOptions::default());
            let _ = pages::pages(&bad, 7, range);
        }
        std::fs::write(&file, &original).unwrap();
    }
    assert!(variants > 500, "only {variants} variants");
    // Every flip is caught by validation (checksums cover every byte).
    assert_eq!(unsound, variants);
    assert!(validate::validate(&bad).unwrap().sound);
}
