//! Runs one interpreter benchmark workload (fixtures/wat/bench) once, on
//! the machine or on wasmi, and prints its result: a process that does
//! nothing else, for instruction counts that do not depend on the load of
//! the machine, e.g.
//!
//! ```text
//! cargo build --release -p spartan-kernel --example bench_one
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/bench_one machine sieve
//! ```
//!
//! (the count includes reading and compiling the module, a small part).
//! The timed comparison is the `interp` bench.

use std::process::ExitCode;

use spartan_kernel::machine::{Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

const USAGE: &str = "usage: bench_one machine|wasmi fib|sieve|hash|fill";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [engine, workload] = &args[..] else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if !["fib", "sieve", "hash", "fill"].contains(&workload.as_str()) {
        eprintln!("unknown workload {workload:?}; {USAGE}");
        return ExitCode::from(2);
    }
    let path = format!(
        "{}/../fixtures/wat/bench/{workload}.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| wat::parse_str(&text).map_err(|e| e.to_string()))
    {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match engine.as_str() {
        "machine" => machine(&bytes),
        "wasmi" => wasmi(&bytes),
        other => Err(format!("unknown engine {other:?}; {USAGE}")),
    };
    match result {
        Ok(v) => {
            println!("{workload} on {engine}: {v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{workload} on {engine}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn machine(bytes: &[u8]) -> Result<i64, String> {
    let module = Module::new(bytes).map_err(|e| e.to_string())?;
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut instance =
        Instance::new(module, &mut space, &Limits::default(), &[]).map_err(|e| e.to_string())?;
    let mut thread = Thread::new(&instance, "run", &[]).map_err(|e| e.to_string())?;
    match thread.run(&mut instance, &mut space, u64::MAX / 2) {
        Outcome::Finished(values) => match values.as_slice() {
            [Value::I64(v)] => Ok(*v as i64),
            other => Err(format!("unexpected results {other:?}")),
        },
        other => Err(format!("unexpected outcome {other:?}")),
    }
}

fn wasmi(bytes: &[u8]) -> Result<i64, String> {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, bytes).map_err(|e| e.to_string())?;
    let mut store = wasmi::Store::new(&engine, ());
    let instance = wasmi::Linker::<()>::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| e.to_string())?;
    let run = instance
        .get_typed_func::<(), i64>(&store, "run")
        .map_err(|e| e.to_string())?;
    run.call(&mut store, ()).map_err(|e| e.to_string())
}
