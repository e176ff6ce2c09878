//! Shared helpers of snapinspect's integration tests: running the real
//! binary, and writing small images with snapfmt's real writer.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use snapfmt::exec::{ExecState, Frame, InstanceState, Suspension, Value};
use snapfmt::*;

/// Runs `snapinspect ARGS` and returns its output.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_snapinspect"))
        .args(args)
        .output()
        .expect("running snapinspect")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code, with stdout/stderr in the panic message if it differs.
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The committed golden image (directory form).
pub fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/golden-v1")
}

/// Writes snapfmt's sample image (the golden image's content) to `path`.
pub fn write_sample(path: &Path, form: ImageForm) {
    let opts = WriterOptions {
        form,
        threads: 1,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    snapfmt::sample::write_sample(path, opts).expect("writing the sample image");
}

/// Base of the lab task's second area.
pub const LAB_HEAP: u64 = 0x10_0000;
/// Pages of the lab task's primary area.
pub const LAB_PRIMARY_PAGES: u32 = 16;

/// A small one-task image to vary: task 1 with a 16-page primary area at 0
/// and a 4-page anonymous area at [`LAB_HEAP`], one thread, two phones,
/// one call, one cooperative blob. `pages` maps (area base, page) to
/// content; pages not listed are zero.
#[derive(Clone)]
pub struct Lab {
    pub record: TaskRecord,
    pub pages: BTreeMap<(u64, u32), Vec<u8>>,
    pub created: i64,
}

/// Deterministic text-like content for page `n`.
pub fn lab_page(n: u32) -> Vec<u8> {
    format!("lab page {n:04}; ")
        .bytes()
        .cycle()
        .take(PAGE_SIZE)
        .collect()
}

fn area(base: u64, pages: u64, backing: Backing) -> AreaRecord {
    AreaRecord {
        base,
        size: pages * PAGE_SIZE as u64,
        flags: area_flags::READ | area_flags::WRITE,
        backing,
        sharing: vec![],
        pages: PageMap::default(),
    }
}

impl Lab {
    pub fn new() -> Lab {
        let mut pages = BTreeMap::new();
        for p in [0u32, 1, 2, 3, 4, 5, 8, 9, 12] {
            pages.insert((0, p), lab_page(p));
        }
        pages.insert((LAB_HEAP, 0), lab_page(100));
        let record = TaskRecord {
            meta: TaskMeta {
                task_id: 1,
                name: "lab".into(),
                args: vec!["lab".into()],
                cwd: "/".into(),
                module: ModuleRef::External {
                    path: "/bin/lab.wasm".into(),
                    sha256: Digest::of(b"lab module"),
                },
                id_view: vec![],
            },
            instance: InstanceState::default(),
            threads: vec![ThreadContext {
                thread_id: 1,
                exec: ExecState {
                    frames: vec![Frame {
                        func_index: 2,
                        code_offset: 0x10,
                        locals: vec![Value::I32(1)],
                        operands: vec![],
                    }],
                    globals: vec![Value::I32(65536)],
                    suspension: Suspension::Ready,
                    fuel_left: 10,
                },
                syscall: SyscallState::None,
                active_sync_call: None,
                kernel_build_hash: Digest::of(b"lab kernel"),
            }],
            areas: vec![
                area(
                    0,
                    u64::from(LAB_PRIMARY_PAGES),
                    Backing::Primary { max_pages: None },
                ),
                area(LAB_HEAP, 4, Backing::Anonymous),
            ],
            phones: vec![
                PhoneSlot::Connected(Phone {
                    peer: Peer::Service("spartan.console".into()),
                    receiver_side_id: 3,
                }),
                PhoneSlot::Free,
            ],
            calls: vec![PendingCall {
                queue: CallQueue::Sent,
                sender_side_id: 1,
                receiver_side_id: 11,
                phone: Some(0),
                peer: Peer::Service("spartan.console".into()),
                words: [7, 0, 0, 0, 0, 0],
                thread: None,
                buffer: None,
            }],
            coop_blobs: vec![CoopBlob {
                service_id: "spartan.console".into(),
                connection: 0,
                data: b"console state v1".to_vec(),
            }],
            file_backups: vec![],
        };
        Lab {
            record,
            pages,
            created: 1_800_000_000,
        }
    }

    /// Writes the image to `path` (directory form, 4 pages per chunk).
    pub fn write(&self, path: &Path) {
        let info = ImageInfo {
            tool_version: "snapinspect-tests".into(),
            kernel_build_hash: Digest::of(b"lab kernel"),
            kernel_abi_version: 1,
            created: Timestamp {
                seconds: self.created,
                nanos: 0,
            },
            task_zero: self.record.meta.task_id,
            options: CheckpointOptions::default(),
            checkpoint_set: vec![SetMember {
                task_id: self.record.meta.task_id,
                name: self.record.meta.name.clone(),
                role: Role::Checkpointable,
            }],
        };
        let opts = WriterOptions {
            threads: 1,
            chunk_pages: 4,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(path, info, opts).expect("creating the lab image");
        for (&(base, page), bytes) in &self.pages {
            w.add_page(self.record.meta.task_id, base, page, bytes)
                .expect("adding a page");
        }
        w.add_task(self.record.clone()).expect("adding the task");
        w.finish().expect("finishing the lab image");
    }
}
