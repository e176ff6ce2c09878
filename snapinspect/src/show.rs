//! `snapinspect show`: an overview of one image as plain data.
//!
//! [`show`] opens the image, reads every task record and gathers what a
//! person (or a script, via `--json`) wants to know: the manifest, the
//! parent chain, byte counts (raw memory vs. stored), and per task its
//! threads, areas, phones, pending calls, cooperative blobs by service,
//! file backups, module, and the kernel state record (format 1.2). Page contents are never decompressed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use snapfmt::exec::{ExecState, Suspension};
use snapfmt::{
    AreaRecord, Backing, ChunkHome, Image, PAGE_SIZE, Role, SyscallState, TaskRecord, ThreadContext,
};

use crate::input::{InputError, located};
use crate::kstate::KernelStateView;
use crate::view::{
    BlobView, CallView, FileView, ModuleView, PeerView, PhoneView, area_flags_text, values_text,
};

/// Why `show` could not produce an overview.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// The path cannot be read as an image at all.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The image (or one of its files) could not be opened or read.
    #[error("{}", located(path, source))]
    Read {
        path: PathBuf,
        source: Box<snapfmt::Error>,
    },
    /// `--task` named a task the image does not hold.
    #[error("{}: no checkpointable task {task} (the image holds {tasks:?})", path.display())]
    NoSuchTask {
        path: PathBuf,
        task: u64,
        tasks: Vec<u64>,
    },
}

/// Everything `show` reports about an image.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub image: String,
    pub format_version: String,
    pub tool_version: String,
    pub kernel_build_hash: String,
    pub kernel_abi_version: u32,
    /// Creation time as seconds and nanoseconds (as the writer stored it).
    pub created_seconds: i64,
    pub created_nanos: u32,
    pub task_zero: u64,
    pub options: OptionsView,
    pub checkpoint_set: Vec<MemberView>,
    /// Ancestors of an incremental image, nearest first.
    pub parent_chain: Vec<LinkView>,
    /// Pages of the image's areas stored in its own chunks.
    pub own_pages: u64,
    pub bytes: BytesView,
    pub tasks: Vec<TaskView>,
}

/// The checkpoint options.
#[derive(Debug, Clone, Serialize)]
pub struct OptionsView {
    pub kill_after: bool,
    pub file_policy: String,
    pub timeout_ms: u64,
    pub bundle_modules: bool,
    /// Further options, stored as text (see [`OptionValue`]).
    pub extra: BTreeMap<String, OptionValue>,
}

/// The value of an extra checkpoint option. The image stores every value
/// as text; `true`/`false` and integers written in their plain decimal
/// form are given as a boolean or number, anything else as the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl OptionValue {
    /// The typed form of a stored option value.
    pub fn of(text: &str) -> OptionValue {
        match text {
            "true" => OptionValue::Bool(true),
            "false" => OptionValue::Bool(false),
            _ => match text.parse::<i64>() {
                Ok(n) if n.to_string() == text => OptionValue::Int(n),
                _ => OptionValue::Text(text.to_string()),
            },
        }
    }
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(n) => write!(f, "{n}"),
            OptionValue::Text(t) => f.write_str(t),
        }
    }
}

/// One member of the checkpoint set (or a task next to it).
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub task_id: u64,
    pub name: String,
    /// `checkpointable`, `cooperative` or `excluded_client`.
    pub role: &'static str,
    /// The persistent service id of a cooperative member.
    pub service_id: Option<String>,
}

/// One ancestor image.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub path: String,
    pub manifest_digest: String,
    /// Pages of this image's areas whose content that ancestor stores in
    /// its own chunks (the nearest ancestor storing it, as a reader
    /// resolves a parent chunk).
    pub pages: u64,
}

