//! Fuzzes the directory container with files whose checksums and manifest
//! entries are recomputed after mutation, so that the mutated content gets
//! past the integrity checks into the decoders and the consistency rules.
//! The first input byte picks a file of the current (1.4) golden image
//! (its pack `packs/0.spp` among them: replaced by one chunk file, its
//! frames no longer match), the rest is that file's new content (the manifest's, a record's, a module's, ...),
//! stored uncompressed; the manifest lists the new header. Then the image
//! is opened, every task, kernel state, module, backup and page read, and
//! validated. The reader must return errors, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfmt::object::{self, MANIFEST_PATH};
use snapfmt::{Image, Manifest, ModuleRef, ObjectHeader, ObjectKind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The golden image's files: (path inside the image, bytes).
fn golden() -> &'static [(String, Vec<u8>)] {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images/golden-v1.4");
        let mut out = Vec::new();
        collect(&root, &root, &mut out);
        out.sort();
        out
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("golden image") {
        let p: PathBuf = e.expect("entry").path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).expect("inside").display().to_string();
            out.push((rel, std::fs::read(&p).expect("read")));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let files = golden();
    let (target, original) = &files[pick as usize % files.len()];
    let Ok(header) = ObjectHeader::parse(original) else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let img = dir.path().join("img");
    let new_file = object::assemble(header.kind, 0, content, object::body_checksum(0, content));
    let new_header = ObjectHeader::parse(&new_file).expect("own header");
    for (path, bytes) in files {
        let full = img.join(path);
        let _ = std::fs::create_dir_all(full.parent().expect("parent"));
        let bytes = if path == target { &new_file } else { bytes };
        if std::fs::write(&full, bytes).is_err() {
            return;
        }
    }
    // Re-list the mutated file (a chunk's entry is left as it is: its
    // address would have to change too).
    if target != MANIFEST_PATH && header.kind != ObjectKind::Chunk {
        let manifest = &files
            .iter()
            .find(|(p, _)| p == MANIFEST_PATH)
            .expect("manifest")
            .1;
        let Ok((_, mut m)) = object::open_record::<Manifest>(manifest, ObjectKind::Manifest) else {
            return;
        };
        for o in m.objects.iter_mut().filter(|o| &o.path == target) {
            o.body_len = new_header.body_len;
            o.body_digest = new_header.checksum;
        }
        let Ok(bytes) = object::encode_record(ObjectKind::Manifest, &m, None) else {
            return;
        };
        if std::fs::write(img.join(MANIFEST_PATH), bytes).is_err() {
            return;
        }
    }
    if let Ok(image) = Image::open(&img) {
        for id in image.task_ids() {
            let _ = image.kernel_state(id);
            if let Ok(t) = image.task(id) {
                if let ModuleRef::Embedded { sha256, .. } = &t.meta.module {
                    let _ = image.module(sha256);
                }
                for fb in t.file_backups.iter().filter(|f| f.stored) {
                    let _ = image.file_backup(&fb.sha256);
                }
                for a in &t.areas {
                    let _ = image.for_each_page(a, 1, |_, _| Ok(()));
                }
            }
        }
        let _ = image.stats();
        let _ = image.parent_chain();
    }
    let _ = snapfmt::validate(&img);
});
