//! Shared set-up of the checkpoint tests: scenarios of communicating WAT
//! guest tasks (bodies in `fixtures/wat/ckpt`), a world (kernel +
//! scheduler) running them in simulation, what a run shows (log lines and
//! completed system calls, by task name and the thread id the task sees),
//! memory digests, and checkpoint + kill + restore through an image on
//! disk.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use snapfmt::{Image, ImageForm, WriterOptions};
use spartan_kernel::checkpoint::{
    self, PageLoading, RestoreOptions, Restored, restore::capture_time_ns,
};
use spartan_kernel::guest::{SchedConfig, Scheduler, guest_space_ref, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::mm::AddressSpace;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};

pub const SERVER: &str = include_str!("../../../fixtures/wat/ckpt/server.wat");
pub const SYNC_CLIENT: &str = include_str!("../../../fixtures/wat/ckpt/sync_client.wat");
pub const ASYNC_CLIENT: &str = include_str!("../../../fixtures/wat/ckpt/async_client.wat");
pub const FORWARDER: &str = include_str!("../../../fixtures/wat/ckpt/forwarder.wat");
pub const WORKER: &str = include_str!("../../../fixtures/wat/ckpt/worker.wat");
pub const FUTEX_PAIR: &str = include_str!("../../../fixtures/wat/ckpt/futex_pair.wat");

/// One guest program of a scenario.
#[derive(Clone)]
pub struct Prog {
    pub name: &'static str,
    pub body: &'static str,
    pub args: Vec<Value>,
    /// Further threads, by entry export.
    pub threads: Vec<&'static str>,
}

/// Tasks, their phones (from, to: indices into `progs`, connected in this
/// order), and the scheduler's slice.
#[derive(Clone)]
pub struct Scenario {
    pub progs: Vec<Prog>,
    pub phones: Vec<(usize, usize)>,
    pub slice_fuel: u64,
}

/// A server with a synchronous and an asynchronous client (timeouts,
/// sleeps, answers queued while the client is busy, task ids in answers).
pub fn client_server(slice_fuel: u64) -> Scenario {
    Scenario {
        progs: vec![
            prog("server", SERVER, &[]),
            prog("sync", SYNC_CLIENT, &[Value::I32(0)]),
            prog("async", ASYNC_CLIENT, &[Value::I32(0)]),
        ],
        phones: vec![(1, 0), (2, 0)],
        slice_fuel,
    }
}

/// SHA-256 of a space's memory: its areas, and every page with content
/// (pages still pending after a lazy restore count as the image's bytes
/// they are).
pub fn space_digest(space: &AddressSpace) -> String {
    let snap = space.snapshot();
    let mut h = Sha256::new();
    for a in &snap.areas {
        h.update(a.base.to_le_bytes());
        h.update(a.size.to_le_bytes());
        for page in a.stored_pages() {
            let (i, page) = page.expect("a pending page reads");
            h.update(i.to_le_bytes());
            h.update(&page[..]);
        }
    }
    hex::encode(h.finalize())
}

pub fn prog(name: &'static str, body: &'static str, args: &[Value]) -> Prog {
    Prog {
        name,
        body,
        args: args.to_vec(),
        threads: Vec::new(),
    }
}

/// A kernel and scheduler running a scenario, with names for everything.
pub struct World {
    pub k: Kernel,
    pub s: Scheduler,
    /// The scenario's tasks (current ids, by program index).
    pub tasks: Vec<TaskId>,
    task_names: BTreeMap<TaskId, String>,
    labels: BTreeMap<ThreadId, (String, u64)>,
    config: SchedConfig,
    /// How [`checkpoint_kill_restore`](World::checkpoint_kill_restore)
    /// loads pages (carried over by [`reboot`](World::reboot)).
    pub loading: PageLoading,
}

/// What a run shows: log lines and completed system calls, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    pub log: Vec<(u64, String, String)>,
    pub calls: Vec<(u64, String, u64, u32, Vec<u64>, i64)>,
}

impl Shown {
    pub fn extend(&mut self, other: Shown) {
        self.log.extend(other.log);
        self.calls.extend(other.calls);
    }
}

pub fn sched_config(slice_fuel: u64) -> SchedConfig {
    SchedConfig {
        slice_fuel,
        ..SchedConfig::default()
    }
}

