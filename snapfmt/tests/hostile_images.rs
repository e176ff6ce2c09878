//! Hostile images: a directory image whose files are links or special
//! files, a parent reference naming one, listed objects nothing refers
//! to, a tar directory member climbing out, and objects declaring more
//! content than an image may hold. Each is an error naming the file and
//! the reason, never a hang, a read outside the image, or a pass.

mod common;
use common::*;
use snapfmt::object::{self, MANIFEST_PATH, encode_bytes, encode_record, module_path};
use snapfmt::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a thread and fails the test if it takes more than 60 s (a
/// reader blocked on a FIFO would never return).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: still running after 60 s (blocked?)"))
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A copy of the newest (1.4) golden directory image in a temporary
/// directory.
fn golden_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    copy_dir(&golden_dir_v1_4(), &img);
    assert_eq!(validate(&img), vec![]);
    (dir, img)
}

fn read_manifest(img: &Path) -> Manifest {
    let bytes = std::fs::read(img.join(MANIFEST_PATH)).unwrap();
    object::open_record(&bytes, ObjectKind::Manifest).unwrap().1
}

fn write_manifest(img: &Path, m: &Manifest) {
    let bytes = encode_record(ObjectKind::Manifest, m, None).unwrap();
    std::fs::write(img.join(MANIFEST_PATH), bytes).unwrap();
}

/// Writes `file` at `path` of the image and lists it in `m` (sorted).
fn put(img: &Path, m: &mut Manifest, path: &str, file: &[u8]) {
    let full = img.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, file).unwrap();
    let h = ObjectHeader::parse(file).unwrap();
    m.objects.retain(|o| o.path != path);
    m.objects.push(ObjectEntry {
        path: path.into(),
        body_len: h.body_len,
        body_digest: h.checksum,
    });
    m.objects.sort_by(|a, b| a.path.cmp(&b.path));
}

/// Whether some problem concerns `file` and its message contains `word`.
fn reported(problems: &[Problem], file: &str, word: &str) -> bool {
    problems
        .iter()
        .any(|p| p.file.contains(file) && p.message.contains(word))
}

#[test]
fn a_fifo_in_place_of_a_task_record_is_refused_without_blocking() {
    let (_dir, img) = golden_copy();
    mkfifo(&img.join("tasks/7.spt"));
    let i = img.clone();
    let problems = within("validate", move || validate(&i));
    assert!(reported(&problems, "tasks/7.spt", "a FIFO"), "{problems:?}");
    let i = img.clone();
    let err = within("task", move || {
        Image::open(&i).unwrap().task(7).unwrap_err()
    });
    assert!(
        matches!(&err, Error::NotRegular { file, found: "a FIFO", .. } if file == "tasks/7.spt"),
        "{err}"
    );
    // The manifest itself.
    mkfifo(&img.join(MANIFEST_PATH));
    let i = img.clone();
    let err = within("open", move || Image::open(&i).err().unwrap());
    assert!(err.to_string().contains("manifest.spm: is a FIFO"), "{err}");
}

#[test]
fn a_symlinked_file_is_refused_even_to_a_good_copy() {
    let (dir, img) = golden_copy();
    // A copy of the task record outside the image, linked in: sound before.
    let outside = dir.path().join("7.spt");
    std::fs::rename(img.join("tasks/7.spt"), &outside).unwrap();
    symlink(&outside, img.join("tasks/7.spt")).unwrap();
    let problems = validate(&img);
    assert!(
        reported(&problems, "tasks/7.spt", "a symbolic link"),
        "{problems:?}"
    );
    assert!(deep_read(&img).is_err());
}

#[test]
fn a_symlinked_manifest_does_not_disclose_what_it_points_at() {
    let (dir, img) = golden_copy();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"hunter2-hunter2-hunter2").unwrap();
    std::fs::remove_file(img.join(MANIFEST_PATH)).unwrap();
    symlink(&secret, img.join(MANIFEST_PATH)).unwrap();
    let err = Image::open(&img).err().unwrap().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    // "hunter2" as the bad magic's hex bytes.
    assert!(!err.contains("68, 75") && !err.contains("hunter"), "{err}");
    let problems = validate(&img);
    assert!(
        reported(&problems, MANIFEST_PATH, "symbolic link"),
        "{problems:?}"
    );
}

