//! Consistency rules of decoded records, shared by the reader (which
//! refuses a record breaking any of them) and `validate` (which reports
//! every breach). Each problem names the file and the field.

use crate::header::HEADER_LEN;
use crate::limits::{
    ADDRESS_SPACE_SIZE, MAX_CHUNK_BODY, MAX_CHUNK_PAGES, MAX_CHUNKS, MAX_IMAGE_PAGE_CONTENT,
    MAX_OBJECTS, MAX_PARENT_PATH, MAX_SET_MEMBERS, PAGE_SIZE,
};
use crate::object::{MANIFEST_PATH, valid_object_path};
use crate::records::*;
use crate::version::{FORMAT_1_0, FORMAT_1_4, FORMAT_VERSION};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What the rules of task records look up in their manifest for each
/// element (the module, each file backup), and the reader for each task:
/// sorted maps built once per manifest, so that checking is `n log n` in
/// the sizes of the record and the manifest, never `n * m`.
pub(crate) struct ManifestIndex {
    /// Path of each listed object -> its index in `objects`.
    pub objects: BTreeMap<String, usize>,
    /// Ids of the checkpointable members.
    pub checkpointable: BTreeSet<u64>,
}

impl ManifestIndex {
    pub(crate) fn new(m: &Manifest) -> ManifestIndex {
        ManifestIndex {
            objects: m
                .objects
                .iter()
                .enumerate()
                .map(|(i, o)| (o.path.clone(), i))
                .collect(),
            checkpointable: m
                .checkpoint_set
                .iter()
                .filter(|s| s.role == Role::Checkpointable)
                .map(|s| s.task_id)
                .collect(),
        }
    }
}

/// Content of the image's local chunks together (`4096 * pages` each), as
/// the chunk table declares it: what reading every page costs.
pub(crate) fn page_content(m: &Manifest) -> u64 {
    m.chunks
        .iter()
        .filter(|c| c.home.is_local())
        .map(|c| u64::from(c.pages) * PAGE_SIZE as u64)
        .fold(0, u64::saturating_add)
}

/// Why `path` is not an acceptable `parent.path` (FORMAT.md section 4),
/// if it is not: a non-empty path of at most [`MAX_PARENT_PATH`] bytes,
/// relative or absolute, without NUL, empty or `.` components.
pub(crate) fn parent_path_fault(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.len() > MAX_PARENT_PATH {
        return Some("is longer than 4096 bytes");
    }
    if path.contains('\0') {
        return Some("contains a NUL byte");
    }
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.split('/').any(|c| c.is_empty() || c == ".") {
        return Some("has an empty or `.` component");
    }
    None
}

/// One problem found in an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The image file (path inside the image), or the image path itself
    /// for container-level problems.
    pub file: String,
    /// The field, as a path into the record (`areas[2].pages.runs[0]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.message)
    }
}

pub(crate) struct Problems<'a> {
    pub file: String,
    pub out: &'a mut Vec<Problem>,
}

impl Problems<'_> {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.out.push(Problem {
            file: self.file.clone(),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// The `options.extra` keys of the set's schedule (FORMAT.md section 4,
/// since 1.3).
pub const SCHEDULE_KEYS: [&str; 3] = [
    "kernel.next_thread_id",
    "kernel.wait_order",
    "kernel.sched.cursor",
];

/// A decimal number without sign or leading zeros.
fn decimal(v: &str) -> Option<u64> {
    let canonical =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    canonical.then(|| v.parse().ok()).flatten()
}

/// The thread ids of `kernel.wait_order`, if it is well-formed.
pub(crate) fn wait_order(m: &Manifest) -> Option<Vec<u64>> {
    let v = m.options.extra.get(SCHEDULE_KEYS[1])?;
    if v.is_empty() {
        return Some(Vec::new());
    }
    v.split(' ').map(decimal).collect()
}

