//! A small, fully deterministic sample image that exercises every record
//! type: the content of the golden image `fixtures/images/golden-v1`, and
//! a convenient fixture for tests of this crate and of its users.
//!
//! Two checkpointable tasks (ids 7 and 9) with two threads each; task 7
//! has a hole in its phone table, pending calls of every queue with
//! buffers, a cooperative blob, a stored file backup and a kernel state
//! record (a connection request in flight in its phone slot 1, the parties
//! of every call, a notification, thread details); task 9 has no kernel
//! state record; the two tasks share an area; memory holds zero pages and
//! duplicate pages.

use crate::digest::Digest;
use crate::error::Result;
use crate::exec::{ExecState, Frame, InstanceState, Suspension, Value};
use crate::limits::PAGE_SIZE;
use crate::records::*;
use crate::writer::{Finished, ImageInfo, ImageWriter, WriterOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// Task ids of the sample's checkpointable tasks.
pub const SAMPLE_TASKS: [u64; 2] = [7, 9];
/// Base of the area task 7 shares with task 9 (at `SHARED_BASE_9` there).
pub const SHARED_BASE_7: u64 = 0x10_0000;
/// Base of the shared area in task 9.
pub const SHARED_BASE_9: u64 = 0x20_0000;

/// The manifest information of the sample.
pub fn sample_info() -> ImageInfo {
    let mut extra = BTreeMap::new();
    extra.insert("err_resume".to_string(), "false".to_string());
    ImageInfo {
        tool_version: "snapfmt-sample 1".into(),
        kernel_build_hash: Digest::of(b"sample kernel sources"),
        kernel_abi_version: 1,
        created: Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        },
        task_zero: 7,
        options: CheckpointOptions {
            kill_after: false,
            file_policy: FilePolicy::BackupOverwrite,
            timeout_ms: 5000,
            bundle_modules: true,
            extra,
        },
        checkpoint_set: vec![
            SetMember {
                task_id: 7,
                name: "counter".into(),
                role: Role::Checkpointable,
            },
            SetMember {
                task_id: 9,
                name: "peer".into(),
                role: Role::Checkpointable,
            },
            SetMember {
                task_id: 2,
                name: "vfs".into(),
                role: Role::Cooperative {
                    service_id: "spartan.vfs".into(),
                },
            },
            SetMember {
                task_id: 12,
                name: "client".into(),
                role: Role::ExcludedClient,
            },
        ],
    }
}

/// The sample's module (a minimal valid WebAssembly module: magic and version).
pub const SAMPLE_MODULE: &[u8] = b"\0asm\x01\0\0\0";

/// Deterministic non-zero content of page `n` (text-like).
pub fn sample_page(n: u32) -> Vec<u8> {
    let line = format!("page {n:05} of the Spartan sample image. ");
    line.bytes().cycle().take(PAGE_SIZE).collect()
}

fn thread(id: u64, blocked: bool) -> ThreadContext {
    let frame = Frame {
        func_index: 3,
        code_offset: 17 + id as u32,
        locals: vec![
            Value::I32(id as u32),
            Value::I64(u64::MAX),
            Value::F32(0x7fc0_0001),
        ],
        operands: vec![
            Value::F64(0x7ff8_0000_0000_0001),
            Value::FuncRef(Some(2)),
            Value::ExternRef(None),
        ],
    };
    let (suspension, syscall) = if blocked {
        (
            Suspension::HostCall {
                import: 1,
                args: vec![Value::I32(5)],
            },
            SyscallState::Reissue,
        )
    } else {
        (Suspension::Ready, SyscallState::None)
    };
    ThreadContext {
        thread_id: id,
        exec: ExecState {
            frames: vec![frame],
            globals: vec![Value::I32(65536)],
            suspension,
            fuel_left: 1000,
        },
        syscall,
        active_sync_call: None,
        kernel_build_hash: Digest::of(b"sample kernel sources"),
    }
}

fn area(base: u64, pages: u64, backing: Backing, sharing: Vec<Sharing>) -> AreaRecord {
    AreaRecord {
        base,
        size: pages * PAGE_SIZE as u64,
        flags: area_flags::READ | area_flags::WRITE,
        backing,
        sharing,
        pages: PageMap::default(),
    }
}

fn call(
    queue: CallQueue,
    id: u64,
    phone: Option<u32>,
    peer: Peer,
    buffer: Option<CallBuffer>,
) -> PendingCall {
    PendingCall {
        queue,
        sender_side_id: id,
        receiver_side_id: 100 + id,
        phone,
        peer,
        words: [1024 + id, 1, 2, 3, 4, 5],
        thread: None,
        buffer,
    }
}