#[test]
fn dev_zero_as_a_file_backup_is_refused_before_reading() {
    let (_dir, img) = golden_copy();
    let m = read_manifest(&img);
    let backup = &m
        .objects
        .iter()
        .find(|o| o.path.starts_with("files/"))
        .unwrap()
        .path;
    std::fs::remove_file(img.join(backup)).unwrap();
    symlink("/dev/zero", img.join(backup)).unwrap();
    let i = img.clone();
    let problems = within("validate", move || validate(&i));
    assert!(reported(&problems, backup, "symbolic link"), "{problems:?}");
}

#[test]
fn a_symlinked_directory_on_the_way_is_refused() {
    let (dir, img) = golden_copy();
    let elsewhere = dir.path().join("tasks-elsewhere");
    std::fs::rename(img.join("tasks"), &elsewhere).unwrap();
    symlink(&elsewhere, img.join("tasks")).unwrap();
    let err = Image::open(&img).unwrap().task(7).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegular { file, expected: "a directory", .. } if file == "tasks"),
        "{err}"
    );
    let problems = validate(&img);
    assert!(
        reported(&problems, "tasks", "symbolic link"),
        "{problems:?}"
    );
}

/// The golden image with `parent` set (its chunks stay local).
fn with_parent(img: &Path, path: &str, digest: Digest) {
    let mut m = read_manifest(img);
    m.parent = Some(ParentRef {
        path: path.into(),
        manifest_digest: digest,
    });
    write_manifest(img, &m);
}

#[test]
fn a_parent_reference_to_a_fifo_is_refused_without_blocking() {
    let (dir, img) = golden_copy();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    with_parent(&img, fifo.to_str().unwrap(), Digest::default());
    let i = img.clone();
    let err = within("parent", move || {
        Image::open(&i).unwrap().parent().err().unwrap()
    });
    assert!(err.to_string().contains("is a FIFO"), "{err}");
    let i = img.clone();
    let problems = within("validate", move || validate(&i));
    assert!(reported(&problems, MANIFEST_PATH, "a FIFO"), "{problems:?}");
}

#[test]
fn a_parent_reference_through_a_symlink_is_refused() {
    let (dir, img) = golden_copy();
    let parent = dir.path().join("real-parent");
    copy_dir(&golden_dir_v1_4(), &parent);
    let digest = Image::open(&parent).unwrap().manifest_digest();
    symlink(&parent, dir.path().join("link")).unwrap();
    with_parent(&img, "link", digest);
    let err = Image::open(&img).unwrap().parent().err().unwrap();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // Named directly, the same parent is fine.
    with_parent(&img, "real-parent", digest);
    assert!(Image::open(&img).unwrap().parent().unwrap().is_some());
}

#[test]
fn a_malformed_parent_path_is_a_manifest_problem() {
    let (_dir, img) = golden_copy();
    for bad in ["", "a//b", "./a", "a/./b", "a\0b"] {
        with_parent(&img, bad, Digest::default());
        let problems = validate(&img);
        assert!(
            problems.iter().any(|p| p.field == "parent.path"),
            "{bad:?}: {problems:?}"
        );
        assert!(Image::open(&img).is_err(), "{bad:?}");
    }
}

#[test]
fn an_unreferenced_module_is_checked_too() {
    let (_dir, img) = golden_copy();
    let mut m = read_manifest(&img);
    // Named after one content, holding another.
    let named = Digest::of(b"what the name promises");
    let file = encode_bytes(ObjectKind::Module, b"something else", Some(3)).unwrap();
    put(&img, &mut m, &module_path(&named), &file);
    // Named after its content, but not a zstd frame.
    let junk = b"not zstd at all";
    let mut file = object::assemble(
        ObjectKind::Module,
        snapfmt::header::FLAG_ZSTD,
        junk,
        Digest::of(junk),
    );
    file.truncate(64 + junk.len());
    put(&img, &mut m, &module_path(&Digest::of(b"x")), &file);
    write_manifest(&img, &m);
    let problems = validate(&img);
    assert!(
        reported(&problems, &named.to_hex(), "hashes to"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.file == module_path(&Digest::of(b"x")) && p.field == "body (zstd)"),
        "{problems:?}"
    );
}