/// The set's schedule entries: well-formed, and all or none.
fn schedule_entries(m: &Manifest, p: &mut Problems) {
    let e = &m.options.extra;
    let present: Vec<&str> = SCHEDULE_KEYS
        .iter()
        .copied()
        .filter(|k| e.contains_key(*k))
        .collect();
    if present.is_empty() {
        return;
    }
    if m.format_version.minor < 3 {
        p.push(
            "options.extra",
            format!(
                "{present:?} are entries of format 1.3, not {}",
                m.format_version
            ),
        );
    }
    for key in [SCHEDULE_KEYS[0], SCHEDULE_KEYS[1]] {
        if !e.contains_key(key) {
            p.push(
                format!("options.extra[{key:?}]"),
                "missing (the set's schedule entries come together)",
            );
        }
    }
    for key in [SCHEDULE_KEYS[0], SCHEDULE_KEYS[2]] {
        if let Some(v) = e.get(key)
            && decimal(v).is_none()
        {
            p.push(
                format!("options.extra[{key:?}]"),
                format!("{v:?} is not a decimal number"),
            );
        }
    }
    if e.contains_key(SCHEDULE_KEYS[1]) {
        match wait_order(m) {
            None => p.push(
                format!("options.extra[{:?}]", SCHEDULE_KEYS[1]),
                "not decimal thread ids separated by single spaces",
            ),
            Some(ids) => {
                let mut seen = BTreeSet::new();
                for id in ids {
                    if !seen.insert(id) {
                        p.push(
                            format!("options.extra[{:?}]", SCHEDULE_KEYS[1]),
                            format!("thread {id} listed twice"),
                        );
                    }
                }
            }
        }
    }
}

/// The packs' frames tile them (FORMAT.md section 6): packs are numbered
/// 0, 1, ... without a gap, and in each, the frames sorted by offset start
/// at 0 and each where the one before ends, so every byte of a pack up to
/// the end of its last frame belongs to exactly one listed chunk (that the
/// pack ends there is checked against the file by `validate`, and by the
/// reader for every frame it reads: a frame past the end is refused).
fn pack_tiling(frames: &BTreeMap<u32, Vec<(u64, u64, usize)>>, p: &mut Problems<'_>) {
    for (n, (&pack, list)) in frames.iter().enumerate() {
        if u64::from(pack) != n as u64 {
            let i = list.first().map_or(0, |f| f.2);
            p.push(
                format!("chunks[{i}].home.pack"),
                format!("pack {pack} is listed, but pack {n} is not (packs are numbered from 0 without gaps)"),
            );
            return;
        }
        let mut list = list.clone();
        list.sort_unstable();
        let mut end = 0u64;
        for &(offset, body_len, i) in &list {
            if offset != end {
                p.push(
                    format!("chunks[{i}].home.offset"),
                    if offset < end {
                        format!("the frame at {offset} of pack {pack} overlaps the frame before it, which ends at {end}")
                    } else {
                        format!("the frame at {offset} of pack {pack} leaves bytes {end}..{offset} to no chunk")
                    },
                );
            }
            end = offset
                .saturating_add(HEADER_LEN as u64)
                .saturating_add(body_len);
        }
    }
}

/// The end of each pack's last frame (the pack's size in a sound image),
/// by pack number.
pub(crate) fn pack_ends(m: &Manifest) -> BTreeMap<u32, u64> {
    let mut ends = BTreeMap::new();
    for c in &m.chunks {
        if let ChunkHome::Packed {
            pack,
            offset,
            body_len,
            ..
        } = c.home
        {
            let end = offset
                .saturating_add(HEADER_LEN as u64)
                .saturating_add(body_len);
            let e = ends.entry(pack).or_insert(0);
            *e = end.max(*e);
        }
    }
    ends
}

