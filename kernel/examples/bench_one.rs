//! Runs one interpreter benchmark workload (fixtures/wat/bench, or any
//! `.wat` file whose export `run` takes nothing and returns an i64) on the
//! machine or on wasmi, and prints its result: a process that does nothing
//! else, for instruction counts that do not depend on the load of the
//! machine, e.g.
//!
//! ```text
//! cargo build --release -p spartan-kernel --example bench_one
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/bench_one machine sieve
//! ```
//!
//! (the count includes reading and compiling the module, a small part).
//! The timed comparison is the `interp` bench. For a file of one's own,
//! `--times N` runs it N times on both engines in turn (compiling and
//! instantiating each time) and prints each engine's fastest and median
//! time and the median of the per-pair speed ratios.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use spartan_kernel::machine::{Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

const USAGE: &str = "usage: bench_one machine|wasmi fib|sieve|hash|fill|FILE.wat\n       bench_one --times N FILE.wat";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (engine, workload) = match &args[..] {
        [flag, n, file] if flag == "--times" => {
            return match n.parse::<usize>() {
                Ok(n) if n > 0 => compare(file, n),
                _ => {
                    eprintln!("--times wants a positive count, not {n:?}; {USAGE}");
                    ExitCode::from(2)
                }
            };
        }
        [engine, workload] => (engine, workload),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let bytes = match read(workload) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{e}; {USAGE}");
            return ExitCode::from(2);
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

/// The module of a workload name or a `.wat` file.
fn read(workload: &str) -> Result<Vec<u8>, String> {
    let path = if workload.ends_with(".wat") {
        workload.to_string()
    } else if ["fib", "sieve", "hash", "fill"].contains(&workload) {
        format!(
            "{}/../fixtures/wat/bench/{workload}.wat",
            env!("CARGO_MANIFEST_DIR")
        )
    } else {
        return Err(format!("unknown workload {workload:?}"));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    wat::parse_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// Times `file` `n` times on each engine, alternating.
fn compare(file: &str, n: usize) -> ExitCode {
    let bytes = match read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (mut m, mut w) = (Vec::new(), Vec::new());
    for _ in 0..n {
        for (engine, times) in [(machine as fn(&[u8]) -> _, &mut m), (wasmi, &mut w)] {
            let start = Instant::now();
            if let Err(e) = engine(&bytes) {
                eprintln!("{file}: {e}");
                return ExitCode::FAILURE;
            }
            times.push(start.elapsed());
        }
    }
    let mut ratios: Vec<f64> = m
        .iter()
        .zip(&w)
        .map(|(m, w)| w.as_secs_f64() / m.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    m.sort();
    w.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{file}: machine {:.2} ms fastest, {:.2} median; wasmi {:.2} fastest, {:.2} median; \
         machine/wasmi speed ratio {:.2} (median of {n} pairs)",
        ms(m[0]),
        ms(m[n / 2]),
        ms(w[0]),
        ms(w[n / 2]),
        ratios[n / 2]
    );
    ExitCode::SUCCESS
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
