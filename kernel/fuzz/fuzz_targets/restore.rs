//! Fuzzes kernel restore with hostile but well-formed images: real images
//! of running scenarios (captured once at start-up), their task records,
//! kernel state records and manifest mutated structurally, every file
//! re-encoded so that its header checksum and the manifest's digest of it
//! are valid again, the image packed as a tar and restored into a fresh
//! kernel (simulation, auditing on, so `Kernel::debug_check` runs after
//! every system call). The restore must either fail with a
//! `RestoreError` and leave the kernel and scheduler as they were, or
//! succeed with the kernel's invariants holding; then the restored tasks
//! run for a bounded number of slices and are killed, and nothing may
//! panic (overflow checks are on: see `[profile.release]` in Cargo.toml).
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use snapfmt::header::HEADER_LEN;
use snapfmt::object::{self, encode_record, open_record};
use snapfmt::{
    CallDetail, CallQueue, ImageForm, KernelTaskState, Manifest, ObjectHeader, ObjectKind, Peer,
    PhoneSlot, Role, TaskRecord, WriterOptions,
};
use spartan_kernel::checkpoint::{self, RestoreOptions};
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::TaskPolicy;

const SERVER: &str = include_str!("../../../fixtures/wat/ckpt/server.wat");
const SYNC_CLIENT: &str = include_str!("../../../fixtures/wat/ckpt/sync_client.wat");
const ASYNC_CLIENT: &str = include_str!("../../../fixtures/wat/ckpt/async_client.wat");
const FORWARDER: &str = include_str!("../../../fixtures/wat/ckpt/forwarder.wat");
const WORKER: &str = include_str!("../../../fixtures/wat/ckpt/worker.wat");
const FUTEX_PAIR: &str = include_str!("../../../fixtures/wat/ckpt/futex_pair.wat");
const THREAD_PAIR: &str = include_str!("../../../fixtures/wat/ckpt/thread_pair.wat");
const OFFERER: &str = include_str!("../../../fixtures/wat/ckpt/share_offerer.wat");
const ACCEPTER: &str = include_str!("../../../fixtures/wat/ckpt/share_accepter.wat");
const B_SERVER: &str = include_str!("../../../fixtures/wat/ckpt/blocking_server.wat");
const B_CLIENT: &str = include_str!("../../../fixtures/wat/ckpt/blocking_client.wat");
const SLEEPER: &str = include_str!("../../../fixtures/wat/ckpt/blocking_sleeper.wat");
const SLOW_SERVER: &str = include_str!("../../../fixtures/wat/scenarios/slow_server.wat");
const POOL_SERVER: &str = include_str!("../../../fixtures/wat/scenarios/pool_server.wat");
const FUTEX_SLEEPERS: &str = include_str!("../../../fixtures/wat/scenarios/futex_sleepers.wat");
const SPAWNER: &str = include_str!("../../../fixtures/wat/scenarios/spawner.wat");
const SELF_SHARE: &str = include_str!("../../../fixtures/wat/scenarios/self_share.wat");
const HANGUP_CLIENT: &str = include_str!("../../../fixtures/wat/scenarios/hangup_client.wat");
const ONESHOT_CLIENT: &str = include_str!("../../../fixtures/wat/scenarios/oneshot_client.wat");

/// Slices the restored tasks run for.
const RUN_SLICES: u64 = 200;