#[test]
fn a_tar_directory_member_climbing_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("img.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let mut h = tar::Header::new_ustar();
    let name = b"../../etc/";
    h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let golden = golden_dir_v1_4();
    for f in files(&golden) {
        let rel = f.strip_prefix(&golden).unwrap();
        b.append_path_with_name(&f, rel).unwrap();
    }
    b.into_inner().unwrap();
    let err = Image::open(&tar_path).err().unwrap().to_string();
    assert!(err.contains("../../etc/"), "{err}");
    assert!(!validate(&tar_path).is_empty());
}

/// A file backup whose zstd frame declares `size` bytes of content (the
/// rest of the frame is junk: only the declaration is ever read).
fn declaring(size: u64, tag: u8) -> Vec<u8> {
    let mut body = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
    body.extend_from_slice(&size.to_le_bytes());
    body.extend_from_slice(&[tag; 32]);
    object::assemble(
        ObjectKind::FileBackup,
        snapfmt::header::FLAG_ZSTD,
        &body,
        Digest::of(&body),
    )
}

#[test]
fn objects_declaring_more_than_the_image_budget_are_refused_before_decompressing() {
    let (_dir, img) = golden_copy();
    let mut m = read_manifest(&img);
    for tag in 0..5u8 {
        let file = declaring(1 << 30, tag);
        put(
            &img,
            &mut m,
            &object::file_backup_path(&Digest::of(&[tag])),
            &file,
        );
    }
    write_manifest(&img, &m);
    let problems = validate(&img);
    assert!(
        problems.iter().any(|p| p.file == MANIFEST_PATH
            && p.field == "objects"
            && p.message.contains("limit")),
        "{problems:?}"
    );
    // The reader charges each object it reads: the fifth gigabyte is over.
    let image = Image::open(&img).unwrap();
    let errs: Vec<String> = (0..5u8)
        .filter_map(|t| image.file_backup(&Digest::of(&[t])).err())
        .map(|e| e.to_string())
        .collect();
    assert!(errs.iter().any(|e| e.contains("per image")), "{errs:?}");
}

#[test]
fn a_manifest_past_the_image_counts_is_refused() {
    let (_dir, img) = golden_copy();
    let mut m = read_manifest(&img);
    let extra = snapfmt::limits::MAX_SET_MEMBERS as u64;
    m.checkpoint_set.extend((0..extra).map(|i| SetMember {
        task_id: 1_000_000 + i,
        name: String::new(),
        role: Role::ExcludedClient,
    }));
    write_manifest(&img, &m);
    let problems = validate(&img);
    assert!(
        problems
            .iter()
            .any(|p| p.field == "checkpoint_set" && p.message.contains("limit")),
        "{problems:?}"
    );
    assert!(Image::open(&img).is_err());
}

