//! Man pages and shell completions, generated from the clap definition
//! with the mechanism every Spartan binary shares ([`spartan_cli::docs`]).
//!
//! The committed files under `man/` (`snapinspect.1` and one page per
//! subcommand, `snapinspect-show.1` …) and `completions/` (bash, zsh, fish)
//! are the output of [`write_all`]; `cargo run -p snapinspect --example
//! gen-docs` rewrites them and a test fails when they are stale.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

pub use spartan_cli::docs::{DocsError, Generated, SHELLS};

use crate::cli::Cli;

/// The name the binary is installed under.
pub const BIN_NAME: &str = "snapinspect";

/// Renders the man page of `snapinspect` and of every visible subcommand.
///
/// The result is sorted by file name.
pub fn man_pages() -> Result<Vec<Generated>, DocsError> {
    spartan_cli::docs::man_pages(Cli::command(), BIN_NAME, env!("CARGO_PKG_VERSION"))
}

/// Renders the completion scripts for [`SHELLS`], sorted by file name.
pub fn completions() -> Vec<Generated> {
    spartan_cli::docs::completions(&Cli::command(), BIN_NAME)
}

/// Writes the man pages into `man_dir` and the completions into
/// `completions_dir`, creating the directories. Returns the paths written.
pub fn write_all(man_dir: &Path, completions_dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    spartan_cli::docs::write(man_dir, completions_dir, man_pages()?, completions())
}
