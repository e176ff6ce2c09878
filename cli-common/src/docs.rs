//! Man pages and shell completions of a command, generated from its clap
//! definition: what every Spartan binary's `gen-docs` example writes
//! under `man/` and `completions/`, and what its staleness test compares
//! with the committed files ([`check_fresh`]). Rendering is deterministic:
//! clap_mangen writes no date unless asked to.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::{Generator, Shell};

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

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The man page of `cmd` (installed as `bin`, at `version`) and of every
/// visible subcommand (`bin-sub.1`), sorted by file name.
pub fn man_pages(
    cmd: clap::Command,
    bin: &str,
    version: &str,
) -> Result<Vec<Generated>, DocsError> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    render_man_tree(&cmd, &format!("{bin} {version}"), &mut pages)?;
    pages.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(pages)
}

fn render_man_tree(
    cmd: &clap::Command,
    source: &str,
    out: &mut Vec<Generated>,
) -> Result<(), DocsError> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_man_tree(sub, source, out)?;
    }
    // Subcommand pages would otherwise carry only the subcommand's name
    // (and no version) as their source.
    let man = clap_mangen::Man::new(cmd.clone()).source(source.to_string());
    let file_name = man.get_filename();
    let mut bytes = Vec::new();
    man.render(&mut bytes).map_err(|source| DocsError::Render {
        page: file_name.clone(),
        source,
    })?;
    out.push(Generated { file_name, bytes });
    Ok(())
}

/// The completion scripts of `cmd` for [`SHELLS`], sorted by file name.
pub fn completions(cmd: &clap::Command, bin: &str) -> Vec<Generated> {
    let mut out: Vec<Generated> = SHELLS
        .iter()
        .map(|&shell| {
            let mut cmd = cmd.clone();
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut cmd, bin, &mut bytes);
            Generated {
                file_name: shell.file_name(bin),
                bytes,
            }
        })
        .collect();
    out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    out
}

/// Writes `pages` into `man_dir` and `scripts` into `completions_dir`,
/// creating the directories. Returns the paths written.
pub fn write(
    man_dir: &Path,
    completions_dir: &Path,
    pages: Vec<Generated>,
    scripts: Vec<Generated>,
) -> Result<Vec<PathBuf>, DocsError> {
    let mut written = Vec::new();
    for (dir, files) in [(man_dir, pages), (completions_dir, scripts)] {
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

/// The body of a binary's `gen-docs` example: writes its `pages` and
/// completion `scripts` under `man/` and `completions/` of the root named
/// by the first command-line argument (default `default_root`, the
/// workspace root), printing each path written.
pub fn generate(
    default_root: &Path,
    pages: Result<Vec<Generated>, DocsError>,
    scripts: Vec<Generated>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let root = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => default_root.to_path_buf(),
    };
    let written = write(
        &root.join("man"),
        &root.join("completions"),
        pages?,
        scripts,
    )
    .with_context(|| format!("generating docs under {}", root.display()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Whether `name` is one of `bin`'s generated files (its pages or its
/// completion scripts).
pub fn is_generated_for(name: &str, bin: &str) -> bool {
    let page = name == format!("{bin}.1")
        || (name.starts_with(&format!("{bin}-")) && name.ends_with(".1"));
    let script = SHELLS.iter().any(|s| name == s.file_name(bin));
    page || script
}

/// Compares the committed files of `bin` under `root` (`man/`,
/// `completions/`) with `pages` and `scripts`; the error names every
/// missing, stale or leftover file.
pub fn check_fresh(
    root: &Path,
    bin: &str,
    pages: &[Generated],
    scripts: &[Generated],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (dir, expected) in [
        (root.join("man"), pages),
        (root.join("completions"), scripts),
    ] {
        for g in expected {
            let path = dir.join(&g.file_name);
            match std::fs::read(&path) {
                Ok(bytes) if bytes == g.bytes => {}
                Ok(_) => problems.push(format!("{} is stale", path.display())),
                Err(e) => problems.push(format!("{} is missing ({e})", path.display())),
            }
        }
        let listed = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in listed.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_generated_for(&name, bin) && !expected.iter().any(|g| g.file_name == name) {
                problems.push(format!("{} is left over", dir.join(&name).display()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