/// Writes the sample image to `path` with `opts`.
pub fn write_sample(path: &Path, opts: WriterOptions) -> Result<Finished> {
    let mut info = sample_info();
    // The set's schedule (1.3): task 7's thread 2 went to sleep before
    // task 9's thread 3; the round robin continues after thread 1.
    for (k, v) in [
        ("kernel.next_thread_id", "4"),
        ("kernel.wait_order", "2 3"),
        ("kernel.sched.cursor", "1"),
    ] {
        info.options.extra.insert(k.to_string(), v.to_string());
    }
    let mut w = ImageWriter::create(path, info, opts)?;
    let module = w.add_module(SAMPLE_MODULE)?;
    let backup = b"high score: 4200\n";
    let backup_sha = w.add_file_backup(backup)?;

    // Task 7: primary area of 8 pages (pages 2 and 5 zero, 6 duplicates 1).
    for p in 0..8u32 {
        let data = match p {
            2 | 5 => vec![0u8; PAGE_SIZE],
            6 => sample_page(1),
            _ => sample_page(p),
        };
        w.add_page(7, 0, p, &data)?;
    }
    // Shared area: 2 pages, fed for both tasks (stored once).
    for (task, base) in [(7, SHARED_BASE_7), (9, SHARED_BASE_9)] {
        w.add_page(task, base, 0, &sample_page(100))?;
        w.add_page(task, base, 1, &sample_page(101))?;
    }
    // Task 9: primary area of 4 pages, page 3 untouched.
    for p in 0..3u32 {
        w.add_page(9, 0, p, &sample_page(200 + p))?;
    }

    let buf = |kind, bytes: &[u8]| {
        Some(CallBuffer {
            kind,
            bytes: bytes.to_vec(),
        })
    };
    let mut sync = call(CallQueue::Synchronous, 6, Some(0), Peer::Task(9), None);
    sync.thread = Some(2);
    let mut t2 = thread(2, true);
    t2.active_sync_call = Some(6);
    let task7 = TaskRecord {
        meta: TaskMeta {
            task_id: 7,
            name: "counter".into(),
            args: vec!["counter".into(), "--start".into(), "5".into()],
            cwd: "/data".into(),
            module: module.clone(),
            id_view: vec![IdMapping {
                seen: 9,
                refers_to: Peer::Task(9),
            }],
        },
        instance: InstanceState {
            tables: vec![vec![Value::FuncRef(Some(1)), Value::FuncRef(None)]],
            dropped_data: vec![0],
            dropped_elems: vec![],
        },
        threads: vec![thread(1, false), t2],
        areas: vec![
            area(0, 8, Backing::Primary { max_pages: Some(4) }, vec![]),
            area(
                SHARED_BASE_7,
                2,
                Backing::Anonymous,
                vec![Sharing {
                    with: Peer::Task(9),
                    base: SHARED_BASE_9,
                }],
            ),
        ],
        phones: vec![
            PhoneSlot::Connected(Phone {
                peer: Peer::Task(9),
                receiver_side_id: 40,
            }),
            PhoneSlot::Free,
            PhoneSlot::Connected(Phone {
                peer: Peer::Service("spartan.vfs".into()),
                receiver_side_id: 41,
            }),
        ],
        calls: vec![
            call(
                CallQueue::Sent,
                1,
                Some(2),
                Peer::Service("spartan.vfs".into()),
                buf(BufferKind::DataWrite, b"hello"),
            ),
            call(
                CallQueue::Forwarded,
                2,
                Some(2),
                Peer::Service("spartan.vfs".into()),
                None,
            ),
            call(
                CallQueue::UndeliveredAnswer,
                3,
                Some(0),
                Peer::Task(9),
                buf(BufferKind::DataRead, b"answer data"),
            ),
            call(CallQueue::Dispatched, 4, None, Peer::Outside(12), None),
            call(
                CallQueue::Undispatched,
                5,
                None,
                Peer::Task(9),
                buf(BufferKind::DataWrite, &[1, 2, 3]),
            ),
            sync,
        ],
        coop_blobs: vec![CoopBlob {
            service_id: "spartan.vfs".into(),
            connection: 2,
            data: b"open /data/score pos=17".to_vec(),
        }],
        file_backups: vec![FileBackup {
            path: "/data/score".into(),
            policy: FilePolicy::BackupOverwrite,
            fs_identity: "hostfs:sample".into(),
            size: backup.len() as u64,
            mtime: 1_699_999_000,
            sha256: backup_sha,
            stored: true,
        }],
    };
    let task9 = TaskRecord {
        meta: TaskMeta {
            task_id: 9,
            name: "peer".into(),
            args: vec!["peer".into()],
            cwd: "/".into(),
            module,
            id_view: vec![IdMapping {
                seen: 7,
                refers_to: Peer::Task(7),
            }],
        },
        instance: InstanceState::default(),
        threads: vec![thread(1, false), thread(3, true)],
        areas: vec![
            area(0, 4, Backing::Primary { max_pages: None }, vec![]),
            area(
                SHARED_BASE_9,
                2,
                Backing::Anonymous,
                vec![Sharing {
                    with: Peer::Task(7),
                    base: SHARED_BASE_7,
                }],
            ),
        ],
        phones: vec![PhoneSlot::Connected(Phone {
            peer: Peer::Task(7),
            receiver_side_id: 50,
        })],
        calls: vec![call(CallQueue::Dispatched, 6, None, Peer::Task(7), None)],
        coop_blobs: vec![],
        file_backups: vec![],
    };
    w.add_task(task7)?;
    w.add_task(task9)?;
    w.add_kernel_state(sample_kernel_state())?;
    w.finish()
}

