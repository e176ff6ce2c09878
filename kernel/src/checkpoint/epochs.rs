//! Checkpoint epochs and incremental images (issue 15).
//!
//! Every capture gets an [`Epoch`] token (the kernel run's id and a
//! counter), recorded in the image's manifest for each task of the set
//! (`options.extra` key `kernel.epoch.<task id>`, FORMAT.md section 4
//! item 7). The capture takes the dirty bits of each task's primary and
//! anonymous areas and keeps them in the task's [`DirtyHistory`] under the
//! area's identity. After an image is written from a capture the kernel
//! is told its manifest digest ([`note_written`]); after a restore the
//! restored task's history starts at the restored image's epoch for it,
//! with that image's digest ([`restored`]).
//!
//! [`plan`] then answers, for a parent image, which pages of each captured
//! task may be referenced from it: only when the kernel knows the parent
//! holds this very task at an epoch of its history (the parent's manifest
//! digest is one the kernel wrote or restored for the task, and the epoch
//! the parent records for it is that image's) are the pages not dirtied
//! since kept from the parent. Anything it cannot prove is written in
//! full inside the incremental image, with a note saying why: a task the
//! parent was not written from in this run (or restored from), an epoch
//! older than the history, an area created since the parent (a destroyed
//! and recreated area is a new one), an area mapping a shared backing
//! (its dirty bits are shared with other spaces).
//!
//! Matching on the digest as well as the epoch closes a hole the epoch
//! alone leaves: two simulation runs with one seed have the same run id
//! (it is derived from the seed, so the kernel's entropy stream, which
//! tasks observe, is untouched), yet they may differ by their host
//! requests; an image of one run is never taken as a parent in the other
//! unless the other wrote or restored that very image.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use snapfmt::{Digest, Image};

use super::capture::Capture;
use super::dirty_history::{DirtyHistory, Epoch};
use crate::kernel::{ClockMode, Kernel, KernelConfig};
use crate::mm::{AreaId, DirtyBits, PAGE_SIZE};
use crate::task::TaskId;

/// Prefix of the manifest's `options.extra` keys naming each task's epoch.
pub const EXTRA_PREFIX: &str = "kernel.epoch.";

/// The `options.extra` key of task `task`'s epoch.
pub fn extra_key(task: u64) -> String {
    format!("{EXTRA_PREFIX}{task}")
}

/// Images remembered per task (written from one of its captures, or
/// restored into it).
const KNOWN_IMAGES: usize = 64;

/// A captured task's epoch and the identities of its areas at the capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEpoch {
    pub epoch: Epoch,
    /// (base, identity, maps a shared backing) per area, ascending base.
    pub areas: Vec<(u64, AreaId, bool)>,
}

#[derive(Clone, Debug)]
struct KnownImage {
    digest: Digest,
    /// The task's id in that image.
    image_task: u64,
    epoch: Epoch,
}

#[derive(Clone, Debug, Default)]
struct TaskBook {
    history: DirtyHistory<AreaId>,
    images: VecDeque<KnownImage>,
}

impl TaskBook {
    fn know(&mut self, image: KnownImage) {
        if self.images.len() == KNOWN_IMAGES {
            self.images.pop_front();
        }
        self.images.push_back(image);
    }
}

/// The kernel's epochs: the run id, the capture counter and each task's
/// history.
#[derive(Clone, Debug)]
pub struct EpochBook {
    run: u64,
    next_seq: u64,
    tasks: BTreeMap<TaskId, TaskBook>,
}

impl EpochBook {
    pub(crate) fn new(config: &KernelConfig) -> EpochBook {
        EpochBook {
            run: run_id(config),
            next_seq: 1,
            tasks: BTreeMap::new(),
        }
    }

    /// This kernel run's id.
    pub fn run(&self) -> u64 {
        self.run
    }

    fn next_epoch(&mut self) -> Epoch {
        let seq = self.next_seq;
        self.next_seq += 1;
        Epoch { run: self.run, seq }
    }

