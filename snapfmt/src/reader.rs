//! Reading an image: open a directory or tar image, check the manifest,
//! and give lazy, checked access to task records, modules, file backups
//! and memory pages (following the parent chain of incremental images).
//!
//! Nothing is trusted before it is checked: every file's size is capped
//! before it is read, its checksum verified before it is decompressed or
//! decoded, its digest compared with the manifest's, and decoded records
//! are checked against the rules of [`crate::check`] before use.

use crate::check::{self, ManifestIndex, Problem};
use crate::container::{Follow, Source};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::header::ObjectKind;
use crate::limits::{MAX_IMAGE_OBJECT_CONTENT, MAX_PARENT_DEPTH, PAGE_SIZE};
use crate::object::{self, MANIFEST_PATH};
use crate::records::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// How many decoded chunks a reader keeps.
const CHUNK_CACHE: usize = 8;

/// Stored chunk files up to about this size keep their read buffer.
const READ_BUF_KEEP: usize = 1 << 20;

thread_local! {
    /// The buffer chunk files are read into, one per thread, reused (a
    /// fresh one would be page-faulted in for every chunk).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where a page read by [`Image::read_page`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSource {
    /// Not stored: reads as zero.
    Zero,
    /// A chunk of this image.
    Local,
    /// A chunk of an ancestor image.
    Parent,
}

/// Byte and page counts of an image (this image's files only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageStats {
    /// Sum of all areas' sizes.
    pub area_bytes: u64,
    /// Pages with stored content (the rest of the areas is zero).
    pub mapped_pages: u64,
    /// Of `mapped_pages`, those stored in a parent image.
    pub parent_pages: u64,
    /// Local chunks.
    pub local_chunks: u64,
    /// Uncompressed bytes in local chunks (distinct pages).
    pub local_content_bytes: u64,
    /// Stored bytes of local chunk bodies.
    pub local_stored_bytes: u64,
    /// Stored bytes of all other files (manifest, tasks, modules, backups).
    pub other_stored_bytes: u64,
}

/// One link of a parent chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub path: PathBuf,
    pub manifest_digest: Digest,
}

/// An opened image.
pub struct Image {
    source: Source,
    manifest: Manifest,
    manifest_digest: Digest,
    /// Content digest -> index of the local chunk.
    local_chunks: BTreeMap<Digest, u32>,
    /// Lookups into the manifest (objects by path, checkpointable ids).
    index: ManifestIndex,
    /// Objects whose content was charged to the image's budget
    /// ([`MAX_IMAGE_OBJECT_CONTENT`]), and the total charged.
    charged: Mutex<(BTreeSet<String>, u64)>,
    depth: usize,
    tasks: Mutex<BTreeMap<u64, Arc<TaskRecord>>>,
    kernel_states: Mutex<BTreeMap<u64, Arc<KernelTaskState>>>,
    parent: OnceLock<Arc<Image>>,
    cache: Mutex<Vec<(Digest, Arc<[u8]>)>>,
    verify_content: bool,
}

