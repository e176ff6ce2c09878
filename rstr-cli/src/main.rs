//! `rstr DIR [--err-resume]`: restore the tasks of an image.

use clap::Parser;

/// Restore the tasks of a snapshot image into the running system.
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "cannot restore {}: this build has no running-system support yet \
         (the kernel and services are not implemented)",
        args.image.display()
    )
}