/// Memory and storage byte counts.
#[derive(Debug, Clone, Serialize)]
pub struct BytesView {
    /// Sum of the sizes of all areas of all tasks (the address-space view).
    pub area_bytes: u64,
    /// Pages with stored content, counted per area (the rest read as zero).
    pub mapped_pages: u64,
    /// Raw bytes of those pages: `mapped_pages * 4096`.
    pub raw_page_bytes: u64,
    /// Of `mapped_pages`, pages whose content lives in a parent image.
    pub parent_pages: u64,
    /// Chunks stored in this image.
    pub local_chunks: u64,
    /// Uncompressed bytes of those chunks (distinct pages only).
    pub local_content_bytes: u64,
    /// Bytes the chunk files' bodies take.
    pub chunk_stored_bytes: u64,
    /// Bytes the other files' bodies take (tasks, modules, file backups).
    pub other_stored_bytes: u64,
    /// `chunk_stored_bytes + other_stored_bytes`.
    pub total_stored_bytes: u64,
}

/// One checkpointable task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub task_id: u64,
    pub name: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub module: ModuleView,
    pub threads: Vec<ThreadView>,
    pub areas: Vec<AreaView>,
    pub phones: Vec<PhoneView>,
    pub calls: Vec<CallView>,
    /// Cooperative blobs grouped by persistent service id.
    pub coop_blobs: BTreeMap<String, Vec<BlobView>>,
    pub file_backups: Vec<FileView>,
    /// Ids the task has seen and what they refer to.
    pub id_view: Vec<IdView>,
    /// The kernel state record (id counters, special phone slots, call
    /// parties, notifications, thread details); `None` when the image has
    /// none for the task (1.0 and 1.1 images, writers without a kernel).
    pub kernel_state: Option<KernelStateView>,
}

/// One id a task has seen and what it refers to.
#[derive(Debug, Clone, Serialize)]
pub struct IdView {
    pub seen: u64,
    pub refers_to: PeerView,
}

/// One thread.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadView {
    pub thread_id: u64,
    /// Number of call frames.
    pub frames: usize,
    /// Innermost frame: function index and code offset.
    pub innermost: Option<Position>,
    /// Where the thread stands: `ready`, `host_call`, `finished`.
    pub suspension: &'static str,
    /// Details of the suspension (import and arguments, or results).
    pub suspension_detail: String,
    /// Kernel-side system-call state: `none`, `reissue`, `complete`.
    pub syscall: &'static str,
    pub active_sync_call: Option<u64>,
    pub fuel_left: u64,
    pub kernel_build_hash: String,
}

/// A position in the module: function index and code offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub func_index: u32,
    pub code_offset: u32,
}

/// Another holder of a shared area and the base it has there.
#[derive(Debug, Clone, Serialize)]
pub struct SharingView {
    pub with: PeerView,
    pub base: u64,
}

/// One area.
#[derive(Debug, Clone, Serialize)]
pub struct AreaView {
    pub base: u64,
    pub size: u64,
    /// `rwxc` flags.
    pub flags: String,
    pub backing: BackingView,
    pub sharing: Vec<SharingView>,
    /// Pages with stored content.
    pub stored_pages: u64,
    /// Of those, pages stored in a parent image.
    pub parent_pages: u64,
    /// Pages that read as zero and cost nothing.
    pub zero_pages: u64,
}

/// What backs an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackingView {
    /// Anonymous memory.
    Anonymous,
    /// The module's memory 0, with its declared maximum in wasm pages
    /// (`null`: none declared).
    Primary { max_wasm_pages: Option<u32> },
}

impl From<&Backing> for BackingView {
    fn from(b: &Backing) -> Self {
        match *b {
            Backing::Anonymous => BackingView::Anonymous,
            Backing::Primary { max_pages } => BackingView::Primary {
                max_wasm_pages: max_pages,
            },
        }
    }
}

impl BackingView {
    /// `anonymous`, `primary` or `primary (max 4 wasm pages)`.
    pub fn text(&self) -> String {
        match self {
            BackingView::Anonymous => "anonymous".into(),
            BackingView::Primary {
                max_wasm_pages: None,
            } => "primary".into(),
            BackingView::Primary {
                max_wasm_pages: Some(n),
            } => format!("primary (max {n} wasm pages)"),
        }
    }
}

