//! The streaming, parallel, crash-safe image writer.
//!
//! The caller feeds pages one at a time ([`ImageWriter::add_page`], or
//! [`ImageWriter::add_shared_page`] for pages it shares by reference);
//! zero pages are dropped, every other page is appended to the open chunk
//! as it is (a shared page by reference: the worker copies it). Full chunks go to a pool of threads ([`crate::compress`]) through a
//! bounded queue, so memory use is bounded by a few chunks whatever the
//! image size. The pool hashes each page, addresses and compresses the
//! chunk; the feeding thread only copies. Deduplication then happens as
//! chunks come back, strictly in chunk order (so the output never depends
//! on thread timing): a page whose digest was stored before is pointed at
//! the stored slot, and a chunk that held such pages is rebuilt without
//! them and compressed again (rare: only duplicate pages cost that); that
//! pipeline is `pipeline.rs`. Task records (each followed by its kernel
//! state, `objects.rs`) and the manifest are written by
//! [`ImageWriter::finish`], the manifest last, and the temporary sibling is
//! then fsynced and renamed into place ([`crate::sink`]).

mod finish;
mod objects;
mod parent;
mod pipeline;

use crate::compress::{Done, Pool, SharedPage};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::header::ObjectKind;
use crate::limits::{MAX_CHUNK_PAGES, PAGE_SIZE};
use crate::object::{self, MANIFEST_PATH};
use crate::reader::Image;
use crate::records::*;
use crate::sink::{ImageForm, Sink};
use crate::version::FORMAT_VERSION;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The manifest fields the caller supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub tool_version: String,
    pub kernel_build_hash: Digest,
    pub kernel_abi_version: u32,
    pub created: Timestamp,
    pub task_zero: u64,
    pub options: CheckpointOptions,
    /// The checkpoint set; every `Role::Checkpointable` member needs a
    /// task record ([`ImageWriter::add_task`]) and vice versa.
    pub checkpoint_set: Vec<SetMember>,
}

/// How to write.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub form: ImageForm,
    /// Replace an existing image at the target path.
    pub overwrite: bool,
    /// zstd level for chunks, modules, file backups and task records.
    pub level: i32,
    /// Compression threads.
    pub threads: usize,
    /// Pages per chunk (1..=[`MAX_CHUNK_PAGES`]).
    pub chunk_pages: u32,
    /// Store a directory image's chunks in a few pack files
    /// (`packs/<n>.spp`, [`ChunkHome::Packed`], since format 1.4) instead
    /// of one file each (`chunks/<address>.spc`). On by default: creating
    /// thousands of chunk files cost the I/O thread as much CPU as the
    /// compression (issue 15). A tar image always has chunk members.
    pub pack_chunks: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            form: ImageForm::Directory,
            overwrite: false,
            level: 3,
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(16),
            chunk_pages: crate::limits::DEFAULT_CHUNK_PAGES,
            pack_chunks: true,
        }
    }
}

/// Counts of what the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Pages passed to `add_page`.
    pub pages_fed: u64,
    /// Of those, all-zero pages (not stored).
    pub zero_pages: u64,
    /// Of those, duplicates of a page already stored (not stored again).
    pub duplicate_pages: u64,
    /// Pages kept from the parent image.
    pub parent_pages: u64,
    /// Chunk files written.
    pub chunks_written: u64,
    /// Uncompressed bytes in written chunks.
    pub chunk_content_bytes: u64,
    /// Stored bytes of written chunk bodies.
    pub chunk_stored_bytes: u64,
}

/// What [`ImageWriter::finish`] returns.
#[derive(Debug, Clone)]
pub struct Finished {
    /// SHA-256 of the manifest body: the image's identity, which an
    /// incremental child records.
    pub manifest_digest: Digest,
    pub stats: WriteStats,
}

/// Who a fed page belongs to: task id, area base, page index.
type Owner = (u64, u64, u32);

/// What deduplication did to a chunk.
enum Dedup {
    /// Every page is new: write the chunk as compressed.
    Keep,
    /// Some pages were duplicates: rebuilt and sent to be compressed again.
    Rebuilt,
    /// Every page was a duplicate: no chunk.
    Removed,
}