/// Rules of the manifest on its own.
pub(crate) fn manifest(m: &Manifest, out: &mut Vec<Problem>) {
    let mut p = Problems {
        file: MANIFEST_PATH.to_string(),
        out,
    };
    if !FORMAT_VERSION.can_read(m.format_version) {
        p.push(
            "format_version",
            format!(
                "{} is not readable by this reader ({FORMAT_VERSION})",
                m.format_version
            ),
        );
    }
    // The image's budget (FORMAT.md section 9): what checking the rest
    // may cost, known from the manifest alone.
    for (field, count, limit) in [
        ("checkpoint_set", m.checkpoint_set.len(), MAX_SET_MEMBERS),
        ("objects", m.objects.len(), MAX_OBJECTS),
        ("chunks", m.chunks.len(), MAX_CHUNKS),
    ] {
        if count > limit {
            p.push(
                field,
                format!("{count} entries, more than the limit of {limit}"),
            );
        }
    }
    let pages = page_content(m);
    if pages > MAX_IMAGE_PAGE_CONTENT {
        p.push(
            "chunks",
            format!(
                "local chunks hold {pages} bytes of pages, more than the image's limit of {MAX_IMAGE_PAGE_CONTENT}"
            ),
        );
    }
    if let Some(pref) = &m.parent
        && let Some(fault) = parent_path_fault(&pref.path)
    {
        p.push("parent.path", format!("{:?} {fault}", pref.path));
    }
    schedule_entries(m, &mut p);
    let mut ids = BTreeSet::new();
    for (i, s) in m.checkpoint_set.iter().enumerate() {
        if !ids.insert(s.task_id) {
            p.push(
                format!("checkpoint_set[{i}].task_id"),
                format!("task {} listed twice", s.task_id),
            );
        }
    }
    if !m
        .checkpoint_set
        .iter()
        .any(|s| s.task_id == m.task_zero && s.role == Role::Checkpointable)
    {
        p.push(
            "task_zero",
            format!(
                "task {} is not a checkpointable member of the set",
                m.task_zero
            ),
        );
    }
    let mut local = BTreeSet::new();
    // Frames of each pack: (offset, body length, chunk index).
    let mut frames: BTreeMap<u32, Vec<(u64, u64, usize)>> = BTreeMap::new();
    for (i, c) in m.chunks.iter().enumerate() {
        if c.pages == 0 || c.pages > MAX_CHUNK_PAGES {
            p.push(
                format!("chunks[{i}].pages"),
                format!("{} is not in 1..={MAX_CHUNK_PAGES}", c.pages),
            );
        }
        match &c.home {
            ChunkHome::Local { .. } | ChunkHome::LocalPlain { .. } => {
                let plain = matches!(c.home, ChunkHome::LocalPlain { .. });
                if plain != (m.format_version > FORMAT_1_0) {
                    p.push(
                        format!("chunks[{i}].home"),
                        format!(
                            "a format {} image stores chunks as {}",
                            m.format_version,
                            if plain { "Local" } else { "LocalPlain" }
                        ),
                    );
                }
                if !local.insert(c.content) {
                    p.push(
                        format!("chunks[{i}].content"),
                        format!("local chunk {} listed twice", c.content),
                    );
                }
            }
            ChunkHome::Packed {
                pack,
                offset,
                body_len,
                ..
            } => {
                if m.format_version < FORMAT_1_4 {
                    p.push(
                        format!("chunks[{i}].home"),
                        format!(
                            "a format {} image has no packed chunks (since 1.4)",
                            m.format_version
                        ),
                    );
                }
                if *body_len > MAX_CHUNK_BODY {
                    p.push(
                        format!("chunks[{i}].home.body_len"),
                        format!("{body_len} exceeds the chunk body limit of {MAX_CHUNK_BODY}"),
                    );
                }
                frames
                    .entry(*pack)
                    .or_default()
                    .push((*offset, *body_len, i));
                if !local.insert(c.content) {
                    p.push(
                        format!("chunks[{i}].content"),
                        format!("local chunk {} listed twice", c.content),
                    );
                }
            }
            ChunkHome::Parent => {
                if m.parent.is_none() {
                    p.push(
                        format!("chunks[{i}].home"),
                        "refers to a parent, but the image has none",
                    );
                }
            }
        }
    }
    pack_tiling(&frames, &mut p);
    for (i, o) in m.objects.iter().enumerate() {
        if !valid_object_path(&o.path) {
            p.push(
                format!("objects[{i}].path"),
                format!("{:?} is not an object path", o.path),
            );
        }
        if crate::object::kernel_state_task(&o.path).is_some()
            && m.format_version.minor < crate::header::ObjectKind::KernelState.since_minor()
        {
            p.push(
                format!("objects[{i}].path"),
                format!(
                    "{}: a format {} image has no kernel state records",
                    o.path, m.format_version
                ),
            );
        }
        if i > 0 && m.objects[i - 1].path >= o.path {
            p.push(
                format!("objects[{i}].path"),
                "objects are not sorted by path without duplicates",
            );
        }
    }
}

