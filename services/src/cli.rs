//! The command-line surface of `spartan` (a clap derive definition, in
//! the library so that the man-page and completion generator sees what
//! the binary parses), and what every control-socket client (`spartan`,
//! `chkpnt`, `rstr`) shares: connecting, and turning a failure into the
//! exit status of [`spartan_cli`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueHint};

use crate::control::{Client, ClientError};

/// Boot and drive a Spartan system: a hosted microkernel whose
/// WebAssembly tasks can be checkpointed (`chkpnt`) and restored (`rstr`).
///
/// `spartan boot` runs the kernel with its services (naming service, VFS
/// on a host directory, console, loader, checkpointer) and serves a
/// control socket; the other subcommands are its clients. The socket is
/// `--socket PATH`, else `$SPARTAN_SOCKET`, else
/// `$XDG_RUNTIME_DIR/spartan.sock`, else `/tmp/spartan-$UID/control.sock`;
/// it is owner-only, and every connection's peer must be the same user.
/// Protocol: `services/CONTROL.md`.
///
/// Exit status: 0 when the command succeeded, 1 when the system refused
/// or failed (no system running, no such task, a system already running
/// on the socket), 2 on usage errors or unusable input (a bad program
/// path or argument). Errors are one line on stderr, `spartan: error: ...`.
#[derive(Debug, Parser)]
#[command(name = "spartan", version, about, long_about, after_long_help = EXAMPLES)]
pub struct Cli {
    /// The control socket (default: $SPARTAN_SOCKET, else
    /// $XDG_RUNTIME_DIR/spartan.sock, else /tmp/spartan-$UID/control.sock).
    #[arg(long, global = true, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "\
Examples:
  spartan boot --root games --detach
  spartan run tetris.wasm
  spartan run ./counter.wat 100 --name counter
  spartan tasks
  spartan console
  chkpnt -o backups/$(date +%s) $(spartan tasks --name tetris --id)
  spartan kill 7
  spartan shutdown";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a system and serve its control socket until `spartan
    /// shutdown`, SIGTERM or SIGINT (the socket is removed then).
    ///
    /// A live system already on the socket is refused; a stale socket
    /// (nobody accepts) is replaced; anything else at the path is refused.
    /// The socket's directory is created 0700 if missing and must belong
    /// to this user and be writable by nobody else.
    Boot(BootArgs),
    /// Start a program (.wasm or .wat) as a checkpointable task.
    ///
    /// PROG is a path in the VFS root, or a host path when it starts with
    /// `/`, `./` or `../`. ARGS are integers, passed to its exported
    /// `main` as i64 values. Prints the new task's id and name.
    Run(RunArgs),
    /// List the tasks: id, name, state, threads, memory, policy.
    ///
    /// A task restored lazily whose pages are not all loaded yet says how
    /// many bytes are still in its image (`in_image` in JSON): the image
    /// must stay in place until that is gone.
    Tasks(TasksArgs),
    /// End a task (system services cannot be killed).
    Kill(KillArgs),
    /// Stop the system.
    Shutdown,
    /// Attach this terminal to a virtual console of the running system.
    ///
    /// The terminal goes into raw mode and shows the console's screen;
    /// keys go to the console (to the task reading it). Ctrl-] detaches:
    /// the terminal is given back and the tasks keep running. The
    /// terminal may be resized at any time; a console larger than the
    /// terminal is clipped, and the bottom row says so.
    Console(ConsoleArgs),
    /// The whole story in one run, self-contained (no system needed):
    /// tetris played by a scripted player in a simulated system,
    /// checkpointed halfway, killed, restored into a freshly booted
    /// system, and played to the end; exits 0 only when the final screen
    /// and score equal those of the uninterrupted game.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The virtual console (0 to 7; tasks write to 0 unless they switch).
    #[arg(value_name = "VC", default_value_t = 0)]
    pub vc: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the simulated systems.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Where to checkpoint, as a share of the scripted game (0 to 1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub cut: f64,
    /// Keep the image at DIR (it must not exist); by default it is written
    /// to a temporary directory and removed.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub image: Option<PathBuf>,
    /// Do not print the screens at the cut and at the end.
    #[arg(long)]
    pub no_screens: bool,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// The host directory the VFS serves (and programs are loaded from).
    #[arg(long, value_name = "DIR", default_value = ".", value_hint = ValueHint::DirPath)]
    pub root: PathBuf,
    /// Run in simulation: virtual time from SEED, deterministic scheduling
    /// (paced to the host's clock so tasks do not run ahead).
    #[arg(long, value_name = "SEED")]
    pub sim: Option<u64>,
    /// Run in the background: return once the socket accepts connections.
    #[arg(long)]
    pub detach: bool,
    /// Print the kernel log (task messages, traps, exits) on stderr.
    #[arg(long, conflicts_with = "detach")]
    pub log: bool,
    /// Columns of the virtual consoles.
    #[arg(long, value_name = "N", default_value_t = 80)]
    pub cols: u32,
    /// Rows of the virtual consoles.
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub rows: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The program: a VFS path, or a host path starting with /, ./ or ../.
    #[arg(value_name = "PROG", value_hint = ValueHint::FilePath)]
    pub program: PathBuf,
    /// Integer arguments of its `main`.
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// The task's name (default: the program's file name without extension).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Print a JSON array of task objects.
    #[arg(long, conflicts_with = "id")]
    pub json: bool,
    /// Only tasks with this name (none: exit 1).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Print only the ids, one per line (for `chkpnt -o DIR $(spartan
    /// tasks --name N --id)`).
    #[arg(long)]
    pub id: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub task: u64,
}

/// The socket a client uses (see [`crate::control::socket_path`]).
pub fn socket(explicit: Option<&Path>) -> PathBuf {
    crate::control::socket_path(explicit)
}

/// A client failure as an error with the shared exit status: the
/// request's own fault exits 2, anything else (no system, a refusal) 1.
pub fn client_error(e: ClientError) -> anyhow::Error {
    if e.is_usage() {
        anyhow::Error::new(e)
    } else {
        anyhow::Error::new(spartan_cli::Refused(e.to_string()))
    }
}

/// The name of an option's value as the command line spells it (clap's
/// kebab-case of the variant), which is also the name the control
/// protocol uses for it (`services/CONTROL.md`).
pub fn value_name<E: clap::ValueEnum>(value: &E) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Connects to the system on `explicit` or the default socket.
pub fn connect(explicit: Option<&Path>) -> anyhow::Result<Client> {
    Client::connect(&socket(explicit)).map_err(client_error)
}

/// An absolute form of a path the user typed (relative to the current
/// directory; the system has its own), refusing paths that are not UTF-8.
pub fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{}: the path is not UTF-8", abs.display()))
}