struct ParentState {
    image: Image,
    reference: ParentRef,
    /// Parent chunk index -> our chunk index.
    chunk_map: HashMap<u32, u32>,
}

/// Writes one image. Dropping it without [`finish`](Self::finish) removes
/// the temporary and leaves nothing behind.
pub struct ImageWriter {
    target: PathBuf,
    info: ImageInfo,
    opts: WriterOptions,
    sink: Sink,
    pool: Pool,
    in_flight: usize,
    reorder: BTreeMap<u32, Done>,
    next_write: u32,
    chunks: Vec<Option<ChunkEntry>>,
    open: Vec<u8>,
    /// The open chunk's pages when they are shared pages (then `open` is
    /// empty); a chunk holds pages of one kind.
    open_pages: Vec<SharedPage>,
    /// Owner `(task, area base, page index)` of each page of `open`.
    open_owners: Vec<Owner>,
    /// Owners of the pages of chunks sent but not yet deduplicated.
    owners: BTreeMap<u32, Vec<Owner>>,
    /// Chunks that turned out to hold only duplicates (no chunk entry).
    removed: std::collections::BTreeSet<u32>,
    spare: Vec<Vec<u8>>,
    /// Chunk file buffers, written and handed back for reuse.
    spare_files: Vec<Vec<u8>>,
    dedup: HashMap<Digest, PageLoc>,
    /// Stored shared pages by XXH3-128 key: the first stored page of each
    /// key, kept to compare the bytes of a later page with that key.
    dedup_shared: HashMap<u128, (PageLoc, SharedPage)>,
    area_pages: BTreeMap<(u64, u64), Vec<(u32, PageLoc)>>,
    tasks: BTreeMap<u64, TaskRecord>,
    kernel_states: BTreeMap<u64, KernelTaskState>,
    objects: BTreeMap<String, ObjectEntry>,
    parent: Option<ParentState>,
    stats: WriteStats,
}

impl ImageWriter {
    /// Starts a full image at `target`. Fails with
    /// [`Error::AlreadyExists`] if something is there and
    /// `opts.overwrite` is false.
    pub fn create(
        target: impl AsRef<Path>,
        info: ImageInfo,
        opts: WriterOptions,
    ) -> Result<ImageWriter> {
        let target = target.as_ref().to_path_buf();
        if opts.chunk_pages == 0 || opts.chunk_pages > MAX_CHUNK_PAGES {
            return Err(Error::Usage(format!(
                "chunk_pages must be 1..={MAX_CHUNK_PAGES}, not {}",
                opts.chunk_pages
            )));
        }
        let pool = Pool::new(opts.threads, opts.level).map_err(|e| Error::io(&target, e))?;
        let sink = Sink::create(&target, opts.form, opts.overwrite, opts.pack_chunks)?;
        Ok(ImageWriter {
            target,
            info,
            sink,
            pool,
            in_flight: 0,
            reorder: BTreeMap::new(),
            next_write: 0,
            chunks: Vec::new(),
            open: Vec::new(),
            open_pages: Vec::new(),
            open_owners: Vec::new(),
            owners: BTreeMap::new(),
            removed: std::collections::BTreeSet::new(),
            spare: Vec::new(),
            spare_files: Vec::new(),
            dedup: HashMap::new(),
            dedup_shared: HashMap::new(),
            area_pages: BTreeMap::new(),
            tasks: BTreeMap::new(),
            kernel_states: BTreeMap::new(),
            objects: BTreeMap::new(),
            parent: None,
            stats: WriteStats::default(),
            opts,
        })
    }

    /// Starts an incremental image at `target` on top of the image at
    /// `parent` (which is opened and checked). The parent is recorded by
    /// its path relative to `target`'s directory when both share it, else
    /// by its absolute path, and by its manifest digest.
    pub fn create_incremental(
        target: impl AsRef<Path>,
        parent: impl AsRef<Path>,
        info: ImageInfo,
        opts: WriterOptions,
    ) -> Result<ImageWriter> {
        let target = target.as_ref();
        let parent = parent.as_ref();
        let image = Image::open(parent)?;
        let path = relative_parent_path(target, parent)?;
        let reference = ParentRef {
            path,
            manifest_digest: image.manifest_digest(),
        };
        let mut w = ImageWriter::create(target, info, opts)?;
        w.parent = Some(ParentState {
            image,
            reference,
            chunk_map: HashMap::new(),
        });
        Ok(w)
    }

