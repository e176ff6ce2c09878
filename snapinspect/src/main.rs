//! The `snapinspect` command: read, check and compare Spartan snapshot
//! images without a running system.
//!
//! This file only parses arguments (clap, [`snapinspect::cli`]), calls the
//! library, prints human text or JSON, and hands the outcome to
//! [`spartan_cli::finish`], which maps it to the exit status shared by
//! every Spartan command (0 ok / sound / identical, 1 invalid / different,
//! 2 usage errors or unreadable input; clap itself exits 2 on usage
//! errors) and prints an error as one line. The library's errors name
//! their paths, so the contexts added here only name the command.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use snapinspect::cli::{Cli, Command};
use snapinspect::{diff, json, pack, pages, render, show, validate};
use spartan_cli::{Verdict, escape};

fn main() -> ExitCode {
    spartan_cli::finish("snapinspect", run(Cli::parse()))
}

/// Prints human text; its input-derived fields are escaped by the
/// renderers, [`spartan_cli::escape_lines`] guards against a missed one.
fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(spartan_cli::escape_lines(text).as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut text =
        serde_json::to_string_pretty(&json::Versioned::new(value)).context("encoding JSON")?;
    text.push('\n');
    print_text(&text)
}

fn run(cli: Cli) -> anyhow::Result<Verdict> {
    match cli.command {
        Command::Show(a) => {
            let o = show::show(&a.image, &a.task).context("cannot show")?;
            if a.json {
                print_json(&o)?;
            } else {
                print_text(&render::overview(&o))?;
            }
            Ok(Verdict::Ok)
        }
        Command::Validate(a) => {
            let r = validate::validate(&a.image).context("cannot validate")?;
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
            let r = diff::diff(&a.a, &a.b, opts).context("cannot compare")?;
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
            let m = pages::pages(&a.image, a.task, range).context("cannot read pages")?;
            if a.json {
                print_json(&m)?;
            } else {
                print_text(&render::memory(&m))?;
            }
            Ok(Verdict::Ok)
        }
        Command::Pack(a) => {
            let n = pack::pack(&a.dir, &a.tar, a.force).context("cannot pack")?;
            let tar = a.tar.display().to_string();
            print_text(&format!("packed {n} files into {}\n", escape(&tar)))?;
            Ok(Verdict::Ok)
        }
        Command::Unpack(a) => {
            let n = pack::unpack(&a.tar, &a.dir, a.force).context("cannot unpack")?;
            let dir = a.dir.display().to_string();
            print_text(&format!("unpacked {n} files into {}\n", escape(&dir)))?;
            Ok(Verdict::Ok)
        }
    }
}
