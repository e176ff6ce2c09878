//! Comparing one task's record in two images: metadata, threads, phones,
//! pending calls, cooperative blobs, file records, the kernel state record
//! ([`crate::kstate`]) and (via [`super::areas`]) areas and pages.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use snapfmt::exec::{ExecState, Frame};
use snapfmt::{Image, TaskRecord, ThreadContext};

use super::areas::{self, AreasDiff};
use super::{DiffError, FieldChange};
use crate::kstate::{self, KernelStateView};
use crate::show::{suspension_text, syscall_name};
use crate::view::{BlobView, CallView, FileView, ModuleView, PeerView, PhoneView, values_text};

/// A thread present in both images whose context differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadChange {
    pub thread_id: u64,
    pub fields: Vec<FieldChange>,
}

/// A cooperative blob that differs, keyed by service and connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobChange {
    pub service_id: String,
    pub connection: u32,
    /// The blob in `a`, if present there.
    pub a: Option<BlobView>,
    /// The blob in `b`, if present there.
    pub b: Option<BlobView>,
}

/// A file record that differs, keyed by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub a: Option<FileView>,
    pub b: Option<FileView>,
}

/// Everything that differs about one task present in both images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDiff {
    pub task_id: u64,
    pub name: String,
    /// Name, arguments, working directory, module, id view, instance state.
    pub meta: Vec<FieldChange>,
    pub threads_added: Vec<u64>,
    pub threads_removed: Vec<u64>,
    pub threads_changed: Vec<ThreadChange>,
    pub areas: AreasDiff,
    /// Phone slots that differ (a hole is a slot with no peer).
    pub phones: Vec<PhoneChange>,
    /// Pending calls only in `b`.
    pub calls_added: Vec<CallView>,
    /// Pending calls only in `a`.
    pub calls_removed: Vec<CallView>,
    pub blobs: Vec<BlobChange>,
    pub files: Vec<FileChange>,
    /// Kernel state entries that differ (`kernel_state.counters`,
    /// `kernel_state.threads[2]`, ...).
    pub kernel_state: Vec<FieldChange>,
}

/// One phone slot that differs; `None` means the table is shorter there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneChange {
    pub phone: u32,
    pub a: Option<PhoneView>,
    pub b: Option<PhoneView>,
}

impl TaskDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
            && self.threads_added.is_empty()
            && self.threads_removed.is_empty()
            && self.threads_changed.is_empty()
            && self.areas.is_empty()
            && self.phones.is_empty()
            && self.calls_added.is_empty()
            && self.calls_removed.is_empty()
            && self.blobs.is_empty()
            && self.files.is_empty()
            && self.kernel_state.is_empty()
    }
}

/// Compares task record `ta` of image `a` with `tb` of image `b`.
pub fn diff_task(
    a: &Image,
    ta: &TaskRecord,
    b: &Image,
    tb: &TaskRecord,
) -> Result<TaskDiff, DiffError> {
    let (threads_added, threads_removed, threads_changed) = diff_threads(&ta.threads, &tb.threads);
    let (calls_added, calls_removed) = diff_calls(ta, tb);
    Ok(TaskDiff {
        task_id: ta.meta.task_id,
        name: tb.meta.name.clone(),
        meta: diff_meta(ta, tb),
        threads_added,
        threads_removed,
        threads_changed,
        areas: areas::diff_areas(a, &ta.areas, b, &tb.areas)?,
        phones: diff_phones(ta, tb),
        calls_added,
        calls_removed,
        blobs: diff_blobs(ta, tb),
        files: diff_files(ta, tb),
        kernel_state: kstate::diff(kernel_view(a, ta)?.as_ref(), kernel_view(b, tb)?.as_ref()),
    })
}