/// The kernel state record of sample task 7 (parallel to its six calls
/// and two threads).
pub fn sample_kernel_state() -> KernelTaskState {
    let vfs = Peer::Service("spartan.vfs".into());
    let parties = |caller: Peer, receiver: Peer, phone: Option<u32>, conn: u64| CallParties {
        caller,
        receiver,
        caller_phone: phone,
        conn,
        forwarded_by: vec![],
        answer_ptr: None,
        read: None,
        connect: None,
        discard_answer: false,
        offer_revoked: false,
    };
    let mut connect = parties(Peer::Task(7), vfs.clone(), Some(2), 41);
    connect.connect = Some(ConnectDetail::MeTo { phone: 1, conn: 42 });
    let mut forwarded = parties(Peer::Task(7), Peer::Outside(3), Some(2), 41);
    forwarded.forwarded_by = vec![vfs];
    let mut sync = parties(Peer::Task(7), Peer::Task(9), Some(0), 40);
    sync.answer_ptr = Some(0x1f00);
    let mut read = parties(Peer::Outside(12), Peer::Task(7), None, 60);
    read.read = Some(ReadRequest {
        dst: 0x3000,
        room: 64,
    });
    KernelTaskState {
        task_id: 7,
        counters: IdCounters {
            next_call_id: 7,
            next_rx_call_id: 106,
            next_conn_id: 61,
        },
        phones: vec![SpecialPhone {
            slot: 1,
            state: PhoneState::Connecting,
        }],
        calls: vec![
            CallDetail::Call(connect),
            CallDetail::Call(forwarded),
            CallDetail::Answer,
            CallDetail::Call(read),
            CallDetail::Call(parties(Peer::Task(9), Peer::Task(7), Some(0), 60)),
            CallDetail::Call(sync),
        ],
        notifications: vec![Notification {
            method: 77,
            args: [1, 0, 0, 0, 9],
        }],
        threads: vec![
            ThreadDetail {
                seen_id: 1,
                index: 0,
                remaining_ns: None,
                asleep: false,
                then: Some(EntryCall {
                    func_index: 4,
                    args: vec![Value::I32(5)],
                }),
            },
            ThreadDetail {
                seen_id: 2,
                index: 1,
                remaining_ns: Some(2_500_000),
                asleep: true,
                then: None,
            },
        ],
    }
}

/// A record of task `id` with one anonymous read-write area of `pages`
/// pages at address 0 and nothing else (the writer fills its page map).
pub fn one_area_task(id: u64, pages: u64) -> TaskRecord {
    TaskRecord {
        meta: TaskMeta {
            task_id: id,
            name: format!("task{id}"),
            args: vec![],
            cwd: "/".into(),
            module: ModuleRef::External {
                path: "/t.wasm".into(),
                sha256: Digest::default(),
            },
            id_view: vec![],
        },
        instance: Default::default(),
        threads: vec![],
        areas: vec![AreaRecord {
            base: 0,
            size: pages * PAGE_SIZE as u64,
            flags: area_flags::READ | area_flags::WRITE,
            backing: Backing::Anonymous,
            sharing: vec![],
            pages: PageMap::default(),
        }],
        phones: vec![],
        calls: vec![],
        coop_blobs: vec![],
        file_backups: vec![],
    }
}
