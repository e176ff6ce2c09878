//! `wasmrun`: run one exported function of a WebAssembly module on the
//! Spartan machine and print its results like wabt's `wasm-interp`.
//!
//! ```text
//! cargo run --release -p spartan-kernel --example wasmrun -- FILE.wat|FILE.wasm --invoke NAME [--slice K] [--roundtrip]
//! ```
//!
//! Prints `NAME() => i64:2864133` (one `type:value` per result) or
//! `NAME() => error: <trap>`. Exit status 0 on success, 1 on a trap, 2 on a
//! bad module or bad arguments. The logic lives in
//! `spartan_kernel::machine::runner`, where the tests exercise it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spartan_kernel::machine::runner::{self, RunOptions};

/// Run an exported function of a WebAssembly module on the Spartan machine.
#[derive(Parser, Debug)]
#[command(name = "wasmrun")]
struct Args {
    /// The module, as WebAssembly text (.wat) or binary (.wasm).
    file: PathBuf,
    /// The exported function to run (it must take no arguments).
    #[arg(long)]
    invoke: String,
    /// Run in slices of K units of fuel.
    #[arg(long, value_name = "K")]
    slice: Option<u64>,
    /// At every slice end, export the thread state, serialize it, import it
    /// into a fresh instance of the module and resume there.
    #[arg(long)]
    roundtrip: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("wasmrun: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        slice: args.slice,
        roundtrip: args.roundtrip,
        ..RunOptions::default()
    };
    match runner::run(&bytes, &args.invoke, &opts) {
        Ok(report) => {
            println!("{}", report.line);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("wasmrun: {}: {e}", args.file.display());
            ExitCode::from(2)
        }
    }
}
