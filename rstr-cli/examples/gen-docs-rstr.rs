//! Regenerates `rstr`'s man pages (`man/`) and shell completions
//! (`completions/`) from its clap definition.
//!
//! Run from anywhere: `cargo run -p rstr --example gen-docs-rstr`. An
//! optional argument names another root to write `man/` and
//! `completions/` under (default: the workspace root).

use rstr as cli;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    spartan_cli::docs::generate(&root, cli::man_pages(), cli::completions())
}
