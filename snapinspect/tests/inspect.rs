//! The real `snapinspect` binary on real images: show (text and JSON),
//! validate (sound, corrupted, unreadable), pages, pack/unpack, usage.

mod common;

use common::*;
use serde_json::Value as Json;
use snapfmt::ImageForm;

#[test]
fn show_prints_a_readable_overview_of_the_golden_image() {
    let out = run(["show".as_ref(), golden().as_os_str()]);
    expect_code(&out, 0);
    let text = stdout(&out);
    for want in [
        "format       1.0",
        "task 7 \"counter\"",
        "task 9 \"peer\"",
        "cooperative (service spartan.vfs)",
        "excluded_client",
        "free",
        "shared with task 9 at 0x200000",
        "spartan.vfs: phone 2: 23 B",
        "synchronous",
        "/data/score  BackupOverwrite",
        "parent chain none",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
}

#[test]
fn show_lists_the_kernel_state_of_a_1_2_image() {
    let g12 = golden().with_file_name("golden-v1.2");
    let out = run(["show".as_ref(), g12.as_os_str()]);
    expect_code(&out, 0);
    let text = stdout(&out);
    for want in [
        "kernel state next call id 7, next receiver call id 106, next connection id 61",
        "phones[1]",
        "connecting",
        "calls[sent sid 1]",
        "connect-me-to into phone 1 (connection 42)",
        "forwarded by service spartan.vfs",
        "read into 0x3000 (64 B)",
        "notifications[0]",
        "threads[2]",
        "seen as 2, index 1, asleep, deadline in 2500000 ns",
        "then func 4 [i32:5]",
        "kernel state none",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
    let out = run(["show".as_ref(), g12.as_os_str(), "--json".as_ref()]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).expect("JSON");
    let k = &j["tasks"][0]["kernel_state"];
    assert_eq!(k["next_call_id"], 7);
    assert_eq!(k["phones"][0]["state"], "connecting");
    assert_eq!(k["calls"].as_array().unwrap().len(), 6);
    assert_eq!(k["calls"][2]["kind"], "answer");
    assert_eq!(k["calls"][1]["forwarded_by"][0]["service"], "spartan.vfs");
    assert_eq!(k["threads"][1]["thread_id"], 2);
    assert_eq!(k["threads"][1]["asleep"], true);
    assert!(j["tasks"][1]["kernel_state"].is_null());
    // Older images have none.
    let out = run(["show".as_ref(), golden().as_os_str(), "--json".as_ref()]);
    let j: Json = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(j["tasks"][0]["kernel_state"].is_null());
}

#[test]
fn show_json_parses_back_with_the_right_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("sample");
    write_sample(&img, ImageForm::Directory);
    let out = run(["show".as_ref(), img.as_os_str(), "--json".as_ref()]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).expect("show --json is JSON");
    let tasks = j["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    let t7 = &tasks[0];
    assert_eq!(t7["task_id"], 7);
    assert_eq!(t7["threads"].as_array().unwrap().len(), 2);
    assert_eq!(t7["threads"][1]["suspension"], "host_call");
    assert_eq!(t7["threads"][1]["active_sync_call"], 6);
    // Phone 1 is a hole.
    assert_eq!(t7["phones"][1]["peer"], Json::Null);
    assert_eq!(t7["phones"][2]["peer"]["service"], "spartan.vfs");
    // Primary area: 8 pages, 2 zero, 6 stored (one a duplicate).
    assert_eq!(t7["areas"][0]["size"], 8 * 4096);
    assert_eq!(t7["areas"][0]["stored_pages"], 6);
    assert_eq!(t7["areas"][0]["zero_pages"], 2);
    assert_eq!(t7["areas"][1]["sharing"][0]["with"]["task"], 9);
    assert_eq!(t7["areas"][1]["sharing"][0]["base"], 0x20_0000);
    assert_eq!(t7["threads"][0]["innermost"]["code_offset"], 18);
    assert_eq!(t7["id_view"][0]["seen"], 9);
    assert_eq!(t7["calls"].as_array().unwrap().len(), 6);
    assert_eq!(t7["coop_blobs"]["spartan.vfs"][0]["connection"], 2);
    assert_eq!(t7["module"]["kind"], "embedded");
    // 6 + 2 pages of task 7, 2 + 3 of task 9.
    assert_eq!(j["bytes"]["mapped_pages"], 13);
    assert_eq!(j["bytes"]["raw_page_bytes"], 13 * 4096);
    // 15 pages fed, 2 zero, 3 duplicates: 10 distinct pages stored.
    assert_eq!(j["bytes"]["local_content_bytes"], 10 * 4096);
    assert!(j["bytes"]["chunk_stored_bytes"].as_u64().unwrap() < 10 * 4096);
    assert_eq!(j["checkpoint_set"][0]["role"], "cooperative");
    assert_eq!(j["parent_chain"].as_array().unwrap().len(), 0);

    // --task narrows the task list; an unknown task is an error.
    let out = run([
        "show".as_ref(),
        img.as_os_str(),
        "--json".as_ref(),
        "--task".as_ref(),
        "9".as_ref(),
    ]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(j["tasks"][0]["task_id"], 9);
    assert_eq!(j["bytes"]["mapped_pages"], 13);
    let out = run([
        "show".as_ref(),
        img.as_os_str(),
        "--task".as_ref(),
        "8".as_ref(),
    ]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("no checkpointable task 8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_accepts_a_sound_image_and_lists_problems_of_a_corrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    write_sample(&good, ImageForm::Directory);
    let out = run(["validate".as_ref(), good.as_os_str()]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("sound"));

    let bad = tmp.path().join("bad");
    write_sample(&bad, ImageForm::Directory);
    let task = bad.join("tasks/7.spt");
    let mut bytes = std::fs::read(&task).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&task, bytes).unwrap();
    let out = run(["validate".as_ref(), bad.as_os_str()]);
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("tasks/7.spt"), "{text}");
    assert!(text.contains("checksum"), "{text}");

    let out = run(["validate".as_ref(), bad.as_os_str(), "--json".as_ref()]);
    expect_code(&out, 1);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["sound"], false);
    let files: Vec<&str> = j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"tasks/7.spt"), "{files:?}");
}

