//! Helpers shared by the integration tests.
#![allow(dead_code)]

use snapfmt::*;
use std::path::{Path, PathBuf};

/// The committed golden images.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1")
}
pub fn golden_tar() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.tar")
}
/// The golden images of format 1.1 (plain chunk addresses).
pub fn golden_dir_v1_1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.1")
}
pub fn golden_tar_v1_1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.1.tar")
}

/// Reads everything a restore would: manifest, every task record, every
/// embedded module and stored file backup, every page of every area, and
/// the parent chain.
pub fn deep_read(path: &Path) -> Result<()> {
    let img = Image::open(path)?;
    for id in img.task_ids() {
        let t = img.task(id)?;
        if let ModuleRef::Embedded { sha256, .. } = &t.meta.module {
            img.module(sha256)?;
        }
        for fb in t.file_backups.iter().filter(|f| f.stored) {
            img.file_backup(&fb.sha256)?;
        }
        for area in &t.areas {
            img.for_each_page(area, 1, |_, _| Ok(()))?;
        }
    }
    img.parent_chain()?;
    Ok(())
}

/// Copies a directory image.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every file of a directory image, relative paths.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
/// The golden images of format 1.4 (chunks packed in `packs/0.spp`; the
/// tar twin holds the same files).
pub fn golden_dir_v1_4() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.4")
}
pub fn golden_tar_v1_4() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.4.tar")
}
/// The golden images of format 1.3 (the set's schedule in options.extra).
pub fn golden_dir_v1_3() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.3")
}
pub fn golden_tar_v1_3() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.3.tar")
}
/// The golden images of format 1.2 (chunk bodies checked by XXH3-128).
pub fn golden_dir_v1_2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.2")
}
pub fn golden_tar_v1_2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.2.tar")
}

/// The sample image's info with task 7 as its only member.
pub fn task_7_info() -> ImageInfo {
    let mut info = snapfmt::sample::sample_info();
    info.checkpoint_set.retain(|m| m.task_id == 7);
    info.task_zero = 7;
    info
}
