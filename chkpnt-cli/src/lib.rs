//! The command line of `chkpnt` (a clap derive definition, in the library
//! so that the man-page and completion generator sees what the binary
//! parses).

use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum, ValueHint};

/// Take a consistent snapshot of TASK and every task of its checkpoint set.
///
/// The running system (`spartan boot`) stops the set once every service it
/// uses has reached a checkpointable state, captures it with the services'
/// exported states, resumes (or kills) it, and writes the image to a hidden
/// temporary sibling of DIR that is renamed into place only when complete:
/// an interrupted checkpoint never leaves an image that validates. DIR must
/// not exist or be an empty directory. The socket is `--socket PATH`, else
/// `$SPARTAN_SOCKET`, else `$XDG_RUNTIME_DIR/spartan.sock`, else
/// `/tmp/spartan-$UID/control.sock`.
///
/// With --parent PARENT the image is incremental: the pages the kernel
/// knows unchanged since PARENT was captured (the mm dirty bits, kept per
/// checkpoint) are referenced from PARENT's chunks, and only the others are
/// stored. The kernel knows this only for a task PARENT was written from
/// in this run of the system, or restored from (`rstr PARENT` and then
/// `chkpnt --parent PARENT` stores only what the task changed since), and
/// only within its last 64 checkpoints. Whatever it cannot prove is written
/// in full inside the incremental image, and a line says why: a task
/// PARENT was not taken from, an area created since PARENT (a destroyed and
/// recreated area is new), an area mapping memory shared with other tasks.
/// PARENT is checked first (its manifest, its own parents, its task
/// records): a PARENT that is missing or fails its checks is refused before
/// the set is stopped, and nothing is left at DIR. Restoring or validating
/// the image needs PARENT (and its parents) at the path recorded, relative
/// to DIR's directory when they share one, else absolute.
///
/// Exit status: 0 when the image was written; 1 when the checkpoint was
/// refused or failed (no system running, no such task, a task that is not
/// checkpointable or shares state with one that is neither, a service that
/// timed out, DIR exists and is not an empty directory, the directory DIR
/// is to be in is missing); 2 on usage errors or unusable input (a bad option or
/// argument, a --parent image that is missing or fails its checks).
/// Errors are one line on stderr, `chkpnt: error: ...`.
#[derive(Parser, Debug)]
#[command(name = "chkpnt", version, about, long_about, after_long_help = EXAMPLES)]
pub struct Args {
    /// Directory (or, with --tar, file) to write the image to.
    #[arg(short = 'o', long = "output", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub output: PathBuf,
    /// Id of the task to checkpoint (task zero of the set).
    #[arg(value_name = "TASK")]
    pub task: u64,
    /// Write one tar file instead of a directory.
    #[arg(long)]
    pub tar: bool,
    /// Write an incremental image on top of the image PARENT: only pages
    /// changed since it are stored.
    #[arg(long, value_name = "PARENT", value_hint = ValueHint::AnyPath)]
    pub parent: Option<PathBuf>,
    /// Let the set run on after the checkpoint (the default).
    #[arg(long, overrides_with = "kill", action = ArgAction::SetTrue)]
    pub leave_running: bool,
    /// Kill the set after the checkpoint.
    #[arg(long, overrides_with = "leave_running", action = ArgAction::SetTrue)]
    pub kill: bool,
    /// How long to wait for each service to cooperate, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub timeout: u64,
    /// What a restore does with the files the set has open.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = FilePolicyArg::Unchangeable)]
    pub file_policy: FilePolicyArg,
    /// Tasks outside the set that are clients of its members (thesis
    /// 4.4.3): include them in the set, exclude them (the restored members
    /// see them gone), or refuse the checkpoint naming them.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = ClientsArg::Include)]
    pub clients: ClientsArg,
    /// The control socket.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// Print the result as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// File policies (thesis 4.4.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilePolicyArg {
    /// Files must not have changed at restore (size and SHA-256 checked).
    Unchangeable,
    /// No checks: a missing file is closed, a shorter one read from its end.
    Volatile,
    /// A copy is stored and written back over the file at restore.
    BackupOverwrite,
    /// A copy is stored and written back only if the file is missing.
    BackupSkip,
}

/// Clients outside the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientsArg {
    /// They join the set.
    Include,
    /// They are left out; the restored members see their connections gone.
    Exclude,
    /// The checkpoint is refused, naming them.
    Refuse,
}

const EXAMPLES: &str = "\
Examples:
  chkpnt -o backups/$(date +%s) $(spartan tasks --name tetris --id)
  chkpnt -o game.tar --tar --kill 7
  chkpnt -o backups/mon 7 && chkpnt -o backups/tue --parent backups/mon 7
  chkpnt -o img 7 --file-policy volatile --timeout 5000 --json";

/// The man pages, generated from the clap definition.
pub fn man_pages() -> Result<Vec<spartan_cli::docs::Generated>, spartan_cli::docs::DocsError> {
    use clap::CommandFactory;
    spartan_cli::docs::man_pages(Args::command(), "chkpnt", env!("CARGO_PKG_VERSION"))
}

/// The shell completions, generated from the clap definition.
pub fn completions() -> Vec<spartan_cli::docs::Generated> {
    use clap::CommandFactory;
    spartan_cli::docs::completions(&Args::command(), "chkpnt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spartan_services::cli::value_name;
    use spartan_services::system::{parse_clients, parse_file_policy};

    #[test]
    fn every_option_value_is_a_name_the_system_knows() {
        for v in FilePolicyArg::value_variants() {
            assert!(parse_file_policy(&value_name(v)).is_some(), "{v:?}");
        }
        for v in ClientsArg::value_variants() {
            assert!(parse_clients(&value_name(v)).is_some(), "{v:?}");
        }
    }
}
