//! Lazy restore: restored tasks run before their pages are loaded.
//!
//! [`restore`](super::restore) with [`PageLoading::Background`] or
//! [`PageLoading::OnTouch`] installs no page. Each restored area gets its
//! stored pages *pending* (mm's `lazy.rs`) in an [`AreaSource`], which
//! reads a page from the image on first touch: [`Image::read_area_page`]
//! reads the page's chunk, checks it against its address and decompresses
//! it (the image keeps a few chunks cached, so the neighbours of a touched
//! page come cheap). With `Background`, a [`LazyFill`] thread also decodes
//! every area in order, and the scheduler installs what it has decoded
//! between slices ([`LazyFill::pump`]) into the pages still pending (a
//! live kernel idling because every task is blocked is woken for each
//! batch, so the fill does not wait for the tasks).
//!
//! Nothing a task observes depends on which way a page came in or when:
//! the bytes are the image's either way, a page coming in is not a write
//! (no dirty bit), and the fill runs no task code.
//!
//! A page the image cannot give (its chunk fails its checks, the image
//! was removed or changed) ends the restore: the access faults with
//! [`Fault::Lost`](crate::mm::Fault::Lost) (the thread traps), the source
//! records why, and at the next pump, right after that slice, every task
//! of the restore still alive is killed with the reason in the kernel log.
//! No task of the set is left running with memory it cannot read. The
//! image must therefore stay in place until its pages are all in
//! ([`LazyFill::pending_pages`]); `--err-resume` does not apply here (it
//! covers services refusing their part, not lost memory).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use snapfmt::{AreaRecord, Image, PAGE_SIZE};

use crate::guest::guest_space;
use crate::kernel::Kernel;
use crate::mm::{LostPage, Page, PageSource, Pending};
use crate::sched::clock::Waker;
use crate::task::TaskId;

/// How a restore loads the pages of the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageLoading {
    /// Every page before the tasks exist (the restore takes time in
    /// proportion to the memory).
    #[default]
    Eager,
    /// None at first: a page comes in on first touch, and a background
    /// thread loads the rest in order.
    Background,
    /// None at first, and only on first touch (no background thread: the
    /// image stays in use while any page is pending). For tests, and for
    /// tasks that touch little of a large image.
    OnTouch,
}

impl PageLoading {
    /// Whether pages are left pending at restore.
    pub fn is_lazy(self) -> bool {
        self != PageLoading::Eager
    }
}

/// What one lazy restore shares between its sources, its fill thread and
/// the scheduler: the image's path and the first lost page's reason.
#[derive(Debug)]
pub(crate) struct LazyState {
    image: PathBuf,
    failed: AtomicBool,
    why: Mutex<Option<String>>,
}

impl LazyState {
    pub(crate) fn new(image: PathBuf) -> Arc<LazyState> {
        Arc::new(LazyState {
            image,
            failed: AtomicBool::new(false),
            why: Mutex::new(None),
        })
    }

    /// Records that a page was lost (the first reason is kept).
    fn fail(&self, why: String) {
        let mut w = self.why.lock().unwrap_or_else(|e| e.into_inner());
        w.get_or_insert(why);
        self.failed.store(true, Ordering::Release);
    }

    fn failed(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let w = self.why.lock().unwrap_or_else(|e| e.into_inner());
        Some(w.clone().unwrap_or_default())
    }
}

/// The pending pages of one restored area: read from its record's page map.
pub(crate) struct AreaSource {
    image: Arc<Image>,
    /// The task's id in the image (for the reason of a lost page).
    task: u64,
    area: AreaRecord,
    state: Arc<LazyState>,
}

impl std::fmt::Debug for AreaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AreaSource")
            .field("image", &self.state.image)
            .field("task", &self.task)
            .field("base", &self.area.base)
            .finish()
    }
}

impl PageSource for AreaSource {
    fn read(&self, index: u64, out: &mut Page) -> Result<(), LostPage> {
        let r = u32::try_from(index)
            .map_err(|_| snapfmt::Error::Usage(format!("page index {index} out of range")))
            .and_then(|page| self.image.read_area_page(&self.area, page, out));
        r.map(|_| ()).map_err(|e| {
            let why = format!(
                "task {} page {:#x}: {e}",
                self.task,
                self.area.base + index * PAGE_SIZE as u64
            );
            self.state.fail(why.clone());
            LostPage(why)
        })
    }
}