/// Boots a kernel and spawns the scenario.
pub fn boot(sc: &Scenario, seed: u64) -> World {
    let config = sched_config(sc.slice_fuel);
    let mut w = World {
        k: Kernel::new(KernelConfig::simulation(seed)),
        s: Scheduler::new(config),
        tasks: Vec::new(),
        task_names: BTreeMap::new(),
        labels: BTreeMap::new(),
        config,
        loading: PageLoading::Eager,
    };
    for p in &sc.progs {
        let (task, _) =
            w.s.spawn_guest(
                &mut w.k,
                p.name,
                TaskPolicy::Checkpointable,
                rt::program(p.body).as_bytes(),
                "main",
                &p.args,
            )
            .expect("guest loads");
        for entry in &p.threads {
            w.s.spawn_thread(&mut w.k, task, entry, &[])
                .expect("thread starts");
        }
        w.tasks.push(task);
    }
    for &(from, to) in &sc.phones {
        w.k.connect_phone(w.tasks[from], w.tasks[to])
            .expect("phone connects");
    }
    w.relabel();
    w
}

impl World {
    /// A freshly booted, empty kernel with the same configuration ("after
    /// a reboot").
    pub fn reboot(&self, seed: u64) -> World {
        World {
            k: Kernel::new(KernelConfig::simulation(seed)),
            s: Scheduler::new(self.config),
            tasks: Vec::new(),
            task_names: BTreeMap::new(),
            labels: BTreeMap::new(),
            config: self.config,
            loading: self.loading,
        }
    }

    /// Names every live task and thread (by task name and seen thread id).
    pub fn relabel(&mut self) {
        for t in self.k.task_ids() {
            let task = self.k.task(t).expect("listed");
            self.task_names.insert(t, task.name.clone());
            for th in task.threads.clone() {
                let seen = self.k.peek_thread_id_seen(th);
                self.labels.insert(th, (task.name.clone(), seen));
            }
        }
    }

    /// Runs slices until virtual time reaches `t`.
    /// Threads created meanwhile are named as they appear.
    pub fn run_to(&mut self, t: u64) {
        while self.k.now() < t {
            let threads = self.k.thread_count();
            match self.s.run(&mut self.k, 1) {
                RunEnd::AllDone | RunEnd::Deadlock => break,
                RunEnd::StepLimit => {}
                RunEnd::Woken => unreachable!("the simulation clock has no waker"),
            }
            if self.k.thread_count() != threads {
                self.relabel();
            }
        }
    }

    /// What the run has shown so far (blocked issues of system calls are
    /// not shown: they are the scheduler's business, not the program's).
    pub fn shown(&self) -> Shown {
        let name = |t: &TaskId| self.task_names.get(t).cloned().unwrap_or_default();
        Shown {
            log: self
                .k
                .log()
                .iter()
                .map(|l| (l.time, name(&l.task), l.text.clone()))
                .collect(),
            calls: self
                .k
                .trace()
                .iter()
                .filter_map(|e| {
                    let (task, thread) = self.labels.get(&e.thread).cloned()?;
                    Some((e.time, task, thread, e.number, e.args.clone(), e.result?))
                })
                .collect(),
        }
    }

    /// Pages of the live tasks still pending after a lazy restore.
    pub fn pending_pages(&self) -> u64 {
        self.k
            .task_ids()
            .into_iter()
            .filter_map(|t| guest_space_ref(&self.k, t))
            .map(|s| s.pending_pages().0)
            .sum()
    }

    /// SHA-256 of every live task's memory (areas, and every page), by
    /// task name.
    pub fn digests(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for t in self.k.task_ids() {
            let Some(space) = guest_space_ref(&self.k, t) else {
                continue;
            };
            let name = self.k.task(t).expect("listed").name.clone();
            out.insert(name, space_digest(space));
        }
        out
    }

    /// Checkpoints the scenario's tasks into an image at `path`, kills
    /// them, and restores the image into `into` (this world again, or a
    /// rebooted one). Returns the restored world.
    pub fn checkpoint_kill_restore(
        self,
        path: &Path,
        form: ImageForm,
        reboot_seed: Option<u64>,
    ) -> (World, Shown, Restored) {
        self.checkpoint_kill_restore_as(path, form, reboot_seed, false)
    }