#[test]
fn malformed_schedule_entries_are_manifest_problems() {
    type Edits<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: [(Edits, &str, &str); 6] = [
        (
            &[("kernel.wait_order", Some("2 2"))],
            "kernel.wait_order",
            "twice",
        ),
        (
            &[("kernel.wait_order", Some("2  3"))],
            "kernel.wait_order",
            "single spaces",
        ),
        (
            &[("kernel.wait_order", Some("2 8"))],
            "kernel.wait_order",
            "thread 8 is not",
        ),
        (
            &[("kernel.next_thread_id", Some("04"))],
            "kernel.next_thread_id",
            "decimal",
        ),
        (
            &[("kernel.sched.cursor", Some("-1"))],
            "kernel.sched.cursor",
            "decimal",
        ),
        (
            &[("kernel.next_thread_id", None)],
            "kernel.next_thread_id",
            "missing",
        ),
    ];
    for (edits, field, word) in cases {
        let (_dir, img) = golden_copy();
        let mut m = read_manifest(&img);
        for (k, v) in edits {
            match v {
                Some(v) => m.options.extra.insert(k.to_string(), v.to_string()),
                None => m.options.extra.remove(*k),
            };
        }
        write_manifest(&img, &m);
        let problems = validate(&img);
        assert!(
            problems.iter().any(|p| p.file == "manifest.spm"
                && p.field.contains(field)
                && p.message.contains(word)),
            "{edits:?}: {problems:?}"
        );
    }
    // The golden image's entries are sound.
    let (_dir, img) = golden_copy();
    assert_eq!(validate(&img), vec![]);
}

/// The golden image's `Packed` entries: (chunk index, offset, body_len).
fn frames(m: &Manifest) -> Vec<(usize, u64, u64)> {
    m.chunks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.home {
            ChunkHome::Packed {
                offset, body_len, ..
            } => Some((i, offset, body_len)),
            _ => None,
        })
        .collect()
}

/// Sets field `what` of the `Packed` home of chunk `i` to `v`.
fn set_frame(m: &mut Manifest, i: usize, what: &str, v: u64) {
    if let ChunkHome::Packed {
        pack,
        offset,
        body_len,
        ..
    } = &mut m.chunks[i].home
    {
        match what {
            "pack" => *pack = v as u32,
            "offset" => *offset = v,
            "body_len" => *body_len = v,
            _ => unreachable!(),
        }
    }
}

#[test]
fn pack_frames_that_overlap_leave_gaps_or_skip_a_pack_are_refused_by_the_manifest() {
    let (_dir, img) = golden_copy();
    let good = read_manifest(&img);
    let f = frames(&good);
    assert!(f.len() >= 3, "{f:?}");
    let (last, last_off, last_len) = f[f.len() - 1];
    let cases: Vec<(&str, usize, &str, u64, &str)> = vec![
        // Onto the frame before it.
        ("offset", f[1].0, "home.offset", f[0].1, "overlaps"),
        // One byte late: a byte of the pack belongs to no chunk.
        ("offset", f[1].0, "home.offset", f[1].1 + 1, "to no chunk"),
        // Far past the end (the offset the pack cannot have).
        ("offset", last, "home.offset", u64::MAX - 10, "to no chunk"),
        // A longer body runs into the next frame.
        ("body_len", f[0].0, "home.offset", f[0].2 + 1, "overlaps"),
        // A body over the chunk limit, never read.
        ("body_len", last, "home.body_len", u64::MAX, "limit"),
        // Pack 1 without pack 0 (every frame moved).
        ("pack", usize::MAX, "home.pack", 1, "pack 0 is not"),
    ];
    for (what, i, field, v, word) in cases {
        let mut m = good.clone();
        if i == usize::MAX {
            for &(j, _, _) in &f {
                set_frame(&mut m, j, what, v);
            }
        } else {
            set_frame(&mut m, i, what, v);
        }
        write_manifest(&img, &m);
        let err = Image::open(&img).err().expect("refused").to_string();
        assert!(
            err.contains(field) && err.contains(word),
            "{what} {v}: {err}"
        );
        let problems = validate(&img);
        assert!(
            problems
                .iter()
                .any(|p| p.field.ends_with(field) && p.message.contains(word)),
            "{what} {v}: {problems:?}"
        );
    }
    // A chunk moved to a new last pack is fine by the manifest's rules
    // (a frame of its own at 0), but the pack is missing.
    let mut m = good.clone();
    set_frame(&mut m, last, "pack", 1);
    set_frame(&mut m, last, "offset", 0);
    write_manifest(&img, &m);
    let image = Image::open(&img).unwrap();
    let err = image.chunk(last as u32).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { file } if file == "packs/1.spp"),
        "{err}"
    );
    let problems = validate(&img);
    assert!(
        reported(&problems, "packs/1.spp", "missing"),
        "{problems:?}"
    );
    // Pack 0 now ends before the moved frame's old place.
    assert!(
        reported(&problems, "packs/0.spp", &format!("ends at {last_off}")),
        "{problems:?}"
    );
    let _ = last_len;
}

