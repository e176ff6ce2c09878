//! Writing a [`Capture`] as an image with snapfmt's streaming
//! [`ImageWriter`]: modules bundled, every materialised page fed from the
//! captured page references (zero pages are free, identical pages stored
//! once; pages still pending after a lazy restore read from its image),
//! task records and their kernel state records. This runs after
//! the tasks were resumed or killed: the freeze does not depend on it.

use std::path::Path;

use snapfmt::{
    CheckpointOptions, Finished, ImageInfo, ImageWriter, Role, SetMember, Timestamp, WriterOptions,
};

use super::CheckpointError;
use super::capture::{Capture, build_hash};
use super::supplement::{TaskSupplement, extra_key};

impl Capture {
    /// The manifest fields of this capture (creation time is the kernel
    /// time of the capture: virtual in simulation).
    pub fn image_info(&self) -> ImageInfo {
        let mut options = CheckpointOptions {
            bundle_modules: true,
            file_policy: self.file_policy,
            kill_after: self.kill_after,
            timeout_ms: self.timeout_ms,
            ..CheckpointOptions::default()
        };
        self.sched.put(&mut options.extra);
        super::excluded::put(&self.excluded, &mut options.extra);
        super::epochs::put(&self.epochs, &mut options.extra);
        ImageInfo {
            tool_version: format!("spartan-kernel {}", env!("CARGO_PKG_VERSION")),
            kernel_build_hash: build_hash(),
            kernel_abi_version: crate::ABI_VERSION,
            created: Timestamp {
                seconds: (self.time_ns / 1_000_000_000) as i64,
                nanos: (self.time_ns % 1_000_000_000) as u32,
            },
            task_zero: self.task_zero.0,
            options,
            checkpoint_set: {
                let mut set: Vec<SetMember> = self
                    .tasks
                    .iter()
                    .map(|t| SetMember {
                        task_id: t.task.0,
                        name: t.record.meta.name.clone(),
                        role: Role::Checkpointable,
                    })
                    .collect();
                // Sorted by task id, each once; a member is never listed
                // again as a service or a client.
                for o in &self.others {
                    if !set.iter().any(|m| m.task_id == o.task_id) {
                        set.push(o.clone());
                    }
                }
                set.sort_by_key(|m| m.task_id);
                set
            },
        }
    }

    /// Writes the image to `target` (a directory, or a tar file if
    /// `opts.form` says so), crash-safely.
    pub fn write(&self, target: &Path, opts: WriterOptions) -> Result<Finished, CheckpointError> {
        self.write_with(target, opts, self.image_info(), true, None)
    }

    /// Writes an incremental image on top of the image at `parent`: the
    /// pages `plan` ([`super::epochs::plan`]) keeps are referenced from
    /// the parent, the rest written. Refused if the image at `parent` is
    /// no longer the one the plan was made for.
    pub fn write_incremental(
        &self,
        target: &Path,
        parent: &Path,
        plan: &super::epochs::Incremental,
        opts: WriterOptions,
    ) -> Result<Finished, CheckpointError> {
        self.write_with(target, opts, self.image_info(), true, Some((parent, plan)))
    }

    /// Writes the image as a kernel of format 1.1 did: the kernel state of
    /// each task as a supplement in the manifest's `options.extra`
    /// (`kernel.task.<task id>`) instead of a kernel state record. Kept
    /// only to test that [`restore`](super::restore) still reads such
    /// images; nothing else should write them.
    pub fn write_v1_1_supplements(
        &self,
        target: &Path,
        opts: WriterOptions,
    ) -> Result<Finished, CheckpointError> {
        let mut info = self.image_info();
        // Nor did it know the set's schedule entries (1.3).
        info.options.extra.retain(|k, _| !k.starts_with("kernel."));
        for t in &self.tasks {
            info.options.extra.insert(
                extra_key(t.task.0),
                TaskSupplement::of_state(&t.kernel_state).encode(),
            );
        }
        self.write_with(target, opts, info, false, None)
    }

    fn write_with(
        &self,
        target: &Path,
        opts: WriterOptions,
        info: ImageInfo,
        kernel_states: bool,
        parent: Option<(&Path, &super::epochs::Incremental)>,
    ) -> Result<Finished, CheckpointError> {
        let mut w = match parent {
            None => ImageWriter::create(target, info, opts)?,
            Some((path, plan)) => {
                let w = ImageWriter::create_incremental(target, path, info, opts)?;
                if w.parent_digest() != Some(plan.parent_digest) {
                    return Err(CheckpointError::Inconsistent(format!(
                        "parent {}: replaced since the checkpoint began (manifest digest {}, was {})",
                        path.display(),
                        w.parent_digest().unwrap_or(plan.parent_digest),
                        plan.parent_digest
                    )));
                }
                w
            }
        };
        for content in &self.file_contents {
            w.add_file_backup(content)?;
        }
        for t in &self.tasks {
            let module = w.add_module(&t.module)?;
            for area in &t.space.areas {
                if let Some((_, plan)) = parent
                    && super::epochs::feed_area(&mut w, plan, t.task.0, area)?
                {
                    continue;
                }
                // Pages still pending after a lazy restore are read from
                // its image here, off the freeze.
                for page in area.stored_pages() {
                    let (index, page) = page.map_err(|lost| {
                        CheckpointError::Inconsistent(format!(
                            "task {}: area {:#x}: a page of the image it was restored from is lost: {lost}",
                            t.task.0, area.base
                        ))
                    })?;
                    let index = u32::try_from(index).map_err(|_| {
                        CheckpointError::Inconsistent(format!(
                            "task {}: page {index} of area {:#x}",
                            t.task.0, area.base
                        ))
                    })?;
                    // By reference: a worker copies it, and duplicates
                    // are found by a fast key and a byte comparison.
                    w.add_shared_page(t.task.0, area.base, index, page)?;
                }
            }
            let mut record = t.record.clone();
            record.meta.module = module;
            w.add_task(record)?;
            if kernel_states {
                w.add_kernel_state(t.kernel_state.clone())?;
            }
        }
        Ok(w.finish()?)
    }
}