impl Image {
    /// Opens the image at `path` (a directory, or a tar file) and checks
    /// its manifest. The parent of an incremental image is opened when
    /// first needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Image> {
        Image::open_at_depth(path.as_ref(), 0)
    }

    fn open_at_depth(path: &Path, depth: usize) -> Result<Image> {
        let source = Source::open(path, follow_at(depth))?;
        let bytes = source.read(MANIFEST_PATH, object::stored_limit(ObjectKind::Manifest))?;
        let (header, manifest): (_, Manifest) = object::open_record(&bytes, ObjectKind::Manifest)
            .map_err(|error| Error::Object {
            file: MANIFEST_PATH.into(),
            error,
        })?;
        let mut problems = Vec::new();
        check::manifest(&manifest, &mut problems);
        if manifest.format_version != header.version {
            problems.push(Problem {
                file: MANIFEST_PATH.into(),
                field: "format_version".into(),
                message: format!(
                    "{} differs from the header's {}",
                    manifest.format_version, header.version
                ),
            });
        }
        first_problem(problems)?;
        Ok(Image::from_parts(source, manifest, header.checksum, depth))
    }

    pub(crate) fn from_parts(
        source: Source,
        manifest: Manifest,
        manifest_digest: Digest,
        depth: usize,
    ) -> Image {
        let local_chunks = manifest
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.home.is_local())
            .map(|(i, c)| (c.content, i as u32))
            .collect();
        Image {
            source,
            index: ManifestIndex::new(&manifest),
            manifest,
            manifest_digest,
            local_chunks,
            charged: Mutex::new((BTreeSet::new(), 0)),
            depth,
            tasks: Mutex::new(BTreeMap::new()),
            kernel_states: Mutex::new(BTreeMap::new()),
            parent: OnceLock::new(),
            cache: Mutex::new(Vec::new()),
            verify_content: true,
        }
    }

    /// Whether page reads recompute each chunk's content digest after
    /// decompression (default true). Chunk file checksums are always
    /// checked; turning this off trades the content-address check for speed.
    pub fn set_verify_content(&mut self, on: bool) {
        self.verify_content = on;
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        self.source.path()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Lookups into the manifest.
    pub(crate) fn index(&self) -> &ManifestIndex {
        &self.index
    }

    /// SHA-256 of the manifest body: the image's identity.
    pub fn manifest_digest(&self) -> Digest {
        self.manifest_digest
    }

    /// Ids of the checkpointable tasks, ascending.
    pub fn task_ids(&self) -> Vec<u64> {
        self.index.checkpointable.iter().copied().collect()
    }

    /// Every file in the container, sorted.
    pub fn files(&self) -> Result<Vec<String>> {
        self.source.list()
    }

    /// The size of file `name` of the image (opened by the container's
    /// rules).
    pub(crate) fn file_size(&self, name: &str) -> Result<u64> {
        self.source.size(name)
    }

    /// The record of checkpointable task `task_id`, read and checked on
    /// first use and cached.
    pub fn task(&self, task_id: u64) -> Result<Arc<TaskRecord>> {
        if let Some(t) = self.tasks.lock().map_err(|_| poisoned())?.get(&task_id) {
            return Ok(Arc::clone(t));
        }
        if !self.index.checkpointable.contains(&task_id) {
            return Err(Error::NoSuchTask { task: task_id });
        }
        let path = object::task_path(task_id);
        let (content, _) = self.read_object(&path, ObjectKind::Task)?;
        let record: TaskRecord =
            object::decode_record(&content).map_err(|error| Error::Object {
                file: path.clone(),
                error,
            })?;
        let mut problems = Vec::new();
        check::task(&record, &path, &self.manifest, &self.index, &mut problems);
        first_problem(problems)?;
        let record = Arc::new(record);
        self.tasks
            .lock()
            .map_err(|_| poisoned())?
            .insert(task_id, Arc::clone(&record));
        Ok(record)
    }

    /// The kernel state record of checkpointable task `task_id` (since
    /// format 1.2, `tasks/<task id>.spk`), read and checked against the
    /// task's record on first use and cached; `None` when the image has
    /// none for the task (always so for 1.0 and 1.1 images).
    pub fn kernel_state(&self, task_id: u64) -> Result<Option<Arc<KernelTaskState>>> {
        if let Some(k) = self
            .kernel_states
            .lock()
            .map_err(|_| poisoned())?
            .get(&task_id)
        {
            return Ok(Some(Arc::clone(k)));
        }
        if !self.index.checkpointable.contains(&task_id) {
            return Err(Error::NoSuchTask { task: task_id });
        }
        let path = object::kernel_state_path(task_id);
        if !self.index.objects.contains_key(&path) {
            return Ok(None);
        }
        let record = self.task(task_id)?;
        let (content, _) = self.read_object(&path, ObjectKind::KernelState)?;
        let state: KernelTaskState =
            object::decode_record(&content).map_err(|error| Error::Object {
                file: path.clone(),
                error,
            })?;
        let mut problems = Vec::new();
        check::kernel_state(&state, &path, Some(&record), &mut problems);
        first_problem(problems)?;
        let state = Arc::new(state);
        self.kernel_states
            .lock()
            .map_err(|_| poisoned())?
            .insert(task_id, Arc::clone(&state));
        Ok(Some(state))
    }

    /// The bytes of the embedded module with this SHA-256.
    pub fn module(&self, sha256: &Digest) -> Result<Vec<u8>> {
        self.read_blob(&object::module_path(sha256), ObjectKind::Module, sha256)
    }

    /// The stored content of a backed-up file with this SHA-256.
    pub fn file_backup(&self, sha256: &Digest) -> Result<Vec<u8>> {
        self.read_blob(
            &object::file_backup_path(sha256),
            ObjectKind::FileBackup,
            sha256,
        )
    }

    fn read_blob(&self, path: &str, kind: ObjectKind, sha256: &Digest) -> Result<Vec<u8>> {
        let (content, _) = self.read_object(path, kind)?;
        let actual = Digest::of(&content);
        if actual != *sha256 {
            return Err(Error::invalid(
                path,
                "content",
                format!("hashes to {actual}, named {sha256}"),
            ));
        }
        Ok(content)
    }

    /// The SHA-256 and length of the content of listed object `path`,
    /// streamed through the decompressor (memory: the stored file and a
    /// block, however large its content); what validation checks a module
    /// or file backup by.
    pub(crate) fn object_digest(&self, path: &str, kind: ObjectKind) -> Result<(Digest, u64)> {
        let bytes = self.checked_object(path, kind)?;
        let (header, body) = object::check(&bytes, kind).map_err(|error| Error::Object {
            file: path.to_string(),
            error,
        })?;
        object::content_digest(&header, body).map_err(|error| Error::Object {
            file: path.to_string(),
            error,
        })
    }

    /// Reads a file listed in the manifest's object list, checks it
    /// against the listing, and returns its unpacked content.
    pub(crate) fn read_object(&self, path: &str, kind: ObjectKind) -> Result<(Vec<u8>, Digest)> {
        let bytes = self.checked_object(path, kind)?;
        let (header, body) = object::check(&bytes, kind).map_err(|error| Error::Object {
            file: path.to_string(),
            error,
        })?;
        let content = object::unpack(&header, body).map_err(|error| Error::Object {
            file: path.to_string(),
            error,
        })?;
        Ok((content, header.checksum))
    }

    /// The bytes of listed object `path`: header and checksum checked,
    /// equal to the listing, and its declared content charged to the
    /// image's budget, all before anything is decompressed.
    fn checked_object(&self, path: &str, kind: ObjectKind) -> Result<Vec<u8>> {
        let entry = self
            .index
            .objects
            .get(path)
            .and_then(|&i| self.manifest.objects.get(i))
            .ok_or_else(|| {
                Error::invalid(MANIFEST_PATH, "objects", format!("{path} is not listed"))
            })?;
        let bytes = self.source.read(path, object::stored_limit(kind))?;
        let obj_err = |error| Error::Object {
            file: path.to_string(),
            error,
        };
        let (header, body) = object::check(&bytes, kind).map_err(obj_err)?;
        if header.checksum != entry.body_digest || header.body_len != entry.body_len {
            return Err(Error::invalid(
                path,
                "header.checksum",
                format!("differs from the manifest's entry ({})", entry.body_digest),
            ));
        }
        let declared = object::content_len(&header, body).map_err(obj_err)?;
        self.charge(path, declared)?;
        Ok(bytes)
    }

    /// Charges `len` bytes of content of object `path` to the image's
    /// budget (once per object, however often it is read).
    fn charge(&self, path: &str, len: u64) -> Result<()> {
        let mut charged = self.charged.lock().map_err(|_| poisoned())?;
        if charged.0.contains(path) {
            return Ok(());
        }
        let total = charged.1.saturating_add(len);
        if total > MAX_IMAGE_OBJECT_CONTENT {
            return Err(Error::invalid(
                path,
                "content",
                format!(
                    "{len} bytes, past the limit of {MAX_IMAGE_OBJECT_CONTENT} bytes of object content per image ({} charged before)",
                    charged.1
                ),
            ));
        }
        charged.0.insert(path.to_string());
        charged.1 = total;
        Ok(())
    }

    /// The content size each listed object's first bytes declare (see
    /// [`object::declared_content`]), in listing order: what validation
    /// checks against the image's budget before decompressing anything.
    pub(crate) fn declared_contents(&self) -> Vec<(usize, Result<u64>)> {
        self.manifest
            .objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let kind = object::kind_of_path(&o.path)?;
                let r = self
                    .source
                    .read_prefix(&o.path, object::DECLARATION_LEN)
                    .and_then(|prefix| {
                        object::declared_content(&prefix, kind).map_err(|error| Error::Object {
                            file: o.path.clone(),
                            error,
                        })
                    });
                Some((i, r))
            })
            .collect()
    }

    /// The parent image of an incremental image (opened on first use and
    /// checked against the recorded manifest digest), or `None`.
    pub fn parent(&self) -> Result<Option<Arc<Image>>> {
        let Some(pref) = &self.manifest.parent else {
            return Ok(None);
        };
        if let Some(p) = self.parent.get() {
            return Ok(Some(Arc::clone(p)));
        }
        if self.depth >= MAX_PARENT_DEPTH {
            return Err(Error::Parent(format!(
                "longer than {MAX_PARENT_DEPTH} images"
            )));
        }
        let path = self.parent_path(pref);
        let parent = Image::open_at_depth(&path, self.depth + 1)
            .map_err(|e| Error::Parent(format!("{}: cannot open parent: {e}", path.display())))?;
        if parent.manifest_digest != pref.manifest_digest {
            return Err(Error::Parent(format!(
                "{}: manifest digest is {}, the child recorded {}",
                path.display(),
                parent.manifest_digest,
                pref.manifest_digest
            )));
        }
        let _ = self.parent.set(Arc::new(parent));
        Ok(self.parent.get().cloned())
    }

    /// Where the parent recorded in `pref` is on disk.
    pub fn parent_path(&self, pref: &ParentRef) -> PathBuf {
        let p = Path::new(&pref.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            match self.path().parent() {
                Some(d) => d.join(p),
                None => p.to_path_buf(),
            }
        }
    }

    /// The chain of ancestors, nearest first (empty for a full image).
    pub fn parent_chain(&self) -> Result<Vec<ChainLink>> {
        let mut out = Vec::new();
        let mut cur = self.parent()?;
        while let Some(img) = cur {
            out.push(ChainLink {
                path: img.path().to_path_buf(),
                manifest_digest: img.manifest_digest,
            });
            cur = img.parent()?;
        }
        Ok(out)
    }

    /// The decompressed, checked content of chunk `index` of the chunk
    /// table (following the parent chain for parent chunks).
    pub fn chunk(&self, index: u32) -> Result<Arc<[u8]>> {
        let entry = self.manifest.chunks.get(index as usize).ok_or_else(|| {
            Error::invalid(
                MANIFEST_PATH,
                "chunks",
                format!("chunk {index} is past the chunk table"),
            )
        })?;
        match entry.home {
            ChunkHome::Local { .. } | ChunkHome::LocalPlain { .. } | ChunkHome::Packed { .. } => {
                self.local_chunk(index, entry)
            }
            ChunkHome::Parent => {
                let mut cur = self.parent()?;
                while let Some(img) = cur {
                    if let Some(&i) = img.local_chunks.get(&entry.content) {
                        let c = img.chunk(i)?;
                        if c.len() != entry.pages as usize * PAGE_SIZE {
                            return Err(Error::invalid(
                                MANIFEST_PATH,
                                format!("chunks[{index}].pages"),
                                "differs from the parent's chunk",
                            ));
                        }
                        return Ok(c);
                    }
                    cur = img.parent()?;
                }
                Err(Error::Parent(format!(
                    "chunk {} is in no ancestor",
                    entry.content
                )))
            }
        }
    }

    fn local_chunk(&self, index: u32, entry: &ChunkEntry) -> Result<Arc<[u8]>> {
        if let Some((_, c)) = self
            .cache
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .find(|(d, _)| *d == entry.content)
        {
            return Ok(Arc::clone(c));
        }
        let content = self.load_chunk(index, entry, self.verify_content)?;
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        if cache.len() >= CHUNK_CACHE {
            cache.remove(0);
        }
        cache.push((entry.content, Arc::clone(&content)));
        Ok(content)
    }

    /// Reads, checks and decompresses local chunk `index` (no cache).
    pub(crate) fn load_chunk(
        &self,
        index: u32,
        entry: &ChunkEntry,
        verify_content: bool,
    ) -> Result<Arc<[u8]>> {
        let (content, due) = self.read_chunk(index, entry, verify_content, None)?;
        if due {
            check_address(entry, &content)?;
        }
        Ok(content)
    }

    /// Reads local chunk `index` and hands it to
    /// [`unpack_chunk`](Self::unpack_chunk): checked and decompressed (into
    /// `reuse` when it is unshared and of the right length, a fresh buffer
    /// otherwise), short of the content's address, which it says whether
    /// is still due ([`check_address`]). Every byte of a reused buffer is
    /// overwritten (`unpack_into` fails unless the content fills it
    /// exactly), so nothing of its previous content survives.
    fn read_chunk(
        &self,
        index: u32,
        entry: &ChunkEntry,
        verify_content: bool,
        reuse: Option<Arc<[u8]>>,
    ) -> Result<(Arc<[u8]>, bool)> {
        if entry.home.local_body().is_none() {
            return Err(Error::invalid(
                MANIFEST_PATH,
                format!("chunks[{index}].home"),
                "not a local chunk",
            ));
        }
        let Some((path, range)) = entry.home.location(&entry.content) else {
            return Err(Error::invalid(
                MANIFEST_PATH,
                format!("chunks[{index}].home"),
                "not a local chunk",
            ));
        };
        // A chunk file is refused past its limit; a packed chunk's frame
        // is read alone (seek and read of its bytes, never the pack), once
        // its range is known to lie inside the pack.
        let limit = object::stored_limit(ObjectKind::Chunk);
        READ_BUF.with(|buf| {
            // A chunk being loaded on this thread already (not done by
            // snapfmt, but a caller's `f` could) gets a buffer of its own.
            let mut own = Vec::new();
            let mut guard = buf.try_borrow_mut();
            let bytes = match guard.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut own,
            };
            match range {
                None => self.source.read_into(&path, limit, bytes)?,
                Some((offset, len)) => self.source.read_range_into(
                    &path,
                    offset,
                    len,
                    limit + crate::header::HEADER_LEN as u64,
                    bytes,
                )?,
            }
            // Problems in a frame name the pack and the frame's offset.
            let shown = match range {
                None => path,
                Some((offset, _)) => format!("{path} (frame at {offset})"),
            };
            let r = self.unpack_chunk(index, entry, verify_content, reuse, &shown, bytes);
            // Keep a chunk-sized buffer, not an outsized one.
            if bytes.capacity() > 2 * READ_BUF_KEEP {
                *bytes = Vec::new();
            }
            r
        })
    }

    /// Checks and decompresses the chunk file `bytes` of local chunk
    /// `index`; also says whether the content's address is still to be
    /// checked ([`check_address`]): asked for by `verify_content` and not
    /// already proven by the body checksum.
    fn unpack_chunk(
        &self,
        index: u32,
        entry: &ChunkEntry,
        verify_content: bool,
        reuse: Option<Arc<[u8]>>,
        path: &str,
        bytes: &[u8],
    ) -> Result<(Arc<[u8]>, bool)> {
        let Some((body_len, body_digest)) = entry.home.local_body() else {
            return Err(Error::invalid(
                MANIFEST_PATH,
                format!("chunks[{index}].home"),
                "not a local chunk",
            ));
        };
        let obj_err = |error| Error::Object {
            file: path.to_string(),
            error,
        };
        let (header, body) = object::check(bytes, ObjectKind::Chunk).map_err(obj_err)?;
        if header.checksum != body_digest || header.body_len != body_len {
            return Err(Error::invalid(
                path,
                "header.checksum",
                format!("differs from the manifest's chunks[{index}]"),
            ));
        }
        let expected = entry.pages as u64 * PAGE_SIZE as u64;
        let declared = object::content_len(&header, body).map_err(obj_err)?;
        if declared != expected {
            return Err(Error::invalid(
                path,
                "content",
                format!("{declared} bytes, the manifest says {} pages", entry.pages),
            ));
        }
        // Decompressed straight into the shared buffer callers get (no
        // copy from a temporary). `expected` is at most 1 MiB (checked
        // against the kind's limit by `content_len`).
        // A reused buffer saves zeroing and page-faulting a fresh one.
        let reuse = reuse.filter(|b| b.len() as u64 == expected && Arc::strong_count(b) == 1);
        let mut content: Arc<[u8]> =
            reuse.unwrap_or_else(|| std::iter::repeat_n(0u8, expected as usize).collect());
        let out = Arc::get_mut(&mut content)
            .ok_or_else(|| Error::Usage("a fresh chunk buffer is shared".into()))?;
        object::unpack_into(&header, body, out).map_err(obj_err)?;
        // A plainly addressed chunk stored raw has its address as body
        // checksum, which was just verified.
        let raw_plain = header.flags & crate::header::FLAG_ZSTD == 0
            && entry.home.is_plain()
            && body_digest == entry.content;
        Ok((content, verify_content && !raw_plain))
    }

    /// Reads the page containing `addr` of task `task_id` into `out` and
    /// says where it came from. Fails with [`Error::NotMapped`] if no area
    /// holds `addr`.
    pub fn read_page(
        &self,
        task_id: u64,
        addr: u64,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<PageSource> {
        let task = self.task(task_id)?;
        let i = task.areas.partition_point(|a| a.base <= addr);
        let area = i
            .checked_sub(1)
            .and_then(|i| task.areas.get(i))
            .filter(|a| addr - a.base < a.size)
            .ok_or(Error::NotMapped {
                task: task_id,
                addr,
            })?;
        let page = ((addr - area.base) / PAGE_SIZE as u64) as u32;
        self.read_area_page(area, page, out)
    }

    /// Reads page `page` of `area` (of a task record of this image).
    pub fn read_area_page(
        &self,
        area: &AreaRecord,
        page: u32,
        out: &mut [u8; PAGE_SIZE],
    ) -> Result<PageSource> {
        let Some(loc) = area.pages.lookup(page) else {
            out.fill(0);
            return Ok(PageSource::Zero);
        };
        let chunk = self.chunk(loc.chunk)?;
        let start = loc.slot as usize * PAGE_SIZE;
        let src = chunk.get(start..start + PAGE_SIZE).ok_or_else(|| {
            Error::invalid(
                MANIFEST_PATH,
                "chunks",
                format!("slot {} past chunk {}", loc.slot, loc.chunk),
            )
        })?;
        out.copy_from_slice(src);
        let home = self
            .manifest
            .chunks
            .get(loc.chunk as usize)
            .map(|c| &c.home);
        Ok(match home {
            Some(ChunkHome::Parent) => PageSource::Parent,
            _ => PageSource::Local,
        })
    }

    /// Calls `f(page index, page)` for every page of `area` (a task record
    /// area of this image) in page order, zero pages included. `threads`
    /// threads (the calling thread among them, between calls of `f`)
    /// read, check and decompress the area's chunks ahead of `f` in the
    /// order `f` needs them (`prefetch.rs`), each chunk
    /// straight into the buffer whose pages `f` is given, so this is the
    /// fast way to read a whole area; memory use stays at a few chunks
    /// per thread.
    pub fn for_each_page(
        &self,
        area: &AreaRecord,
        threads: usize,
        mut f: impl FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let total = u32::try_from(area.size / PAGE_SIZE as u64)
            .map_err(|_| Error::invalid(MANIFEST_PATH, "areas.size", "area too large"))?;
        // Chunks in order of first use.
        let mut seen = std::collections::BTreeSet::new();
        let order: Vec<u32> = area
            .pages
            .runs
            .iter()
            .map(|r| r.chunk)
            .filter(|c| seen.insert(*c))
            .collect();
        let zero = [0u8; PAGE_SIZE];
        // Buffers of chunks `f` is done with, decompressed into again.
        let spare: Mutex<Vec<Arc<[u8]>>> = Mutex::new(Vec::new());
        let spare_max = threads.max(1) + 2;
        crate::prefetch::in_order(
            &order,
            threads,
            |ids| self.chunks_uncached(ids, &spare),
            |next| {
                let mut current: Option<(u32, Arc<[u8]>)> = None;
                let mut page = 0u32;
                for run in &area.pages.runs {
                    while page < run.first_page.min(total) {
                        f(page, &zero)?;
                        page += 1;
                    }
                    let chunk = match &current {
                        Some((id, c)) if *id == run.chunk => Arc::clone(c),
                        _ if next.upcoming() == Some(run.chunk) => {
                            let c = next.take()?;
                            if let Some((_, mut old)) = current.replace((run.chunk, Arc::clone(&c)))
                                && Arc::get_mut(&mut old).is_some()
                            {
                                let mut spare = spare.lock().map_err(|_| poisoned())?;
                                if spare.len() < spare_max {
                                    spare.push(old);
                                }
                            }
                            c
                        }
                        // A chunk used again later (a duplicate page).
                        _ => self.chunk(run.chunk)?,
                    };
                    for i in 0..run.count {
                        let start = (run.first_slot as usize + i as usize) * PAGE_SIZE;
                        let src = chunk.get(start..start + PAGE_SIZE).ok_or_else(|| {
                            Error::invalid(
                                MANIFEST_PATH,
                                "chunks",
                                format!("slot past chunk {}", run.chunk),
                            )
                        })?;
                        f(run.first_page.saturating_add(i), src)?;
                    }
                    page = run.first_page.saturating_add(run.count);
                }
                while page < total {
                    f(page, &zero)?;
                    page += 1;
                }
                Ok(())
            },
        )
    }

    /// Chunks `ids` read and decoded without going through the cache (bulk
    /// reads would only evict what random reads need), into buffers from
    /// `spare` where there are some. The addresses of two plainly
    /// addressed chunks are checked side by side ([`crate::digest::two`]).
    fn chunks_uncached(
        &self,
        ids: &[u32],
        spare: &Mutex<Vec<Arc<[u8]>>>,
    ) -> Vec<Result<Arc<[u8]>>> {
        // Each chunk loaded, with the entry whose address it still needs
        // to be checked against.
        let mut loaded: Vec<Result<Loaded<'_>>> = ids
            .iter()
            .map(|&id| {
                let entry = self.manifest.chunks.get(id as usize).ok_or_else(|| {
                    Error::invalid(
                        MANIFEST_PATH,
                        "chunks",
                        format!("chunk {id} is past the chunk table"),
                    )
                })?;
                match entry.home {
                    ChunkHome::Local { .. }
                    | ChunkHome::LocalPlain { .. }
                    | ChunkHome::Packed { .. } => {
                        let reuse = spare.lock().map_err(|_| poisoned())?.pop();
                        let (content, due) =
                            self.read_chunk(id, entry, self.verify_content, reuse)?;
                        Ok((content, due.then_some(entry)))
                    }
                    ChunkHome::Parent => Ok((self.chunk(id)?, None)),
                }
            })
            .collect();
        // Plain addresses in pairs, every other one alone.
        let mut plain = loaded
            .iter_mut()
            .filter(|r| matches!(r, Ok((_, Some(e))) if e.home.is_plain()));
        while let Some(a) = plain.next() {
            match plain.next() {
                Some(b) => {
                    if let (Ok((ca, Some(ea))), Ok((cb, Some(eb)))) = (&*a, &*b) {
                        let (da, db) = crate::digest::two(ca, cb);
                        let (ra, rb) = (address_matches(ea, da), address_matches(eb, db));
                        if let Err(e) = ra {
                            *a = Err(e);
                        }
                        if let Err(e) = rb {
                            *b = Err(e);
                        }
                    }
                }
                None => {
                    if let Ok((c, Some(e))) = &*a
                        && let Err(err) = check_address(e, c)
                    {
                        *a = Err(err);
                    }
                }
            }
        }
        loaded
            .into_iter()
            .map(|r| {
                let (content, due) = r?;
                if let Some(entry) = due
                    && !entry.home.is_plain()
                {
                    check_address(entry, &content)?;
                }
                Ok(content)
            })
            .collect()
    }

    /// Byte and page counts.
    pub fn stats(&self) -> Result<ImageStats> {
        let mut s = ImageStats::default();
        for c in &self.manifest.chunks {
            if let Some((body_len, _)) = c.home.local_body() {
                s.local_chunks += 1;
                s.local_content_bytes += u64::from(c.pages) * PAGE_SIZE as u64;
                s.local_stored_bytes += body_len;
            }
        }
        s.other_stored_bytes = self.manifest.objects.iter().map(|o| o.body_len).sum();
        for id in self.task_ids() {
            let t = self.task(id)?;
            for a in &t.areas {
                s.area_bytes += a.size;
                for r in &a.pages.runs {
                    s.mapped_pages += u64::from(r.count);
                    if matches!(
                        self.manifest.chunks.get(r.chunk as usize).map(|c| &c.home),
                        Some(ChunkHome::Parent)
                    ) {
                        s.parent_pages += u64::from(r.count);
                    }
                }
            }
        }
        Ok(s)
    }
}

