//! The writer's chunk pipeline: chunk indices, handing full chunks to the
//! compression pool, and taking them back strictly in chunk order, where
//! deduplication against pages stored earlier happens (so the output never
//! depends on thread timing).

use super::{Dedup, ImageWriter};
use crate::compress::{Done, Job, PageHash, PageKeys};
use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;
use crate::object;
use crate::records::*;

impl ImageWriter {
    pub(super) fn new_chunk_index(&mut self) -> Result<u32> {
        let idx =
            u32::try_from(self.chunks.len()).map_err(|_| Error::Usage("too many chunks".into()))?;
        self.chunks.push(None);
        Ok(idx)
    }

    pub(super) fn flush_open(&mut self) -> Result<()> {
        let index = self.new_chunk_index()?;
        let pages = std::mem::take(&mut self.open_pages);
        let (content, hash) = if pages.is_empty() {
            (std::mem::take(&mut self.open), PageHash::Sha256)
        } else {
            (self.spare.pop().unwrap_or_default(), PageHash::Xxh3)
        };
        let file_buf = self.spare_files.pop().unwrap_or_default();
        self.owners
            .insert(index, std::mem::take(&mut self.open_owners));
        self.submit(Job {
            index,
            content,
            pages,
            hash,
            file_buf,
        })
    }

    pub(super) fn submit(&mut self, job: Job) -> Result<()> {
        if self.in_flight >= self.pool.capacity {
            self.receive_one()?;
        }
        self.pool
            .submit(job)
            .map_err(|e| Error::io(&self.target, e))?;
        self.in_flight += 1;
        // Take whatever is already done without waiting.
        while let Ok(r) = self.pool.done.try_recv() {
            self.in_flight -= 1;
            self.accept(r)?;
        }
        Ok(())
    }

    pub(super) fn receive_one(&mut self) -> Result<()> {
        let r = self.pool.done.recv().map_err(|_| {
            Error::io(
                &self.target,
                std::io::Error::other("compression workers are gone"),
            )
        })?;
        self.in_flight -= 1;
        self.accept(r)
    }

    /// Takes a finished chunk and handles every chunk that is next in index
    /// order: deduplicates its pages (first pass), then writes it (so
    /// dedup and tar output are deterministic).
    pub(super) fn accept(&mut self, r: std::io::Result<Done>) -> Result<()> {
        let done = r.map_err(|e| Error::io(&self.target, e))?;
        self.reorder.insert(done.index, done);
        loop {
            while self
                .chunks
                .get(self.next_write as usize)
                .is_some_and(|c| c.is_some())
                || self.removed.contains(&self.next_write)
            {
                self.next_write += 1;
            }
            let Some(mut done) = self.reorder.remove(&self.next_write) else {
                return Ok(());
            };
            if let Some(keys) = done.page_keys.take() {
                match self.dedup_chunk(&mut done, &keys)? {
                    Dedup::Keep => {}
                    Dedup::Rebuilt => return Ok(()),
                    Dedup::Removed => continue,
                }
            }
            let file = std::mem::take(&mut done.file);
            let (home, back) = if self.sink.packs() {
                let (pack, offset, back) = self.sink.put_packed(file)?;
                let home = ChunkHome::Packed {
                    pack,
                    offset,
                    body_len: done.body_len,
                    body_digest: done.body_digest,
                };
                (home, back)
            } else {
                let back = self
                    .sink
                    .put_owned(&object::chunk_path(&done.content_digest), file)?;
                let home = ChunkHome::LocalPlain {
                    body_len: done.body_len,
                    body_digest: done.body_digest,
                };
                (home, back)
            };
            self.stats.chunks_written += 1;
            self.stats.chunk_content_bytes += u64::from(done.pages) * PAGE_SIZE as u64;
            self.stats.chunk_stored_bytes += done.body_len;
            self.chunks[done.index as usize] = Some(ChunkEntry {
                content: done.content_digest,
                pages: done.pages,
                home,
            });
            // Enough buffers to go round every chunk in flight.
            let keep = self.pool.capacity + 2;
            if self.spare.len() < keep {
                self.spare.push(done.spare);
            }
            if let Some(buf) = back
                && self.spare_files.len() < keep
            {
                self.spare_files.push(buf);
            }
            self.next_write += 1;
        }
    }

    /// Points every page of chunk `done` at its stored slot: the first copy
    /// of each content in chunk order is stored, later ones point at it.
    /// If some pages were duplicates, the chunk is rebuilt from the others
    /// and sent to be compressed again (or removed, if none is left).
    pub(super) fn dedup_chunk(&mut self, done: &mut Done, keys: &PageKeys) -> Result<Dedup> {
        let index = done.index;
        let owners = self.owners.remove(&index).unwrap_or_default();
        let count = match keys {
            PageKeys::Sha256(d) => d.len(),
            PageKeys::Xxh3(k) => k.len(),
        };
        let mut kept: Vec<usize> = Vec::with_capacity(count);
        for (slot, &(task, base, page)) in owners.iter().enumerate().take(count) {
            let new = PageLoc {
                chunk: index,
                slot: kept.len() as u32,
            };
            let earlier = match keys {
                PageKeys::Sha256(digests) => match self.dedup.entry(digests[slot]) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(new);
                        None
                    }
                },
                PageKeys::Xxh3(k) => {
                    let bytes = &done.spare[slot * PAGE_SIZE..(slot + 1) * PAGE_SIZE];
                    match self.dedup_shared.entry(k[slot]) {
                        // The same bytes: a duplicate. Other bytes with the
                        // same key (a collision) are stored; the key keeps
                        // its first page.
                        std::collections::hash_map::Entry::Occupied(e) => {
                            let (loc, first) = e.get();
                            (first[..] == *bytes).then_some(*loc)
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert((new, done.shared[slot].clone()));
                            None
                        }
                    }
                }
            };
            let loc = match earlier {
                Some(loc) => {
                    self.stats.duplicate_pages += 1;
                    loc
                }
                None => {
                    kept.push(slot);
                    new
                }
            };
            self.area_pages
                .entry((task, base))
                .or_default()
                .push((page, loc));
        }
        if kept.len() == count {
            return Ok(Dedup::Keep);
        }
        if kept.is_empty() {
            self.removed.insert(index);
            self.next_write += 1;
            return Ok(Dedup::Removed);
        }
        let mut content = self.spare.pop().unwrap_or_default();
        content.clear();
        for &slot in &kept {
            let start = slot * PAGE_SIZE;
            content.extend_from_slice(&done.spare[start..start + PAGE_SIZE]);
        }
        let file_buf = self.spare_files.pop().unwrap_or_default();
        self.submit(Job {
            index,
            content,
            pages: Vec::new(),
            hash: PageHash::None,
            file_buf,
        })?;
        Ok(Dedup::Rebuilt)
    }
}
