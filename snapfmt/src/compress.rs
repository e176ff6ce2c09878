//! The writer's pool of chunk-compression threads.
//!
//! Jobs (a chunk's uncompressed pages) go through a bounded channel, so at
//! most `2 * threads` chunks are in flight and memory use stays bounded
//! whatever the image size. Each worker copies shared pages into the
//! chunk's content, hashes the chunk's pages when asked (SHA-256, or
//! XXH3-128 for shared pages; the writer deduplicates with these keys, in
//! chunk order), computes
//! the chunk's address (the SHA-256 of its content; both in one pass, see
//! `digest/pair.rs`), compresses it, keeps
//! the raw bytes when compression does not pay, and returns the finished
//! chunk file.

use crate::digest::Digest;
use crate::header::{FLAG_XXH3, FLAG_ZSTD, HEADER_LEN, ObjectHeader, ObjectKind};
use crate::object::assemble;
use crate::version::FORMAT_VERSION;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A page shared with the caller (a copy-on-write page reference of a
/// captured task): the writer keeps it, without copying, to compare the
/// bytes of a page whose key matches it.
pub type SharedPage = std::sync::Arc<[u8; crate::limits::PAGE_SIZE]>;

/// What a job returns about each page, for deduplication.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageHash {
    /// Nothing (a chunk rebuilt without its duplicates).
    None,
    /// The SHA-256 of every page (pages the writer cannot keep: equal
    /// digests mean equal pages).
    Sha256,
    /// The XXH3-128 of every page (shared pages, which the writer keeps:
    /// an equal key is confirmed by comparing the bytes). A third of the
    /// cost of the SHA-256 pass it replaces.
    Xxh3,
}

/// The keys a job computed ([`PageHash`]).
pub(crate) enum PageKeys {
    Sha256(Vec<Digest>),
    Xxh3(Vec<u128>),
}

pub(crate) struct Job {
    pub index: u32,
    /// The chunk's content; empty when `pages` gives it.
    pub content: Vec<u8>,
    /// Shared pages the worker copies into `content` (so the feeding
    /// thread does not), in slot order; handed back in [`Done::pages`].
    pub pages: Vec<SharedPage>,
    pub hash: PageHash,
    /// A buffer for the chunk file, reused from an earlier chunk (its
    /// content is irrelevant; a reused buffer spares the page faults of a
    /// fresh one).
    pub file_buf: Vec<u8>,
}

pub(crate) struct Done {
    pub index: u32,
    pub pages: u32,
    pub content_digest: Digest,
    pub body_len: u64,
    pub body_digest: Digest,
    /// The whole chunk file (header and body).
    pub file: Vec<u8>,
    /// The content buffer, handed back for reuse (or for rebuilding the
    /// chunk without duplicate pages).
    pub spare: Vec<u8>,
    /// The keys of each page, if the job asked for them.
    pub page_keys: Option<PageKeys>,
    /// The job's shared pages, handed back.
    pub shared: Vec<SharedPage>,
}

pub(crate) struct Pool {
    jobs: Option<SyncSender<Job>>,
    pub(crate) done: Receiver<std::io::Result<Done>>,
    workers: Vec<JoinHandle<()>>,
    /// Bound on chunks in flight.
    pub(crate) capacity: usize,
}

