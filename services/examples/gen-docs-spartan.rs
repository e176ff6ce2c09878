//! Regenerates `spartan`'s man pages (`man/`) and shell completions
//! (`completions/`) from its clap definition.
//!
//! Run from anywhere: `cargo run -p spartan-services --example gen-docs-spartan`. An
//! optional argument names another root to write `man/` and
//! `completions/` under (default: the workspace root).

use spartan_services::cli;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    spartan_cli::docs::generate(&root, cli::man_pages(), cli::completions())
}
