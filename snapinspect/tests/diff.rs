//! `snapinspect diff` on images written by snapfmt's writer: identical
//! images exit 0, different ones exit 1 with exactly the right structure
//! and page ranges.

mod common;

use common::*;
use serde_json::Value as Json;
use snapfmt::exec::Value;
use snapfmt::*;

/// The lab image, changed in every way `diff` reports.
fn changed_lab() -> Lab {
    let mut b = Lab::new();
    b.created += 60;
    // Page 3: one byte. Page 4: now zero. Page 6: newly written. Page 15:
    // only its last byte. Pages 0-2 and 5 keep their content but land in
    // other chunks (4 pages per chunk), which must not count as a change.
    b.pages.get_mut(&(0, 3)).unwrap()[100] ^= 0xff;
    b.pages.remove(&(0, 4));
    b.pages.insert((0, 6), lab_page(600));
    let mut last = vec![0u8; PAGE_SIZE];
    last[PAGE_SIZE - 1] = 0xaa;
    b.pages.insert((0, 15), last);
    // The heap grows from 4 to 8 pages and gets content in page 5.
    b.record.areas[1].size = 8 * PAGE_SIZE as u64;
    b.pages.insert((LAB_HEAP, 5), lab_page(105));
    // A new area.
    let mut extra = b.record.areas[1].clone();
    extra.base = 0x20_0000;
    extra.size = 2 * PAGE_SIZE as u64;
    b.record.areas.push(extra);
    b.pages.insert((0x20_0000, 1), lab_page(201));
    // Threads: thread 1 ran on, thread 2 is new.
    let t = &mut b.record.threads[0];
    t.exec.fuel_left = 20;
    t.exec.frames[0].code_offset = 0x18;
    t.exec.frames[0].locals[0] = Value::I32(2);
    let mut t2 = t.clone();
    t2.thread_id = 2;
    b.record.threads.push(t2);
    // The phone hole is filled; a call is added; the blob changed.
    b.record.phones[1] = PhoneSlot::Connected(Phone {
        peer: Peer::Service("spartan.vfs".into()),
        receiver_side_id: 4,
    });
    let mut call = b.record.calls[0].clone();
    call.sender_side_id = 2;
    call.phone = Some(1);
    call.peer = Peer::Service("spartan.vfs".into());
    b.record.calls.push(call);
    b.record.coop_blobs[0].data = b"console state v2".to_vec();
    b
}

fn diff_json(a: &std::path::Path, b: &std::path::Path) -> Json {
    let out = run([
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ]);
    expect_code(&out, 1);
    serde_json::from_str(&stdout(&out)).expect("diff --json is JSON")
}

/// The `field` of every entry of a JSON list of field differences.
fn field_names(list: &Json) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect()
}

