//! The writer's files other than chunks: task records' kernel state,
//! modules, file backups, each listed in the manifest's `objects`.

use super::ImageWriter;
use crate::error::{Error, Result};
use crate::header::ObjectKind;
use crate::object;
use crate::records::*;

impl ImageWriter {
    /// Writes one kernel state record after checking it against its task's
    /// record (never write what a reader would refuse).
    pub(super) fn put_kernel_state(
        &mut self,
        state: &KernelTaskState,
        task: &TaskRecord,
    ) -> Result<()> {
        let path = object::kernel_state_path(state.task_id);
        let mut problems = Vec::new();
        crate::check::kernel_state(state, &path, Some(task), &mut problems);
        if let Some(p) = problems.first() {
            return Err(Error::Usage(format!("kernel state does not fit: {p}")));
        }
        let body = postcard::to_allocvec(state)
            .map_err(|e| Error::io(&self.target, std::io::Error::other(e)))?;
        if body.len() as u64 > crate::limits::MAX_KERNEL_STATE_BODY {
            return Err(Error::Usage(format!(
                "{path}: the record is {} bytes, over the limit of {}",
                body.len(),
                crate::limits::MAX_KERNEL_STATE_BODY
            )));
        }
        object::decode_record::<KernelTaskState>(&body)
            .map_err(|e| Error::Usage(format!("{path}: readers would refuse the record: {e}")))?;
        let file = object::encode_bytes(ObjectKind::KernelState, &body, Some(self.opts.level))
            .map_err(|e| Error::io(&self.target, e))?;
        self.put_object(&path, &file)
    }

    pub(super) fn put_blob(&mut self, kind: ObjectKind, path: &str, bytes: &[u8]) -> Result<()> {
        if self.objects.contains_key(path) {
            return Ok(());
        }
        let file = object::encode_bytes(kind, bytes, Some(self.opts.level))
            .map_err(|e| Error::io(&self.target, e))?;
        self.put_object(path, &file)
    }

    pub(super) fn put_object(&mut self, path: &str, file: &[u8]) -> Result<()> {
        let header = crate::header::ObjectHeader::parse(file).map_err(|e| Error::Object {
            file: path.to_string(),
            error: e,
        })?;
        self.sink.put(path, file)?;
        self.objects.insert(
            path.to_string(),
            ObjectEntry {
                path: path.to_string(),
                body_len: header.body_len,
                body_digest: header.checksum,
            },
        );
        Ok(())
    }
}