impl AreaSource {
    /// The source of `area` of task `task` (its id in the image) and the
    /// pending state of its stored pages (those inside the area).
    pub(crate) fn pending(
        image: &Arc<Image>,
        task: u64,
        area: &AreaRecord,
        state: &Arc<LazyState>,
    ) -> (Arc<AreaSource>, Pending) {
        let source = Arc::new(AreaSource {
            image: Arc::clone(image),
            task,
            area: area.clone(),
            state: Arc::clone(state),
        });
        let pages = area.size / PAGE_SIZE as u64;
        let ranges = area.pages.runs.iter().map(|r| {
            let first = u64::from(r.first_page).min(pages);
            first..(first + u64::from(r.count)).min(pages)
        });
        let pending = Pending::from_ranges(Arc::clone(&source) as Arc<dyn PageSource>, ranges);
        (source, pending)
    }
}

/// One area for the fill: where its pages go and what they are.
pub(crate) struct FillTarget {
    /// The restored task whose space holds the area (a shared area: the
    /// first member of its group, whose backing every member maps).
    pub(crate) task: TaskId,
    /// The area's record and the source its pages are pending in.
    pub(crate) source: Arc<AreaSource>,
}

/// Decoded pages of one target, in page order.
struct Batch {
    target: usize,
    pages: Vec<(u64, Arc<Page>)>,
}

/// Pages per batch the fill thread hands over.
const BATCH_PAGES: usize = 64;
/// Batches decoded ahead of the scheduler (bounds the fill's memory).
const BATCHES_AHEAD: usize = 16;
/// Batches installed per pump (bounds the pause between slices).
const BATCHES_PER_PUMP: usize = 16;
/// Why the fill thread stops when the scheduler let go (the receiver was
/// dropped).
const GONE: &str = "the restore's fill is no longer wanted";

/// A lazy restore in progress: its tasks, its sources and, with
/// [`PageLoading::Background`], the thread decoding the image.
pub struct LazyFill {
    state: Arc<LazyState>,
    tasks: Vec<TaskId>,
    targets: Vec<FillTarget>,
    rx: Option<Receiver<Batch>>,
    thread: Option<JoinHandle<()>>,
}

/// What a pump found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpEnd {
    /// Pages are still pending (or being decoded).
    Running,
    /// Every page is in, or every task is gone: the fill is over.
    Done,
    /// A page was lost: the restore's tasks were killed.
    Failed(String),
}

impl LazyFill {
    /// Starts the fill of a restore whose `tasks` were just created, with
    /// a background thread if `loading` asks for one.
    pub(crate) fn start(
        image: &Arc<Image>,
        state: Arc<LazyState>,
        tasks: Vec<TaskId>,
        targets: Vec<FillTarget>,
        loading: PageLoading,
        waker: Option<Waker>,
    ) -> LazyFill {
        let (rx, thread) = if loading == PageLoading::Background && !targets.is_empty() {
            let (tx, rx) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
            let areas: Vec<Arc<AreaSource>> =
                targets.iter().map(|t| Arc::clone(&t.source)).collect();
            let image = Arc::clone(image);
            let st = Arc::clone(&state);
            let spawned = std::thread::Builder::new()
                .name("spartan-lazy-fill".into())
                .spawn(move || fill_thread(&image, &areas, &st, &tx, waker.as_ref()));
            match spawned {
                Ok(h) => (Some(rx), Some(h)),
                // No thread: pages still come in on first touch.
                Err(_) => (None, None),
            }
        } else {
            (None, None)
        };
        LazyFill {
            state,
            tasks,
            targets,
            rx,
            thread,
        }
    }

    /// The restore's tasks (new ids).
    pub fn tasks(&self) -> &[TaskId] {
        &self.tasks
    }

    /// Pages of the restore still pending in the image, summed over its
    /// live tasks' own stores and the shared backings they map.
    pub fn pending_pages(&self, k: &Kernel) -> u64 {
        self.tasks
            .iter()
            .filter_map(|t| crate::guest::guest_space_ref(k, *t))
            .map(|s| {
                let (own, shared) = s.pending_pages();
                own + shared
            })
            .sum()
    }

