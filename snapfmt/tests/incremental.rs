//! Incremental images: chunks kept from the parent, chain checks, and a
//! broken chain detected by validate and by the reader.

mod common;
use common::*;
use snapfmt::sample::{self, sample_info, sample_page};
use snapfmt::*;
use std::path::Path;

fn child(parent: &Path, target: &Path) -> Result<Finished> {
    let opts = WriterOptions {
        threads: 2,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create_incremental(target, parent, sample_info(), opts)?;
    let p = Image::open(parent)?;
    for id in p.task_ids() {
        let mut t = (*p.task(id)?).clone();
        for a in t.areas.iter_mut() {
            for page in 0..(a.size / PAGE_SIZE as u64) as u32 {
                if id == 7 && a.base == 0 && page == 3 {
                    // The one dirty page.
                    w.add_page(id, a.base, page, &sample_page(999))?;
                } else {
                    w.keep_parent_page(id, a.base, page)?;
                }
            }
            a.pages = PageMap::default();
        }
        if let ModuleRef::Embedded { sha256, .. } = &t.meta.module {
            t.meta.module = w.add_module(&p.module(sha256)?)?;
        }
        for fb in &t.file_backups {
            w.add_file_backup(&p.file_backup(&fb.sha256)?)?;
        }
        w.add_task(t)?;
    }
    w.finish()
}

#[test]
fn incremental_image_keeps_parent_pages_and_detects_a_broken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let opts = WriterOptions {
        threads: 2,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    let base_done = sample::write_sample(&base, opts.clone()).unwrap();
    let inc = dir.path().join("inc");
    let done = child(&base, &inc).unwrap();
    assert_eq!(done.stats.pages_fed, 1);
    assert_eq!(done.stats.chunks_written, 1);
    assert_eq!(validate(&inc), vec![]);
    let img = Image::open(&inc).unwrap();
    assert_eq!(img.manifest().parent.as_ref().unwrap().path, "base");
    let chain = img.parent_chain().unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].manifest_digest, base_done.manifest_digest);
    let mut page = [0u8; PAGE_SIZE];
    assert_eq!(
        img.read_page(7, 0x3000, &mut page).unwrap(),
        PageSource::Local
    );
    assert_eq!(page.as_slice(), sample_page(999));
    assert_eq!(
        img.read_page(7, 0x6000, &mut page).unwrap(),
        PageSource::Parent
    );
    assert_eq!(page.as_slice(), sample_page(1));
    assert_eq!(
        img.read_page(7, 0x2000, &mut page).unwrap(),
        PageSource::Zero
    );
    let stats = img.stats().unwrap();
    assert_eq!(stats.parent_pages, stats.mapped_pages - 1);
    deep_read(&inc).unwrap();

    // A grandchild: chains of two.
    let inc2 = dir.path().join("inc2");
    child(&inc, &inc2).unwrap();
    assert_eq!(validate(&inc2), vec![]);
    assert_eq!(Image::open(&inc2).unwrap().parent_chain().unwrap().len(), 2);

    // Replace the base with another image: the chain is broken.
    let o = WriterOptions {
        overwrite: true,
        chunk_pages: 2,
        ..opts
    };
    sample::write_sample(&base, o).unwrap();
    let problems = validate(&inc2);
    assert!(
        problems
            .iter()
            .any(|p| p.field == "parent" && p.message.contains("manifest digest")),
        "{problems:#?}"
    );
    assert!(deep_read(&inc2).is_err());
    assert!(matches!(
        Image::open(&inc).unwrap().parent(),
        Err(Error::Parent(_))
    ));

    // Remove it: broken too.
    std::fs::remove_dir_all(&base).unwrap();
    assert!(!validate(&inc).is_empty());
    let mut page = [0u8; PAGE_SIZE];
    assert!(
        Image::open(&inc)
            .unwrap()
            .read_page(7, 0x6000, &mut page)
            .is_err()
    );
}

