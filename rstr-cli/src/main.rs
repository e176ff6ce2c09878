//! `rstr DIR [--err-resume]`: restore the tasks of an image into the
//! running system through its control socket (`rstr --help`). Exit
//! statuses and error lines follow the contract shared by every Spartan
//! command ([`spartan_cli`]).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rstr::Args;
use spartan_cli::{Verdict, escape};
use spartan_services::cli;
use spartan_services::control::{Request, Response};

fn run(args: Args) -> anyhow::Result<Verdict> {
    // (The error line is escaped as a whole by spartan_cli::finish.)
    let shown = args.image.display().to_string();
    let what = || format!("cannot restore {shown}");
    let image = cli::absolute(&args.image).with_context(what)?;
    let mut c = cli::connect(args.socket.as_deref()).with_context(what)?;
    let req = Request::Restore {
        image: image.clone(),
        err_resume: args.err_resume,
        timeout_ms: args.timeout,
        missing: cli::value_name(&args.missing),
        duplicate: cli::value_name(&args.duplicate),
        eager: args.eager,
    };
    let label = format!("restoring {}", escape(&shown));
    let resp = cli::with_progress(&label, args.json, || c.request(&req))
        .map_err(cli::client_error)
        .with_context(what)?;
    let Response::Restored { tasks } = resp else {
        return Err(cli::client_error(c.unexpected("restore", &resp))).with_context(what);
    };
    if args.json {
        let doc = serde_json::json!({
            "schema": 1,
            "image": image,
            "tasks": tasks.iter().map(|(old, new)| serde_json::json!({"image_id": old, "id": new})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let list: Vec<String> = tasks.iter().map(|(o, n)| format!("{o} -> {n}")).collect();
        println!(
            "restored {} task{} from {}: {}",
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" },
            escape(&image),
            list.join(", ")
        );
    }
    Ok(Verdict::Ok)
}

fn main() -> ExitCode {
    spartan_cli::finish("rstr", run(Args::parse()))
}
