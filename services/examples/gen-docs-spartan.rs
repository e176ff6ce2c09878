//! Regenerates `spartan`'s man pages (`man/`) and shell completions
//! (`completions/`) from its clap definition.
//!
//! Run from anywhere: `cargo run -p spartan-services --example gen-docs-spartan`. An optional
//! argument names another root to write `man/` and `completions/` under
//! (default: the workspace root).

use std::path::PathBuf;

use anyhow::Context;
use spartan_services::cli;

fn main() -> anyhow::Result<()> {
    let root = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    let written = spartan_cli::docs::write(
        &root.join("man"),
        &root.join("completions"),
        cli::man_pages()?,
        cli::completions(),
    )
    .with_context(|| format!("generating docs under {}", root.display()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