    /// Between slices: ends the restore if a page was lost; else installs
    /// what the fill thread decoded (a bounded amount) into the pages
    /// still pending, and says whether the fill is over.
    pub fn pump(&mut self, k: &mut Kernel) -> PumpEnd {
        if let Some(why) = self.state.failed() {
            self.kill_all(k, &why);
            return PumpEnd::Failed(why);
        }
        if !self.tasks.iter().any(|t| k.task(*t).is_some()) {
            return PumpEnd::Done;
        }
        let Some(rx) = &self.rx else {
            return if self.pending_pages(k) == 0 {
                PumpEnd::Done
            } else {
                PumpEnd::Running
            };
        };
        for _ in 0..BATCHES_PER_PUMP {
            match rx.try_recv() {
                Ok(batch) => {
                    let t = &self.targets[batch.target];
                    if let Some(space) = guest_space(k, t.task) {
                        for (index, page) in batch.pages {
                            space.fill_pending(t.source.area.base, &*t.source, index, page);
                        }
                    }
                }
                Err(TryRecvError::Empty) => return PumpEnd::Running,
                Err(TryRecvError::Disconnected) => {
                    if let Some(h) = self.thread.take() {
                        let _ = h.join();
                    }
                    // A failure found by the thread was recorded before it
                    // stopped.
                    if let Some(why) = self.state.failed() {
                        self.kill_all(k, &why);
                        return PumpEnd::Failed(why);
                    }
                    self.rx = None;
                    return if self.pending_pages(k) == 0 {
                        PumpEnd::Done
                    } else {
                        PumpEnd::Running
                    };
                }
            }
        }
        PumpEnd::Running
    }

    /// Kills every task of the restore still alive, saying why.
    fn kill_all(&mut self, k: &mut Kernel, why: &str) {
        for &t in &self.tasks {
            if k.task(t).is_none() {
                continue;
            }
            let name = k.task(t).map(|x| x.name.clone()).unwrap_or_default();
            let seen = k.peek_task_id_seen_by(t, t);
            k.log_line(
                t,
                format!(
                    "task {seen} ({name}) killed: its restore from {} lost a page: {why}",
                    self.state.image.display()
                ),
            );
            let _ = k.kill_task(t);
        }
        self.rx = None;
    }
}

impl Drop for LazyFill {
    fn drop(&mut self) {
        // Dropping the receiver stops the thread at its next batch.
        self.rx = None;
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// The fill thread: decodes every target area in order and hands its
/// stored pages over in batches; stops when the scheduler lets go.
fn fill_thread(
    image: &Image,
    areas: &[Arc<AreaSource>],
    state: &LazyState,
    tx: &SyncSender<Batch>,
    waker: Option<&Waker>,
) {
    // A live kernel idling (every task blocked) wakes to install each
    // batch; the batch is handed over first, so the pump finds it.
    let send = |batch: Batch| {
        tx.send(batch)
            .map_err(|_| snapfmt::Error::Usage(GONE.into()))?;
        if let Some(w) = waker {
            w.ring();
        }
        Ok(())
    };
    for (target, source) in areas.iter().enumerate() {
        let area = &source.area;
        if area.pages.runs.is_empty() {
            continue;
        }
        let mut batch = Vec::with_capacity(BATCH_PAGES);
        let r = image.for_each_page(area, 1, |index, bytes| {
            // Pages in no run were never pending; a stored page of zeros
            // still goes, so that it is pending no longer.
            if bytes.iter().all(|&b| b == 0) && area.pages.lookup(index).is_none() {
                return Ok(());
            }
            let Ok(page) = Arc::<Page>::try_from(Arc::<[u8]>::from(bytes)) else {
                return Err(snapfmt::Error::Usage("page of the wrong size".into()));
            };
            batch.push((u64::from(index), page));
            if batch.len() == BATCH_PAGES {
                let pages = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_PAGES));
                send(Batch { target, pages })?;
            }
            Ok(())
        });
        let r = r.and_then(|()| {
            if batch.is_empty() {
                return Ok(());
            }
            send(Batch {
                target,
                pages: batch,
            })
        });
        match r {
            Ok(()) => {}
            Err(snapfmt::Error::Usage(m)) if m == GONE => return,
            Err(e) => {
                state.fail(format!("task {} area {:#x}: {e}", source.task, area.base));
                return;
            }
        }
    }
}
