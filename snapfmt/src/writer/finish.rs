//! Completing an image: the last chunks, task records with their kernel
//! state, the manifest last, then fsync and rename ([`crate::sink`]).

use super::*;

impl ImageWriter {
    /// Completes the image: flushes chunks, writes task records and the
    /// manifest, fsyncs and renames into place.
    pub fn finish(mut self) -> Result<Finished> {
        if !self.open.is_empty() || !self.open_pages.is_empty() {
            self.flush_open()?;
        }
        while self.in_flight > 0 {
            self.receive_one()?;
        }
        // Chunk indices without the removed chunks.
        let mut remap = Vec::with_capacity(self.chunks.len());
        let mut kept = 0u32;
        for i in 0..self.chunks.len() as u32 {
            if self.removed.contains(&i) {
                remap.push(None);
            } else {
                remap.push(Some(kept));
                kept += 1;
            }
        }
        let mut tasks = std::mem::take(&mut self.tasks);
        for (&id, task) in tasks.iter_mut() {
            for area in task.areas.iter_mut() {
                let mut pages = self.area_pages.remove(&(id, area.base)).unwrap_or_default();
                for (_, loc) in pages.iter_mut() {
                    loc.chunk = remap
                        .get(loc.chunk as usize)
                        .copied()
                        .flatten()
                        .ok_or_else(|| Error::Usage("a page lost its chunk".into()))?;
                }
                pages.sort_by_key(|p| p.0);
                let area_pages = area.size / PAGE_SIZE as u64;
                for w in pages.windows(2) {
                    if w[0].0 == w[1].0 {
                        return Err(Error::Usage(format!(
                            "task {id} area {:#x}: page {} fed twice",
                            area.base, w[0].0
                        )));
                    }
                }
                if let Some(&(last, _)) = pages.last()
                    && u64::from(last) >= area_pages
                {
                    return Err(Error::Usage(format!(
                        "task {id} area {:#x}: page {last} is outside the area ({area_pages} pages)",
                        area.base
                    )));
                }
                area.pages = PageMap::from_sorted(pages);
            }
        }
        if let Some(((task, base), _)) = self.area_pages.iter().next() {
            return Err(Error::Usage(format!(
                "pages fed for task {task} area {base:#x}, which no task record has"
            )));
        }
        for m in &self.info.checkpoint_set {
            if matches!(m.role, Role::Checkpointable) && !tasks.contains_key(&m.task_id) {
                return Err(Error::Usage(format!(
                    "checkpointable task {} has no task record",
                    m.task_id
                )));
            }
        }
        for (&id, task) in &tasks {
            let member = self
                .info
                .checkpoint_set
                .iter()
                .any(|m| m.task_id == id && matches!(m.role, Role::Checkpointable));
            if !member {
                return Err(Error::Usage(format!(
                    "task {id} is not a checkpointable member of the set"
                )));
            }
            let body = postcard::to_allocvec(task)
                .map_err(|e| Error::io(&self.target, std::io::Error::other(e)))?;
            // Never write what a reader would refuse.
            if body.len() as u64 > crate::limits::MAX_TASK_BODY {
                return Err(Error::Usage(format!(
                    "task {id}: the record is {} bytes, over the limit of {}",
                    body.len(),
                    crate::limits::MAX_TASK_BODY
                )));
            }
            object::decode_record::<TaskRecord>(&body).map_err(|e| {
                Error::Usage(format!("task {id}: readers would refuse the record: {e}"))
            })?;
            let file = object::encode_bytes(ObjectKind::Task, &body, Some(self.opts.level))
                .map_err(|e| Error::io(&self.target, e))?;
            self.put_object(&object::task_path(id), &file)?;
            if let Some(state) = self.kernel_states.remove(&id) {
                self.put_kernel_state(&state, task)?;
            }
        }
        if let Some(id) = self.kernel_states.keys().next() {
            return Err(Error::Usage(format!(
                "kernel state of task {id}, which has no task record"
            )));
        }
        let removed = std::mem::take(&mut self.removed);
        let chunks = self
            .chunks
            .drain(..)
            .enumerate()
            .filter(|(i, _)| !removed.contains(&(*i as u32)))
            .map(|(_, c)| c)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Usage("a chunk was never completed".into()))?;
        let mut checkpoint_set = self.info.checkpoint_set.clone();
        checkpoint_set.sort_by_key(|m| m.task_id);
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            tool_version: self.info.tool_version.clone(),
            kernel_build_hash: self.info.kernel_build_hash,
            kernel_abi_version: self.info.kernel_abi_version,
            created: self.info.created,
            task_zero: self.info.task_zero,
            options: self.info.options.clone(),
            checkpoint_set,
            parent: self.parent.as_ref().map(|p| p.reference.clone()),
            chunks,
            objects: self.objects.values().cloned().collect(),
        };
        let file = object::encode_record(ObjectKind::Manifest, &manifest, None)
            .map_err(|e| Error::io(&self.target, e))?;
        let manifest_digest = Digest::of(&file[crate::header::HEADER_LEN..]);
        self.sink.put(MANIFEST_PATH, &file)?;
        let ImageWriter {
            sink,
            target,
            opts,
            stats,
            pool,
            ..
        } = self;
        drop(pool);
        sink.commit(&target, opts.overwrite)?;
        Ok(Finished {
            manifest_digest,
            stats,
        })
    }
}
