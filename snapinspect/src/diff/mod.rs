//! `snapinspect diff`: what differs between two images, as plain data.
//!
//! The comparison is structural: the manifests field by field, the
//! checkpoint sets, and for every task present in both images its
//! metadata, threads ([`task`]), areas and pages ([`areas`]), phones,
//! pending calls, cooperative blobs and file records. Pages are compared
//! by chunk content digest first, so unchanged memory is never
//! decompressed; only pages whose digests differ are read and compared
//! byte by byte, which makes the reported ranges exact.
//!
//! Two images are *identical* when no difference at all is found,
//! including the manifest's creation time and tool version: two
//! checkpoints of an unchanged task taken at different times differ.

pub mod areas;
pub mod task;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as Json;
use snapfmt::{Image, Manifest, Role};

use crate::addr::AddrRange;
use crate::input::{InputError, located};
use crate::pages::{self, MemoryRange, PagesError};

pub use areas::{AreaChange, AreaSummary, PageDiff, PageRange};
pub use task::{TaskDiff, ThreadChange};

/// Why two images could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A path cannot be read as an image at all.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An image could not be opened.
    #[error("{}", located(path, source))]
    Open {
        path: PathBuf,
        source: Box<snapfmt::Error>,
    },
    /// A task record, chunk or parent of an image could not be read.
    #[error("{}", located(path, source))]
    Read {
        path: PathBuf,
        source: Box<snapfmt::Error>,
    },
    /// The memory range asked for with `--hexdump` could not be read.
    #[error("hexdump: {0}")]
    Hexdump(#[from] Box<PagesError>),
    /// `--hexdump` without `--task`, and the images do not have exactly one
    /// task in common.
    #[error("--hexdump needs --task: the images have {} tasks in common ({:?})", common.len(), common)]
    WhichTask { common: Vec<u64> },
}

/// What to compare besides the structure.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Also read this range of memory from both images.
    pub hexdump: Option<AddrRange>,
    /// The task whose memory `hexdump` reads (default: the only common task).
    pub task: Option<u64>,
}

/// One field whose value differs, on both sides.
///
/// A value is typed where the field is (a number, a boolean, an object of
/// numbers), the text `show` prints where the field is a composite
/// rendering (`func 3 at 0x12`, `[i32:5]`), and `null` on the side where
/// the field is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Path of the field (`kernel_build_hash`, `frames[2].locals`, ...).
    pub field: String,
    pub a: Json,
    pub b: Json,
}

impl FieldChange {
    /// A change if `a` and `b` differ, `None` otherwise.
    pub fn of(
        field: impl Into<String>,
        a: impl Into<Json>,
        b: impl Into<Json>,
    ) -> Option<FieldChange> {
        let (a, b) = (a.into(), b.into());
        (a != b).then(|| FieldChange {
            field: field.into(),
            a,
            b,
        })
    }

    /// A change known to differ.
    pub fn new(field: impl Into<String>, a: impl Into<Json>, b: impl Into<Json>) -> FieldChange {
        FieldChange {
            field: field.into(),
            a: a.into(),
            b: b.into(),
        }
    }
}

/// A task present in only one of the images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    pub task_id: u64,
    pub name: String,
    pub threads: usize,
    pub areas: usize,
}

/// Everything that differs between image `a` and image `b`.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    /// True when nothing differs.
    pub identical: bool,
    /// Manifest fields that differ (versions, hashes, times, options,
    /// parent, checkpoint set).
    pub manifest: Vec<FieldChange>,
    /// Checkpointable tasks only in `b`.
    pub tasks_added: Vec<TaskSummary>,
    /// Checkpointable tasks only in `a`.
    pub tasks_removed: Vec<TaskSummary>,
    /// Tasks in both images that differ, by task id.
    pub tasks_changed: Vec<TaskDiff>,
    /// Both sides of the `--hexdump` range, if one was asked for.
    pub hexdump: Option<HexdumpPair>,
}

/// The same memory range read from both images.
#[derive(Debug, Clone, Serialize)]
pub struct HexdumpPair {
    pub task: u64,
    pub a: MemoryRange,
    pub b: MemoryRange,
}

/// Compares the images at `a` and `b`.
pub fn diff(a: &Path, b: &Path, opts: DiffOptions) -> Result<DiffReport, DiffError> {
    let open = |p: &Path| -> Result<Image, DiffError> {
        crate::input::probe(p)?;
        Image::open(p).map_err(|source| DiffError::Open {
            path: p.to_path_buf(),
            source: Box::new(source),
        })
    };
    let (ia, ib) = (open(a)?, open(b)?);
    diff_images(&ia, &ib, opts)
}

