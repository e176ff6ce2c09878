//! An interrupted write leaves nothing that validates: a writer dropped
//! before `finish` leaves no trace, and a temporary that survived a crash
//! (simulated by copying it before the rename) has no valid manifest.

mod common;
use snapfmt::sample::{sample_info, sample_page};
use snapfmt::*;

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("img");
    for form in [ImageForm::Directory, ImageForm::Tar] {
        let opts = WriterOptions {
            form,
            chunk_pages: 1,
            threads: 2,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&target, sample_info(), opts).unwrap();
        for p in 0..10 {
            w.add_page(7, 0, p, &sample_page(p)).unwrap();
        }
        drop(w);
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary left behind"
        );
        assert!(!validate(&target).is_empty());
    }
}

#[test]
fn a_crashed_temporary_does_not_validate() {
    // Everything a writer puts in its temporary before the manifest.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("img");
    let opts = WriterOptions {
        chunk_pages: 1,
        threads: 2,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create(&target, sample_info(), opts).unwrap();
    for p in 0..10 {
        w.add_page(7, 0, p, &sample_page(p)).unwrap();
    }
    let tmp = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(".img.partial-"), "{name}");
    let snapshot = dir.path().join("crashed");
    common::copy_dir(&tmp, &snapshot);
    drop(w);
    let problems = validate(&snapshot);
    assert!(
        problems.iter().any(|p| p.file == "manifest.spm"),
        "{problems:?}"
    );
    assert!(Image::open(&snapshot).is_err());
}

#[test]
fn writer_contract_violations_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || WriterOptions {
        threads: 1,
        ..WriterOptions::default()
    };
    // A page for an area no task has.
    let mut w = ImageWriter::create(dir.path().join("a"), sample_info(), opts()).unwrap();
    w.add_page(7, 0x5000_0000, 0, &sample_page(1)).unwrap();
    assert!(matches!(w.finish(), Err(Error::Usage(_))));
    // A page of the wrong size.
    let mut w = ImageWriter::create(dir.path().join("b"), sample_info(), opts()).unwrap();
    assert!(matches!(
        w.add_page(7, 0, 0, &[1, 2, 3]),
        Err(Error::Usage(_))
    ));
    drop(w);
    // Checkpointable members without task records.
    let w = ImageWriter::create(dir.path().join("c"), sample_info(), opts()).unwrap();
    assert!(matches!(w.finish(), Err(Error::Usage(_))));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_file_the_io_thread_cannot_write_fails_the_image_and_leaves_nothing() {
    // Directory images are written by an I/O thread; its error must reach
    // the caller (at a later call or at `finish`) and the temporary must go.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("img");
    // One file per chunk (a pack is created once, and its directory
    // with it, on the feeding thread).
    let opts = WriterOptions {
        chunk_pages: 1,
        threads: 2,
        pack_chunks: false,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create(&target, common::task_7_info(), opts).unwrap();
    w.add_page(7, 0, 0, &sample_page(0)).unwrap();
    let tmp = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Wait for the first chunk's directory, then put a file in its place.
    let chunks = tmp.join("chunks");
    for p in 1..200 {
        if chunks.is_dir() {
            break;
        }
        w.add_page(7, 0, p, &sample_page(p)).unwrap();
    }
    assert!(chunks.is_dir(), "no chunks directory was made");
    // Moved aside at once (the I/O thread may be writing into it).
    let aside = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
    std::fs::rename(&chunks, aside.path().join("chunks")).unwrap();
    std::fs::write(&chunks, b"in the way").unwrap();
    let mut failed = None;
    for p in 200..400 {
        if let Err(e) = w.add_page(7, 0, p, &sample_page(p)) {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => {
            drop(w);
            e
        }
        None => {
            w.add_task(snapfmt::sample::one_area_task(7, 400)).unwrap();
            w.finish().expect_err("an image with unwritable chunks")
        }
    };
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("chunks"), "{err}");
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary left behind"
    );
}