/// Runs `work` (a request that may take long: a checkpoint or restore of
/// a large image) with a spinner and the time elapsed on stderr, when
/// stderr is a terminal and `quiet` is false. The spinner appears only
/// after half a second, so quick requests print nothing, and it is
/// cleared before anything else is printed. (The control protocol answers
/// once, when the work is done: the spinner shows that the system is
/// working, not how far it is.)
pub fn with_progress<T>(label: &str, quiet: bool, work: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    use std::sync::mpsc;
    use std::time::Duration;
    if quiet || !std::io::stderr().is_terminal() {
        return work();
    }
    let (done, finished) = mpsc::channel::<()>();
    let label = label.to_string();
    let spinner = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_millis(500)).is_ok() {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(label);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        while finished.recv_timeout(Duration::from_millis(100)).is_err() {
            bar.tick();
        }
        bar.finish_and_clear();
    });
    let out = work();
    let _ = done.send(());
    let _ = spinner.join();
    out
}

/// The man pages, generated from the clap definition.
pub fn man_pages() -> Result<Vec<spartan_cli::docs::Generated>, spartan_cli::docs::DocsError> {
    use clap::CommandFactory;
    spartan_cli::docs::man_pages(Cli::command(), "spartan", env!("CARGO_PKG_VERSION"))
}

/// The shell completions, generated from the clap definition.
pub fn completions() -> Vec<spartan_cli::docs::Generated> {
    use clap::CommandFactory;
    spartan_cli::docs::completions(&Cli::command(), "spartan")
}