    /// The task ended: its history goes.
    pub(crate) fn forget(&mut self, task: TaskId) {
        self.tasks.remove(&task);
    }
}

/// The run id: in simulation derived from the seed (two runs with one
/// seed are the same run), in real time from the host's randomness. Never
/// from the kernel's entropy stream (see `dirty_history`).
fn run_id(config: &KernelConfig) -> u64 {
    let bytes = match config.clock {
        ClockMode::Simulation => {
            let mut b = b"spartan checkpoint epoch run ".to_vec();
            b.extend_from_slice(&config.seed.to_le_bytes());
            Digest::of(&b).0
        }
        ClockMode::RealTime => {
            use std::hash::BuildHasher;
            // RandomState's keys come from the OS; the time and the
            // process id make two kernels of one process differ too.
            let random = std::collections::hash_map::RandomState::new();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let h = random.hash_one((now, std::process::id()));
            let mut b = h.to_le_bytes().to_vec();
            b.extend_from_slice(&random.hash_one(h).to_le_bytes());
            Digest::of(&b).0
        }
    };
    u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]))
}

/// Gives the capture its epoch and takes each task's dirty bits into its
/// history. Called by [`capture`](super::capture) once every task was
/// captured, while the set is still stopped.
pub(crate) fn take(k: &mut Kernel, tasks: &[TaskId]) -> BTreeMap<u64, TaskEpoch> {
    let epoch = k.epochs.next_epoch();
    let mut out = BTreeMap::new();
    for &t in tasks {
        let Some(space) = crate::guest::guest_space(k, t) else {
            continue;
        };
        let areas = space.area_ids();
        let bits = space.take_dirty();
        k.epochs
            .tasks
            .entry(t)
            .or_default()
            .history
            .record(epoch, bits);
        out.insert(t.0, TaskEpoch { epoch, areas });
    }
    out
}

/// Records each task's epoch in the manifest's `options.extra`.
pub(crate) fn put(epochs: &BTreeMap<u64, TaskEpoch>, extra: &mut BTreeMap<String, String>) {
    for (task, e) in epochs {
        extra.insert(extra_key(*task), e.epoch.to_text());
    }
}

/// The epochs an image records, by task id in the image, for the members
/// `members`; a malformed entry (or one naming no member) is an error
/// naming it.
pub fn from_extra(
    extra: &BTreeMap<String, String>,
    members: &std::collections::BTreeSet<u64>,
) -> Result<BTreeMap<u64, Epoch>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in extra.range(EXTRA_PREFIX.to_string()..) {
        let Some(task) = key.strip_prefix(EXTRA_PREFIX) else {
            break;
        };
        let id: u64 = task
            .parse()
            .map_err(|_| format!("options.extra {key:?}: not a task id"))?;
        if !members.contains(&id) {
            return Err(format!(
                "options.extra {key:?}: task {id} is not a member of the set"
            ));
        }
        let epoch = Epoch::parse(value).map_err(|e| format!("options.extra {key:?}: {e}"))?;
        out.insert(id, epoch);
    }
    Ok(out)
}

/// Tells the kernel that the image with manifest digest `digest` was
/// written from `capture`: an incremental checkpoint may then name it as
/// its parent.
pub fn note_written(k: &mut Kernel, capture: &Capture, digest: Digest) {
    for (task, e) in &capture.epochs {
        if let Some(book) = k.epochs.tasks.get_mut(&TaskId(*task)) {
            book.know(KnownImage {
                digest,
                image_task: *task,
                epoch: e.epoch,
            });
        }
    }
}