/// One program of a scenario: name, body, arguments, further threads.
type Prog = (&'static str, &'static str, Vec<Value>, Vec<&'static str>);

struct Scenario {
    progs: Vec<Prog>,
    phones: Vec<(usize, usize)>,
    slice_fuel: u64,
}

fn p(name: &'static str, body: &'static str, args: &[Value]) -> Prog {
    (name, body, args.to_vec(), Vec::new())
}

fn scenarios() -> Vec<Scenario> {
    let i0 = [Value::I32(0)];
    let mut futex = p("futex", FUTEX_PAIR, &[]);
    futex.3.push("pong");
    let mut pool = p("server", POOL_SERVER, &[]);
    pool.3.extend(["w1", "w2"]);
    let mut sleepers = p("sleepers", FUTEX_SLEEPERS, &[]);
    sleepers.3.extend(["s1", "s2", "s3"]);
    let mut alias = p("alias", SELF_SHARE, &[]);
    alias.3.push("acceptor");
    vec![
        Scenario {
            progs: vec![
                p("server", SERVER, &[]),
                p("sync", SYNC_CLIENT, &i0),
                p("async", ASYNC_CLIENT, &i0),
            ],
            phones: vec![(1, 0), (2, 0)],
            slice_fuel: 50,
        },
        Scenario {
            progs: vec![
                p("worker", WORKER, &[]),
                p("forwarder", FORWARDER, &i0),
                p("client", SYNC_CLIENT, &i0),
                p("async", ASYNC_CLIENT, &i0),
                futex,
            ],
            phones: vec![(1, 0), (2, 1), (3, 1)],
            slice_fuel: 37,
        },
        Scenario {
            progs: vec![p("threads", THREAD_PAIR, &[])],
            phones: vec![],
            slice_fuel: 50,
        },
        Scenario {
            progs: vec![p("accepter", ACCEPTER, &[]), p("offerer", OFFERER, &i0)],
            phones: vec![(1, 0)],
            slice_fuel: 40,
        },
        Scenario {
            progs: vec![p("server", B_SERVER, &[]), p("client", B_CLIENT, &i0)],
            phones: vec![(1, 0)],
            slice_fuel: 50,
        },
        Scenario {
            progs: vec![p("sleeper", SLEEPER, &[])],
            phones: vec![],
            slice_fuel: 50,
        },
        Scenario {
            progs: vec![
                pool,
                p("sync1", SYNC_CLIENT, &i0),
                p("sync2", SYNC_CLIENT, &i0),
                p("async", ASYNC_CLIENT, &i0),
            ],
            phones: vec![(1, 0), (2, 0), (3, 0)],
            slice_fuel: 43,
        },
        Scenario {
            progs: vec![sleepers],
            phones: vec![],
            slice_fuel: 39,
        },
        Scenario {
            progs: vec![
                p("spawnA", SPAWNER, &[Value::I64(1_000)]),
                p("spawnB", SPAWNER, &[Value::I64(4_000)]),
            ],
            phones: vec![],
            slice_fuel: 41,
        },
        Scenario {
            progs: vec![alias],
            phones: vec![(0, 0)],
            slice_fuel: 47,
        },
        Scenario {
            progs: vec![
                p("server", SLOW_SERVER, &[Value::I32(800), Value::I64(0)]),
                p("client", HANGUP_CLIENT, &[Value::I32(0), Value::I32(1)]),
                p("sync", SYNC_CLIENT, &i0),
            ],
            phones: vec![(1, 0), (1, 0), (2, 0)],
            slice_fuel: 53,
        },
        Scenario {
            progs: vec![
                p(
                    "server",
                    SLOW_SERVER,
                    &[Value::I32(100), Value::I64(25_000)],
                ),
                p("oneshot", ONESHOT_CLIENT, &i0),
                p("sync", SYNC_CLIENT, &i0),
            ],
            phones: vec![(1, 0), (2, 0)],
            slice_fuel: 37,
        },
    ]
}

/// A captured image, decoded.
struct Seed {
    /// Every file of the image by path (chunks and modules are reused as
    /// they are).
    files: BTreeMap<String, Vec<u8>>,
    manifest: Manifest,
    /// Task id -> record and kernel state record.
    tasks: BTreeMap<u64, (TaskRecord, KernelTaskState)>,
    slice_fuel: u64,
}

fn read_tree(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let path = e.expect("entry").path();
        if path.is_dir() {
            read_tree(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("inside")
                .to_str()
                .expect("utf-8");
            out.insert(rel.to_string(), std::fs::read(&path).expect("read"));
        }
    }
}

fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = Vec::new();
        for (n, sc) in scenarios().iter().enumerate() {
            for cut in [4u64, 25, 90, 300] {
                if let Some(seed) = capture_seed(sc, cut, &dir.path().join(format!("{n}-{cut}"))) {
                    out.push(seed);
                }
            }
        }
        assert!(!out.is_empty(), "no seed image");
        if std::env::var_os("RESTORE_FUZZ_VERBOSE").is_some() {
            eprintln!("restore fuzz: {} seed images", out.len());
        }
        out
    })
}