#[test]
fn identical_images_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Lab::new().write(&a);
    Lab::new().write(&b);
    let out = run(["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("are identical"), "{}", stdout(&out));
    let out = run([
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--json".as_ref(),
    ]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["identical"], true);
    assert_eq!(j["tasks_changed"].as_array().unwrap().len(), 0);
}

#[test]
fn different_images_exit_1_with_exact_page_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Lab::new().write(&a);
    changed_lab().write(&b);
    let j = diff_json(&a, &b);
    assert_eq!(j["identical"], false);
    assert_eq!(j["manifest"][0]["field"], "created");
    let t = &j["tasks_changed"][0];
    assert_eq!(t["task_id"], 1);

    // Primary area: pages 3, 4, 6 and 15 changed, nothing else.
    let areas = &t["areas"];
    let primary = &areas["changed"][0];
    assert_eq!(primary["base"], 0);
    assert_eq!(primary["fields"].as_array().unwrap().len(), 0);
    assert_eq!(primary["pages"]["changed_pages"], 4);
    let ranges: Vec<(u64, u64, u64, u64, u64)> = primary["pages"]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_u64().unwrap();
            (
                f("start"),
                f("end"),
                f("pages"),
                f("first_diff"),
                f("last_diff_end"),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0x3000, 0x5000, 2, 0x3064, 0x5000),
            (0x6000, 0x7000, 1, 0x6000, 0x7000),
            (0xf000, 0x10000, 1, 0xffff, 0x10000),
        ]
    );

    // Heap: resized, and the content written into the grown part.
    let heap = &areas["changed"][1];
    assert_eq!(heap["base"], LAB_HEAP);
    assert_eq!(heap["fields"][0]["field"], "size");
    // Numbers are numbers in JSON (schema 1).
    assert_eq!(heap["fields"][0]["a"], 0x4000);
    assert_eq!(heap["fields"][0]["b"], 0x8000);
    assert_eq!(heap["pages"]["changed_pages"], 1);
    assert_eq!(heap["pages"]["ranges"][0]["start"], LAB_HEAP + 0x5000);
    assert_eq!(areas["added"][0]["base"], 0x20_0000);
    assert_eq!(areas["added"][0]["stored_pages"], 1);
    assert_eq!(areas["removed"].as_array().unwrap().len(), 0);

    // Threads.
    assert_eq!(t["threads_added"], serde_json::json!([2]));
    let th = &t["threads_changed"][0];
    assert_eq!(th["thread_id"], 1);
    let fields = field_names(&th["fields"]);
    assert_eq!(
        fields,
        ["frames[0].position", "frames[0].locals", "fuel_left"]
    );
    assert_eq!(th["fields"][0]["b"], "func 2 at 0x18");

    // Phones, calls, blobs.
    assert_eq!(t["phones"][0]["phone"], 1);
    assert_eq!(t["phones"][0]["a"]["peer"], Json::Null);
    assert_eq!(t["phones"][0]["b"]["peer"]["service"], "spartan.vfs");
    assert_eq!(t["calls_added"][0]["sender_side_id"], 2);
    assert_eq!(t["calls_removed"].as_array().unwrap().len(), 0);
    assert_eq!(t["blobs"][0]["service_id"], "spartan.console");
    assert_ne!(t["blobs"][0]["a"]["sha256"], t["blobs"][0]["b"]["sha256"]);

    // The human form says the same.
    let out = run(["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    expect_code(&out, 1);
    let text = stdout(&out);
    for want in [
        "~ task 1 \"lab\"",
        "4 page(s) changed:",
        "0x3000..0x5000 (2 page(s); bytes differ in 0x3064..0x5000)",
        "0xf000..0x10000 (1 page(s); bytes differ in 0xffff..0x10000)",
        "~ size: 0x4000 -> 0x8000",
        "+ area 0x200000",
        "+ thread 2",
        "~ phone 1: free -> service spartan.vfs (receiver id 4)",
        "+ call sent",
        "~ blob spartan.console phone 0",
        // 4 pages in the primary area, 1 in the grown heap.
        "summary: 1 manifest field(s), 0 task(s) added, 0 removed, 1 changed; 5 page(s) changed",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
}

#[test]
fn tasks_added_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Lab::new().write(&a);
    let mut other = Lab::new();
    other.record.meta.task_id = 2;
    other.write(&b);
    let j = diff_json(&a, &b);
    assert_eq!(j["tasks_removed"][0]["task_id"], 1);
    assert_eq!(j["tasks_added"][0]["task_id"], 2);
    assert_eq!(j["tasks_added"][0]["areas"], 2);
}

#[test]
fn hexdump_shows_both_sides_of_a_range() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Lab::new().write(&a);
    changed_lab().write(&b);
    let out = run([
        "diff".as_ref(),
        a.as_os_str(),
        b.as_os_str(),
        "--hexdump".as_ref(),
        "0x3050:0x30".as_ref(),
    ]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("hexdump of task 1 0x3050..0x3080"), "{text}");
    // Row 0x3060 differs (byte 0x3064), rows 0x3050 and 0x3070 do not.
    assert!(text.contains("\n 00003050  "), "{text}");
    assert!(text.contains("\n-00003060  "), "{text}");
    assert!(text.contains("\n+00003060  "), "{text}");
    assert!(text.contains("\n 00003070  "), "{text}");
    let minus = text.lines().find(|l| l.starts_with("-00003060")).unwrap();
    let plus = text.lines().find(|l| l.starts_with("+00003060")).unwrap();
    // Byte 4 of the row: the flipped one.
    let byte4 = |l: &str| l.split_whitespace().nth(5).unwrap().to_string();
    let (x, y) = (
        u8::from_str_radix(&byte4(minus), 16).unwrap(),
        u8::from_str_radix(&byte4(plus), 16).unwrap(),
    );
    assert_eq!(x ^ y, 0xff);
}

