//! Differential testing of the machine against wasmi on modules generated
//! by wasm-smith, and the checkpoint oracle: the same runs cut into random
//! fuel slices, with the whole task state exported, serialized with
//! postcard and imported into a fresh instance at every cut, must give
//! identical results.
//!
//! A fixed number of seeds runs in the normal suite; the ignored test
//! `long_differential_run` takes `SPARTAN_DIFF_CASES` seeds (default 2000)
//! starting at `SPARTAN_DIFF_FIRST` (default 1000). A failure prints the
//! seed; `SPARTAN_DIFF_FIRST=<seed> SPARTAN_DIFF_CASES=1` replays it.

mod oracle;

use oracle::machine_side::{self, Interrupt};
use oracle::{ModuleRun, compare, generate, wasmi_side};

/// Fuel (machine instructions) per call.
const FUEL: u64 = 20_000;

/// Counts of what the cases did, for the closing line.
#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    calls: u64,
    traps: u64,
    instantiation_failed: u64,
    start_exhausted: u64,
}

fn check_seed(seed: u64, oracle: bool, tally: &mut Tally) -> Result<(), String> {
    let bytes = generate::module(seed);
    // The generator is configured for WebAssembly 2.0 without SIMD: a
    // module outside it is a configuration error, not a case to skip.
    let features = wasmparser::WasmFeatures::WASM2.difference(wasmparser::WasmFeatures::SIMD);
    if let Err(e) = wasmparser::Validator::new_with_features(features).validate_all(&bytes) {
        return Err(format!("generated module outside WebAssembly 2.0: {e}"));
    }
    let reference = wasmi_side::run(&bytes, FUEL, seed)?;
    let machine = machine_side::run(&bytes, FUEL, seed, Interrupt::None)?;
    compare("wasmi", &reference, "machine", &machine)?;
    if oracle {
        let sliced = machine_side::run(&bytes, FUEL, seed, Interrupt::Slices { seed, max: 300 })?;
        compare("uninterrupted", &machine, "checkpointed", &sliced)?;
    }
    tally.cases += 1;
    match &machine {
        ModuleRun::Calls(calls) => {
            tally.calls += calls.len() as u64;
            tally.traps += calls
                .iter()
                .filter(|c| matches!(c.end, oracle::CallEnd::Trapped(_)))
                .count() as u64;
        }
        ModuleRun::InstantiationFailed => tally.instantiation_failed += 1,
        ModuleRun::StartExhausted => tally.start_exhausted += 1,
    }
    Ok(())
}

fn check_range(first: u64, count: u64, oracle: bool) {
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for seed in first..first + count {
        if let Err(e) = check_seed(seed, oracle, &mut tally) {
            eprintln!("seed {seed}: {e}");
            failures.push(seed);
        }
    }
    eprintln!("{tally:?}");
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

#[test]
fn machine_matches_wasmi_on_generated_modules() {
    check_range(0, 150, false);
}

#[test]
fn checkpointed_runs_match_uninterrupted_runs() {
    check_range(500, 60, true);
}

#[test]
#[ignore = "long run: SPARTAN_DIFF_CASES seeds from SPARTAN_DIFF_FIRST"]
fn long_differential_run() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    check_range(
        var("SPARTAN_DIFF_FIRST", 1000),
        var("SPARTAN_DIFF_CASES", 2000),
        true,
    );
}
