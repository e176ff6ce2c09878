//! Hostile images and careless input, through the real binary: what
//! `unpack --force` may replace, escaping of bytes from the input, the
//! exit status of input that is no image at all, one-line errors, and the
//! typed, versioned JSON.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value as Json;
use snapfmt::ImageForm;

fn golden_tar() -> std::path::PathBuf {
    golden().with_file_name("golden-v1.tar")
}

/// Runs `snapinspect ARGS`, killing it (and failing) if it blocks.
fn run_bounded(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapinspect"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running snapinspect");
    let start = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("snapinspect {args:?} blocked for 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting output")
}

/// An error is one line on stderr, starting `snapinspect: error: `, with
/// nothing on stdout.
fn expect_one_line_error(o: &std::process::Output, code: i32) -> String {
    expect_code(o, code);
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with("snapinspect: error: "), "{err}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    err
}

#[test]
fn unpack_force_replaces_only_an_image_or_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = golden_tar();
    let unpack = |dir: &Path| {
        run([
            "unpack".as_ref(),
            tar.as_os_str(),
            dir.as_os_str(),
            "--force".as_ref(),
        ])
    };

    // A directory of other files survives.
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("thesis.tex"), "years of work").unwrap();
    let err = expect_one_line_error(&unpack(&home), 2);
    assert!(err.contains("is not a Spartan image"), "{err}");
    assert!(err.contains("--force replaces only"), "{err}");
    assert_eq!(
        std::fs::read_to_string(home.join("thesis.tex")).unwrap(),
        "years of work"
    );

    // An image with a file of someone else's in it survives too.
    let img = tmp.path().join("img");
    write_sample(&img, ImageForm::Directory);
    std::fs::write(img.join("notes.txt"), "mine").unwrap();
    let err = expect_one_line_error(&unpack(&img), 2);
    assert!(err.contains("\"notes.txt\""), "{err}");
    assert!(img.join("notes.txt").exists());
    std::fs::remove_file(img.join("notes.txt")).unwrap();
    std::fs::write(img.join("tasks/stray"), "x").unwrap();
    let err = expect_one_line_error(&unpack(&img), 2);
    assert!(err.contains("tasks/stray"), "{err}");
    std::fs::remove_file(img.join("tasks/stray")).unwrap();

    // A manifest.spm that is not an object file is no image.
    let fake = tmp.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("manifest.spm"), "not an object").unwrap();
    let err = expect_one_line_error(&unpack(&fake), 2);
    assert!(
        err.contains("manifest.spm is not a Spartan object file"),
        "{err}"
    );

    // A file and a symbolic link are not replaced.
    let file = tmp.path().join("file");
    std::fs::write(&file, "data").unwrap();
    let err = expect_one_line_error(&unpack(&file), 2);
    assert!(err.contains("is not a directory"), "{err}");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&home, &link).unwrap();
    let err = expect_one_line_error(&unpack(&link), 2);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(home.join("thesis.tex").exists());

    // An image directory and an empty directory are replaced.
    expect_code(&unpack(&img), 0);
    expect_code(&run(["validate".as_ref(), img.as_os_str()]), 0);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    expect_code(&unpack(&empty), 0);
    expect_code(&run(["validate".as_ref(), empty.as_os_str()]), 0);
}