#[test]
fn a_1_1_child_of_a_1_0_parent_reads_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("golden-v1");
    copy_dir(&golden_dir(), &base);
    let inc = dir.path().join("inc");
    child(&base, &inc).unwrap();
    assert_eq!(validate(&inc), vec![]);
    let img = Image::open(&inc).unwrap();
    let m = img.manifest();
    assert_eq!(m.format_version, FORMAT_VERSION);
    // The new chunk is plainly addressed (and packed); the kept ones carry
    // the 1.0 parent's addresses.
    assert!(
        m.chunks
            .iter()
            .any(|c| matches!(c.home, ChunkHome::Packed { .. }))
    );
    assert!(m.chunks.iter().any(|c| c.home == ChunkHome::Parent));
    let mut page = [0u8; PAGE_SIZE];
    assert_eq!(
        img.read_page(7, 0x3000, &mut page).unwrap(),
        PageSource::Local
    );
    assert_eq!(page.as_slice(), sample_page(999));
    assert_eq!(
        img.read_page(7, 0x6000, &mut page).unwrap(),
        PageSource::Parent
    );
    assert_eq!(page.as_slice(), sample_page(1));
    deep_read(&inc).unwrap();
}

/// A 1.4 child (its new chunk packed) of parents whose chunks are chunk
/// files (a 1.3 image; a 1.4 tar image written by the writer) or frames
/// of a pack (the 1.4 golden directory and its tar twin): the parent's
/// pages are found by address in every case, and a grandchild finds the
/// 1.4 child's packed chunk the same way.
#[test]
fn a_1_4_child_reads_parents_with_chunk_files_or_packs() {
    let dir = tempfile::tempdir().unwrap();
    let tar_parent = dir.path().join("written.tar");
    sample::write_sample(
        &tar_parent,
        WriterOptions {
            form: ImageForm::Tar,
            chunk_pages: 4,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    let parents = [
        ("v1.3", golden_dir_v1_3(), false),
        ("v1.4", golden_dir_v1_4(), true),
        ("v1.4.tar", golden_tar_v1_4(), true),
        ("written.tar", tar_parent, false),
    ];
    for (name, source, packed) in parents {
        let parent = dir.path().join(format!("parent-{name}"));
        if source.is_dir() {
            copy_dir(&source, &parent);
        } else {
            std::fs::copy(&source, &parent).unwrap();
        }
        let pm = Image::open(&parent).unwrap().manifest().clone();
        assert_eq!(
            pm.chunks
                .iter()
                .all(|c| matches!(c.home, ChunkHome::Packed { .. })),
            packed,
            "{name}"
        );
        let inc = dir.path().join(format!("inc-{name}"));
        child(&parent, &inc).unwrap();
        assert_eq!(validate(&inc), vec![], "{name}");
        let img = Image::open(&inc).unwrap();
        let m = img.manifest();
        assert_eq!(m.format_version, FORMAT_1_4);
        let local: Vec<_> = m.chunks.iter().filter(|c| c.home.is_local()).collect();
        assert_eq!(local.len(), 1, "{name}");
        assert!(matches!(
            local[0].home,
            ChunkHome::Packed {
                pack: 0,
                offset: 0,
                ..
            }
        ));
        let mut page = [0u8; PAGE_SIZE];
        assert_eq!(
            img.read_page(7, 0x6000, &mut page).unwrap(),
            PageSource::Parent
        );
        assert_eq!(page.as_slice(), sample_page(1), "{name}");
        deep_read(&inc).unwrap();
        // The grandchild's dirty page replaces the child's packed one; its
        // other pages come from the child's parent through the child.
        let grand = dir.path().join(format!("grand-{name}"));
        child(&inc, &grand).unwrap();
        assert_eq!(validate(&grand), vec![], "{name}");
        let g = Image::open(&grand).unwrap();
        g.read_page(7, 0x6000, &mut page).unwrap();
        assert_eq!(page.as_slice(), sample_page(1), "{name}");
        deep_read(&grand).unwrap();
    }
}
