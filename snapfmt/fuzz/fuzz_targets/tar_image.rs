//! Fuzzes opening a whole image in tar form: container parsing, manifest,
//! task records, chunks, page reads and validate. Checksums make mutations
//! of record bodies fail early, which is what a reader must do; the
//! container and header paths get the most coverage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = tempfile::NamedTempFile::new() else { return };
    if f.write_all(data).is_err() {
        return;
    }
    let path = f.path();
    if let Ok(img) = snapfmt::Image::open(path) {
        for id in img.task_ids() {
            let _ = img.kernel_state(id);
            if let Ok(t) = img.task(id) {
                for a in &t.areas {
                    // Both the inline and the worker paths of prefetch
                    // (two chunks per batch either way).
                    let threads = 1 + usize::from(data.len() % 2 == 1);
                    let _ = img.for_each_page(a, threads, |_, _| Ok(()));
                }
            }
        }
        let _ = img.stats();
    }
    let _ = snapfmt::validate(path);
});
