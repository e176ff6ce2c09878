//! Writes the golden image of the current format version:
//! `cargo run -p snapfmt --example make_golden -- fixtures/images` creates
//! `golden-v<major>.<minor>/` (directory form) and
//! `golden-v<major>.<minor>.tar` (its tar twin) under the given directory,
//! replacing them. The content is [`snapfmt::sample`]: deterministic, so
//! rerunning gives identical bytes as long as the writer compresses with
//! the same zstd parameters (golden-v1.2 was written before chunks took
//! zstd's large-input minimum match; its content is unchanged). Golden
//! images are committed and must only be regenerated while their version
//! is still being defined; the 1.0 image is `golden-v1/` and
//! `golden-v1.tar`, written by the 1.0
//! writer and kept as it is forever.

use snapfmt::{FORMAT_VERSION, ImageForm, WriterOptions, sample};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fixtures/images".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let stem = format!("golden-v{FORMAT_VERSION}");
    for (name, form) in [
        (stem.clone(), ImageForm::Directory),
        (format!("{stem}.tar"), ImageForm::Tar),
    ] {
        let opts = WriterOptions {
            form,
            overwrite: true,
            threads: 2,
            chunk_pages: 4,
            ..WriterOptions::default()
        };
        let done = sample::write_sample(&dir.join(&name), opts)?;
        println!(
            "{}: manifest {}",
            dir.join(&name).display(),
            done.manifest_digest
        );
    }
    Ok(())
}
