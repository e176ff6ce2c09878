//! The golden images of formats 1.0, 1.1, 1.2, 1.3 and 1.4, committed in
//! `fixtures/images/`, must be readable by every future reader of major
//! version 1. Never regenerate them from this test.

mod common;
use common::*;
use snapfmt::sample::{SAMPLE_MODULE, SHARED_BASE_9, sample_page};
use snapfmt::*;

#[test]
fn golden_v1_reads_in_both_forms() {
    let m = check_golden([golden_dir(), golden_tar()], FORMAT_1_0);
    assert!(
        m.chunks
            .iter()
            .all(|c| matches!(c.home, ChunkHome::Local { .. }))
    );
    // 1.0 addresses are over page digests.
    let img = Image::open(golden_dir()).unwrap();
    let c = img.chunk(0).unwrap();
    assert_eq!(chunk_address_of(&c), m.chunks[0].content);
    assert_ne!(Digest::of(&c), m.chunks[0].content);
}

#[test]
fn golden_v1_1_reads_in_both_forms() {
    let v1_1 = FormatVersion { major: 1, minor: 1 };
    let m = check_golden([golden_dir_v1_1(), golden_tar_v1_1()], v1_1);
    assert!(
        m.chunks
            .iter()
            .all(|c| matches!(c.home, ChunkHome::LocalPlain { .. }))
    );
    // 1.1 addresses are the plain SHA-256 of the content, and the memory
    // is that of the 1.0 golden image, page for page.
    let img = Image::open(golden_dir_v1_1()).unwrap();
    for (i, c) in m.chunks.iter().enumerate() {
        let content = img.chunk(i as u32).unwrap();
        assert_eq!(Digest::of(&content), c.content);
    }
    let old = Image::open(golden_dir()).unwrap();
    assert_eq!(img.task_ids(), old.task_ids());
    for id in img.task_ids() {
        let (new_t, old_t) = (img.task(id).unwrap(), old.task(id).unwrap());
        assert_eq!(new_t.areas.len(), old_t.areas.len());
        for (a, b) in new_t.areas.iter().zip(&old_t.areas) {
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            img.for_each_page(a, 2, |_, p| {
                pa.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
            old.for_each_page(b, 1, |_, p| {
                pb.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
            assert_eq!(pa, pb, "task {id} area {:#x}", a.base);
        }
    }
}

#[test]
fn golden_v1_2_reads_in_both_forms() {
    let v1_2 = FormatVersion { major: 1, minor: 2 };
    let m = check_golden([golden_dir_v1_2(), golden_tar_v1_2()], v1_2);
    // Same memory and addresses as 1.1: only the chunk body checksum
    // changed.
    let m1 = Image::open(golden_dir_v1_1()).unwrap().manifest().clone();
    let addrs = |m: &Manifest| m.chunks.iter().map(|c| c.content).collect::<Vec<_>>();
    assert_eq!(addrs(&m), addrs(&m1));
    // Every compressed chunk body is checked by XXH3-128, every other
    // file by SHA-256; every file still validates by its header's rule.
    let mut xxh3 = 0;
    for c in &m.chunks {
        let path = golden_dir_v1_2().join(snapfmt::object::chunk_path(&c.content));
        let bytes = std::fs::read(&path).unwrap();
        let (h, body) = snapfmt::object::check(&bytes, ObjectKind::Chunk).unwrap();
        assert_eq!(
            h.flags & header::FLAG_XXH3 != 0,
            h.flags & header::FLAG_ZSTD != 0,
            "{}",
            path.display()
        );
        if h.flags & header::FLAG_XXH3 != 0 {
            xxh3 += 1;
            assert_ne!(h.checksum, Digest::of(body));
            assert_eq!(h.checksum.0[16..], [0u8; 16]);
        }
    }
    assert!(xxh3 > 0, "no chunk of the 1.2 golden image uses XXH3");
    // Task 7 carries a kernel state record (kind 6), task 9 none.
    for path in [golden_dir_v1_2(), golden_tar_v1_2()] {
        let img = Image::open(&path).unwrap();
        let k = img
            .kernel_state(7)
            .unwrap()
            .expect("kernel state of task 7");
        assert_eq!(*k, snapfmt::sample::sample_kernel_state());
        assert_eq!(k.calls.len(), img.task(7).unwrap().calls.len());
        assert_eq!(img.kernel_state(9).unwrap(), None);
    }
    let bytes = std::fs::read(golden_dir_v1_2().join("tasks/7.spk")).unwrap();
    assert_eq!(
        ObjectHeader::parse(&bytes).unwrap().kind,
        ObjectKind::KernelState
    );
    for f in files(&golden_dir_v1_2()) {
        let bytes = std::fs::read(&f).unwrap();
        let h = ObjectHeader::parse(&bytes).unwrap();
        if h.kind != ObjectKind::Chunk {
            assert_eq!(h.flags & header::FLAG_XXH3, 0, "{}", f.display());
        }
    }
}

#[test]
fn golden_v1_3_reads_in_both_forms() {
    let v1_3 = FormatVersion { major: 1, minor: 3 };
    let m = check_golden([golden_dir_v1_3(), golden_tar_v1_3()], v1_3);
    // The same content as 1.2, plus the set's schedule.
    let m2 = Image::open(golden_dir_v1_2()).unwrap().manifest().clone();
    let addrs = |m: &Manifest| m.chunks.iter().map(|c| c.content).collect::<Vec<_>>();
    assert_eq!(addrs(&m), addrs(&m2));
    let e = &m.options.extra;
    assert_eq!(e["kernel.next_thread_id"], "4");
    assert_eq!(e["kernel.wait_order"], "2 3");
    assert_eq!(e["kernel.sched.cursor"], "1");
    assert!(m2.options.extra.keys().all(|k| !k.starts_with("kernel.")));
    let img = Image::open(golden_dir_v1_3()).unwrap();
    assert_eq!(
        *img.kernel_state(7)
            .unwrap()
            .expect("kernel state of task 7"),
        snapfmt::sample::sample_kernel_state()
    );
}

#[test]
fn golden_v1_4_reads_in_both_forms() {
    let m = check_golden([golden_dir_v1_4(), golden_tar_v1_4()], FORMAT_1_4);
    // The same content and addresses as 1.3; every chunk is a frame of
    // the one pack, the frames back to back from its start.
    let m3 = Image::open(golden_dir_v1_3()).unwrap().manifest().clone();
    let addrs = |m: &Manifest| m.chunks.iter().map(|c| c.content).collect::<Vec<_>>();
    assert_eq!(addrs(&m), addrs(&m3));
    assert_eq!(m.options.extra, m3.options.extra);
    let pack = std::fs::read(golden_dir_v1_4().join("packs/0.spp")).unwrap();
    let mut end = 0u64;
    for (i, c) in m.chunks.iter().enumerate() {
        let ChunkHome::Packed {
            pack: 0,
            offset,
            body_len,
            body_digest,
        } = c.home
        else {
            panic!("chunks[{i}] is not in pack 0: {:?}", c.home);
        };
        assert_eq!(offset, end, "chunks[{i}]");
        end = offset + header::HEADER_LEN as u64 + body_len;
        // Each frame is a whole chunk file.
        let frame = &pack[offset as usize..end as usize];
        let (h, _) = snapfmt::object::check(frame, ObjectKind::Chunk).unwrap();
        assert_eq!(h.checksum, body_digest);
        assert_eq!(h.version, FORMAT_1_4);
    }
    assert_eq!(end, pack.len() as u64);
    assert!(!golden_dir_v1_4().join("chunks").exists());
    for path in [golden_dir_v1_4(), golden_tar_v1_4()] {
        let img = Image::open(&path).unwrap();
        for (i, c) in m.chunks.iter().enumerate() {
            assert_eq!(Digest::of(&img.chunk(i as u32).unwrap()), c.content);
        }
    }
}

/// Checks what both golden images hold; returns the manifest.
fn check_golden(paths: [std::path::PathBuf; 2], version: FormatVersion) -> Manifest {
    let mut digests = Vec::new();
    let mut manifest = None;
    for path in paths {
        assert_eq!(validate(&path), vec![], "{}", path.display());
        deep_read(&path).unwrap();
        let img = Image::open(&path).unwrap();
        let m = img.manifest();
        assert_eq!(m.format_version, version);
        assert_eq!(m.task_zero, 7);
        assert_eq!(m.created.seconds, 1_700_000_000);
        assert_eq!(m.options.file_policy, FilePolicy::BackupOverwrite);
        assert_eq!(img.task_ids(), vec![7, 9]);
        if version < (FormatVersion { major: 1, minor: 2 }) {
            assert_eq!(img.kernel_state(7).unwrap(), None);
        }
        assert!(m.checkpoint_set.iter().any(|s| s.role
            == Role::Cooperative {
                service_id: "spartan.vfs".into()
            }));
        let t7 = img.task(7).unwrap();
        assert_eq!(t7.meta.args, vec!["counter", "--start", "5"]);
        assert_eq!(t7.phones[1], PhoneSlot::Free);
        assert_eq!(t7.calls.len(), 6);
        assert_eq!(t7.threads[1].active_sync_call, Some(6));
        assert_eq!(t7.coop_blobs[0].data, b"open /data/score pos=17");
        assert_eq!(img.module(&t7.meta.module.sha256()).unwrap(), SAMPLE_MODULE);
        assert_eq!(
            img.file_backup(&t7.file_backups[0].sha256).unwrap(),
            b"high score: 4200\n"
        );
        let mut page = [0u8; PAGE_SIZE];
        assert_eq!(
            img.read_page(7, 0x6000, &mut page).unwrap(),
            PageSource::Local
        );
        assert_eq!(page.as_slice(), sample_page(1));
        assert_eq!(
            img.read_page(7, 0x2000, &mut page).unwrap(),
            PageSource::Zero
        );
        img.read_page(9, SHARED_BASE_9, &mut page).unwrap();
        assert_eq!(page.as_slice(), sample_page(100));
        digests.push(img.manifest_digest());
        manifest = Some(m.clone());
    }
    assert_eq!(
        digests[0], digests[1],
        "the tar twin holds the same manifest"
    );
    manifest.unwrap()
}