/// The kernel state view of task record `t` of `image`, if it has one.
fn kernel_view(image: &Image, t: &TaskRecord) -> Result<Option<KernelStateView>, DiffError> {
    let k = image
        .kernel_state(t.meta.task_id)
        .map_err(|source| DiffError::Read {
            path: image.path().to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(k.map(|k| KernelStateView::of(t, &k)))
}

fn diff_meta(a: &TaskRecord, b: &TaskRecord) -> Vec<FieldChange> {
    let ids = |t: &TaskRecord| {
        let v: Vec<String> = t
            .meta
            .id_view
            .iter()
            .map(|m| format!("{} -> {}", m.seen, PeerView::from(&m.refers_to)))
            .collect();
        v.join(", ")
    };
    let table = |t: &TaskRecord, i: usize| t.instance.tables.get(i).map(|v| values_text(v));
    let mut out: Vec<FieldChange> = [
        FieldChange::of("name", a.meta.name.clone(), b.meta.name.clone()),
        FieldChange::of(
            "args",
            format!("{:?}", a.meta.args),
            format!("{:?}", b.meta.args),
        ),
        FieldChange::of("cwd", a.meta.cwd.clone(), b.meta.cwd.clone()),
        FieldChange::of(
            "module",
            ModuleView::from(&a.meta.module).text(),
            ModuleView::from(&b.meta.module).text(),
        ),
        FieldChange::of("id_view", ids(a), ids(b)),
        FieldChange::of(
            "instance.dropped_data",
            format!("{:?}", a.instance.dropped_data),
            format!("{:?}", b.instance.dropped_data),
        ),
        FieldChange::of(
            "instance.dropped_elems",
            format!("{:?}", a.instance.dropped_elems),
            format!("{:?}", b.instance.dropped_elems),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let tables = a.instance.tables.len().max(b.instance.tables.len());
    for i in 0..tables {
        if a.instance.tables.get(i) != b.instance.tables.get(i) {
            out.push(FieldChange::new(
                format!("instance.tables[{i}]"),
                table(a, i),
                table(b, i),
            ));
        }
    }
    out
}

fn frame_text(f: &Frame) -> String {
    format!("func {} at {:#x}", f.func_index, f.code_offset)
}

/// Field changes between two execution states, frame by frame.
fn diff_exec(a: &ExecState, b: &ExecState, out: &mut Vec<FieldChange>) {
    if a.frames.len() != b.frames.len() {
        let depth = |e: &ExecState| {
            let inner = e
                .frames
                .last()
                .map(frame_text)
                .unwrap_or_else(|| "none".into());
            format!("{} frames, innermost {inner}", e.frames.len())
        };
        out.push(FieldChange::new("frames", depth(a), depth(b)));
    }
    for (i, (fa, fb)) in a.frames.iter().zip(&b.frames).enumerate() {
        let f = |name: &str| format!("frames[{i}].{name}");
        out.extend(FieldChange::of(
            f("position"),
            frame_text(fa),
            frame_text(fb),
        ));
        out.extend(FieldChange::of(
            f("locals"),
            values_text(&fa.locals),
            values_text(&fb.locals),
        ));
        if fa.locals != fb.locals && values_text(&fa.locals) == values_text(&fb.locals) {
            // Elided renderings look equal; name the first differing local.
            if let Some(k) = fa.locals.iter().zip(&fb.locals).position(|(x, y)| x != y) {
                out.push(FieldChange::new(
                    f(&format!("locals[{k}]")),
                    values_text(&fa.locals[k..=k]),
                    values_text(&fb.locals[k..=k]),
                ));
            }
        }
        out.extend(FieldChange::of(
            f("operands"),
            values_text(&fa.operands),
            values_text(&fb.operands),
        ));
    }
    let globals = a.globals.len().max(b.globals.len());
    for g in 0..globals {
        let (ga, gb) = (a.globals.get(g), b.globals.get(g));
        if ga != gb {
            let side =
                |v: Option<&snapfmt::exec::Value>| v.map(|v| values_text(std::slice::from_ref(v)));
            out.push(FieldChange::new(
                format!("globals[{g}]"),
                side(ga),
                side(gb),
            ));
        }
    }
    let susp = |e: &ExecState| {
        let (name, detail) = suspension_text(e);
        if detail.is_empty() {
            name.to_string()
        } else {
            format!("{name} {detail}")
        }
    };
    out.extend(FieldChange::of("suspension", susp(a), susp(b)));
    out.extend(FieldChange::of("fuel_left", a.fuel_left, b.fuel_left));
}

fn diff_threads(
    a: &[ThreadContext],
    b: &[ThreadContext],
) -> (Vec<u64>, Vec<u64>, Vec<ThreadChange>) {
    let ma: BTreeMap<u64, &ThreadContext> = a.iter().map(|t| (t.thread_id, t)).collect();
    let mb: BTreeMap<u64, &ThreadContext> = b.iter().map(|t| (t.thread_id, t)).collect();
    let added = mb.keys().filter(|k| !ma.contains_key(k)).copied().collect();
    let removed = ma.keys().filter(|k| !mb.contains_key(k)).copied().collect();
    let mut changed = Vec::new();
    for (id, ta) in &ma {
        let Some(tb) = mb.get(id) else { continue };
        if ta == tb {
            continue;
        }
        let mut fields = Vec::new();
        diff_exec(&ta.exec, &tb.exec, &mut fields);
        let syscall = |t: &ThreadContext| match &t.syscall {
            snapfmt::SyscallState::Complete { results } => {
                format!("complete {}", values_text(results))
            }
            s => syscall_name(s).to_string(),
        };
        fields.extend(FieldChange::of("syscall", syscall(ta), syscall(tb)));
        fields.extend(FieldChange::of(
            "active_sync_call",
            ta.active_sync_call,
            tb.active_sync_call,
        ));
        fields.extend(FieldChange::of(
            "kernel_build_hash",
            ta.kernel_build_hash.to_hex(),
            tb.kernel_build_hash.to_hex(),
        ));
        if fields.is_empty() {
            // Differences hidden by elided renderings: say so rather than nothing.
            let exec = |t: &ThreadContext| -> String {
                format!("{:?}", t.exec).chars().take(200).collect()
            };
            fields.push(FieldChange::new("exec", exec(ta), exec(tb)));
        }
        changed.push(ThreadChange {
            thread_id: *id,
            fields,
        });
    }
    (added, removed, changed)
}

fn diff_phones(a: &TaskRecord, b: &TaskRecord) -> Vec<PhoneChange> {
    let n = a.phones.len().max(b.phones.len());
    (0..n)
        .filter(|&i| a.phones.get(i) != b.phones.get(i))
        .map(|i| PhoneChange {
            phone: i as u32,
            a: a.phones.get(i).map(|s| PhoneView::of(i as u32, s)),
            b: b.phones.get(i).map(|s| PhoneView::of(i as u32, s)),
        })
        .collect()
}

/// Calls compared as multisets: a call counts as unchanged only if an
/// identical call (queue, ids, peer, words, thread, buffer) is on the
/// other side.
fn diff_calls(a: &TaskRecord, b: &TaskRecord) -> (Vec<CallView>, Vec<CallView>) {
    let count = |t: &TaskRecord| {
        let mut m: BTreeMap<CallView, usize> = BTreeMap::new();
        for c in &t.calls {
            *m.entry(CallView::from(c)).or_default() += 1;
        }
        m
    };
    let (ca, cb) = (count(a), count(b));
    let minus = |x: &BTreeMap<CallView, usize>, y: &BTreeMap<CallView, usize>| {
        let mut out = Vec::new();
        for (c, &n) in x {
            let m = y.get(c).copied().unwrap_or(0);
            for _ in m..n {
                out.push(c.clone());
            }
        }
        out
    };
    (minus(&cb, &ca), minus(&ca, &cb))
}

fn diff_blobs(a: &TaskRecord, b: &TaskRecord) -> Vec<BlobChange> {
    let key = |t: &TaskRecord| -> BTreeMap<(String, u32), BlobView> {
        t.coop_blobs
            .iter()
            .map(|x| ((x.service_id.clone(), x.connection), BlobView::from(x)))
            .collect()
    };
    let (ka, kb) = (key(a), key(b));
    let keys: BTreeSet<&(String, u32)> = ka.keys().chain(kb.keys()).collect();
    keys.into_iter()
        .filter(|k| ka.get(*k) != kb.get(*k))
        .map(|k| BlobChange {
            service_id: k.0.clone(),
            connection: k.1,
            a: ka.get(k).cloned(),
            b: kb.get(k).cloned(),
        })
        .collect()
}

fn diff_files(a: &TaskRecord, b: &TaskRecord) -> Vec<FileChange> {
    let key = |t: &TaskRecord| -> BTreeMap<String, FileView> {
        t.file_backups
            .iter()
            .map(|f| (f.path.clone(), FileView::from(f)))
            .collect()
    };
    let (ka, kb) = (key(a), key(b));
    let keys: BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
    keys.into_iter()
        .filter(|k| ka.get(*k) != kb.get(*k))
        .map(|k| FileChange {
            path: k.clone(),
            a: ka.get(k).cloned(),
            b: kb.get(k).cloned(),
        })
        .collect()
}