    /// [`checkpoint_kill_restore`](Self::checkpoint_kill_restore), the
    /// image written as a format 1.1 kernel wrote it when `v1_1` (kernel
    /// state in the manifest's `options.extra`, headers and chunk
    /// checksums of 1.1: [`downgrade_to_1_1`]).
    pub fn checkpoint_kill_restore_as(
        mut self,
        path: &Path,
        form: ImageForm,
        reboot_seed: Option<u64>,
        v1_1: bool,
    ) -> (World, Shown, Restored) {
        let stopped = checkpoint::stop(&mut self.k, &self.tasks).expect("stop");
        let capture = checkpoint::capture(&mut self.k, &self.s, &stopped).expect("capture");
        for t in &self.tasks {
            self.k.kill_task(*t).expect("kill");
        }
        let opts = WriterOptions {
            form,
            threads: 1,
            // A 1.1 image has chunk files (packs are 1.4).
            pack_chunks: !v1_1,
            ..WriterOptions::default()
        };
        if v1_1 {
            assert_eq!(
                form,
                ImageForm::Directory,
                "1.1 images are made as directories"
            );
            capture
                .write_v1_1_supplements(path, opts)
                .expect("image written");
            downgrade_to_1_1(path);
        } else {
            capture.write(path, opts).expect("image written");
        }
        let image = std::sync::Arc::new(Image::open(path).expect("image opens"));
        // Images before 1.3 carry no round-robin position: the caller
        // carries it over, as restorers of such images had to.
        let cursor = self.s.cursor();
        let (mut w, before) = match reboot_seed {
            None => (self, Shown::default()),
            Some(seed) => {
                let before = self.shown();
                (self.reboot(seed), before)
            }
        };
        // The restore itself moves a fresh kernel's clock to the capture
        // time and carries the round-robin position (format 1.3).
        let opts = RestoreOptions {
            pages: w.loading,
            ..RestoreOptions::default()
        };
        let restored = checkpoint::restore(&mut w.k, &mut w.s, &image, &opts).expect("restore");
        if reboot_seed.is_some() {
            assert_eq!(w.k.now(), capture_time_ns(&image), "clock continues");
        }
        if v1_1 {
            w.s.set_cursor(cursor);
            w.s.remap_cursor(&restored.threads);
        }
        w.tasks = restored.tasks.values().copied().collect();
        w.relabel();
        (w, before, restored)
    }
}

/// Where [`World::checkpoint_kill_restore_pure`] restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Into the kernel the set ran in.
    Same,
    /// Into a freshly booted kernel (ids count from 1 again).
    Fresh(u64),
    /// Into a freshly booted kernel where other tasks and threads were
    /// created first, so every kernel id is shifted.
    Shifted(u64),
}

impl World {
    /// The scenario's tasks that still exist (exited ones are gone).
    pub fn live_tasks(&self) -> Vec<TaskId> {
        self.tasks
            .iter()
            .copied()
            .filter(|t| self.k.task(*t).is_some())
            .collect()
    }

    /// Checkpoints the scenario's live tasks into an image at `path`,
    /// kills them, checks the image with `snapfmt::validate` (it must show
    /// no problem) and restores it with `checkpoint::restore` **and nothing
    /// else**: unlike [`checkpoint_kill_restore`](Self::checkpoint_kill_restore)
    /// the clock of a fresh kernel is not advanced and the scheduler's
    /// round-robin position is not set by hand (the image and the restore
    /// must carry both). Checks the kernel's invariants after the restore.
    /// Returns the restored world and what the old kernel showed (empty
    /// for [`Target::Same`], whose log goes on).
    pub fn checkpoint_kill_restore_pure(
        mut self,
        path: &Path,
        form: ImageForm,
        target: Target,
    ) -> Result<(World, Shown, Restored), String> {
        let set = self.live_tasks();
        let stopped = checkpoint::stop(&mut self.k, &set).map_err(|e| format!("stop: {e}"))?;
        let capture = checkpoint::capture(&mut self.k, &self.s, &stopped)
            .map_err(|e| format!("capture: {e}"))?;
        for t in &set {
            self.k.kill_task(*t).expect("kill");
        }
        let opts = WriterOptions {
            form,
            threads: 1,
            ..WriterOptions::default()
        };
        capture
            .write(path, opts)
            .map_err(|e| format!("write: {e}"))?;
        let problems = snapfmt::validate(path);
        if !problems.is_empty() {
            return Err(format!(
                "the image the writer wrote does not validate: {problems:?}"
            ));
        }
        let image = std::sync::Arc::new(Image::open(path).map_err(|e| format!("open: {e}"))?);
        let (mut w, before) = match target {
            Target::Same => (self, Shown::default()),
            Target::Fresh(seed) => {
                let before = self.shown();
                (self.reboot(seed), before)
            }
            Target::Shifted(seed) => {
                let before = self.shown();
                let mut fresh = self.reboot(seed);
                for i in 0..3 {
                    let t = fresh
                        .k
                        .create_native_task(&format!("dummy{i}"), TaskPolicy::Neither);
                    for _ in 0..=i {
                        fresh.k.create_thread(t).expect("dummy thread");
                    }
                    if i == 1 {
                        fresh.k.kill_task(t).expect("kill dummy");
                    }
                }
                (fresh, before)
            }
        };
        let restored = checkpoint::restore(&mut w.k, &mut w.s, &image, &RestoreOptions::default())
            .map_err(|e| format!("restore refused an image the writer wrote: {e}"))?;
        w.k.check_invariants()
            .map_err(|e| format!("kernel invariants after restore: {e:?}"))?;
        w.tasks = restored.tasks.values().copied().collect();
        w.relabel();
        Ok((w, before, restored))
    }
}