#[test]
fn unreadable_input_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-image");
    for cmd in ["validate", "show"] {
        let out = run([cmd.as_ref(), missing.as_os_str()]);
        expect_code(&out, 2);
        assert!(stderr(&out).contains("no-such-image"), "{}", stderr(&out));
    }
    let out = run(["diff", "only-one"]);
    expect_code(&out, 2);
    let out = run(["pages", "x", "--task", "1", "--addr", "banana"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("banana"));
}

#[test]
fn pages_dumps_known_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("sample.tar");
    write_sample(&img, ImageForm::Tar);
    let args = |addr: &str, len: &str| {
        run([
            "pages".as_ref(),
            img.as_os_str(),
            "--task".as_ref(),
            "7".as_ref(),
            "--addr".as_ref(),
            addr.as_ref(),
            "--len".as_ref(),
            len.as_ref(),
        ])
    };
    // Page 1 of task 7 holds "page 00001 of the Spartan sample image. " repeated.
    let out = args("0x1000", "32");
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(
            "00001000  70 61 67 65 20 30 30 30  30 31 20 6f 66 20 74 68  |page 00001 of th|"
        ),
        "{text}"
    );
    assert!(text.contains("0x1000 local"), "{text}");
    // A range crossing into a zero page.
    let out = args("0x1ff8", "16");
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("0x2000 zero"), "{text}");
    assert!(
        text.contains("00001ff8  ") && text.contains(" 00 00 00 00 00 00 00 00  |"),
        "{text}"
    );
    // Past the end of the primary area (8 pages): not mapped.
    let out = args("0x8000", "1");
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not inside any area"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pack_and_unpack_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    write_sample(&dir, ImageForm::Directory);
    let tar = tmp.path().join("img.tar");
    let out = run(["pack".as_ref(), dir.as_os_str(), tar.as_os_str()]);
    expect_code(&out, 0);
    expect_code(&run(["validate".as_ref(), tar.as_os_str()]), 0);

    let back = tmp.path().join("back");
    let out = run(["unpack".as_ref(), tar.as_os_str(), back.as_os_str()]);
    expect_code(&out, 0);
    expect_code(&run(["validate".as_ref(), back.as_os_str()]), 0);
    let out = run(["diff".as_ref(), dir.as_os_str(), back.as_os_str()]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("identical"));
    expect_code(&run(["diff".as_ref(), dir.as_os_str(), tar.as_os_str()]), 0);

    // The tar is reproducible.
    let tar2 = tmp.path().join("again.tar");
    expect_code(
        &run(["pack".as_ref(), back.as_os_str(), tar2.as_os_str()]),
        0,
    );
    assert!(std::fs::read(&tar).unwrap() == std::fs::read(&tar2).unwrap());

    // Existing targets are refused unless forced.
    let out = run(["pack".as_ref(), dir.as_os_str(), tar.as_os_str()]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("already exists"));
    let out = run([
        "unpack".as_ref(),
        tar.as_os_str(),
        back.as_os_str(),
        "--force".as_ref(),
    ]);
    expect_code(&out, 0);
    expect_code(&run(["validate".as_ref(), back.as_os_str()]), 0);
    // No temporaries are left behind.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["again.tar", "back", "img", "img.tar"]);
}