impl Pool {
    pub(crate) fn new(threads: usize, level: i32) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let capacity = 2 * threads;
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(capacity);
        let (done_tx, done_rx) = sync_channel(capacity + threads);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let jobs_rx = Arc::clone(&jobs_rx);
            let done_tx = done_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("snapfmt-zstd-{i}"))
                .spawn(move || worker(jobs_rx, done_tx, level))?;
            workers.push(h);
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            done: done_rx,
            workers,
            capacity,
        })
    }

    /// Queues a job; blocks while the queue is full.
    pub(crate) fn submit(&self, job: Job) -> std::io::Result<()> {
        match &self.jobs {
            Some(tx) => tx
                .send(job)
                .map_err(|_| std::io::Error::other("compression workers are gone")),
            None => Err(std::io::Error::other("pool closed")),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        // Drain so that no worker blocks on a full result channel.
        while self.done.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            while !w.is_finished() {
                while self.done.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = w.join();
        }
    }
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>, done: SyncSender<std::io::Result<Done>>, level: i32) {
    let mut compressor = match zstd::bulk::Compressor::new(level) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let _ = compressor.include_contentsize(true);
    // A chunk is a slice of a large memory image, so it is compressed with
    // the minimum match zstd uses at this level for large inputs, not the
    // one it picks for inputs of 256 KiB or less (the default chunk): at
    // level 3 that is 5 instead of 4, which on text-like pages made chunks
    // 2% smaller and about 15% faster to decode, and binary pages 0.7%
    // larger (zstd 1.5.7 CLI on 256 KiB parts). It is also what zstd alone
    // uses on the same memory.
    if let Err(e) = compressor.set_parameter(zstd::zstd_safe::CParameter::MinMatch(
        large_input_min_match(level),
    )) {
        let _ = done.send(Err(e));
        return;
    }
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let r = compress_chunk(&mut compressor, job);
        if done.send(r).is_err() {
            return;
        }
    }
}

/// The minimum match length of zstd's parameters for `level` on inputs
/// larger than 256 KiB (its table `ZSTD_defaultCParameters[0]`, zstd 1.5).
fn large_input_min_match(level: i32) -> u32 {
    match level {
        ..=0 => 6,
        1 => 7,
        2 => 6,
        3..=16 => 5,
        17 => 4,
        _ => 3,
    }
}

fn compress_chunk(c: &mut zstd::bulk::Compressor<'_>, mut job: Job) -> std::io::Result<Done> {
    if !job.pages.is_empty() {
        job.content.clear();
        job.content
            .reserve(job.pages.len() * crate::limits::PAGE_SIZE);
        for p in &job.pages {
            job.content.extend_from_slice(&p[..]);
        }
    }
    let page_size = crate::limits::PAGE_SIZE;
    let (content_digest, page_keys) = match job.hash {
        // Both digests in one pass over the bytes.
        PageHash::Sha256 => {
            let (content, pages) = crate::digest::content_and_pages(&job.content, page_size);
            (content, Some(PageKeys::Sha256(pages)))
        }
        PageHash::Xxh3 => {
            let keys = job
                .content
                .chunks(page_size)
                .map(xxhash_rust::xxh3::xxh3_128)
                .collect();
            (Digest::of(&job.content), Some(PageKeys::Xxh3(keys)))
        }
        PageHash::None => (Digest::of(&job.content), None),
    };
    let pages = (job.content.len() / crate::limits::PAGE_SIZE) as u32;
    // Compressed straight behind the header's place in the file buffer
    // (no separate compressed buffer, no copy).
    let mut file = job.file_buf;
    file.clear();
    file.resize(
        HEADER_LEN + zstd::zstd_safe::compress_bound(job.content.len()),
        0,
    );
    let compressed_len = c.compress_to_buffer(&job.content, &mut file[HEADER_LEN..])?;
    let (file, body_len, body_digest) = if compressed_len < job.content.len() {
        file.truncate(HEADER_LEN + compressed_len);
        // The content is committed to by its SHA-256 address; the body
        // needs only a damage check before decompression (FLAG_XXH3).
        let flags = FLAG_ZSTD | FLAG_XXH3;
        let d = crate::object::body_checksum(flags, &file[HEADER_LEN..]);
        let header = ObjectHeader {
            version: FORMAT_VERSION,
            kind: ObjectKind::Chunk,
            flags,
            body_len: compressed_len as u64,
            checksum: d,
        };
        file[..HEADER_LEN].copy_from_slice(&header.encode());
        (file, compressed_len, d)
    } else {
        // Stored raw: the body checksum is the content digest.
        (
            assemble(ObjectKind::Chunk, 0, &job.content, content_digest),
            job.content.len(),
            content_digest,
        )
    };
    Ok(Done {
        index: job.index,
        pages,
        content_digest,
        body_len: body_len as u64,
        body_digest,
        file,
        spare: job.content,
        page_keys,
        shared: job.pages,
    })
}