fn capture_seed(sc: &Scenario, slices: u64, path: &std::path::Path) -> Option<Seed> {
    let config = SchedConfig {
        slice_fuel: sc.slice_fuel,
        ..SchedConfig::default()
    };
    let mut k = Kernel::new(KernelConfig::simulation(7));
    let mut s = Scheduler::new(config);
    let mut tasks = Vec::new();
    for (name, body, args, threads) in &sc.progs {
        let (t, _) = s
            .spawn_guest(
                &mut k,
                name,
                TaskPolicy::Checkpointable,
                rt::program(body).as_bytes(),
                "main",
                args,
            )
            .expect("guest loads");
        for entry in threads {
            s.spawn_thread(&mut k, t, entry, &[])
                .expect("thread starts");
        }
        tasks.push(t);
    }
    for &(from, to) in &sc.phones {
        k.connect_phone(tasks[from], tasks[to])
            .expect("phone connects");
    }
    if let RunEnd::AllDone = s.run(&mut k, slices) {
        return None;
    }
    let live: Vec<_> = tasks.into_iter().filter(|t| k.task(*t).is_some()).collect();
    if live.is_empty() {
        return None;
    }
    let stopped = checkpoint::stop(&mut k, &live).ok()?;
    let capture = checkpoint::capture(&mut k, &s, &stopped).ok()?;
    let opts = WriterOptions {
        form: ImageForm::Directory,
        threads: 1,
        ..WriterOptions::default()
    };
    capture.write(path, opts).expect("image written");
    let mut files = BTreeMap::new();
    read_tree(path, path, &mut files);
    let (_, manifest): (_, Manifest) =
        open_record(&files["manifest.spm"], ObjectKind::Manifest).expect("manifest");
    let mut recs = BTreeMap::new();
    for m in &manifest.checkpoint_set {
        let (_, r): (_, TaskRecord) =
            open_record(&files[&object::task_path(m.task_id)], ObjectKind::Task).expect("task");
        let (_, ks): (_, KernelTaskState) = open_record(
            &files[&object::kernel_state_path(m.task_id)],
            ObjectKind::KernelState,
        )
        .expect("kernel state");
        recs.insert(m.task_id, (r, ks));
    }
    Some(Seed {
        files,
        manifest,
        tasks: recs,
        slice_fuel: sc.slice_fuel,
    })
}

/// Edge values and ids of the image's own things.
fn id_value(u: &mut Unstructured, known: &[u64]) -> arbitrary::Result<u64> {
    Ok(match u.int_in_range(0..=9)? {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => 1 << 63,
        4 => (1 << 63) - 1,
        5 => (1 << 61) + u64::from(u.int_in_range(0u8..=3)?),
        6 | 7 if !known.is_empty() => *u.choose(known)?,
        8 => u64::from(u.int_in_range(0u8..=16)?),
        _ => u64::arbitrary(u)?,
    })
}

fn peer(u: &mut Unstructured, members: &[u64]) -> arbitrary::Result<Peer> {
    Ok(match u.int_in_range(0..=3)? {
        0 | 1 if !members.is_empty() => Peer::Task(*u.choose(members)?),
        0 | 1 | 2 => Peer::Outside(id_value(u, members)?),
        _ => Peer::Service(["ns", "vfs", ""][u.int_in_range(0..=2)?].to_string()),
    })
}

/// Flips, overwrites, inserts or removes bytes of the postcard body of
/// `v`, and decodes the result back (if it decodes).
fn postcard_mutate<T>(u: &mut Unstructured, v: &mut T) -> arbitrary::Result<()>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Ok(mut bytes) = postcard::to_allocvec(v) else {
        return Ok(());
    };
    for _ in 0..u.int_in_range(1..=4)? {
        if bytes.is_empty() {
            break;
        }
        let at = u.choose_index(bytes.len())?;
        match u.int_in_range(0..=4)? {
            0 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
            1 => bytes[at] = u8::arbitrary(u)?,
            2 => bytes.insert(at, u8::arbitrary(u)?),
            3 => {
                bytes.remove(at);
            }
            _ => bytes[at] = [0, 1, 0x7f, 0x80, 0xff][u.int_in_range(0..=4)?],
        }
    }
    if let Ok(back) = postcard::from_bytes(&bytes) {
        *v = back;
    }
    Ok(())
}

