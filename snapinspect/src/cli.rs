//! The command-line surface of `snapinspect`, as a clap derive definition.
//!
//! It lives in the library (not in `main.rs`) so that the man-page and
//! shell-completion generator ([`crate::docs`]) and the staleness tests see
//! exactly the definition the binary parses with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};

use crate::addr::AddrRange;

/// Read, check and compare Spartan snapshot images without a running system.
///
/// An image is a directory written by `chkpnt` (or its single-file tar twin).
/// Exit status: 0 when the command succeeded (image sound, images identical),
/// 1 when `validate` found problems or `diff` found differences, 2 on usage
/// errors or input that cannot be read as an image at all (missing,
/// unreadable, a FIFO or device, an empty directory, a file that is not a
/// tar file). Errors are one line on stderr, `snapinspect: error: ...`;
/// control characters from the input are printed escaped (`\x1b`).
/// Every `--json` document starts with `"schema": 1`, the version of its
/// layout; its values are typed (numbers, booleans, `null` when absent).
#[derive(Debug, Parser)]
#[command(name = "snapinspect", version, about, long_about, after_long_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Examples shown at the end of `--help` and of the man page.
const EXAMPLES: &str = "\
Examples:
  snapinspect show backups/1700000000
  snapinspect show --json backups/1700000000 | jq '.tasks[].name'
  snapinspect validate backups/1700000000.tar || echo damaged
  snapinspect diff backups/1700000000 backups/1700000060
  snapinspect diff A B --task 7 --hexdump 0x3000:64
  snapinspect pages backups/1700000000 --task 7 --addr 0x1000 --len 64
  snapinspect pack backups/1700000000 backups/1700000000.tar";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an overview of an image: tasks, threads, areas, phones, calls,
    /// cooperative blobs, modules, kernel state, stored vs. raw bytes,
    /// parent chain.
    ///
    /// The parent chain of an incremental image lists each ancestor, nearest
    /// first, with its path, its manifest digest and how many of the image's
    /// pages it stores (the rest are stored in the image itself).
    Show(ShowArgs),
    /// Check an image and its parent chain deeply; print every problem.
    ///
    /// Exits 0 when the image is sound, 1 when any problem was found, and 2
    /// when the input cannot be read as an image at all ("not a Spartan
    /// image", permission denied, a FIFO or device).
    Validate(ValidateArgs),
    /// Compare two images: tasks, threads, areas, pages, phones, calls, blobs,
    /// kernel state.
    ///
    /// Pages are compared by content digest, so unchanged pages are never
    /// decompressed. Exits 0 when the images are identical and 1 when they
    /// differ, like diff(1).
    Diff(DiffArgs),
    /// Hexdump a range of a task's memory as stored in an image.
    ///
    /// Untouched (zero) pages read as zero; addresses outside every area are
    /// an error.
    Pages(PagesArgs),
    /// Pack an image directory into its single-file tar twin.
    Pack(PackArgs),
    /// Unpack a tar image into an image directory.
    Unpack(UnpackArgs),
}

/// Arguments of `snapinspect show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The image: a directory or a tar file.
    #[arg(value_hint = ValueHint::AnyPath)]
    pub image: PathBuf,
    /// Print the overview as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Show only this task (repeatable; default: every task).
    #[arg(long, value_name = "TASK")]
    pub task: Vec<u64>,
}

/// Arguments of `snapinspect validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The image: a directory or a tar file.
    #[arg(value_hint = ValueHint::AnyPath)]
    pub image: PathBuf,
    /// Print the problems as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `snapinspect diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old image (directory or tar file).
    #[arg(value_hint = ValueHint::AnyPath)]
    pub a: PathBuf,
    /// The new image (directory or tar file).
    #[arg(value_hint = ValueHint::AnyPath)]
    pub b: PathBuf,
    /// Print the differences as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Also hexdump this range of memory from both images, side by side:
    /// ADDR or ADDR:LEN (hex with 0x or decimal; LEN defaults to 256).
    #[arg(long, value_name = "ADDR[:LEN]")]
    pub hexdump: Option<AddrRange>,
    /// The task whose memory `--hexdump` shows; may be omitted when the
    /// images have exactly one task in common.
    #[arg(long, value_name = "TASK", requires = "hexdump")]
    pub task: Option<u64>,
}

/// Arguments of `snapinspect pages`.
#[derive(Debug, Args)]
pub struct PagesArgs {
    /// The image: a directory or a tar file.
    #[arg(value_hint = ValueHint::AnyPath)]
    pub image: PathBuf,
    /// The task id (as listed by `snapinspect show`).
    #[arg(long, value_name = "TASK")]
    pub task: u64,
    /// First address to dump (hex with 0x, or decimal).
    #[arg(long, value_name = "ADDR", value_parser = crate::addr::parse_u32)]
    pub addr: u32,
    /// Number of bytes to dump (hex with 0x, or decimal).
    #[arg(long, value_name = "N", default_value = "256", value_parser = crate::addr::parse_u32)]
    pub len: u32,
    /// Print the bytes (hex) and page sources as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `snapinspect pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The image directory to pack.
    #[arg(value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// The tar file to write.
    #[arg(value_hint = ValueHint::FilePath)]
    pub tar: PathBuf,
    /// Replace the tar file if it already exists; only a tar file holding
    /// an image is replaced, anything else is refused.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `snapinspect unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The tar image to unpack.
    #[arg(value_hint = ValueHint::FilePath)]
    pub tar: PathBuf,
    /// The image directory to create.
    #[arg(value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Replace the directory if it already exists; only an image
    /// directory (nothing in it but the image's files) or an empty
    /// directory is replaced, anything else is refused.
    #[arg(long)]
    pub force: bool,
}