/// Builds the overview of the image at `path`, with every task, or only
/// the tasks in `only` when it is not empty (the image-wide parts and byte
/// counts always cover the whole image).
pub fn show(path: &Path, only: &[u64]) -> Result<Overview, ShowError> {
    let read = |source| ShowError::Read {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    crate::input::probe(path)?;
    let image = Image::open(path).map_err(read)?;
    let m = image.manifest();
    let stats = image.stats().map_err(read)?;
    let chain = image.parent_chain().map_err(read)?;
    let (own_pages, link_pages) = pages_by_link(&image).map_err(read)?;
    let mut tasks = Vec::new();
    let ids = image.task_ids();
    if let Some(&missing) = only.iter().find(|t| !ids.contains(t)) {
        return Err(ShowError::NoSuchTask {
            path: path.to_path_buf(),
            task: missing,
            tasks: ids,
        });
    }
    for id in ids
        .into_iter()
        .filter(|id| only.is_empty() || only.contains(id))
    {
        let record = image.task(id).map_err(read)?;
        let kernel = image.kernel_state(id).map_err(read)?;
        let mut view = task_view(&image, &record);
        view.kernel_state = kernel.map(|k| KernelStateView::of(&record, &k));
        tasks.push(view);
    }
    Ok(Overview {
        image: path.display().to_string(),
        format_version: m.format_version.to_string(),
        tool_version: m.tool_version.clone(),
        kernel_build_hash: m.kernel_build_hash.to_hex(),
        kernel_abi_version: m.kernel_abi_version,
        created_seconds: m.created.seconds,
        created_nanos: m.created.nanos,
        task_zero: m.task_zero,
        options: OptionsView {
            kill_after: m.options.kill_after,
            file_policy: format!("{:?}", m.options.file_policy),
            timeout_ms: m.options.timeout_ms,
            bundle_modules: m.options.bundle_modules,
            extra: m
                .options
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), OptionValue::of(v)))
                .collect(),
        },
        checkpoint_set: m
            .checkpoint_set
            .iter()
            .map(|s| {
                let (role, service_id) = match &s.role {
                    Role::Checkpointable => ("checkpointable", None),
                    Role::Cooperative { service_id } => ("cooperative", Some(service_id.clone())),
                    Role::ExcludedClient => ("excluded_client", None),
                };
                MemberView {
                    task_id: s.task_id,
                    name: s.name.clone(),
                    role,
                    service_id,
                }
            })
            .collect(),
        parent_chain: chain
            .iter()
            .zip(link_pages)
            .map(|(l, pages)| LinkView {
                path: l.path.display().to_string(),
                manifest_digest: l.manifest_digest.to_hex(),
                pages,
            })
            .collect(),
        own_pages,
        bytes: BytesView {
            area_bytes: stats.area_bytes,
            mapped_pages: stats.mapped_pages,
            raw_page_bytes: stats.mapped_pages.saturating_mul(PAGE_SIZE as u64),
            parent_pages: stats.parent_pages,
            local_chunks: stats.local_chunks,
            local_content_bytes: stats.local_content_bytes,
            chunk_stored_bytes: stats.local_stored_bytes,
            other_stored_bytes: stats.other_stored_bytes,
            total_stored_bytes: stats
                .local_stored_bytes
                .saturating_add(stats.other_stored_bytes),
        },
        tasks,
    })
}

/// Pages of the image's areas stored by the image itself, and by each
/// ancestor (nearest first): a parent chunk's pages count for the nearest
/// ancestor holding a chunk with its address in its own chunks.
fn pages_by_link(image: &Image) -> Result<(u64, Vec<u64>), snapfmt::Error> {
    let mut homes: Vec<std::collections::BTreeSet<snapfmt::Digest>> = Vec::new();
    let mut cur = image.parent()?;
    while let Some(p) = cur {
        homes.push(
            p.manifest()
                .chunks
                .iter()
                .filter(|c| c.home.is_local())
                .map(|c| c.content)
                .collect(),
        );
        cur = p.parent()?;
    }
    let chunks = &image.manifest().chunks;
    let (mut own, mut counts) = (0u64, vec![0u64; homes.len()]);
    for id in image.task_ids() {
        for area in &image.task(id)?.areas {
            for r in &area.pages.runs {
                let Some(c) = chunks.get(r.chunk as usize) else {
                    continue;
                };
                if c.home.is_local() {
                    own += u64::from(r.count);
                } else if let Some(i) = homes.iter().position(|h| h.contains(&c.content)) {
                    counts[i] += u64::from(r.count);
                }
            }
        }
    }
    Ok((own, counts))
}

