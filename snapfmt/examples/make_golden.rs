//! Writes the golden image of the current format version:
//! `cargo run -p snapfmt --example make_golden -- fixtures/images` creates
//! `golden-v<major>.<minor>/` (directory form) and
//! `golden-v<major>.<minor>.tar` (its tar twin: the same files, so the
//! same manifest, including the packs) under the given directory,
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
    let opts = WriterOptions {
        form: ImageForm::Directory,
        overwrite: true,
        threads: 2,
        chunk_pages: 4,
        ..WriterOptions::default()
    };
    let image = dir.join(&stem);
    let done = sample::write_sample(&image, opts)?;
    println!("{}: manifest {}", image.display(), done.manifest_digest);
    // The tar twin holds the directory's files (its chunks packed, as the
    // writer packs only directories) as members in the order a writer
    // writes them (FORMAT.md section 1), the manifest last.
    let tar = dir.join(format!("{stem}.tar"));
    let mut files = Vec::new();
    for sub in ["modules", "files", "packs", "tasks"] {
        let mut names: Vec<String> = std::fs::read_dir(image.join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        // Packs by number, task records by task id (each before its kernel
        // state record), the rest by name.
        names.sort_by_key(|n| {
            let stem = n.rsplit('/').next().unwrap_or(n);
            let (num, ext) = stem.split_once('.').unwrap_or((stem, ""));
            (
                num.parse::<u64>().unwrap_or(u64::MAX),
                ext == "spk",
                n.clone(),
            )
        });
        files.extend(names);
    }
    files.push("manifest.spm".into());
    let mut b = tar::Builder::new(std::fs::File::create(&tar)?);
    b.mode(tar::HeaderMode::Deterministic);
    for name in files {
        let bytes = std::fs::read(image.join(&name))?;
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &name, &bytes[..])?;
    }
    b.into_inner()?.sync_all()?;
    println!("{}: manifest {}", tar.display(), done.manifest_digest);
    Ok(())
}