/// Compares two opened images.
pub fn diff_images(a: &Image, b: &Image, opts: DiffOptions) -> Result<DiffReport, DiffError> {
    let manifest = manifest_changes(a.manifest(), b.manifest());
    let ids_a = a.task_ids();
    let ids_b = b.task_ids();
    let mut tasks_added = Vec::new();
    let mut tasks_removed = Vec::new();
    let mut tasks_changed = Vec::new();
    let mut common = Vec::new();
    for &id in &ids_a {
        if ids_b.contains(&id) {
            common.push(id);
        } else {
            tasks_removed.push(summary(a, id)?);
        }
    }
    for &id in &ids_b {
        if !ids_a.contains(&id) {
            tasks_added.push(summary(b, id)?);
        }
    }
    for &id in &common {
        let ta = read_task(a, id)?;
        let tb = read_task(b, id)?;
        let d = task::diff_task(a, &ta, b, &tb)?;
        if !d.is_empty() {
            tasks_changed.push(d);
        }
    }
    let hexdump = match opts.hexdump {
        None => None,
        Some(range) => {
            let task = match (opts.task, common.as_slice()) {
                (Some(t), _) => t,
                (None, [only]) => *only,
                (None, _) => return Err(DiffError::WhichTask { common }),
            };
            Some(HexdumpPair {
                task,
                a: pages::read_range(a, task, range).map_err(Box::new)?,
                b: pages::read_range(b, task, range).map_err(Box::new)?,
            })
        }
    };
    let identical = manifest.is_empty()
        && tasks_added.is_empty()
        && tasks_removed.is_empty()
        && tasks_changed.is_empty();
    Ok(DiffReport {
        a: a.path().display().to_string(),
        b: b.path().display().to_string(),
        identical,
        manifest,
        tasks_added,
        tasks_removed,
        tasks_changed,
        hexdump,
    })
}

pub(crate) fn read_task(
    image: &Image,
    id: u64,
) -> Result<std::sync::Arc<snapfmt::TaskRecord>, DiffError> {
    image.task(id).map_err(|source| DiffError::Read {
        path: image.path().to_path_buf(),
        source: Box::new(source),
    })
}

fn summary(image: &Image, id: u64) -> Result<TaskSummary, DiffError> {
    let t = read_task(image, id)?;
    Ok(TaskSummary {
        task_id: id,
        name: t.meta.name.clone(),
        threads: t.threads.len(),
        areas: t.areas.len(),
    })
}

fn role_text(r: &Role) -> String {
    match r {
        Role::Checkpointable => "checkpointable".into(),
        Role::Cooperative { service_id } => format!("cooperative ({service_id})"),
        Role::ExcludedClient => "excluded client".into(),
    }
}

fn manifest_changes(a: &Manifest, b: &Manifest) -> Vec<FieldChange> {
    let parent = |m: &Manifest| {
        m.parent
            .as_ref()
            .map(|p| format!("{} ({})", p.path, p.manifest_digest))
    };
    let created = |m: &Manifest| serde_json::json!({ "seconds": m.created.seconds, "nanos": m.created.nanos });
    let mut out: Vec<FieldChange> = [
        FieldChange::of(
            "format_version",
            a.format_version.to_string(),
            b.format_version.to_string(),
        ),
        FieldChange::of(
            "tool_version",
            a.tool_version.clone(),
            b.tool_version.clone(),
        ),
        FieldChange::of(
            "kernel_build_hash",
            a.kernel_build_hash.to_hex(),
            b.kernel_build_hash.to_hex(),
        ),
        FieldChange::of(
            "kernel_abi_version",
            a.kernel_abi_version,
            b.kernel_abi_version,
        ),
        FieldChange::of("created", created(a), created(b)),
        FieldChange::of("task_zero", a.task_zero, b.task_zero),
        FieldChange::of(
            "options",
            format!("{:?}", a.options),
            format!("{:?}", b.options),
        ),
        FieldChange::of("parent", parent(a), parent(b)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let members = |m: &Manifest| -> BTreeMap<u64, String> {
        m.checkpoint_set
            .iter()
            .map(|s| (s.task_id, format!("{} {}", s.name, role_text(&s.role))))
            .collect()
    };
    let (ma, mb) = (members(a), members(b));
    let ids: std::collections::BTreeSet<u64> = ma.keys().chain(mb.keys()).copied().collect();
    for id in ids {
        let side = |m: &BTreeMap<u64, String>| m.get(&id).cloned();
        out.extend(FieldChange::of(
            format!("checkpoint_set[task {id}]"),
            side(&ma),
            side(&mb),
        ));
    }
    out
}
