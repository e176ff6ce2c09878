//! Writes the golden image: `cargo run -p snapfmt --example make_golden -- fixtures/images`
//! creates `golden-v1/` (directory form) and `golden-v1.tar` (its tar twin)
//! under the given directory, replacing them. The content is
//! [`snapfmt::sample`]: deterministic, so rerunning gives identical bytes.
//! The golden image is committed and must only be regenerated while the
//! format of version 1.0 is still being defined.

use snapfmt::{ImageForm, WriterOptions, sample};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fixtures/images".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (name, form) in [
        ("golden-v1", ImageForm::Directory),
        ("golden-v1.tar", ImageForm::Tar),
    ] {
        let opts = WriterOptions {
            form,
            overwrite: true,
            threads: 2,
            chunk_pages: 4,
            ..WriterOptions::default()
        };
        let done = sample::write_sample(&dir.join(name), opts)?;
        println!(
            "{}: manifest {}",
            dir.join(name).display(),
            done.manifest_digest
        );
    }
    Ok(())
}