/// After a restore of the image with manifest digest `digest`: each
/// restored task whose image recorded an epoch (`epochs`, by id in the
/// image) starts its history there, with the areas it has now and no
/// page dirty.
pub(crate) fn restored(
    k: &mut Kernel,
    digest: Digest,
    epochs: &BTreeMap<u64, Epoch>,
    tasks: &BTreeMap<u64, TaskId>,
) {
    for (old, new) in tasks {
        k.epochs.forget(*new);
        let Some(epoch) = epochs.get(old) else {
            continue;
        };
        let Some(space) = crate::guest::guest_space(k, *new) else {
            continue;
        };
        // Restoring installs pages without marking them; whatever is
        // dirty now was not written by the task.
        let _ = space.take_dirty();
        let ids: Vec<AreaId> = space.area_ids().into_iter().map(|(_, id, _)| id).collect();
        let book = k.epochs.tasks.entry(*new).or_default();
        book.history.reset_to(*epoch, ids);
        book.know(KnownImage {
            digest,
            image_task: *old,
            epoch: *epoch,
        });
    }
}

/// What an incremental image keeps from its parent for one task.
#[derive(Clone, Debug)]
pub struct TaskPlan {
    /// The task's id in the parent.
    pub parent_task: u64,
    /// Per area base: the pages dirtied since the parent (written); every
    /// other page of the area is kept from the parent. Areas not listed
    /// are written in full.
    pub keep: BTreeMap<u64, DirtyBits>,
}

/// What an incremental image keeps from its parent.
#[derive(Clone, Debug)]
pub struct Incremental {
    /// The parent's manifest digest (the writer checks it is still the
    /// image it opens).
    pub parent_digest: Digest,
    /// By task id; a task not listed is written in full.
    pub tasks: BTreeMap<u64, TaskPlan>,
    /// Why tasks or areas are written in full, one line each.
    pub notes: Vec<String>,
}

/// Opens and checks a parent image before a checkpoint: its manifest (its
/// epoch entries well formed), its own parents (each opened and matched by
/// manifest digest) and every task record and kernel state record. Chunk
/// contents are not read here (`snapinspect validate` does that).
pub fn check_parent(path: &Path) -> Result<Image, String> {
    let shown = path.display();
    let image = Image::open(path).map_err(|e| format!("parent {shown}: {e}"))?;
    let members = image.task_ids().into_iter().collect();
    from_extra(&image.manifest().options.extra, &members)
        .map_err(|e| format!("parent {shown}: {e}"))?;
    image
        .parent_chain()
        .map_err(|e| format!("parent {shown}: {e}"))?;
    for id in image.task_ids() {
        image
            .task(id)
            .and_then(|_| image.kernel_state(id))
            .map_err(|e| format!("parent {shown}: {e}"))?;
    }
    Ok(image)
}

/// Which pages of `capture` may be referenced from `parent` (see the
/// module docs). The parent's epochs must be well formed.
pub fn plan(k: &Kernel, capture: &Capture, parent: &Image) -> Result<Incremental, String> {
    let digest = parent.manifest_digest();
    let members: std::collections::BTreeSet<u64> = parent.task_ids().into_iter().collect();
    let recorded = from_extra(&parent.manifest().options.extra, &members)
        .map_err(|e| format!("parent {}: {e}", parent.path().display()))?;
    let mut out = Incremental {
        parent_digest: digest,
        tasks: BTreeMap::new(),
        notes: Vec::new(),
    };
    for t in &capture.tasks {
        let id = t.task.0;
        let mut full = |why: String| out.notes.push(format!("task {id} written in full: {why}"));
        let Some(te) = capture.epochs.get(&id) else {
            full("captured without an epoch".into());
            continue;
        };
        let book = k.epochs.tasks.get(&t.task);
        let Some(known) = book.and_then(|b| b.images.iter().rev().find(|i| i.digest == digest))
        else {
            full(
                "the parent was not written from this run of the task, nor restored into it".into(),
            );
            continue;
        };
        if recorded.get(&known.image_task) != Some(&known.epoch) {
            full(format!(
                "the parent does not record epoch {} for its task {}",
                known.epoch.to_text(),
                known.image_task
            ));
            continue;
        }
        let Some(since) = book.and_then(|b| b.history.since(known.epoch)) else {
            full(format!(
                "the parent's epoch {} is older than the task's last {} checkpoints",
                known.epoch.to_text(),
                super::dirty_history::HISTORY_LEN
            ));
            continue;
        };
        let parent_areas = parent
            .task(known.image_task)
            .map_err(|e| format!("parent {}: {e}", parent.path().display()))?;
        let mut keep = BTreeMap::new();
        for &(base, area, shared) in &te.areas {
            let why = if shared {
                Some("maps a shared backing")
            } else if !parent_areas.areas.iter().any(|a| a.base == base) {
                Some("is not in the parent")
            } else if !since.contains_key(&area) {
                Some("was created since the parent")
            } else {
                None
            };
            match why {
                Some(why) => out.notes.push(format!(
                    "task {id} area {base:#x} written in full: it {why}"
                )),
                None => {
                    keep.insert(base, since[&area].clone());
                }
            }
        }
        out.tasks.insert(
            id,
            TaskPlan {
                parent_task: known.image_task,
                keep,
            },
        );
    }
    Ok(out)
}

