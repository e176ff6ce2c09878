//! `rstr DIR [--err-resume]`: restore the tasks of an image.
//!
//! A placeholder until the kernel and services run: it parses its
//! arguments and refuses (exit 1) with one line saying why. Exit statuses
//! and error lines follow the contract shared by every Spartan command
//! ([`spartan_cli`]).

use std::process::ExitCode;

use clap::Parser;
use spartan_cli::{Refused, Verdict};

/// Restore the tasks of a snapshot image into the running system.
///
/// Exit status: 0 when the tasks were restored, 1 when the restore was
/// refused or failed, 2 on usage errors or unusable input.
#[derive(Parser, Debug)]
#[command(name = "rstr", version)]
struct Args {
    /// The image: a directory or a tar file.
    #[arg(value_name = "DIR")]
    image: std::path::PathBuf,
    /// On an error, resume the tasks that were restored instead of killing them.
    #[arg(long)]
    err_resume: bool,
}

fn run(args: Args) -> anyhow::Result<Verdict> {
    Err(anyhow::Error::new(Refused(
        "this build has no running-system support yet \
         (the kernel and services are not implemented)"
            .into(),
    ))
    .context(format!("cannot restore {}", args.image.display())))
}

fn main() -> ExitCode {
    spartan_cli::finish("rstr", run(Args::parse()))
}
