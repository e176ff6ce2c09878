//! `chkpnt -o DIR TASK`: snapshot a running task and its checkpoint set.

use clap::Parser;

/// Take a consistent snapshot of TASK and every task of its checkpoint set.
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "cannot checkpoint task {} into {}: this build has no running-system support yet \
         (the kernel and services are not implemented)",
        args.task,
        args.output.display()
    )
}