/// Asserts two sequences are equal, showing the first difference with a
/// little context instead of both whole sequences.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    if first == got.len() && got.len() == want.len() {
        return;
    }
    let from = first.saturating_sub(3);
    panic!(
        "{what}: first difference at {first} (lengths {} vs {})\n got:  {:#?}\n want: {:#?}",
        got.len(),
        want.len(),
        &got[from..(first + 3).min(got.len())],
        &want[from..(first + 3).min(want.len())]
    );
}

/// [`assert_same`], one line per element (for long traces of tuples).
pub fn assert_same_lines<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    if first == got.len() && got.len() == want.len() {
        return;
    }
    let from = first.saturating_sub(3);
    let lines = |s: &[T]| -> String {
        s.iter()
            .enumerate()
            .map(|(i, x)| {
                format!(
                    "\n   {}{:5} {x:?}",
                    if from + i == first { ">" } else { " " },
                    from + i
                )
            })
            .collect()
    };
    panic!(
        "{what}: first difference at {first} (lengths {} vs {})\n got:{}\n want:{}",
        got.len(),
        want.len(),
        lines(&got[from..(first + 3).min(got.len())]),
        lines(&want[from..(first + 3).min(want.len())])
    );
}

/// Turns a directory image written by this kernel's 1.1 path
/// (`Capture::write_v1_1_supplements`: no kernel state records) into the
/// image a format 1.1 writer would have made of the same content: every
/// header says 1.1, and chunk bodies are checked by SHA-256 instead of
/// XXH3 (the only other difference between 1.1 and 1.2 files), in their
/// headers and in the manifest's chunk table.
pub fn downgrade_to_1_1(path: &Path) {
    use snapfmt::header::{FLAG_XXH3, HEADER_LEN};
    use snapfmt::{ChunkHome, Digest, FormatVersion, Manifest, ObjectHeader, ObjectKind, object};
    let v1_1 = FormatVersion { major: 1, minor: 1 };
    let rewrite = |file: &Path| -> ObjectHeader {
        let bytes = std::fs::read(file).expect("read");
        let mut h = ObjectHeader::parse(&bytes).expect("header");
        assert_ne!(h.kind, ObjectKind::KernelState, "no kernel state in 1.1");
        let body = &bytes[HEADER_LEN..];
        if h.flags & FLAG_XXH3 != 0 {
            h.flags &= !FLAG_XXH3;
            h.checksum = Digest::of(body);
        }
        h.version = v1_1;
        let mut out = h.encode().to_vec();
        out.extend_from_slice(body);
        std::fs::write(file, out).expect("rewrite");
        h
    };
    for dir in ["tasks", "chunks", "modules", "files"] {
        let Ok(entries) = std::fs::read_dir(path.join(dir)) else {
            continue;
        };
        for e in entries {
            rewrite(&e.expect("entry").path());
        }
    }
    let bytes = std::fs::read(path.join("manifest.spm")).expect("manifest");
    let (_, mut m): (_, Manifest) =
        object::open_record(&bytes, ObjectKind::Manifest).expect("decodes");
    m.format_version = v1_1;
    for c in &mut m.chunks {
        if let ChunkHome::LocalPlain { body_digest, .. } = &mut c.home {
            let file = std::fs::read(path.join(object::chunk_path(&c.content))).expect("chunk");
            *body_digest = ObjectHeader::parse(&file).expect("header").checksum;
        }
    }
    let file = object::encode_record(ObjectKind::Manifest, &m, None).expect("encodes");
    std::fs::write(path.join("manifest.spm"), file).expect("manifest");
    rewrite(&path.join("manifest.spm"));
}
