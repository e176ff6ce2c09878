//! The command line of `rstr` (a clap derive definition, in the library
//! so that the man-page and completion generator sees what the binary
//! parses).

use std::path::PathBuf;

use clap::{Parser, ValueEnum, ValueHint};

/// Restore the tasks of a snapshot image into the running system.
///
/// The image (a directory or tar file written by `chkpnt`) is restored into
/// the system on the socket, which may have been rebooted since: its tasks
/// come back stopped, every service they were connected to takes back its
/// part of their state (under the connections' new ids), and they resume
/// exactly where they were, before their memory is loaded: each page is
/// read from the image, checked and decompressed when first touched, and
/// the rest in the background (`--eager` loads everything first), so the
/// image must stay in place until `spartan tasks` no longer shows bytes
/// still in it. The socket is `--socket PATH`, else
/// `$SPARTAN_SOCKET`, else `$XDG_RUNTIME_DIR/spartan.sock`, else
/// `/tmp/spartan-$UID/control.sock`.
///
/// Exit status: 0 when the tasks were restored; 1 when the restore was
/// refused or failed (no system running, a service it names is not running
/// or refuses its state, e.g. a file changed under the unchangeable
/// policy); 2 on usage errors or unusable input (an image that does not
/// read or validate). Errors are one line on stderr, `rstr: error: ...`.
#[derive(Parser, Debug)]
#[command(name = "rstr", version, about, long_about, after_long_help = EXAMPLES)]
pub struct Args {
    /// The image: a directory or a tar file.
    #[arg(value_name = "DIR", value_hint = ValueHint::AnyPath)]
    pub image: PathBuf,
    /// If a service refuses its part, resume the restored tasks anyway
    /// instead of killing them.
    #[arg(long)]
    pub err_resume: bool,
    /// How long to wait for each service, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub timeout: u64,
    /// A service the image names that no running task provides (thesis
    /// 4.4.7): cancel the restore, or hang up the restored tasks'
    /// connections to it (their calls fail with EHANGUP).
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = MissingArg::Cancel)]
    pub missing: MissingArg,
    /// A service provided by more than one running task: cancel, hang up,
    /// or replace (the one the naming service registered serves, the
    /// others are killed once the restore succeeded).
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = DuplicateArg::Cancel)]
    pub duplicate: DuplicateArg,
    /// Load every page of the image before the tasks resume. By default
    /// they resume at once and each page is read, checked and decompressed
    /// when first touched, the rest in the background: keep the image in
    /// place until then (a page that fails its checks then, or an image
    /// removed, kills every restored task; `--err-resume` does not cover it).
    #[arg(long)]
    pub eager: bool,
    /// The control socket.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// Print the result as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Missing servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MissingArg {
    /// Refuse the restore, naming the service.
    Cancel,
    /// Hang up the connections to it.
    HangUp,
}

/// Duplicate servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DuplicateArg {
    /// Refuse the restore, naming the service and its tasks.
    Cancel,
    /// Hang up the connections to it.
    HangUp,
    /// The registered provider serves; the others are killed.
    Replace,
}

const EXAMPLES: &str = "\
Examples:
  rstr backups/1700000000
  rstr backups/$(ls backups | sort -n | tail -1) --err-resume
  rstr game.tar --json";

/// The man pages, generated from the clap definition.
pub fn man_pages() -> Result<Vec<spartan_cli::docs::Generated>, spartan_cli::docs::DocsError> {
    use clap::CommandFactory;
    spartan_cli::docs::man_pages(Args::command(), "rstr", env!("CARGO_PKG_VERSION"))
}

/// The shell completions, generated from the clap definition.
pub fn completions() -> Vec<spartan_cli::docs::Generated> {
    use clap::CommandFactory;
    spartan_cli::docs::completions(&Args::command(), "rstr")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spartan_services::cli::value_name;
    use spartan_services::system::{parse_duplicate, parse_missing};

    #[test]
    fn every_option_value_is_a_name_the_system_knows() {
        for v in MissingArg::value_variants() {
            assert!(parse_missing(&value_name(v)).is_some(), "{v:?}");
        }
        for v in DuplicateArg::value_variants() {
            assert!(parse_duplicate(&value_name(v)).is_some(), "{v:?}");
        }
    }
}