#[test]
fn pack_force_replaces_only_a_tar_image() {
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    let out = run([
        "pack".as_ref(),
        golden().as_os_str(),
        notes.as_os_str(),
        "--force".as_ref(),
    ]);
    let err = expect_one_line_error(&out, 2);
    assert!(err.contains("not a tar file holding an image"), "{err}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    let tar = tmp.path().join("img.tar");
    std::fs::copy(golden_tar(), &tar).unwrap();
    let out = run([
        "pack".as_ref(),
        golden().as_os_str(),
        tar.as_os_str(),
        "--force".as_ref(),
    ]);
    expect_code(&out, 0);
}

#[test]
fn input_that_is_no_image_exits_2_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let random = tmp.path().join("random.bin");
    // Deterministic noise: not a tar header, not a Spartan object.
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, noise).unwrap();
    let empty_file = tmp.path().join("empty.tar");
    std::fs::write(&empty_file, b"").unwrap();
    let empty_dir = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty_dir).unwrap();
    let other_dir = tmp.path().join("other-dir");
    std::fs::create_dir(&other_dir).unwrap();
    std::fs::write(other_dir.join("a.txt"), "x").unwrap();
    let object = golden().join("manifest.spm");
    // A tar file of other files.
    let other_tar = tmp.path().join("other.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&other_tar).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "a.txt", &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    let through_a_file = golden_tar().join("x");
    let fifo = tmp.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let fifo_link = tmp.path().join("fifo-link");
    std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();

    let cases: [(&Path, &str); 10] = [
        (
            &random,
            "not a Spartan image (neither an image directory nor a tar file)",
        ),
        (&empty_file, "not a Spartan image (an empty file)"),
        (&empty_dir, "not a Spartan image (an empty directory)"),
        (
            &other_dir,
            "not a Spartan image (a directory without manifest.spm)",
        ),
        (&object, "not a Spartan image (one object file of an image"),
        (
            &other_tar,
            "not a Spartan image (a tar file without manifest.spm)",
        ),
        (&through_a_file, "Not a directory"),
        (&fifo, "is a FIFO, not a Spartan image"),
        (&fifo_link, "is a FIFO, not a Spartan image"),
        (&tmp.path().join("missing"), "No such file or directory"),
    ];
    for (path, want) in cases {
        for cmd in ["validate", "show"] {
            let out = run_bounded(&[cmd.as_ref(), path.as_os_str()]);
            let err = expect_one_line_error(&out, 2);
            assert!(err.contains(want), "{cmd} {}: {err}", path.display());
            assert!(
                !err.contains(": tar: ") && !err.contains("field tar"),
                "a tar parser message: {err}"
            );
        }
    }
    // diff and pages classify the same way.
    let out = run_bounded(&["diff".as_ref(), golden().as_os_str(), fifo.as_os_str()]);
    assert!(expect_one_line_error(&out, 2).contains("FIFO"));
    let out = run_bounded(&[
        "pages".as_ref(),
        random.as_os_str(),
        "--task".as_ref(),
        "7".as_ref(),
        "--addr".as_ref(),
        "0".as_ref(),
    ]);
    assert!(expect_one_line_error(&out, 2).contains("not a Spartan image"));

    // An image that can be read but is damaged is a report: exit 1.
    let truncated = tmp.path().join("truncated.tar");
    let bytes = std::fs::read(golden_tar()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_code(&run(["validate".as_ref(), truncated.as_os_str()]), 1);
}

#[test]
fn permission_denied_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("locked.tar");
    std::fs::copy(golden_tar(), &tar).unwrap();
    let locked = std::fs::Permissions::from_mode(0o000);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tar, locked).unwrap();
    if std::fs::File::open(&tar).is_ok() {
        // Running as root: permissions are not enforced, the case cannot
        // arise (the other unreadable inputs are covered above).
        eprintln!("permission_denied_exits_2: not checkable as root");
        return;
    }
    for cmd in ["validate", "show"] {
        let out = run([cmd.as_ref(), tar.as_os_str()]);
        let err = expect_one_line_error(&out, 2);
        assert!(err.contains("Permission denied"), "{err}");
    }
}