#[test]
fn incremental_child_shows_its_parent_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("parent");
    Lab::new().write(&parent);
    let lab = Lab::new();
    let info = ImageInfo {
        tool_version: "snapinspect-tests".into(),
        kernel_build_hash: Digest::of(b"lab kernel"),
        kernel_abi_version: 1,
        created: Timestamp {
            seconds: lab.created + 1,
            nanos: 0,
        },
        task_zero: 1,
        options: CheckpointOptions::default(),
        checkpoint_set: vec![SetMember {
            task_id: 1,
            name: "lab".into(),
            role: Role::Checkpointable,
        }],
    };
    let child = tmp.path().join("child");
    let opts = WriterOptions {
        threads: 1,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    let mut w = ImageWriter::create_incremental(&child, &parent, info, opts).unwrap();
    // Page 9 is dirty, everything else is kept from the parent.
    for &(base, page) in lab.pages.keys() {
        if (base, page) == (0, 9) {
            w.add_page(1, 0, 9, &lab_page(900)).unwrap();
        } else {
            w.keep_parent_page(1, base, page).unwrap();
        }
    }
    w.add_task(lab.record.clone()).unwrap();
    w.finish().unwrap();

    let out = run(["show".as_ref(), child.as_os_str(), "--json".as_ref()]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["parent_chain"].as_array().unwrap().len(), 1);
    assert_eq!(j["parent_chain"][0]["pages"], 9, "pages from the parent");
    assert_eq!(j["own_pages"], 1);
    let text = stdout(&run(["show".as_ref(), child.as_os_str()]));
    assert!(text.contains("1 pages stored in this image"), "{text}");
    assert!(text.contains("  9 pages\n"), "{text}");
    assert_eq!(j["bytes"]["mapped_pages"], 10);
    assert_eq!(j["bytes"]["parent_pages"], 9);
    assert_eq!(j["tasks"][0]["areas"][0]["parent_pages"], 8);
    expect_code(&run(["validate".as_ref(), child.as_os_str()]), 0);

    let j = diff_json(&parent, &child);
    let pages = &j["tasks_changed"][0]["areas"]["changed"][0]["pages"];
    assert_eq!(pages["changed_pages"], 1);
    assert_eq!(pages["ranges"][0]["start"], 0x9000);
    assert_eq!(pages["ranges"][0]["end"], 0xa000);

    // Without its parent the child is broken: validate says so (exit 1),
    // show cannot build the overview (exit 2), both naming the parent.
    std::fs::rename(&parent, tmp.path().join("moved")).unwrap();
    let out = run(["validate".as_ref(), child.as_os_str()]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("parent"), "{}", stdout(&out));
    let out = run(["show".as_ref(), child.as_os_str()]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("parent"), "{}", stderr(&out));
}

/// Pages with equal chunk digests are not read at all: a chunk (a frame of a pack) that is
/// damaged in the second image but holds, by its digest, the same pages as
/// the first goes unnoticed by `diff` (that is `validate`'s job), while a
/// page whose digest differs is read and compared.
#[test]
fn equal_digests_are_not_decompressed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    Lab::new().write(&a);
    Lab::new().write(&b);
    damage_every_chunk(&b);
    expect_code(&run(["diff".as_ref(), a.as_os_str(), b.as_os_str()]), 0);
    expect_code(&run(["validate".as_ref(), b.as_os_str()]), 1);

    // One changed page makes its chunk differ: now the damaged chunks of
    // `b` holding that page must be read, and the error names the file.
    let c = tmp.path().join("c");
    let mut changed = Lab::new();
    changed.pages.get_mut(&(0, 0)).unwrap()[0] ^= 1;
    changed.write(&c);
    damage_every_chunk(&c);
    let out = run(["diff".as_ref(), a.as_os_str(), c.as_os_str()]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("packs/0.spp"), "{}", stderr(&out));
}

/// Flips the last byte of every local chunk's stored body (the last byte
/// of its frame in a pack, or of its chunk file).
fn damage_every_chunk(img: &std::path::Path) {
    let m = snapfmt::Image::open(img).unwrap().manifest().clone();
    for c in &m.chunks {
        let Some((file, range)) = c.home.location(&c.content) else {
            continue;
        };
        let path = img.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = match range {
            Some((offset, len)) => (offset + len - 1) as usize,
            None => bytes.len() - 1,
        };
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    }
}

