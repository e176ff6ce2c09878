//! Deep validation: every check the reader makes, applied to every file of
//! an image and of its parent chain, collecting every problem instead of
//! stopping at the first.

use crate::check::{self, Problem};
use crate::container::Source;
use crate::error::{Error, ObjectError};
use crate::header::ObjectKind;
use crate::limits::MAX_PARENT_DEPTH;
use crate::object::{self, MANIFEST_PATH};
use crate::reader::Image;
use crate::records::*;
use std::collections::BTreeSet;
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
        if c.home.is_local() {
            expected.insert(object::chunk_path(&c.content));
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

    // Tasks.
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
    let mut referenced = vec![false; m.chunks.len()];
    let mut records = std::collections::BTreeMap::new();
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
        let t = match record {
            Ok(t) => t,
            Err(e) => {
                add(out, path, e);
                continue;
            }
        };
        check::task(&t, &tpath, m, out);
        for a in &t.areas {
            for r in &a.pages.runs {
                if let Some(flag) = referenced.get_mut(r.chunk as usize) {
                    *flag = true;
                }
            }
        }
        if let ModuleRef::Embedded { sha256, len } = &t.meta.module {
            match image.module(sha256) {
                Ok(bytes) if bytes.len() as u64 != *len => add(
                    out,
                    path,
                    Error::invalid(
                        tpath.clone(),
                        "meta.module.len",
                        format!("{len}, the module has {} bytes", bytes.len()),
                    ),
                ),
                Ok(_) => {}
                Err(e) => add(out, path, e),
            }
        }
        records.insert(id, t);
    }
    // Kernel state records: well-formed, of a task of the image, parallel
    // to its record.
    for o in &m.objects {
        let Some(id) = object::kernel_state_task(&o.path) else {
            continue;
        };
        let state = image
            .read_object(&o.path, ObjectKind::KernelState)
            .and_then(|(content, _)| {
                object::decode_record::<KernelTaskState>(&content).map_err(|error| Error::Object {
                    file: o.path.clone(),
                    error,
                })
            });
        match state {
            Ok(k) => {
                if !members.contains(&id) {
                    add(
                        out,
                        path,
                        Error::invalid(
                            o.path.clone(),
                            "-",
                            "kernel state of no checkpointable member",
                        ),
                    );
                    continue;
                }
                // A member whose record is unreadable was reported above.
                if let Some(t) = records.get(&id) {
                    check::kernel_state(&k, &o.path, Some(t), out);
                }
            }
            Err(e) => add(out, path, e),
        }
    }
    for o in &m.objects {
        if let Some(h) = o
            .path
            .strip_prefix("files/")
            .and_then(|s| s.strip_suffix(".spf"))
            && let Some(d) = crate::Digest::from_hex(h)
            && let Err(e) = image.file_backup(&d)
        {
            add(out, path, e);
        }
    }

    // Chunks: every local chunk fully checked, every chunk referenced.
    for (i, c) in m.chunks.iter().enumerate() {
        if c.home.is_local()
            && let Err(e) = image.load_chunk(i as u32, c, true)
        {
            add(out, path, e);
        }
        if !referenced[i] {
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
        let source = Source::open(path)?;
        let bytes = source.read(MANIFEST_PATH, object::stored_limit(ObjectKind::Manifest))?;
        let (header, manifest): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest)
            .map_err(|error| Error::Object {
            file: MANIFEST_PATH.into(),
            error,
        })?;
        Ok(Image::from_parts(source, manifest, header.checksum, depth))
    }
}