/// Every id of the image, to reuse as a mutation value.
fn known_ids(tasks: &BTreeMap<u64, (TaskRecord, KernelTaskState)>) -> Vec<u64> {
    let mut ids: Vec<u64> = tasks.keys().copied().collect();
    for (r, k) in tasks.values() {
        ids.extend(r.threads.iter().map(|t| t.thread_id));
        ids.extend(r.calls.iter().map(|c| c.sender_side_id));
        ids.extend(r.calls.iter().map(|c| c.receiver_side_id));
        ids.extend(k.threads.iter().map(|t| t.seen_id));
        ids.extend(r.meta.id_view.iter().map(|m| m.seen));
        for c in &k.calls {
            if let CallDetail::Call(p) = c {
                ids.push(p.conn);
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// One structural mutation of the records or the manifest.
fn mutate(
    u: &mut Unstructured,
    manifest: &mut Manifest,
    tasks: &mut BTreeMap<u64, (TaskRecord, KernelTaskState)>,
) -> arbitrary::Result<()> {
    let members: Vec<u64> = tasks.keys().copied().collect();
    let known = known_ids(tasks);
    let tid = *u.choose(&members)?;
    let other = *u.choose(&members)?;
    let op = u.int_in_range(0..=21)?;
    let (r, ks) = tasks.get_mut(&tid).expect("member");
    match op {
        // Ids and counters.
        0 => {
            if !r.threads.is_empty() {
                let i = u.choose_index(r.threads.len())?;
                r.threads[i].thread_id = id_value(u, &known)?;
            }
        }
        1 => {
            if !ks.threads.is_empty() {
                let i = u.choose_index(ks.threads.len())?;
                let d = &mut ks.threads[i];
                match u.int_in_range(0..=4)? {
                    0 => d.seen_id = id_value(u, &known)?,
                    1 => d.index = id_value(u, &known)?,
                    2 => d.remaining_ns = Option::<u64>::arbitrary(u)?,
                    3 => d.asleep = !d.asleep,
                    _ => d.then = Arbitrary::arbitrary(u)?,
                }
            }
        }
        2 => {
            let c = &mut ks.counters;
            let v = id_value(u, &known)?;
            match u.int_in_range(0..=2)? {
                0 => c.next_call_id = v,
                1 => c.next_rx_call_id = v,
                _ => c.next_conn_id = v,
            }
        }
        3 => {
            if !r.calls.is_empty() {
                let i = u.choose_index(r.calls.len())?;
                let c = &mut r.calls[i];
                let v = id_value(u, &known)?;
                match u.int_in_range(0..=6)? {
                    0 => c.sender_side_id = v,
                    1 => c.receiver_side_id = v,
                    2 => c.thread = Some(v).filter(|_| v != 0),
                    3 => c.queue = CallQueue::arbitrary(u)?,
                    4 => c.phone = Option::<u32>::arbitrary(u)?,
                    5 => c.peer = peer(u, &members)?,
                    _ => c.words[u.choose_index(6)?] = v,
                }
            }
        }
        4 => {
            if !ks.calls.is_empty() {
                let i = u.choose_index(ks.calls.len())?;
                if let CallDetail::Call(p) = &mut ks.calls[i] {
                    match u.int_in_range(0..=9)? {
                        0 => p.caller = peer(u, &members)?,
                        1 => p.receiver = peer(u, &members)?,
                        2 => p.conn = id_value(u, &known)?,
                        3 => p.caller_phone = Option::<u32>::arbitrary(u)?,
                        4 => p.answer_ptr = Option::<u64>::arbitrary(u)?,
                        5 => p.read = Arbitrary::arbitrary(u)?,
                        6 => p.connect = Arbitrary::arbitrary(u)?,
                        7 => p.forwarded_by.push(peer(u, &members)?),
                        8 => p.discard_answer = !p.discard_answer,
                        _ => p.offer_revoked = !p.offer_revoked,
                    }
                } else {
                    ks.calls[i] = Arbitrary::arbitrary(u)?;
                }
            }
        }
        // Drop, duplicate or move calls and threads (both records in step).
        5 => {
            if !r.calls.is_empty() {
                let i = u.choose_index(r.calls.len())?;
                if bool::arbitrary(u)? {
                    r.calls.remove(i);
                    if i < ks.calls.len() {
                        ks.calls.remove(i);
                    }
                } else {
                    let c = r.calls[i].clone();
                    r.calls.push(c);
                    if i < ks.calls.len() {
                        let d = ks.calls[i].clone();
                        ks.calls.push(d);
                    }
                }
            }
        }
        6 => {
            if !r.threads.is_empty() {
                let i = u.choose_index(r.threads.len())?;
                if bool::arbitrary(u)? {
                    r.threads.remove(i);
                    if i < ks.threads.len() {
                        ks.threads.remove(i);
                    }
                } else {
                    let mut t = r.threads[i].clone();
                    if bool::arbitrary(u)? {
                        t.thread_id = id_value(u, &known)?;
                    }
                    r.threads.push(t);
                    if i < ks.threads.len() {
                        let d = ks.threads[i].clone();
                        ks.threads.push(d);
                    }
                }
            }
        }
        7 => {
            // Move a call (and its detail) to another task.
            if tid != other && !r.calls.is_empty() {
                let i = u.choose_index(r.calls.len())?;
                let c = r.calls.remove(i);
                let d = (i < ks.calls.len()).then(|| ks.calls.remove(i));
                let (r2, k2) = tasks.get_mut(&other).expect("member");
                r2.calls.push(c);
                if let Some(d) = d {
                    k2.calls.push(d);
                }
            }
        }
        8 => {
            // Swap two calls' queues or order.
            if r.calls.len() >= 2 {
                let a = u.choose_index(r.calls.len())?;
                let b = u.choose_index(r.calls.len())?;
                if bool::arbitrary(u)? {
                    let q = r.calls[a].queue;
                    r.calls[a].queue = r.calls[b].queue;
                    r.calls[b].queue = q;
                } else {
                    r.calls.swap(a, b);
                    if a < ks.calls.len() && b < ks.calls.len() {
                        ks.calls.swap(a, b);
                    }
                }
            }
        }
        // Thread system call state.
        9 => {
            if !r.threads.is_empty() {
                let i = u.choose_index(r.threads.len())?;
                let t = &mut r.threads[i];
                match u.int_in_range(0..=2)? {
                    0 => t.syscall = Arbitrary::arbitrary(u)?,
                    1 => {
                        t.active_sync_call = if bool::arbitrary(u)? {
                            Some(id_value(u, &known)?)
                        } else {
                            None
                        }
                    }
                    _ => postcard_mutate(u, &mut t.exec)?,
                }
            }
        }
        // Phones.
        10 => {
            if !r.phones.is_empty() && bool::arbitrary(u)? {
                let i = u.choose_index(r.phones.len())?;
                r.phones[i] = match u.int_in_range(0..=2)? {
                    0 => PhoneSlot::Free,
                    1 => PhoneSlot::Connected(snapfmt::Phone {
                        peer: peer(u, &members)?,
                        receiver_side_id: id_value(u, &known)?,
                    }),
                    _ => {
                        let j = u.choose_index(r.phones.len())?;
                        r.phones[j].clone()
                    }
                };
            } else {
                r.phones.push(PhoneSlot::Connected(snapfmt::Phone {
                    peer: peer(u, &members)?,
                    receiver_side_id: id_value(u, &known)?,
                }));
            }
        }
        11 => {
            if !ks.phones.is_empty() && bool::arbitrary(u)? {
                let i = u.choose_index(ks.phones.len())?;
                ks.phones.remove(i);
            } else {
                ks.phones.push(Arbitrary::arbitrary(u)?);
            }
        }
        12 => ks.notifications.push(Arbitrary::arbitrary(u)?),
        // Id view.
        13 => {
            if !r.meta.id_view.is_empty() && bool::arbitrary(u)? {
                let i = u.choose_index(r.meta.id_view.len())?;
                if bool::arbitrary(u)? {
                    r.meta.id_view[i].seen = id_value(u, &known)?;
                } else {
                    r.meta.id_view[i].refers_to = peer(u, &members)?;
                }
            } else {
                r.meta.id_view.push(snapfmt::IdMapping {
                    seen: id_value(u, &known)?,
                    refers_to: peer(u, &members)?,
                });
            }
        }
        // Areas and sharing.
        14 => {
            if !r.areas.is_empty() {
                let i = u.choose_index(r.areas.len())?;
                let a = &mut r.areas[i];
                match u.int_in_range(0..=4)? {
                    0 => a.base = id_value(u, &known)?,
                    1 => a.size = id_value(u, &known)?,
                    2 => a.flags = u32::arbitrary(u)?,
                    3 => {
                        if !a.sharing.is_empty() {
                            let j = u.choose_index(a.sharing.len())?;
                            a.sharing[j].with = peer(u, &members)?;
                        }
                    }
                    _ => postcard_mutate(u, a)?,
                }
            }
        }
        15 => postcard_mutate(u, &mut r.instance)?,
        16 => postcard_mutate(u, r)?,
        17 => postcard_mutate(u, ks)?,
        // Manifest: the set, and the kernel.* entries of options.extra.
        18 => {
            let keys: Vec<String> = manifest.options.extra.keys().cloned().collect();
            if !keys.is_empty() && bool::arbitrary(u)? {
                let key = u.choose(&keys)?.clone();
                let val = manifest.options.extra.get_mut(&key).expect("key");
                match u.int_in_range(0..=3)? {
                    0 => *val = id_value(u, &known)?.to_string(),
                    1 => *val = String::arbitrary(u)?,
                    2 => {
                        manifest.options.extra.remove(&key);
                    }
                    _ => {
                        let ids: Vec<String> = (0..u.int_in_range(0..=4)?)
                            .map(|_| id_value(u, &known).map(|v| v.to_string()))
                            .collect::<Result<_, _>>()?;
                        *val = ids.join(",");
                    }
                }
            } else {
                let key = [
                    "kernel.next_thread_id",
                    "kernel.sched.cursor",
                    "kernel.wait_order",
                    "kernel.task.1",
                ][u.int_in_range(0..=3)?];
                manifest
                    .options
                    .extra
                    .insert(key.to_string(), String::arbitrary(u)?);
            }
        }
        19 => {
            let i = u.choose_index(manifest.checkpoint_set.len())?;
            match u.int_in_range(0..=2)? {
                0 => {
                    manifest.checkpoint_set.remove(i);
                }
                1 => manifest.checkpoint_set[i].role = Role::arbitrary(u)?,
                _ => {
                    let mut m = manifest.checkpoint_set[i].clone();
                    m.role = Role::arbitrary(u)?;
                    m.task_id = id_value(u, &known)?;
                    manifest.checkpoint_set.push(m);
                    manifest.checkpoint_set.sort_by_key(|m| m.task_id);
                }
            }
        }
        20 => {
            manifest.created = Arbitrary::arbitrary(u)?;
        }
        _ => {
            // Swap the call queues of two tasks.
            if tid != other {
                let calls = std::mem::take(&mut r.calls);
                let details = std::mem::take(&mut ks.calls);
                let (r2, k2) = tasks.get_mut(&other).expect("member");
                let c2 = std::mem::replace(&mut r2.calls, calls);
                let d2 = std::mem::replace(&mut k2.calls, details);
                let (r, ks) = tasks.get_mut(&tid).expect("member");
                r.calls = c2;
                ks.calls = d2;
            }
        }
    }
    Ok(())
}

/// Re-encodes `file` with a valid header and notes its new length and
/// digest in the manifest.
fn put(
    files: &mut BTreeMap<String, Vec<u8>>,
    manifest: &mut Manifest,
    path: String,
    bytes: Vec<u8>,
) {
    let h = ObjectHeader::parse(&bytes).expect("own header");
    if let Some(e) = manifest.objects.iter_mut().find(|e| e.path == path) {
        e.body_len = (bytes.len() - HEADER_LEN) as u64;
        e.body_digest = h.checksum;
    }
    files.insert(path, bytes);
}

fn tar_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("spartan-restore-fuzz-{}.tar", std::process::id()))
    })
}