/// Feeds one area of a task of an incremental image: `Ok(true)` when the
/// plan keeps it (its clean pages referenced from the parent, its dirty
/// ones written), `Ok(false)` when it is to be written in full.
pub(crate) fn feed_area(
    w: &mut snapfmt::ImageWriter,
    plan: &Incremental,
    task: u64,
    area: &crate::mm::AreaSnapshot,
) -> Result<bool, super::CheckpointError> {
    let Some(tp) = plan.tasks.get(&task) else {
        return Ok(false);
    };
    let Some(dirty) = tp.keep.get(&area.base) else {
        return Ok(false);
    };
    let pages = area.size / PAGE_SIZE;
    w.keep_parent_area(task, area.base, tp.parent_task, |p| {
        u64::from(p) < pages && !dirty.contains(u64::from(p))
    })?;
    for index in dirty.iter().take_while(|&i| i < pages) {
        let at = u32::try_from(index).map_err(|_| {
            super::CheckpointError::Inconsistent(format!(
                "task {task}: page {index} of area {:#x}",
                area.base
            ))
        })?;
        // A dirty page was written, so it is in (not pending): a lost one
        // would be a bug, reported as such.
        let page = area.page(index).map_err(|lost| {
            super::CheckpointError::Inconsistent(format!(
                "task {task}: area {:#x}: dirty page {index} is lost: {lost}",
                area.base
            ))
        })?;
        w.add_page(task, area.base, at, &page[..])?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn extra(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn epoch_entries_are_read_and_a_bad_one_is_named() {
        let members = BTreeSet::from([3, 4]);
        let e = Epoch { run: 0xab, seq: 9 };
        let got = from_extra(
            &extra(&[
                ("kernel.epoch.3", &e.to_text()),
                ("kernel.sched.cursor", "1"),
                ("kernel.wait_order", ""),
            ]),
            &members,
        )
        .unwrap();
        assert_eq!(got, BTreeMap::from([(3, e)]));
        for (key, value, what) in [
            ("kernel.epoch.x", "1.1", "not a task id"),
            ("kernel.epoch.5", "1.1", "not a member"),
            ("kernel.epoch.4", "1", "RUN.SEQ"),
            ("kernel.epoch.4", "g.1", "run id"),
        ] {
            let err = from_extra(&extra(&[(key, value)]), &members).unwrap_err();
            assert!(err.contains(key) && err.contains(what), "{err}");
        }
    }

    #[test]
    fn run_ids_come_from_the_seed_in_simulation_only() {
        let sim = |seed| run_id(&KernelConfig::simulation(seed));
        assert_eq!(sim(1), sim(1));
        assert_ne!(sim(1), sim(2));
        let real = || {
            run_id(&KernelConfig {
                clock: ClockMode::RealTime,
                ..KernelConfig::simulation(1)
            })
        };
        assert_ne!(real(), real(), "two real-time kernels share a run id");
        assert_ne!(real(), sim(1));
    }
}