#[test]
fn errors_name_their_path_and_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-image");
    let name = missing.display().to_string();
    for cmd in ["show", "validate"] {
        let out = run([cmd.as_ref(), missing.as_os_str()]);
        let err = expect_one_line_error(&out, 2);
        assert_eq!(err.matches(&name).count(), 1, "{err}");
        assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    }
    // A damaged task record: the image, the file and the cause once each.
    let img = tmp.path().join("img");
    write_sample(&img, ImageForm::Directory);
    let task = img.join("tasks/7.spt");
    let mut bytes = std::fs::read(&task).unwrap();
    bytes.push(0);
    std::fs::write(&task, bytes).unwrap();
    let img_name = img.display().to_string();
    let out = run(["show".as_ref(), img.as_os_str()]);
    let err = expect_one_line_error(&out, 2);
    assert_eq!(err.matches(&img_name).count(), 1, "{err}");
    assert_eq!(err.matches("tasks/7.spt").count(), 1, "{err}");
    assert_eq!(err.matches("bytes follow it").count(), 1, "{err}");
    let out = run(["diff".as_ref(), img.as_os_str(), golden().as_os_str()]);
    let err = expect_one_line_error(&out, 2);
    assert_eq!(err.matches("tasks/7.spt").count(), 1, "{err}");
    // A refused unpack: the target once.
    let out = run(["unpack".as_ref(), golden_tar().as_os_str(), img.as_os_str()]);
    let err = expect_one_line_error(&out, 2);
    assert_eq!(err.matches(&img_name).count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
}

/// A task and a tar member whose names carry terminal escapes.
#[test]
fn bytes_from_the_input_reach_the_terminal_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    lab.record.meta.name = "evil\u{1b}[2J\u{1b}]0;owned\u{7}".into();
    lab.record.meta.cwd = "/\r\nforged line".into();
    lab.record.meta.args = vec!["a\u{1b}b".into()];
    if let snapfmt::PhoneSlot::Connected(p) = &mut lab.record.phones[0] {
        p.peer = snapfmt::Peer::Service("svc\u{1b}[31m".into());
    }
    lab.record.calls[0].peer = snapfmt::Peer::Service("svc\u{1b}[31m".into());
    lab.record.coop_blobs[0].service_id = "svc\u{1b}[31m".into();
    let img = tmp.path().join("lab");
    lab.write(&img);
    let no_raw = |o: &std::process::Output| {
        for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            let bad: Vec<&u8> = bytes
                .iter()
                .filter(|&&b| b < 0x20 && b != b'\n' || b == 0x7f)
                .collect();
            assert!(
                bad.is_empty(),
                "raw control bytes {bad:?} on {what}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    };
    let out = run(["show".as_ref(), img.as_os_str()]);
    expect_code(&out, 0);
    no_raw(&out);
    let text = stdout(&out);
    assert!(
        text.contains("task 1 \"evil\\x1b[2J\\x1b]0;owned\\x07\""),
        "{text}"
    );
    assert!(text.contains("cwd /\\r\\nforged line"), "{text}");
    assert!(text.contains("service svc\\x1b[31m"), "{text}");
    // JSON keeps the real characters (JSON escapes them itself).
    let out = run(["show".as_ref(), img.as_os_str(), "--json".as_ref()]);
    no_raw(&out);
    let j: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["tasks"][0]["name"], "evil\u{1b}[2J\u{1b}]0;owned\u{7}");

    // diff shows the changed name escaped.
    let plain = tmp.path().join("plain");
    Lab::new().write(&plain);
    let out = run(["diff".as_ref(), plain.as_os_str(), img.as_os_str()]);
    expect_code(&out, 1);
    no_raw(&out);
    assert!(
        stdout(&out).contains("~ name: lab -> evil\\x1b[2J"),
        "{}",
        stdout(&out)
    );

    // A tar member named with escapes: validate's problem list and the
    // errors of show and unpack.
    let tar = tmp.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        for entry in std::fs::read_dir(golden()).unwrap() {
            let e = entry.unwrap();
            if e.path().is_file() {
                b.append_path_with_name(e.path(), e.file_name()).unwrap();
            }
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "x\u{1b}[2J\u{7}", &b"x"[..]).unwrap();
        b.finish().unwrap();
    }
    for args in [
        vec!["validate".as_ref(), tar.as_os_str()],
        vec!["show".as_ref(), tar.as_os_str()],
        vec![
            "unpack".as_ref(),
            tar.as_os_str(),
            tmp.path().join("out").as_os_str(),
        ],
    ] {
        let out = run(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?} succeeded");
        no_raw(&out);
    }
    let out = run(["validate".as_ref(), tar.as_os_str()]);
    assert!(stdout(&out).contains("\\x1b[2J\\x07"), "{}", stdout(&out));

    // A path typed on the command line is escaped in errors too.
    let out = run([
        "show".as_ref(),
        tmp.path().join("no\u{1b}[5mimage").as_os_str(),
    ]);
    let err = expect_one_line_error(&out, 2);
    no_raw(&out);
    assert!(err.contains("no\\x1b[5mimage"), "{err}");
}