/// Rules of one task record, given its manifest.
pub(crate) fn task(
    t: &TaskRecord,
    file: &str,
    m: &Manifest,
    index: &ManifestIndex,
    out: &mut Vec<Problem>,
) {
    let mut p = Problems {
        file: file.to_string(),
        out,
    };
    if crate::object::task_path(t.meta.task_id) != file {
        p.push(
            "meta.task_id",
            format!("task {} stored in {file}", t.meta.task_id),
        );
    }
    if let ModuleRef::Embedded { sha256, .. } = &t.meta.module {
        let path = crate::object::module_path(sha256);
        if !index.objects.contains_key(&path) {
            p.push(
                "meta.module",
                format!("embedded module {path} is not in the manifest"),
            );
        }
    }
    for (i, w) in t.threads.windows(2).enumerate() {
        if w[0].thread_id >= w[1].thread_id {
            p.push(
                format!("threads[{}].thread_id", i + 1),
                "threads are not sorted by id without duplicates",
            );
        }
    }
    let page = PAGE_SIZE as u64;
    let mut prev_end = 0u64;
    for (i, a) in t.areas.iter().enumerate() {
        let f = |s: &str| format!("areas[{i}].{s}");
        if a.base % page != 0 {
            p.push(f("base"), format!("{:#x} is not page aligned", a.base));
        }
        if a.size % page != 0 || a.size == 0 {
            p.push(
                f("size"),
                format!("{:#x} is not a positive multiple of the page size", a.size),
            );
        }
        let end = a.base.checked_add(a.size);
        match end {
            Some(end) if end <= ADDRESS_SPACE_SIZE => {}
            _ => p.push(
                f("size"),
                format!(
                    "area {:#x}+{:#x} ends past the address space",
                    a.base, a.size
                ),
            ),
        }
        if i > 0 && a.base < prev_end {
            p.push(f("base"), "areas are not sorted by base or overlap");
        }
        prev_end = end.unwrap_or(u64::MAX);
        let pages_in_area = a.size / page;
        let mut next_free = 0u64;
        for (j, r) in a.pages.runs.iter().enumerate() {
            let g = |s: &str| format!("areas[{i}].pages.runs[{j}].{s}");
            if r.count == 0 {
                p.push(g("count"), "empty run");
            }
            if u64::from(r.first_page) < next_free {
                p.push(g("first_page"), "runs are not sorted or overlap");
            }
            let end_page = u64::from(r.first_page) + u64::from(r.count);
            if end_page > pages_in_area {
                p.push(
                    g("count"),
                    format!("run ends at page {end_page}, the area has {pages_in_area}"),
                );
            }
            next_free = end_page;
            match m.chunks.get(r.chunk as usize) {
                None => p.push(
                    g("chunk"),
                    format!(
                        "chunk {} is past the chunk table ({})",
                        r.chunk,
                        m.chunks.len()
                    ),
                ),
                Some(c) => {
                    if u64::from(r.first_slot) + u64::from(r.count) > u64::from(c.pages) {
                        p.push(
                            g("first_slot"),
                            format!("slots past the {} pages of chunk {}", c.pages, r.chunk),
                        );
                    }
                }
            }
        }
    }
    let thread_ids: BTreeSet<u64> = t.threads.iter().map(|th| th.thread_id).collect();
    let sync_calls: BTreeSet<u64> = t
        .calls
        .iter()
        .filter(|c| c.queue == CallQueue::Synchronous)
        .map(|c| c.sender_side_id)
        .collect();
    for (i, c) in t.calls.iter().enumerate() {
        if let Some(ph) = c.phone {
            let ok = matches!(t.phones.get(ph as usize), Some(PhoneSlot::Connected(_)));
            // A sent call may outlive its phone (hung up after sending),
            // so only calls through a slot past the table are wrong.
            if !ok && ph as usize >= t.phones.len() {
                p.push(
                    format!("calls[{i}].phone"),
                    format!("phone {ph} is past the phone table"),
                );
            }
        }
        if c.queue == CallQueue::Synchronous {
            match c.thread {
                Some(th) if thread_ids.contains(&th) => {}
                _ => p.push(
                    format!("calls[{i}].thread"),
                    "synchronous call without a thread of this task",
                ),
            }
        }
    }
    for (i, th) in t.threads.iter().enumerate() {
        if let Some(id) = th.active_sync_call
            && !sync_calls.contains(&id)
        {
            p.push(
                format!("threads[{i}].active_sync_call"),
                format!("no synchronous call {id}"),
            );
        }
    }
    for (i, b) in t.coop_blobs.iter().enumerate() {
        if !matches!(
            t.phones.get(b.connection as usize),
            Some(PhoneSlot::Connected(_))
        ) {
            p.push(
                format!("coop_blobs[{i}].connection"),
                format!("phone {} is not connected", b.connection),
            );
        }
    }
    for (i, fb) in t.file_backups.iter().enumerate() {
        if fb.stored {
            let path = crate::object::file_backup_path(&fb.sha256);
            if !index.objects.contains_key(&path) {
                p.push(
                    format!("file_backups[{i}].sha256"),
                    format!("{path} is not in the manifest"),
                );
            }
        }
    }
}