    /// Adds one page of memory: page `page_index` of the area at
    /// `area_base` of task `task_id`. `page` must be 4096 bytes. Pages
    /// may come in any order; each page at most once.
    pub fn add_page(
        &mut self,
        task_id: u64,
        area_base: u64,
        page_index: u32,
        page: &[u8],
    ) -> Result<()> {
        if page.len() != PAGE_SIZE {
            return Err(Error::Usage(format!(
                "a page is {PAGE_SIZE} bytes, not {}",
                page.len()
            )));
        }
        self.stats.pages_fed += 1;
        if is_zero(page) {
            self.stats.zero_pages += 1;
            return Ok(());
        }
        if !self.open_pages.is_empty() {
            self.flush_open()?;
        }
        if self.open.is_empty() {
            self.open = self.spare.pop().unwrap_or_default();
            self.open.clear();
            self.open
                .reserve(self.opts.chunk_pages as usize * PAGE_SIZE);
        }
        self.open.extend_from_slice(page);
        self.open_owners.push((task_id, area_base, page_index));
        if self.open.len() >= self.opts.chunk_pages as usize * PAGE_SIZE {
            self.flush_open()?;
        }
        Ok(())
    }

    /// Adds one page of memory shared by reference, like
    /// [`add_page`](Self::add_page) but without copying it on the calling
    /// thread (a compression worker does) and deduplicated more cheaply:
    /// by an XXH3-128 key, an equal key confirmed by comparing the bytes
    /// with the stored page, which the writer keeps until
    /// [`finish`](Self::finish). The image is the same as with
    /// `add_page`, except that a page fed here and an equal page fed by
    /// `add_page` are both stored.
    pub fn add_shared_page(
        &mut self,
        task_id: u64,
        area_base: u64,
        page_index: u32,
        page: SharedPage,
    ) -> Result<()> {
        self.stats.pages_fed += 1;
        if is_zero(&page[..]) {
            self.stats.zero_pages += 1;
            return Ok(());
        }
        if !self.open.is_empty() {
            self.flush_open()?;
        }
        self.open_pages.push(page);
        self.open_owners.push((task_id, area_base, page_index));
        if self.open_pages.len() >= self.opts.chunk_pages as usize {
            self.flush_open()?;
        }
        Ok(())
    }

    /// Keeps page `page_index` of the area at `area_base` of task
    /// `task_id` as it is in the parent image (a clean page of an
    /// incremental checkpoint). The parent must hold a task with that id
    /// and an area at that base; a zero page there stays zero.
    pub fn keep_parent_page(
        &mut self,
        task_id: u64,
        area_base: u64,
        page_index: u32,
    ) -> Result<()> {
        let (task, area) = self.parent_area("keep_parent_page", task_id, area_base)?;
        let Some(ploc) = task.areas[area].pages.lookup(page_index) else {
            return Ok(());
        };
        let chunk = self.parent_chunk(ploc.chunk)?;
        self.stats.parent_pages += 1;
        let loc = PageLoc {
            chunk,
            slot: ploc.slot,
        };
        self.area_pages
            .entry((task_id, area_base))
            .or_default()
            .push((page_index, loc));
        Ok(())
    }

    /// Stores a WebAssembly module in the image and returns the reference
    /// to put in [`TaskMeta::module`]. Storing the same bytes twice stores
    /// them once.
    pub fn add_module(&mut self, bytes: &[u8]) -> Result<ModuleRef> {
        let sha256 = Digest::of(bytes);
        self.put_blob(ObjectKind::Module, &object::module_path(&sha256), bytes)?;
        Ok(ModuleRef::Embedded {
            sha256,
            len: bytes.len() as u64,
        })
    }

    /// Stores a backed-up file's content and returns its SHA-256 (for
    /// [`FileBackup::sha256`] with `stored: true`).
    pub fn add_file_backup(&mut self, bytes: &[u8]) -> Result<Digest> {
        let sha256 = Digest::of(bytes);
        self.put_blob(
            ObjectKind::FileBackup,
            &object::file_backup_path(&sha256),
            bytes,
        )?;
        Ok(sha256)
    }

