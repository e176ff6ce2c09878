//! Deep validation: every check the reader makes, applied to every file of
//! an image and of its parent chain, collecting every problem instead of
//! stopping at the first.

use crate::check::{self, Problem};
use crate::container::Source;
use crate::error::{Error, ObjectError};
use crate::header::ObjectKind;
use crate::limits::{
    MAX_CHUNKS, MAX_IMAGE_OBJECT_CONTENT, MAX_IMAGE_PAGE_CONTENT, MAX_OBJECTS, MAX_PARENT_DEPTH,
    MAX_SET_MEMBERS,
};
use crate::object::{self, MANIFEST_PATH};
use crate::reader::Image;
use crate::records::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks the image at `path` and its parent chain completely and returns
/// every problem found (empty when the image is sound).
pub fn validate(path: impl AsRef<Path>) -> Vec<Problem> {
    let mut out = Vec::new();
    validate_at(path.as_ref(), 0, &mut out);
    out
}

/// The header field an [`ObjectError`] concerns.
fn object_field(e: &ObjectError) -> &'static str {
    match e {
        ObjectError::TruncatedHeader { .. } => "header",
        ObjectError::BadMagic { .. } => "header.magic",
        ObjectError::OtherMajor { .. } | ObjectError::NewerMinor { .. } => "header.version",
        ObjectError::UnknownKind { .. } | ObjectError::WrongKind { .. } => "header.kind",
        ObjectError::UnknownFlags { .. } | ObjectError::FlagNotAllowed { .. } => "header.flags",
        ObjectError::Reserved => "header.reserved",
        ObjectError::TooLong { .. } | ObjectError::LengthMismatch { .. } => "header.body_len",
        ObjectError::Checksum { .. } => "header.checksum",
        ObjectError::Decompress(_) | ObjectError::DecompressedTooLong { .. } => "body (zstd)",
        ObjectError::Decode(_)
        | ObjectError::Trailing(_)
        | ObjectError::DecodeBudget { .. }
        | ObjectError::CountPastInput => "body (record)",
    }
}

/// Turns an error into a problem, naming the file and field it concerns.
pub fn problem_of(image: &Path, e: Error) -> Problem {
    let (file, field, message) = match e {
        Error::Object { file, error } => {
            (file, object_field(&error).to_string(), error.to_string())
        }
        Error::Invalid {
            file,
            field,
            message,
        } => (file, field, message),
        Error::Missing { file } => (file, "-".into(), "missing from the image".into()),
        Error::NotRegular {
            file,
            found,
            expected,
        } => (
            file,
            "-".into(),
            format!("is {found}, where {expected} belongs"),
        ),
        Error::Io { path, source } => (path.display().to_string(), "-".into(), source.to_string()),
        Error::Parent(m) => (MANIFEST_PATH.into(), "parent".into(), m),
        other => (image.display().to_string(), "-".into(), other.to_string()),
    };
    Problem {
        file,
        field,
        message,
    }
}

fn add(out: &mut Vec<Problem>, image: &Path, e: Error) {
    out.push(problem_of(image, e));
}