/// Hundreds of differing pages in many chunks: the result is exact and in
/// page order.
#[test]
fn many_changed_pages_are_reported_exactly() {
    const BIG: u64 = 0x40_0000;
    // 600 pages in chunks of 4, every chunk changed: 600 pages to read.
    const PAGES: u32 = 600;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut base = Lab::new();
    let mut area = base.record.areas[1].clone();
    area.base = BIG;
    area.size = u64::from(PAGES) * PAGE_SIZE as u64;
    base.record.areas.push(area);
    for p in 0..PAGES {
        base.pages.insert((BIG, p), lab_page(1000 + p));
    }
    base.write(&a);
    // Every third page changes one byte at an offset depending on the page.
    let mut changed = base.clone();
    let mut expected = Vec::new();
    for p in (0..PAGES).step_by(3) {
        let off = (p as usize * 7) % PAGE_SIZE;
        changed.pages.get_mut(&(BIG, p)).unwrap()[off] ^= 0x80;
        let at = BIG + u64::from(p) * PAGE_SIZE as u64;
        expected.push((
            at,
            at + PAGE_SIZE as u64,
            1,
            at + off as u64,
            at + off as u64 + 1,
        ));
    }
    changed.write(&b);
    let j = diff_json(&a, &b);
    let area = &j["tasks_changed"][0]["areas"]["changed"][0];
    assert_eq!(area["base"], BIG);
    assert_eq!(area["pages"]["changed_pages"], expected.len());
    let ranges: Vec<(u64, u64, u64, u64, u64)> = area["pages"]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_u64().unwrap();
            (
                f("start"),
                f("end"),
                f("pages"),
                f("first_diff"),
                f("last_diff_end"),
            )
        })
        .collect();
    assert_eq!(ranges, expected);
}

/// Replaces the kernel state record of a directory image and its
/// manifest listing.
fn put_kernel_state(img: &std::path::Path, k: &KernelTaskState) {
    let rel = snapfmt::object::kernel_state_path(k.task_id);
    let file = snapfmt::object::encode_record(ObjectKind::KernelState, k, Some(1)).unwrap();
    std::fs::write(img.join(&rel), &file).unwrap();
    let h = ObjectHeader::parse(&file).unwrap();
    let bytes = std::fs::read(img.join("manifest.spm")).unwrap();
    let (_, mut m): (_, Manifest) =
        snapfmt::object::open_record(&bytes, ObjectKind::Manifest).unwrap();
    m.objects.retain(|o| o.path != rel);
    m.objects.push(ObjectEntry {
        path: rel,
        body_len: h.body_len,
        body_digest: h.checksum,
    });
    m.objects.sort_by(|a, b| a.path.cmp(&b.path));
    let file = snapfmt::object::encode_record(ObjectKind::Manifest, &m, None).unwrap();
    std::fs::write(img.join("manifest.spm"), file).unwrap();
}

#[test]
fn kernel_state_differences_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_sample(&a, ImageForm::Directory);
    write_sample(&b, ImageForm::Directory);
    let mut k = snapfmt::sample::sample_kernel_state();
    k.counters.next_call_id += 1;
    k.phones.clear();
    k.threads[1].asleep = false;
    if let CallDetail::Call(p) = &mut k.calls[0] {
        p.connect = None;
    }
    put_kernel_state(&b, &k);
    assert_eq!(snapfmt::validate(&b), vec![]);
    let j = diff_json(&a, &b);
    let t = &j["tasks_changed"][0];
    assert_eq!(t["task_id"], 7);
    let fields = field_names(&t["kernel_state"]);
    assert_eq!(
        fields,
        [
            "kernel_state.calls[sent sid 1]",
            "kernel_state.counters",
            "kernel_state.phones[1]",
            "kernel_state.threads[2]",
        ]
    );
    // An absent entry is null, not a placeholder string.
    assert_eq!(t["kernel_state"][2]["b"], Json::Null);
    let out = run(["diff".as_ref(), a.as_os_str(), b.as_os_str()]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("~ kernel_state.counters: next call id 7,"),
        "{text}"
    );
    assert!(
        text.contains("~ kernel_state.phones[1]: connecting -> -"),
        "{text}"
    );
}

#[test]
fn a_kernel_state_present_on_one_side_only_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("b");
    write_sample(&b, ImageForm::Directory);
    // The 1.1 golden image has the same records but no kernel state.
    let a = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1.1");
    let j = diff_json(&a, &b);
    let t7 = j["tasks_changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == 7)
        .expect("task 7 differs");
    assert_eq!(t7["kernel_state"][0]["field"], "kernel_state");
    assert_eq!(t7["kernel_state"][0]["a"], Json::Null);
    assert_eq!(t7["kernel_state"][0]["b"], "6 calls, 2 threads");
}
