//! `snapinspect validate`: every problem of an image, as plain data.
//!
//! The checking itself is snapfmt's [`snapfmt::validate`], which walks
//! every file of the image and its parent chain. This module only makes
//! the distinction the exit codes need: an image that cannot be read at
//! all (no such path, permission denied) is an error (exit 2), while an
//! image that can be read but is broken is a report with problems (exit 1).

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why validation could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The path does not exist or cannot be examined.
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The outcome of validating one image.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub image: String,
    /// True when no problem was found.
    pub sound: bool,
    /// Every problem, sorted by file, field and message.
    pub problems: Vec<ProblemView>,
}

/// One problem: the file inside the image (or the image path itself for
/// container problems; files of ancestors are prefixed `parent PATH:`),
/// the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemView {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ProblemView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.message)
    }
}

/// Validates the image at `path` and its parent chain.
pub fn validate(path: &Path) -> Result<ValidationReport, ValidateError> {
    std::fs::metadata(path).map_err(|source| ValidateError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let problems: Vec<ProblemView> = snapfmt::validate(path)
        .into_iter()
        .map(|p| ProblemView {
            file: p.file,
            field: p.field,
            message: p.message,
        })
        .collect();
    Ok(ValidationReport {
        image: path.display().to_string(),
        sound: problems.is_empty(),
        problems,
    })
}