fn validate_at(path: &Path, depth: usize, out: &mut Vec<Problem>) {
    let image = match Image::open_unchecked(path, depth) {
        Ok(img) => img,
        Err(e) => {
            out.push(problem_of(path, e));
            return;
        }
    };
    let m = image.manifest();
    check::manifest(m, out);

    // Files present versus files listed.
    let mut expected: BTreeSet<String> = m.objects.iter().map(|o| o.path.clone()).collect();
    expected.insert(MANIFEST_PATH.to_string());
    for c in &m.chunks {
        if let Some((file, _)) = c.home.location(&c.content) {
            expected.insert(file);
        }
    }
    // Each pack ends where its last frame does (the manifest's rules
    // checked that the frames tile it up to there).
    for (pack, end) in check::pack_ends(m) {
        let file = object::pack_path(pack);
        match image.file_size(&file) {
            Ok(size) if size != end => add(
                out,
                path,
                Error::invalid(
                    file,
                    "-",
                    format!("{size} bytes, but its last frame ends at {end}"),
                ),
            ),
            Ok(_) => {}
            // A missing pack is reported below, with the other files.
            Err(Error::Missing { .. }) => {}
            Err(e) => add(out, path, e),
        }
    }
    match image.files() {
        Ok(files) => {
            let present: BTreeSet<String> = files.into_iter().collect();
            for f in present.difference(&expected) {
                add(
                    out,
                    path,
                    Error::invalid(f.clone(), "-", "file is not listed in the manifest"),
                );
            }
            for f in expected.difference(&present) {
                add(out, path, Error::Missing { file: f.clone() });
            }
        }
        Err(e) => add(out, path, e),
    }

    // The image's budget first (FORMAT.md section 9): the counts of the
    // manifest (reported by its rules), then the content every listed
    // object declares, from its first bytes, before any is decompressed.
    // An image over budget has its objects' contents left unchecked (the
    // problem says so).
    let counts_over = m.checkpoint_set.len() > MAX_SET_MEMBERS || m.objects.len() > MAX_OBJECTS;
    let mut declared_total = 0u64;
    if !counts_over {
        // A file whose first bytes are wrong is reported where it is read.
        for (_, len) in image.declared_contents() {
            declared_total = declared_total.saturating_add(len.unwrap_or(0));
        }
    }
    let objects_over = counts_over || declared_total > MAX_IMAGE_OBJECT_CONTENT;
    if declared_total > MAX_IMAGE_OBJECT_CONTENT {
        add(
            out,
            path,
            Error::invalid(
                MANIFEST_PATH,
                "objects",
                format!(
                    "the listed objects declare {declared_total} bytes of content, more than the image's limit of {MAX_IMAGE_OBJECT_CONTENT}; their contents are not checked"
                ),
            ),
        );
    }
    let mut referenced = vec![false; m.chunks.len()];
    if !objects_over {
        check_objects(&image, path, &mut referenced, out);
    }

    // Chunks: every local chunk fully checked (unless the chunk table is
    // over the image's budget, reported by the manifest's rules), every
    // chunk referenced.
    let pages_over = m.chunks.len() > MAX_CHUNKS || check::page_content(m) > MAX_IMAGE_PAGE_CONTENT;
    for (i, c) in m.chunks.iter().enumerate() {
        if c.home.is_local()
            && !pages_over
            && let Err(e) = image.load_chunk(i as u32, c, true)
        {
            add(out, path, e);
        }
        if !referenced[i] && !objects_over {
            add(
                out,
                path,
                Error::invalid(
                    MANIFEST_PATH,
                    format!("chunks[{i}]"),
                    "not referenced by any page map",
                ),
            );
        }
    }

    // The parent chain.
    if let Some(pref) = &m.parent {
        if depth >= MAX_PARENT_DEPTH {
            add(
                out,
                path,
                Error::Parent(format!("longer than {MAX_PARENT_DEPTH} images")),
            );
            return;
        }
        let ppath = image.parent_path(pref);
        let parent = match image.parent() {
            Ok(p) => p,
            Err(e) => {
                add(out, path, e);
                return;
            }
        };
        if let Some(parent) = parent {
            for (i, c) in m.chunks.iter().enumerate() {
                if c.home == ChunkHome::Parent
                    && let Err(e) = image.chunk(i as u32)
                {
                    add(
                        out,
                        path,
                        Error::Parent(format!("chunks[{i}] ({}): {e}", c.content)),
                    );
                }
            }
            drop(parent);
            let mut sub = Vec::new();
            validate_at(&ppath, depth + 1, &mut sub);
            for mut p in sub {
                p.file = format!("parent {}: {}", ppath.display(), p.file);
                out.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
}

impl Image {
    /// Opens an image reading only its manifest's bytes, without the
    /// manifest rules (validate reports those itself).
    pub(crate) fn open_unchecked(path: &Path, depth: usize) -> Result<Image, Error> {
        let source = Source::open(path, crate::reader::follow_at(depth))?;
        let bytes = source.read(MANIFEST_PATH, object::stored_limit(ObjectKind::Manifest))?;
        let (header, manifest): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest)
            .map_err(|error| Error::Object {
            file: MANIFEST_PATH.into(),
            error,
        })?;
        Ok(Image::from_parts(source, manifest, header.checksum, depth))
    }
}

/// Checks every object the manifest lists: each module and file backup
/// (streamed, its content hashed against its name), each task record of a
/// member (with its kernel state record, one task at a time, so that
/// memory holds one record), each kernel state record of no member, and
/// each task record of no member. Marks the chunks the page maps refer to.
fn check_objects(image: &Image, path: &Path, referenced: &mut [bool], out: &mut Vec<Problem>) {
    let m = image.manifest();
    // Modules and file backups, listed or not referenced: each object
    // hashes to its name. Module lengths are kept for the task records.
    let mut modules = BTreeMap::new();
    for o in &m.objects {
        let (kind, digest) = if let Some(h) = o.path.strip_prefix("modules/") {
            (ObjectKind::Module, h.strip_suffix(".spw"))
        } else if let Some(h) = o.path.strip_prefix("files/") {
            (ObjectKind::FileBackup, h.strip_suffix(".spf"))
        } else {
            continue;
        };
        // A malformed name is the manifest rules' problem.
        let Some(named) = digest.and_then(crate::Digest::from_hex) else {
            continue;
        };
        match image.object_digest(&o.path, kind) {
            Ok((actual, _)) if actual != named => add(
                out,
                path,
                Error::invalid(
                    o.path.clone(),
                    "content",
                    format!("hashes to {actual}, named {named}"),
                ),
            ),
            Ok((_, len)) => {
                if kind == ObjectKind::Module {
                    modules.insert(named, len);
                }
            }
            Err(e) => add(out, path, e),
        }
    }

    let members: BTreeSet<u64> = image.task_ids().into_iter().collect();
    for o in &m.objects {
        if let Some(id) = o
            .path
            .strip_prefix("tasks/")
            .and_then(|s| s.strip_suffix(".spt"))
            && !id.parse::<u64>().is_ok_and(|id| members.contains(&id))
        {
            add(
                out,
                path,
                Error::invalid(
                    o.path.clone(),
                    "-",
                    "task record of no checkpointable member",
                ),
            );
        }
    }
    let listed: BTreeSet<&str> = m.objects.iter().map(|o| o.path.as_str()).collect();
    let mut threads = BTreeSet::new();
    let mut all_read = true;
    for &id in &members {
        let tpath = object::task_path(id);
        let record = image
            .read_object(&tpath, ObjectKind::Task)
            .and_then(|(content, _)| {
                object::decode_record::<TaskRecord>(&content).map_err(|error| Error::Object {
                    file: tpath.clone(),
                    error,
                })
            });
        let record = match record {
            Ok(t) => {
                check_task(image, &t, &tpath, &modules, referenced, path, out);
                threads.extend(t.threads.iter().map(|th| th.thread_id));
                Some(t)
            }
            Err(e) => {
                add(out, path, e);
                all_read = false;
                None
            }
        };
        let kpath = object::kernel_state_path(id);
        if listed.contains(kpath.as_str()) {
            match read_kernel_state(image, &kpath) {
                // A member whose record is unreadable was reported above.
                Ok(k) => {
                    if let Some(t) = &record {
                        check::kernel_state(&k, &kpath, Some(t), out);
                    }
                }
                Err(e) => add(out, path, e),
            }
        }
    }
    // The sleepers of the set's schedule are threads of its tasks.
    if all_read {
        for t in check::wait_order(m).unwrap_or_default() {
            if !threads.contains(&t) {
                add(
                    out,
                    path,
                    Error::invalid(
                        crate::object::MANIFEST_PATH,
                        "options.extra[\"kernel.wait_order\"]",
                        format!("thread {t} is not a thread of the set"),
                    ),
                );
            }
        }
    }
    // Kernel state records of no member: well-formed, and wrong.
    for o in &m.objects {
        let Some(id) = object::kernel_state_task(&o.path) else {
            continue;
        };
        if members.contains(&id) {
            continue;
        }
        match read_kernel_state(image, &o.path) {
            Ok(_) => add(
                out,
                path,
                Error::invalid(
                    o.path.clone(),
                    "-",
                    "kernel state of no checkpointable member",
                ),
            ),
            Err(e) => add(out, path, e),
        }
    }
}

/// The rules of a decoded task record, its module's length, and the
/// chunks its page maps refer to.
fn check_task(
    image: &Image,
    t: &TaskRecord,
    tpath: &str,
    modules: &BTreeMap<crate::Digest, u64>,
    referenced: &mut [bool],
    path: &Path,
    out: &mut Vec<Problem>,
) {
    check::task(t, tpath, image.manifest(), image.index(), out);
    for a in &t.areas {
        for r in &a.pages.runs {
            if let Some(flag) = referenced.get_mut(r.chunk as usize) {
                *flag = true;
            }
        }
    }
    // A listed module that does not read was reported with the modules;
    // one not listed by the task rules.
    if let ModuleRef::Embedded { sha256, len } = &t.meta.module
        && let Some(&actual) = modules.get(sha256)
        && actual != *len
    {
        add(
            out,
            path,
            Error::invalid(
                tpath,
                "meta.module.len",
                format!("{len}, the module has {actual} bytes"),
            ),
        );
    }
}

fn read_kernel_state(image: &Image, kpath: &str) -> Result<KernelTaskState, Error> {
    image
        .read_object(kpath, ObjectKind::KernelState)
        .and_then(|(content, _)| {
            object::decode_record::<KernelTaskState>(&content).map_err(|error| Error::Object {
                file: kpath.to_string(),
                error,
            })
        })
}
