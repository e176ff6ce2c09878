//! `snapinspect validate`: every problem of an image, as plain data.
//!
//! The checking itself is snapfmt's [`snapfmt::validate`], which walks
//! every file of the image and its parent chain. This module only makes
//! the distinction the exit codes need: an input that cannot be read as an
//! image at all (no such path, permission denied, a FIFO or device, an
//! empty directory, a file that is not a tar file; see [`crate::input`]) is
//! an error (exit 2), while an image that can be read but is broken is a
//! report with problems (exit 1).

use std::path::Path;

use serde::Serialize;

use crate::input::InputError;

/// Why validation could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The path cannot be read as an image at all.
    #[error(transparent)]
    Input(#[from] InputError),
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
/// the field (`None` when the problem concerns the whole file), and what
/// is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemView {
    pub file: String,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ProblemView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Validates the image at `path` and its parent chain.
pub fn validate(path: &Path) -> Result<ValidationReport, ValidateError> {
    crate::input::probe(path)?;
    let problems: Vec<ProblemView> = snapfmt::validate(path)
        .into_iter()
        .map(|p| ProblemView {
            file: p.file,
            // snapfmt writes `-` for "no particular field".
            field: (p.field != "-").then_some(p.field),
            message: p.message,
        })
        .collect();
    Ok(ValidationReport {
        image: path.display().to_string(),
        sound: problems.is_empty(),
        problems,
    })
}
