//! What every Spartan command (`snapinspect`, `chkpnt`, `rstr`) shares:
//! the exit-status contract and the one-line error report.
//!
//! Exit status:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | the command succeeded (image sound, images identical, task restored) |
//! | 1 | the command ran and refused or failed (problems found, images differ, [`Refused`]) |
//! | 2 | usage error or input that cannot be read at all (clap exits 2 on usage errors itself) |
//!
//! An error is printed as exactly one line on stderr,
//! `<bin>: error: <what>: <cause>`, whatever `RUST_BACKTRACE` says: the
//! error's chain is joined with causes that an outer message already
//! embeds left out (see [`one_line`]), and every character that could
//! drive a terminal is escaped ([`escape`]).

pub mod docs;
mod escape;

use std::process::ExitCode;

pub use escape::{escape, escape_lines};

/// Exit status of success.
pub const EXIT_OK: u8 = 0;
/// Exit status of a command that ran and refused or failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a usage error or of input that cannot be read at all.
pub const EXIT_UNUSABLE: u8 = 2;

/// What a run that returned without an error concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sound, identical, done, or a command with nothing to judge (exit 0).
    Ok,
    /// Problems found, differences found (exit 1).
    Failed,
}

/// An error meaning "the command ran and refused or failed" (exit 1)
/// rather than "the input could not be used" (exit 2, any other error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit status an error ends the process with.
pub fn status_of(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Refused>()) {
        EXIT_FAILED
    } else {
        EXIT_UNUSABLE
    }
}

/// A closed stdout (`snapinspect show … | head`) is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes as one line, each part once, escaped.
///
/// Library errors in this project follow thiserror's `"{path}: {source}"`
/// shape: their message already contains their source's message, which
/// `source()` returns too. A cause whose message is already part of the
/// line is therefore left out; any other cause is appended after `: `.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if msg.is_empty() || line.contains(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    escape(&line).into_owned()
}

/// Ends a command: maps its outcome to the shared exit status and prints
/// an error as `<bin>: error: …` on one line.
pub fn finish(bin: &str, outcome: anyhow::Result<Verdict>) -> ExitCode {
    match outcome {
        Ok(Verdict::Ok) => ExitCode::from(EXIT_OK),
        Ok(Verdict::Failed) => ExitCode::from(EXIT_FAILED),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("{bin}: error: {}", one_line(&e));
            ExitCode::from(status_of(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Wrapped {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn embedded_causes_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Wrapped {
            path: "img".into(),
            source: io,
        })
        .context("cannot show");
        assert_eq!(one_line(&e), "cannot show: img: no such file");
    }

    #[test]
    fn refusals_exit_1_and_other_errors_2() {
        let refused = anyhow::Error::new(Refused("not implemented".into())).context("cannot x");
        assert_eq!(status_of(&refused), EXIT_FAILED);
        assert_eq!(one_line(&refused), "cannot x: not implemented");
        assert_eq!(status_of(&anyhow::anyhow!("bad input")), EXIT_UNUSABLE);
    }

    #[test]
    fn control_characters_in_errors_are_escaped() {
        let e = anyhow::anyhow!("task \u{1b}[2Jname\n");
        assert_eq!(one_line(&e), "task \\x1b[2Jname\\n");
    }
}
