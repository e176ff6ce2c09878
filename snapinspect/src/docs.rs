//! Man pages and shell completions, generated from the clap definition.
//!
//! The committed files under `man/` (`snapinspect.1` and one page per
//! subcommand, `snapinspect-show.1` …) and `completions/` (bash, zsh, fish)
//! are the output of [`write_all`]; `cargo run -p snapinspect --example
//! gen-docs` rewrites them and a test fails when they are stale. Rendering is
//! deterministic: clap_mangen writes no date unless asked to.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::{Generator, Shell};

use crate::cli::Cli;

/// The name the binary is installed under.
pub const BIN_NAME: &str = "snapinspect";

/// One generated file: its name (no directory) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// A failure to render or write the generated files.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// Rendering a man page failed (clap_mangen reports I/O errors).
    #[error("rendering the man page {page}: {source}")]
    Render { page: String, source: io::Error },
    /// Writing a generated file failed.
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Renders the man page of `snapinspect` and of every visible subcommand.
///
/// The result is sorted by file name.
pub fn man_pages() -> Result<Vec<Generated>, DocsError> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    render_man_tree(&cmd, &mut pages)?;
    pages.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(pages)
}

fn render_man_tree(cmd: &clap::Command, out: &mut Vec<Generated>) -> Result<(), DocsError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_man_tree(sub, out)?;
    }
    // Subcommand pages would otherwise carry only the subcommand's name
    // (and no version) as their source.
    let man = clap_mangen::Man::new(cmd.clone())
        .source(format!("{BIN_NAME} {}", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut bytes = Vec::new();
    man.render(&mut bytes).map_err(|source| DocsError::Render {
        page: file_name.clone(),
        source,
    })?;
    out.push(Generated { file_name, bytes });
    Ok(())
}

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Renders the completion scripts for [`SHELLS`], sorted by file name.
pub fn completions() -> Vec<Generated> {
    let mut out: Vec<Generated> = SHELLS
        .iter()
        .map(|&shell| {
            let mut cmd = Cli::command();
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut cmd, BIN_NAME, &mut bytes);
            Generated {
                file_name: shell.file_name(BIN_NAME),
                bytes,
            }
        })
        .collect();
    out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    out
}

/// Writes the man pages into `man_dir` and the completions into
/// `completions_dir`, creating the directories. Returns the paths written.
pub fn write_all(man_dir: &Path, completions_dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    let mut written = Vec::new();
    for (dir, files) in [(man_dir, man_pages()?), (completions_dir, completions())] {
        std::fs::create_dir_all(dir).map_err(|source| DocsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for g in files {
            let path = dir.join(&g.file_name);
            std::fs::write(&path, &g.bytes).map_err(|source| DocsError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
    }
    Ok(written)
}