    /// Adds a task record. Its areas' page maps must be empty: the writer
    /// builds them from the pages fed for `(task id, area base)`.
    pub fn add_task(&mut self, record: TaskRecord) -> Result<()> {
        let id = record.meta.task_id;
        if record.areas.iter().any(|a| !a.pages.runs.is_empty()) {
            return Err(Error::Usage(format!(
                "task {id}: page maps are built by the writer; leave them empty"
            )));
        }
        if self.tasks.insert(id, record).is_some() {
            return Err(Error::Usage(format!("task {id} added twice")));
        }
        Ok(())
    }

    /// Adds the kernel state of a task (since format 1.2), written as
    /// `tasks/<task id>.spk` next to its task record. The task needs a task
    /// record ([`add_task`](Self::add_task), before or after), and the
    /// state's `calls` and `threads` must be parallel to the record's;
    /// [`finish`](Self::finish) refuses the image otherwise.
    pub fn add_kernel_state(&mut self, state: KernelTaskState) -> Result<()> {
        let id = state.task_id;
        if self.kernel_states.insert(id, state).is_some() {
            return Err(Error::Usage(format!(
                "kernel state of task {id} added twice"
            )));
        }
        Ok(())
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }
}

/// Whether a page is all zero bytes (vectorizes well).
pub(crate) fn is_zero(page: &[u8]) -> bool {
    page.chunks_exact(64)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
        && page.chunks_exact(64).remainder().iter().all(|&b| b == 0)
}