/// Rules of one task's kernel state record, given its task record (if
/// the image has one for that task): the task it names, and its vectors
/// against the record's.
pub(crate) fn kernel_state(
    k: &KernelTaskState,
    file: &str,
    t: Option<&TaskRecord>,
    out: &mut Vec<Problem>,
) {
    let mut p = Problems {
        file: file.to_string(),
        out,
    };
    if crate::object::kernel_state_path(k.task_id) != file {
        p.push("task_id", format!("task {} stored in {file}", k.task_id));
    }
    let Some(t) = t else {
        p.push(
            "task_id",
            format!("task {} has no task record in the image", k.task_id),
        );
        return;
    };
    if k.calls.len() != t.calls.len() {
        p.push(
            "calls",
            format!(
                "{} call details, the task record has {} calls",
                k.calls.len(),
                t.calls.len()
            ),
        );
    }
    if k.threads.len() != t.threads.len() {
        p.push(
            "threads",
            format!(
                "{} thread details, the task record has {} threads",
                k.threads.len(),
                t.threads.len()
            ),
        );
    }
    for (i, (d, c)) in k.calls.iter().zip(&t.calls).enumerate() {
        let answer = c.queue == CallQueue::UndeliveredAnswer;
        if answer != matches!(d, CallDetail::Answer) {
            p.push(
                format!("calls[{i}]"),
                format!(
                    "{} detail for a call in queue {:?}",
                    if answer { "a call" } else { "an answer" },
                    c.queue
                ),
            );
        }
    }
    for (i, ph) in k.phones.iter().enumerate() {
        if i > 0 && k.phones[i - 1].slot >= ph.slot {
            p.push(
                format!("phones[{i}].slot"),
                "phones are not sorted by slot without duplicates",
            );
        }
        let ok = match (t.phones.get(ph.slot as usize), ph.state) {
            (None, _) => {
                p.push(
                    format!("phones[{i}].slot"),
                    format!(
                        "slot {} is past the phone table ({})",
                        ph.slot,
                        t.phones.len()
                    ),
                );
                continue;
            }
            (Some(PhoneSlot::Free), PhoneState::Connecting) => true,
            (Some(PhoneSlot::Connected(_)), PhoneState::Slammed) => true,
            _ => false,
        };
        if !ok {
            p.push(
                format!("phones[{i}].state"),
                format!(
                    "slot {} is {} in the task record, it cannot be {:?}",
                    ph.slot,
                    if matches!(t.phones.get(ph.slot as usize), Some(PhoneSlot::Free)) {
                        "free"
                    } else {
                        "connected"
                    },
                    ph.state
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::version::FormatVersion;

    fn with_home(version: FormatVersion, home: ChunkHome) -> Vec<Problem> {
        let mut m = Manifest {
            format_version: version,
            tool_version: "t".into(),
            kernel_build_hash: Digest::default(),
            kernel_abi_version: 1,
            created: Default::default(),
            task_zero: 1,
            options: Default::default(),
            checkpoint_set: vec![SetMember {
                task_id: 1,
                name: "t".into(),
                role: Role::Checkpointable,
            }],
            parent: None,
            chunks: vec![],
            objects: vec![],
        };
        m.chunks.push(ChunkEntry {
            content: Digest::default(),
            pages: 1,
            home,
        });
        let mut out = Vec::new();
        manifest(&m, &mut out);
        out.retain(|p| p.field == "chunks[0].home");
        out
    }

    #[test]
    fn each_version_uses_its_own_local_chunk_variant() {
        let body = (1, Digest::default());
        let local = ChunkHome::Local {
            body_len: body.0,
            body_digest: body.1,
        };
        let plain = ChunkHome::LocalPlain {
            body_len: body.0,
            body_digest: body.1,
        };
        assert!(with_home(FORMAT_1_0, local.clone()).is_empty());
        assert!(with_home(FORMAT_VERSION, plain.clone()).is_empty());
        assert_eq!(with_home(FORMAT_1_0, plain).len(), 1);
        assert_eq!(with_home(FORMAT_VERSION, local).len(), 1);
        // Packs since 1.4 (which still accepts LocalPlain: its tar form).
        let packed = ChunkHome::Packed {
            pack: 0,
            offset: 0,
            body_len: body.0,
            body_digest: body.1,
        };
        let v1_3 = crate::FormatVersion { major: 1, minor: 3 };
        assert!(with_home(FORMAT_1_4, packed.clone()).is_empty());
        assert_eq!(with_home(v1_3, packed.clone()).len(), 1);
        assert_eq!(with_home(FORMAT_1_0, packed).len(), 1);
    }
}
