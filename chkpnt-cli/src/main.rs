//! `chkpnt -o DIR TASK`: snapshot a running task and its checkpoint set
//! through the system's control socket (`chkpnt --help`). Exit statuses
//! and error lines follow the contract shared by every Spartan command
//! ([`spartan_cli`]).

use std::process::ExitCode;

use anyhow::Context;
use chkpnt::Args;
use clap::Parser;
use spartan_cli::{Verdict, escape};
use spartan_services::cli;
use spartan_services::control::{CheckpointRequest, Request, Response};

fn run(args: Args) -> anyhow::Result<Verdict> {
    // (The error line is escaped as a whole by spartan_cli::finish.)
    let shown = args.output.display().to_string();
    let what = || format!("cannot checkpoint task {} into {shown}", args.task);
    let output = cli::absolute(&args.output).with_context(what)?;
    let parent = match &args.parent {
        Some(p) => Some(cli::absolute(p).with_context(what)?),
        None => None,
    };
    let mut c = cli::connect(args.socket.as_deref()).with_context(what)?;
    let req = Request::Checkpoint {
        task: args.task,
        output: output.clone(),
        options: CheckpointRequest {
            tar: args.tar,
            kill: args.kill,
            timeout_ms: args.timeout,
            file_policy: cli::value_name(&args.file_policy),
            clients: cli::value_name(&args.clients),
            parent: parent.clone(),
        },
    };
    let label = format!("checkpointing task {}", args.task);
    let resp = cli::with_progress(&label, args.json, || c.request(&req))
        .map_err(cli::client_error)
        .with_context(what)?;
    let Response::Checkpointed {
        image,
        members,
        services,
        frozen_ns,
        parent_pages,
        stored_pages,
        notes,
    } = resp
    else {
        return Err(cli::client_error(c.unexpected("checkpoint", &resp))).with_context(what);
    };
    if args.json {
        let doc = serde_json::json!({
            "schema": 1,
            "image": image,
            "task": args.task,
            "members": members,
            "services": services,
            "killed": args.kill,
            "frozen_ns": frozen_ns,
            "parent": parent,
            "parent_pages": parent_pages,
            "stored_pages": stored_pages,
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        };
        println!(
            "checkpointed task {} into {}: set {}; services {}; stopped {:.3} ms; {}",
            args.task,
            escape(&image),
            list(members.iter().map(u64::to_string).collect()),
            escape(&list(services)),
            frozen_ns as f64 / 1e6,
            if args.kill { "killed" } else { "running on" },
        );
        if let Some(p) = &parent {
            println!(
                "incremental on {}: {parent_pages} pages from the parent, {stored_pages} stored",
                escape(p)
            );
            for n in &notes {
                println!("  {}", escape(n));
            }
        }
    }
    Ok(Verdict::Ok)
}

fn main() -> ExitCode {
    spartan_cli::finish("chkpnt", run(Args::parse()))
}