fn relative_parent_path(target: &Path, parent: &Path) -> Result<String> {
    let parent_abs = std::fs::canonicalize(parent).map_err(|e| Error::io(parent, e))?;
    let target_dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let target_dir = std::fs::canonicalize(&target_dir).map_err(|e| Error::io(&target_dir, e))?;
    let s = match parent_abs.strip_prefix(&target_dir) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => parent_abs.to_string_lossy().into_owned(),
    };
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample_page;
    use std::sync::Arc;

    fn info() -> ImageInfo {
        let mut info = crate::sample::sample_info();
        info.checkpoint_set.retain(|m| m.task_id == 7);
        info
    }

    fn task(pages: u64) -> TaskRecord {
        crate::sample::one_area_task(7, pages)
    }

    fn shared(n: u32) -> SharedPage {
        let v = sample_page(n);
        Arc::new(v.try_into().expect("a page"))
    }

    /// Pages 0..n with every third a copy of page 1 and every fifth zero.
    fn content(p: u32) -> SharedPage {
        if p % 5 == 4 {
            Arc::new([0; PAGE_SIZE])
        } else if p % 3 == 2 {
            shared(1)
        } else {
            shared(p)
        }
    }

    fn write(dir: &Path, name: &str, shared_pages: bool, chunk_pages: u32) -> (Image, WriteStats) {
        let path = dir.join(name);
        let opts = WriterOptions {
            chunk_pages,
            threads: 2,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&path, info(), opts).unwrap();
        for p in 0..100 {
            if shared_pages {
                w.add_shared_page(7, 0, p, content(p)).unwrap();
            } else {
                w.add_page(7, 0, p, &content(p)[..]).unwrap();
            }
        }
        w.add_task(task(100)).unwrap();
        let done = w.finish().unwrap();
        (Image::open(&path).unwrap(), done.stats)
    }

    #[test]
    fn shared_pages_make_the_same_image_as_copied_ones() {
        let dir = tempfile::tempdir().unwrap();
        for chunk_pages in [1, 7, 64] {
            let (a, sa) = write(dir.path(), &format!("a{chunk_pages}"), false, chunk_pages);
            let (b, sb) = write(dir.path(), &format!("b{chunk_pages}"), true, chunk_pages);
            assert_eq!(sa, sb, "{chunk_pages} pages per chunk");
            assert!(sb.duplicate_pages > 20, "{sb:?}");
            assert_eq!(a.manifest().chunks, b.manifest().chunks);
            let (ta, tb) = (a.task(7).unwrap(), b.task(7).unwrap());
            assert_eq!(ta.areas, tb.areas);
            for p in 0..100u32 {
                let mut out = [0; PAGE_SIZE];
                b.read_area_page(&tb.areas[0], p, &mut out).unwrap();
                assert_eq!(out[..], content(p)[..], "page {p}");
            }
            assert!(crate::validate(dir.path().join(format!("b{chunk_pages}"))).is_empty());
        }
    }

    #[test]
    fn chunks_fill_several_packs_that_read_and_validate() {
        // Packs of at most 500 bytes (a frame or a few): 60 one-page chunks (some
        // duplicates or zero) make many packs, each frame read alone.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let opts = WriterOptions {
            chunk_pages: 1,
            threads: 2,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&path, info(), opts).unwrap();
        w.sink.set_pack_target(500);
        for p in 0..60 {
            w.add_shared_page(7, 0, p, content(p)).unwrap();
        }
        w.add_task(task(60)).unwrap();
        let done = w.finish().unwrap();
        let image = Image::open(&path).unwrap();
        let m = image.manifest();
        let mut packs = std::collections::BTreeSet::new();
        for c in &m.chunks {
            match c.home {
                ChunkHome::Packed { pack, .. } => packs.insert(pack),
                ref h => panic!("not packed: {h:?}"),
            };
        }
        assert_eq!(m.chunks.len() as u64, done.stats.chunks_written);
        assert!(packs.len() >= 8, "{packs:?}");
        assert_eq!(packs.iter().copied().max(), Some(packs.len() as u32 - 1));
        assert!(!path.join("chunks").exists());
        assert_eq!(crate::validate(&path), vec![]);
        let area = &image.task(7).unwrap().areas[0];
        for p in (0..60u32).rev() {
            let mut out = [0; PAGE_SIZE];
            image.read_area_page(area, p, &mut out).unwrap();
            assert_eq!(out[..], content(p)[..], "page {p}");
        }
        // Unpacked, the same pages and addresses.
        let flat = dir.path().join("flat");
        let opts = WriterOptions {
            chunk_pages: 1,
            threads: 2,
            pack_chunks: false,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&flat, info(), opts).unwrap();
        for p in 0..60 {
            w.add_shared_page(7, 0, p, content(p)).unwrap();
        }
        w.add_task(task(60)).unwrap();
        w.finish().unwrap();
        let f = Image::open(&flat).unwrap();
        let addrs = |m: &Manifest| m.chunks.iter().map(|c| c.content).collect::<Vec<_>>();
        assert_eq!(addrs(f.manifest()), addrs(m));
        assert!(
            f.manifest()
                .chunks
                .iter()
                .all(|c| matches!(c.home, ChunkHome::LocalPlain { .. }))
        );
        assert_eq!(f.task(7).unwrap().areas, image.task(7).unwrap().areas);
    }

    #[test]
    fn a_key_collision_stores_the_page() {
        // A page whose XXH3 key is taken by a page with other bytes (a
        // collision, forged here) is stored, not pointed at the other one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let opts = WriterOptions {
            chunk_pages: 1,
            threads: 1,
            ..WriterOptions::default()
        };
        let mut w = ImageWriter::create(&path, info(), opts).unwrap();
        w.add_shared_page(7, 0, 0, shared(10)).unwrap();
        w.receive_one().unwrap();
        // The key of page 11's bytes now names page 10's slot and bytes.
        let (loc, first) = w.dedup_shared.values().next().unwrap().clone();
        let key = xxhash_rust::xxh3::xxh3_128(&shared(11)[..]);
        w.dedup_shared.insert(key, (loc, first));
        w.add_shared_page(7, 0, 1, shared(11)).unwrap();
        // And a true duplicate of page 10 is still found.
        w.add_shared_page(7, 0, 2, shared(10)).unwrap();
        w.add_task(task(3)).unwrap();
        let done = w.finish().unwrap();
        assert_eq!(done.stats.duplicate_pages, 1);
        assert_eq!(done.stats.chunks_written, 2);
        let image = Image::open(&path).unwrap();
        let area = &image.task(7).unwrap().areas[0];
        for (p, n) in [(0, 10), (1, 11), (2, 10)] {
            let mut out = [0; PAGE_SIZE];
            image.read_area_page(area, p, &mut out).unwrap();
            assert_eq!(out[..], sample_page(n)[..], "page {p}");
        }
    }
}