/// A chunk's content and, if its address is still to be checked, its
/// chunk table entry.
type Loaded<'a> = (Arc<[u8]>, Option<&'a ChunkEntry>);

/// Checks that `content` has the address of its chunk table `entry`.
fn check_address(entry: &ChunkEntry, content: &[u8]) -> Result<()> {
    match entry.home.address_of(content) {
        Some(actual) => address_matches(entry, actual),
        None => Ok(()),
    }
}

/// Fails unless `actual` is the address of chunk table `entry`.
fn address_matches(entry: &ChunkEntry, actual: Digest) -> Result<()> {
    if actual == entry.content {
        return Ok(());
    }
    Err(Error::invalid(
        object::chunk_path(&entry.content),
        "content",
        format!("has address {actual}"),
    ))
}

/// Whether the image at `depth` of a chain is opened through a symbolic
/// link: the one the user named may be, a parent an image names may not.
pub(crate) fn follow_at(depth: usize) -> Follow {
    if depth == 0 { Follow::Yes } else { Follow::No }
}

fn poisoned() -> Error {
    Error::Usage("a reader lock was poisoned by a panic in another thread".into())
}

fn first_problem(problems: Vec<Problem>) -> Result<()> {
    match problems.into_iter().next() {
        None => Ok(()),
        Some(p) => Err(Error::Invalid {
            file: p.file,
            field: p.field,
            message: p.message,
        }),
    }
}