#[test]
fn json_documents_are_versioned_and_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let json = |args: &[&std::ffi::OsStr], code: i32| -> Json {
        let out = run(args);
        expect_code(&out, code);
        serde_json::from_str(&stdout(&out)).expect("JSON")
    };
    let g = golden();
    let show = json(&["show".as_ref(), g.as_os_str(), "--json".as_ref()], 0);
    assert_eq!(show["schema"], 1);
    assert_eq!(show["options"]["extra"]["err_resume"], false);
    let area = &show["tasks"][0]["areas"][0];
    assert_eq!(area["backing"]["kind"], "primary");
    assert_eq!(area["backing"]["max_wasm_pages"], 4);
    assert_eq!(show["tasks"][0]["areas"][1]["backing"]["kind"], "anonymous");
    let out = run(["show".as_ref(), g.as_os_str(), "--json".as_ref()]);
    assert!(
        stdout(&out).starts_with("{\n  \"schema\": 1,\n"),
        "schema is the first key"
    );

    let validate = json(&["validate".as_ref(), g.as_os_str(), "--json".as_ref()], 0);
    assert_eq!(validate["schema"], 1);
    assert_eq!(validate["sound"], true);
    let bad = tmp.path().join("bad");
    write_sample(&bad, ImageForm::Directory);
    std::fs::remove_file(bad.join("tasks/9.spt")).unwrap();
    let report = json(
        &["validate".as_ref(), bad.as_os_str(), "--json".as_ref()],
        1,
    );
    let missing = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == "tasks/9.spt")
        .expect("the missing task is a problem");
    assert_eq!(
        missing["field"],
        Json::Null,
        "no `-` placeholder: {missing}"
    );
    assert!(
        !stdout(&run(["validate".as_ref(), bad.as_os_str()])).contains(": -:"),
        "no `-` placeholder in text either"
    );

    let twin = golden_tar();
    let diff = json(
        &[
            "diff".as_ref(),
            g.as_os_str(),
            twin.as_os_str(),
            "--json".as_ref(),
        ],
        0,
    );
    assert_eq!(diff["schema"], 1);
    let pages = json(
        &[
            "pages".as_ref(),
            g.as_os_str(),
            "--task".as_ref(),
            "7".as_ref(),
            "--addr".as_ref(),
            "0".as_ref(),
            "--len".as_ref(),
            "4".as_ref(),
            "--json".as_ref(),
        ],
        0,
    );
    assert_eq!(pages["schema"], 1);

    // Typed diff values: numbers, null for an absent side.
    let mut lab = Lab::new();
    let a = tmp.path().join("a");
    lab.write(&a);
    lab.record.threads[0].exec.fuel_left = 99;
    lab.record.threads[0]
        .exec
        .globals
        .push(snapfmt::exec::Value::I32(3));
    lab.created += 60;
    let b = tmp.path().join("b");
    lab.write(&b);
    let d = json(
        &[
            "diff".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
            "--json".as_ref(),
        ],
        1,
    );
    let created = d["manifest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "created")
        .unwrap();
    assert_eq!(created["b"]["seconds"], 1_800_000_060);
    let fields = &d["tasks_changed"][0]["threads_changed"][0]["fields"];
    let field = |name: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {fields}"))
            .clone()
    };
    assert_eq!(field("fuel_left")["a"], 10);
    assert_eq!(field("fuel_left")["b"], 99);
    assert_eq!(field("globals[1]")["a"], Json::Null);
    assert_eq!(field("globals[1]")["b"], "[i32:3]");
}
