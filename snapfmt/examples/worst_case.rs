//! Times the reader on the worst inputs within the limits of FORMAT.md
//! section 9 (the numbers its limit table quotes). Each case builds a
//! hostile directory image in a temporary directory and prints how long
//! `validate` and the reader take, and the process's peak memory:
//!
//!     cargo run --release -p snapfmt --example worst_case -- threads 200000
//!     cargo run --release -p snapfmt --example worst_case -- members 65536
//!     cargo run --release -p snapfmt --example worst_case -- backups 16
//!
//! - `threads N`: task 7 with N threads, each awaiting its own synchronous
//!   call (N calls): every call names its thread, every thread its call.
//! - `members N`: a manifest of N checkpointable members, each with a
//!   listed (absent) task record.
//! - `backups N`: N listed file backups of 1 GiB of content each (about
//!   32 KiB stored).
//!
//! Run one case per process: the peak memory is the process's.

use snapfmt::exec::Suspension;
use snapfmt::object::{MANIFEST_PATH, encode_bytes, encode_record, file_backup_path};
use snapfmt::sample::write_sample;
use snapfmt::*;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("threads");
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let img = tmp.path().join("img");
    write_sample(&img, WriterOptions::default()).expect("sample image");
    let mut m = read_manifest(&img);
    // No kernel state record: the hostile task record has other lengths.
    m.objects.retain(|o| !o.path.ends_with(".spk"));
    let _ = std::fs::remove_file(img.join("tasks/7.spk"));
    let built = Instant::now();
    match case {
        "threads" => threads(&img, &mut m, n),
        "members" => members(&mut m, n),
        "backups" => backups(&img, &mut m, n),
        other => panic!("unknown case {other} (threads, members, backups)"),
    }
    m.objects.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = encode_record(ObjectKind::Manifest, &m, None).expect("manifest");
    std::fs::write(img.join(MANIFEST_PATH), &manifest).expect("write manifest");
    println!(
        "{case} {n}: built in {:.2?}, manifest {} bytes",
        built.elapsed(),
        manifest.len()
    );

    let t = Instant::now();
    let problems = validate(&img);
    println!(
        "validate: {:.2?}, {} problems, first: {}",
        t.elapsed(),
        problems.len(),
        problems
            .first()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into())
    );
    let t = Instant::now();
    let read = read_all(&img);
    println!("open and read every task: {:.2?}: {read}", t.elapsed());
    println!("peak memory: {}", peak_memory());
}

/// Task 7 with `n` threads each awaiting its own synchronous call.
fn threads(img: &Path, m: &mut Manifest, n: u64) {
    let bytes = std::fs::read(img.join("tasks/7.spt")).expect("task 7");
    let (_, mut t): (_, TaskRecord) =
        object::open_record(&bytes, ObjectKind::Task).expect("task 7 decodes");
    let proto = t.threads[0].clone();
    t.threads = (1..=n)
        .map(|id| {
            let mut th = proto.clone();
            th.thread_id = id;
            th.exec.frames.clear();
            th.exec.suspension = Suspension::Ready;
            th.active_sync_call = Some(id);
            th
        })
        .collect();
    t.calls = (1..=n)
        .map(|id| PendingCall {
            queue: CallQueue::Synchronous,
            sender_side_id: id,
            receiver_side_id: id,
            phone: None,
            peer: Peer::Outside(1),
            words: [0; 6],
            thread: Some(id),
            buffer: None,
        })
        .collect();
    let file = encode_record(ObjectKind::Task, &t, Some(3)).expect("encode");
    put(img, m, "tasks/7.spt", &file);
}

/// `n` checkpointable members with listed, absent task records.
fn members(m: &mut Manifest, n: u64) {
    m.checkpoint_set = (1..=n)
        .map(|id| SetMember {
            task_id: id,
            name: String::new(),
            role: Role::Checkpointable,
        })
        .collect();
    m.task_zero = 1;
    m.objects = (1..=n)
        .map(|id| ObjectEntry {
            path: object::task_path(id),
            body_len: 1,
            body_digest: Digest::default(),
        })
        .collect();
}

/// `n` listed file backups of 1 GiB of content each.
fn backups(img: &Path, m: &mut Manifest, n: u64) {
    std::fs::create_dir_all(img.join("files")).expect("files/");
    let mut content = vec![0u8; 1 << 30];
    for i in 0..n {
        content[..8].copy_from_slice(&i.to_le_bytes());
        let file = encode_bytes(ObjectKind::FileBackup, &content, Some(1)).expect("encode");
        let path = file_backup_path(&Digest::of(&content));
        put(img, m, &path, &file);
    }
}

/// Writes `file` at `path` of the image and lists it in `m`.
fn put(img: &Path, m: &mut Manifest, path: &str, file: &[u8]) {
    std::fs::write(img.join(path), file).expect("write");
    let h = ObjectHeader::parse(file).expect("header");
    m.objects.retain(|o| o.path != path);
    m.objects.push(ObjectEntry {
        path: path.to_string(),
        body_len: h.body_len,
        body_digest: h.checksum,
    });
}

fn read_manifest(img: &Path) -> Manifest {
    let bytes = std::fs::read(img.join(MANIFEST_PATH)).expect("manifest");
    object::open_record(&bytes, ObjectKind::Manifest)
        .expect("manifest decodes")
        .1
}

/// Opens the image and reads every task record; says how many read.
fn read_all(img: &Path) -> String {
    let image = match Image::open(img) {
        Ok(i) => i,
        Err(e) => return format!("open: {e}"),
    };
    let ids = image.task_ids();
    let ok = ids.iter().filter(|&&id| image.task(id).is_ok()).count();
    format!("{ok} of {} task records read", ids.len())
}

/// The process's peak resident memory (Linux), or "?".
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}