fn build_image(data: &[u8]) -> Option<(Vec<u8>, u64, bool)> {
    let (&first, rest) = data.split_first()?;
    let seeds = seeds();
    let seed = &seeds[usize::from(first) % seeds.len()];
    let mut u = Unstructured::new(rest);
    let mut manifest = seed.manifest.clone();
    let mut tasks = seed.tasks.clone();
    let rounds = u.int_in_range(0..=6).ok()?;
    for _ in 0..rounds {
        if mutate(&mut u, &mut manifest, &mut tasks).is_err() {
            break;
        }
    }
    let resume = u.arbitrary::<bool>().unwrap_or(true);
    if std::env::var_os("RESTORE_FUZZ_VERBOSE").is_some() {
        // What the mutations changed, record by record.
        if manifest != seed.manifest {
            eprintln!("restore fuzz: manifest: {:?}", manifest.options.extra);
        }
        for (id, (r, ks)) in &tasks {
            let Some((r0, k0)) = seed.tasks.get(id) else {
                continue;
            };
            if r != r0 {
                eprintln!("restore fuzz: task {id} record was {r0:#?}\nis {r:#?}");
            }
            if ks != k0 {
                eprintln!("restore fuzz: task {id} kernel state was {k0:#?}\nis {ks:#?}");
            }
        }
    }
    let mut files = seed.files.clone();
    for (id, (r, ks)) in &tasks {
        let bytes = encode_record(ObjectKind::Task, r, None).ok()?;
        put(&mut files, &mut manifest, object::task_path(*id), bytes);
        let bytes = encode_record(ObjectKind::KernelState, ks, None).ok()?;
        put(
            &mut files,
            &mut manifest,
            object::kernel_state_path(*id),
            bytes,
        );
    }
    files.insert(
        "manifest.spm".into(),
        encode_record(ObjectKind::Manifest, &manifest, None).ok()?,
    );
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, &bytes[..]).ok()?;
    }
    Some((b.into_inner().ok()?, seed.slice_fuel, resume))
}