fn task_view(image: &Image, t: &TaskRecord) -> TaskView {
    let mut coop_blobs: BTreeMap<String, Vec<BlobView>> = BTreeMap::new();
    for b in &t.coop_blobs {
        coop_blobs
            .entry(b.service_id.clone())
            .or_default()
            .push(b.into());
    }
    for blobs in coop_blobs.values_mut() {
        blobs.sort_by_key(|b| b.connection);
    }
    TaskView {
        task_id: t.meta.task_id,
        name: t.meta.name.clone(),
        args: t.meta.args.clone(),
        cwd: t.meta.cwd.clone(),
        module: (&t.meta.module).into(),
        threads: t.threads.iter().map(thread_view).collect(),
        areas: t.areas.iter().map(|a| area_view(image, a)).collect(),
        phones: t
            .phones
            .iter()
            .enumerate()
            .map(|(i, s)| PhoneView::of(i as u32, s))
            .collect(),
        calls: t.calls.iter().map(CallView::from).collect(),
        coop_blobs,
        file_backups: t.file_backups.iter().map(FileView::from).collect(),
        id_view: t
            .meta
            .id_view
            .iter()
            .map(|m| IdView {
                seen: m.seen,
                refers_to: (&m.refers_to).into(),
            })
            .collect(),
        kernel_state: None,
    }
}

/// Name and detail of a thread's suspension.
pub fn suspension_text(exec: &ExecState) -> (&'static str, String) {
    match &exec.suspension {
        Suspension::Ready => ("ready", String::new()),
        Suspension::HostCall { import, args } => (
            "host_call",
            format!("import {import} args {}", values_text(args)),
        ),
        Suspension::Finished { results } => {
            ("finished", format!("results {}", values_text(results)))
        }
    }
}

/// Name of a kernel-side system-call state.
pub fn syscall_name(s: &SyscallState) -> &'static str {
    match s {
        SyscallState::None => "none",
        SyscallState::Reissue => "reissue",
        SyscallState::Complete { .. } => "complete",
    }
}

fn thread_view(th: &ThreadContext) -> ThreadView {
    let (suspension, suspension_detail) = suspension_text(&th.exec);
    ThreadView {
        thread_id: th.thread_id,
        frames: th.exec.frames.len(),
        innermost: th.exec.frames.last().map(|f| Position {
            func_index: f.func_index,
            code_offset: f.code_offset,
        }),
        suspension,
        suspension_detail,
        syscall: syscall_name(&th.syscall),
        active_sync_call: th.active_sync_call,
        fuel_left: th.exec.fuel_left,
        kernel_build_hash: th.kernel_build_hash.to_hex(),
    }
}

fn area_view(image: &Image, a: &AreaRecord) -> AreaView {
    let chunks = &image.manifest().chunks;
    let mut stored_pages = 0;
    let mut parent_pages = 0;
    for r in &a.pages.runs {
        stored_pages += u64::from(r.count);
        if matches!(
            chunks.get(r.chunk as usize).map(|c| &c.home),
            Some(ChunkHome::Parent)
        ) {
            parent_pages += u64::from(r.count);
        }
    }
    AreaView {
        base: a.base,
        size: a.size,
        flags: area_flags_text(a.flags),
        backing: (&a.backing).into(),
        sharing: a
            .sharing
            .iter()
            .map(|s| SharingView {
                with: (&s.with).into(),
                base: s.base,
            })
            .collect(),
        stored_pages,
        parent_pages,
        zero_pages: (a.size / PAGE_SIZE as u64).saturating_sub(stored_pages),
    }
}