#[test]
fn a_truncated_or_extended_pack_is_refused_naming_it() {
    let (_dir, img) = golden_copy();
    let m = read_manifest(&img);
    let f = frames(&m);
    let (last, last_off, _) = f[f.len() - 1];
    let pack = img.join("packs/0.spp");
    let bytes = std::fs::read(&pack).unwrap();
    // Truncated inside the last frame: the reader refuses to read past
    // the real end, before allocating or reading.
    std::fs::write(&pack, &bytes[..bytes.len() - 1]).unwrap();
    let image = Image::open(&img).unwrap();
    let err = image.chunk(last as u32).unwrap_err().to_string();
    assert!(
        err.contains("packs/0.spp") && err.contains("ends past the file's"),
        "{err}"
    );
    // The frames before it still read.
    image.chunk(f[0].0 as u32).unwrap();
    let problems = validate(&img);
    assert!(
        reported(&problems, "packs/0.spp", "its last frame ends at"),
        "{problems:?}"
    );
    assert!(
        reported(&problems, "packs/0.spp", "ends past"),
        "{problems:?}"
    );
    // Truncated to nothing.
    std::fs::write(&pack, b"").unwrap();
    let err = Image::open(&img).unwrap().chunk(0).unwrap_err().to_string();
    assert!(err.contains("ends past the file's 0 bytes"), "{err}");
    // Extended: the trailing bytes belong to no chunk.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 100]);
    std::fs::write(&pack, &longer).unwrap();
    deep_read(&img).unwrap();
    let problems = validate(&img);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        reported(&problems, "packs/0.spp", &format!("{} bytes", longer.len())),
        "{problems:?}"
    );
    // A damaged frame is named by the pack and its offset.
    let mut damaged = bytes.clone();
    let at = last_off as usize + 64 + 3;
    damaged[at] ^= 0xff;
    std::fs::write(&pack, &damaged).unwrap();
    let err = Image::open(&img)
        .unwrap()
        .chunk(last as u32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("packs/0.spp (frame at {last_off})")),
        "{err}"
    );
}

#[test]
fn a_pack_that_is_a_link_or_a_fifo_is_refused_without_blocking() {
    let (dir, img) = golden_copy();
    let pack = img.join("packs/0.spp");
    let real = dir.path().join("real.spp");
    std::fs::rename(&pack, &real).unwrap();
    symlink(&real, &pack).unwrap();
    let err = Image::open(&img).unwrap().chunk(0).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegular { file, found: "a symbolic link", .. } if file == "packs/0.spp"),
        "{err}"
    );
    assert!(
        reported(&validate(&img), "packs/0.spp", "symbolic link"),
        "link"
    );
    std::fs::remove_file(&pack).unwrap();
    mkfifo(&pack);
    let i = img.clone();
    let err = within("chunk", move || {
        Image::open(&i).unwrap().chunk(0).unwrap_err()
    });
    assert!(
        matches!(&err, Error::NotRegular { file, found: "a FIFO", .. } if file == "packs/0.spp"),
        "{err}"
    );
    let i = img.clone();
    let problems = within("validate", move || validate(&i));
    assert!(reported(&problems, "packs/0.spp", "a FIFO"), "{problems:?}");
    // The packs directory a link.
    std::fs::remove_file(&pack).unwrap();
    std::fs::rename(&real, &pack).unwrap();
    let packs = img.join("packs");
    let moved = dir.path().join("packs-real");
    std::fs::rename(&packs, &moved).unwrap();
    symlink(&moved, &packs).unwrap();
    let err = Image::open(&img).unwrap().chunk(0).unwrap_err();
    assert!(
        matches!(&err, Error::NotRegular { file, found: "a symbolic link", .. } if file == "packs"),
        "{err}"
    );
}