fuzz_target!(|data: &[u8]| {
    if std::env::var_os("RESTORE_FUZZ_PROBE_OVERFLOW").is_some() {
        // Shows that overflow checks are on: this panics with "attempt to
        // add with overflow" (the kernel is built with the same flags).
        let x = std::hint::black_box(u64::MAX) + std::hint::black_box(data.len() as u64 + 1);
        eprintln!("overflow checks are off: {x}");
    }
    let Some((tar, slice_fuel, resume)) = build_image(data) else {
        return;
    };
    let path = tar_path();
    std::fs::write(path, &tar).expect("write image");
    let Ok(image) = snapfmt::Image::open(path) else {
        return;
    };
    let mut k = Kernel::new(KernelConfig::simulation(11));
    let mut s = Scheduler::new(SchedConfig {
        slice_fuel,
        ..SchedConfig::default()
    });
    let bystander = k.spawn_native("bystander", TaskPolicy::Checkpointable);
    let (tasks, threads) = (k.task_ids(), s.threads());
    let opts = RestoreOptions {
        threads: 1,
        resume,
        ..RestoreOptions::default()
    };
    let result = checkpoint::restore(&mut k, &mut s, &std::sync::Arc::new(image), &opts);
    if std::env::var_os("RESTORE_FUZZ_VERBOSE").is_some() {
        match &result {
            Ok(r) => eprintln!("restore fuzz: restored {} tasks", r.tasks.len()),
            Err(e) => eprintln!("restore fuzz: refused: {e}"),
        }
    }
    match result {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(k.task_ids(), tasks, "task left behind: {e}");
            assert_eq!(s.threads(), threads, "thread left behind: {e}");
            assert!(k.task(bystander.id()).is_some());
            if let Err(v) = k.check_invariants() {
                panic!("invariants after a failed restore ({e}): {v:?}");
            }
        }
        Ok(restored) => {
            if let Err(v) = k.check_invariants() {
                panic!("invariants after restore: {v:?}");
            }
            if !resume {
                restored.resume(&mut k);
                if let Err(v) = k.check_invariants() {
                    panic!("invariants after resume: {v:?}");
                }
            }
            for _ in 0..RUN_SLICES {
                match s.run(&mut k, 1) {
                    RunEnd::AllDone | RunEnd::Deadlock => break,
                    _ => {}
                }
            }
            if let Err(v) = k.check_invariants() {
                panic!("invariants after running: {v:?}");
            }
            for t in restored.tasks.values() {
                let _ = k.kill_task(*t);
            }
            s.run(&mut k, 1);
            if let Err(v) = k.check_invariants() {
                panic!("invariants after killing the restored tasks: {v:?}");
            }
        }
    }
});
