//! `chkpnt -o DIR TASK`: snapshot a running task and its checkpoint set.
//!
//! A placeholder until the kernel and services run: it parses its
//! arguments and refuses (exit 1) with one line saying why. Exit statuses
//! and error lines follow the contract shared by every Spartan command
//! ([`spartan_cli`]).

use std::process::ExitCode;

use clap::Parser;
use spartan_cli::{Refused, Verdict};

/// Take a consistent snapshot of TASK and every task of its checkpoint set.
///
/// Exit status: 0 when the snapshot was written, 1 when it was refused or
/// failed, 2 on usage errors or unusable input.
#[derive(Parser, Debug)]
#[command(name = "chkpnt", version)]
struct Args {
    /// Directory (or FILE.tar) to write the image to.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: std::path::PathBuf,
    /// Id of the task to checkpoint.
    #[arg(value_name = "TASK")]
    task: u64,
}

fn run(args: Args) -> anyhow::Result<Verdict> {
    Err(anyhow::Error::new(Refused(
        "this build has no running-system support yet \
         (the kernel and services are not implemented)"
            .into(),
    ))
    .context(format!(
        "cannot checkpoint task {} into {}",
        args.task,
        args.output.display()
    )))
}

fn main() -> ExitCode {
    spartan_cli::finish("chkpnt", run(Args::parse()))
}
