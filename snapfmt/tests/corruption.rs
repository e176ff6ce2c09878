//! Every single-byte change and every truncation of every file of a small
//! image is detected (an error from the reader, and for the directory form
//! also a problem from validate), and never causes a panic.

mod common;
use common::*;
use snapfmt::*;
use std::path::Path;

/// Replaces a file's content with a new file (not truncate-and-rewrite,
/// which ext4 flushes to disk on close and makes this test I/O bound).
fn rewrite(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

fn assert_detected(img: &Path, what: &str) {
    assert!(deep_read(img).is_err(), "{what}: deep read succeeded");
    assert!(!validate(img).is_empty(), "{what}: validate found nothing");
}

#[test]
fn every_flipped_byte_and_truncation_of_the_directory_form_is_detected() {
    flip_and_truncate_every_file(&golden_dir());
}

#[test]
fn every_flipped_byte_and_truncation_of_the_1_1_directory_form_is_detected() {
    flip_and_truncate_every_file(&golden_dir_v1_1());
}

fn flip_and_truncate_every_file(golden: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    copy_dir(golden, &img);
    assert!(deep_read(&img).is_ok());
    let mut cases = 0;
    for f in files(&img) {
        let original = std::fs::read(&f).unwrap();
        let name = f.strip_prefix(&img).unwrap().display().to_string();
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0xA5;
            rewrite(&f, &bytes);
            assert_detected(&img, &format!("{name} byte {i} flipped"));
            cases += 1;
        }
        for len in 0..original.len() {
            rewrite(&f, &original[..len]);
            assert_detected(&img, &format!("{name} truncated to {len}"));
            cases += 1;
        }
        rewrite(&f, &original);
    }
    assert!(deep_read(&img).is_ok());
    assert!(cases > 1000, "{cases} cases");
}

/// Byte ranges of a tar that carry meaning: member headers and data
/// (padding after member data and the end-of-archive blocks do not).
fn meaningful_tar_bytes(tar: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let start = e.raw_file_position() as usize;
        out.push(start - 512..start + e.size() as usize);
    }
    out
}

#[test]
fn every_flipped_byte_and_truncation_of_the_tar_form_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.tar");
    let original = std::fs::read(golden_tar()).unwrap();
    let ranges = meaningful_tar_bytes(&original);
    let end = ranges.last().unwrap().end;
    for r in &ranges {
        for i in r.clone() {
            let mut bytes = original.clone();
            bytes[i] ^= 0xA5;
            rewrite(&img, &bytes);
            assert!(
                deep_read(&img).is_err(),
                "tar byte {i} flipped: deep read succeeded"
            );
        }
    }
    for len in 0..end {
        rewrite(&img, &original[..len]);
        assert!(
            deep_read(&img).is_err(),
            "tar truncated to {len}: deep read succeeded"
        );
    }
}
