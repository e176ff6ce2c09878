//! The `snapinspect` command: read, check and compare Spartan snapshot
//! images without a running system.
//!
//! This file only parses arguments (clap, [`snapinspect::cli`]), calls the
//! library, prints human text or JSON, and maps outcomes to exit codes:
//! 0 ok / sound / identical, 1 invalid / different, 2 usage errors or
//! unreadable input (clap itself exits 2 on usage errors).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use snapinspect::cli::{Cli, Command};
use snapinspect::{diff, pack, pages, render, show, validate};

/// What a successful run concluded.
enum Verdict {
    /// Sound, identical, or a command with nothing to judge.
    Ok,
    /// Problems found, or differences found.
    Failed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Verdict::Ok) => ExitCode::SUCCESS,
        Ok(Verdict::Failed) => ExitCode::from(1),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("snapinspect: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`snapinspect show … | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    print_text(&text)
}

fn run(cli: Cli) -> anyhow::Result<Verdict> {
    match cli.command {
        Command::Show(a) => {
            let o = show::show(&a.image, &a.task)
                .with_context(|| format!("cannot show {}", a.image.display()))?;
            if a.json {
                print_json(&o)?;
            } else {
                print_text(&render::overview(&o))?;
            }
            Ok(Verdict::Ok)
        }
        Command::Validate(a) => {
            let r = validate::validate(&a.image)
                .with_context(|| format!("cannot validate {}", a.image.display()))?;
            if a.json {
                print_json(&r)?;
            } else {
                print_text(&render::validation(&r))?;
            }
            Ok(if r.sound {
                Verdict::Ok
            } else {
                Verdict::Failed
            })
        }
        Command::Diff(a) => {
            let opts = diff::DiffOptions {
                hexdump: a.hexdump,
                task: a.task,
            };
            let r = diff::diff(&a.a, &a.b, opts).with_context(|| {
                format!("cannot compare {} with {}", a.a.display(), a.b.display())
            })?;
            if a.json {
                print_json(&r)?;
            } else {
                print_text(&render::diff(&r))?;
            }
            Ok(if r.identical {
                Verdict::Ok
            } else {
                Verdict::Failed
            })
        }
        Command::Pages(a) => {
            let range =
                snapinspect::addr::AddrRange::new(a.addr, a.len).context("bad --addr/--len")?;
            let m = pages::pages(&a.image, a.task, range)
                .with_context(|| format!("cannot read pages of {}", a.image.display()))?;
            if a.json {
                print_json(&m)?;
            } else {
                print_text(&render::memory(&m))?;
            }
            Ok(Verdict::Ok)
        }
        Command::Pack(a) => {
            let n = pack::pack(&a.dir, &a.tar, a.force).with_context(|| {
                format!("cannot pack {} into {}", a.dir.display(), a.tar.display())
            })?;
            print_text(&format!("packed {n} files into {}\n", a.tar.display()))?;
            Ok(Verdict::Ok)
        }
        Command::Unpack(a) => {
            let n = pack::unpack(&a.tar, &a.dir, a.force).with_context(|| {
                format!("cannot unpack {} into {}", a.tar.display(), a.dir.display())
            })?;
            print_text(&format!("unpacked {n} files into {}\n", a.dir.display()))?;
            Ok(Verdict::Ok)
        }
    }
}
