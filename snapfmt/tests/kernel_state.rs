//! The kernel state record (kind 6, `tasks/<task id>.spk`, since 1.2):
//! written next to its task record, read back unchanged, absent from older
//! images, refused in a file of an older version, and checked by
//! `validate` against the task it belongs to (each problem naming the file
//! and the field).

mod common;
use common::*;
use snapfmt::object::{self, kernel_state_path};
use snapfmt::sample::{sample_info, sample_kernel_state, write_sample};
use snapfmt::*;
use std::path::Path;

fn opts() -> WriterOptions {
    WriterOptions {
        threads: 1,
        ..WriterOptions::default()
    }
}

fn sample(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("img");
    write_sample(&path, opts()).unwrap();
    path
}

/// Replaces (or adds) the object at `rel` of a directory image with a
/// record file holding `state`, and rewrites the manifest's listing.
fn put_state(img: &Path, rel: &str, state: &KernelTaskState) {
    let file = object::encode_record(ObjectKind::KernelState, state, Some(1)).unwrap();
    std::fs::write(img.join(rel), &file).unwrap();
    let h = ObjectHeader::parse(&file).unwrap();
    let bytes = std::fs::read(img.join("manifest.spm")).unwrap();
    let (_, mut m): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest).unwrap();
    m.objects.retain(|o| o.path != rel);
    m.objects.push(ObjectEntry {
        path: rel.into(),
        body_len: h.body_len,
        body_digest: h.checksum,
    });
    m.objects.sort_by(|a, b| a.path.cmp(&b.path));
    let file = object::encode_record(ObjectKind::Manifest, &m, None).unwrap();
    std::fs::write(img.join("manifest.spm"), file).unwrap();
}

#[test]
fn the_sample_round_trips_its_kernel_state_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    for form in [ImageForm::Directory, ImageForm::Tar] {
        let path = dir.path().join(format!("{form:?}"));
        write_sample(&path, WriterOptions { form, ..opts() }).unwrap();
        assert_eq!(validate(&path), vec![]);
        let img = Image::open(&path).unwrap();
        let k = img.kernel_state(7).unwrap().expect("task 7 has one");
        assert_eq!(*k, sample_kernel_state());
        assert_eq!(img.kernel_state(9).unwrap(), None);
        assert!(matches!(
            img.kernel_state(2),
            Err(Error::NoSuchTask { task: 2 })
        ));
        assert!(
            img.manifest()
                .objects
                .iter()
                .any(|o| o.path == "tasks/7.spk")
        );
    }
}

#[test]
fn older_images_have_no_kernel_state() {
    for path in [golden_dir(), golden_dir_v1_1()] {
        let img = Image::open(&path).unwrap();
        for id in img.task_ids() {
            assert_eq!(img.kernel_state(id).unwrap(), None);
        }
    }
}

#[test]
fn kind_6_does_not_exist_before_1_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let file = std::fs::read(path.join("tasks/7.spk")).unwrap();
    let h = ObjectHeader::parse(&file).unwrap();
    assert_eq!(h.kind, ObjectKind::KernelState);
    assert_eq!(h.version, FORMAT_VERSION);
    let mut old = file.clone();
    old[10..12].copy_from_slice(&1u16.to_le_bytes());
    assert!(matches!(
        ObjectHeader::parse(&old),
        Err(ObjectError::UnknownKind { found: 6 })
    ));
    // A 1.1 manifest may not list one either.
    let bytes = std::fs::read(path.join("manifest.spm")).unwrap();
    let (_, mut m): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest).unwrap();
    m.format_version = FormatVersion { major: 1, minor: 1 };
    let mut out = Vec::new();
    let problems = {
        // Only the manifest rules matter here; reuse validate on a copy.
        let img = dir.path().join("old");
        copy_dir(&path, &img);
        let file = object::encode_record(ObjectKind::Manifest, &m, None).unwrap();
        let mut h = ObjectHeader::parse(&file).unwrap();
        h.version = m.format_version;
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&file[header::HEADER_LEN..]);
        std::fs::write(img.join("manifest.spm"), &out).unwrap();
        validate(&img)
    };
    assert!(
        problems
            .iter()
            .any(|p| p.file == "manifest.spm" && p.message.contains("no kernel state records")),
        "{problems:#?}"
    );
}

#[test]
fn validate_names_file_and_field_of_a_state_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let mut k = sample_kernel_state();
    k.threads.pop();
    k.calls.swap(0, 2);
    k.phones[0].slot = 0;
    put_state(&path, "tasks/7.spk", &k);
    let problems = validate(&path);
    let has = |field: &str| {
        problems
            .iter()
            .any(|p| p.file == "tasks/7.spk" && p.field == field)
    };
    assert!(has("threads"), "{problems:#?}");
    assert!(has("calls[0]") && has("calls[2]"), "{problems:#?}");
    assert!(has("phones[0].state"), "{problems:#?}");
    assert!(!has("calls"), "{problems:#?}");
    // The reader refuses it too.
    let img = Image::open(&path).unwrap();
    let e = img.kernel_state(7).unwrap_err();
    assert!(e.to_string().contains("tasks/7.spk"), "{e}");

    let mut k = sample_kernel_state();
    k.calls.pop();
    put_state(&path, "tasks/7.spk", &k);
    let problems = validate(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.file == "tasks/7.spk" && p.field == "calls"),
        "{problems:#?}"
    );
}

#[test]
fn validate_refuses_a_state_of_no_task_or_of_another_task() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let mut k = sample_kernel_state();
    k.task_id = 2; // the cooperative vfs, not checkpointable
    put_state(&path, &kernel_state_path(2), &k);
    // Task 9's file holding task 7's state.
    put_state(&path, "tasks/9.spk", &sample_kernel_state());
    let problems = validate(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.file == "tasks/2.spk" && p.message.contains("no checkpointable member")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.file == "tasks/9.spk" && p.field == "task_id"),
        "{problems:#?}"
    );
}

#[test]
fn a_damaged_state_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let f = path.join("tasks/7.spk");
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&f, bytes).unwrap();
    let problems = validate(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.file == "tasks/7.spk" && p.field == "header.checksum"),
        "{problems:#?}"
    );
    assert!(Image::open(&path).unwrap().kernel_state(7).is_err());
}

#[test]
fn the_writer_refuses_a_state_that_readers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, k: KernelTaskState| {
        let mut w = ImageWriter::create(dir.path().join(name), sample_info(), opts()).unwrap();
        w.add_kernel_state(k).unwrap();
        w.finish()
    };
    // No task records at all: refused (the set's tasks lack records, and
    // the state has none).
    assert!(write("a", sample_kernel_state()).is_err());
    assert!(!dir.path().join("a").exists());

    let mut w = ImageWriter::create(dir.path().join("b"), sample_info(), opts()).unwrap();
    w.add_kernel_state(sample_kernel_state()).unwrap();
    assert!(matches!(
        w.add_kernel_state(sample_kernel_state()),
        Err(Error::Usage(m)) if m.contains("twice")
    ));
}

#[test]
fn a_hostile_count_is_refused_before_allocating() {
    // task_id 7, counters 1,1,1, then a phone count of 2^32.
    let mut content = vec![7, 1, 1, 1];
    content.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]);
    let e = object::decode_record::<KernelTaskState>(&content).unwrap_err();
    assert!(matches!(e, ObjectError::CountPastInput), "{e}");
}