#[test]
fn pack_reproduces_the_committed_tar_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("golden.tar");
    expect_code(
        &run(["pack".as_ref(), golden().as_os_str(), tar.as_os_str()]),
        0,
    );
    let twin = golden().with_file_name("golden-v1.tar");
    assert!(
        std::fs::read(&tar).unwrap() == std::fs::read(&twin).unwrap(),
        "pack of golden-v1 differs from golden-v1.tar"
    );
}

#[test]
fn pack_refuses_a_corrupted_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("img");
    write_sample(&dir, ImageForm::Directory);
    std::fs::remove_file(dir.join("tasks/9.spt")).unwrap();
    let tar = tmp.path().join("img.tar");
    let out = run(["pack".as_ref(), dir.as_os_str(), tar.as_os_str()]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("tasks/9.spt"), "{}", stderr(&out));
    assert!(!tar.exists());
}

#[test]
fn golden_directory_and_tar_twin_show_the_same() {
    let dir = golden();
    let tar = dir.with_file_name("golden-v1.tar");
    let json = |p: &std::path::Path| {
        let out = run(["show".as_ref(), p.as_os_str(), "--json".as_ref()]);
        expect_code(&out, 0);
        let mut j: Json = serde_json::from_str(&stdout(&out)).unwrap();
        j["image"] = Json::Null;
        j
    };
    let (a, b) = (json(&dir), json(&tar));
    assert_eq!(a, b);
    assert_eq!(a["tasks"][1]["task_id"], 9);
    expect_code(&run(["validate".as_ref(), dir.as_os_str()]), 0);
    expect_code(&run(["validate".as_ref(), tar.as_os_str()]), 0);
    let out = run([
        "pages".as_ref(),
        tar.as_os_str(),
        "--task".as_ref(),
        "9".as_ref(),
        "--addr".as_ref(),
        "0x200000".as_ref(),
        "--len".as_ref(),
        "16".as_ref(),
        "--json".as_ref(),
    ]);
    expect_code(&out, 0);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    // The shared area holds sample page 100 in both tasks.
    assert_eq!(j["bytes"], hex::encode(b"page 00100 of th"));
    assert_eq!(j["pages"][0]["source"], "local");
}
