//! Interpreter benchmarks: the compute workloads of fixtures/wat/bench
//! (recursive fib, a sieve, a byte-hash loop, a memory fill) on the machine
//! and on wasmi side by side in one run, plus exporting and importing a
//! thread state.
//!
//! Before criterion runs, a summary table is printed: executed wasm
//! instructions (the machine's fuel, one unit per instruction), the fastest
//! time of each engine over a few interleaved runs (the one least disturbed
//! by other load on a shared machine), instructions per second and the
//! machine/wasmi speed ratio (above 1.0: the machine is faster). Criterion
//! groups report the same workloads with instructions as throughput.
//!
//! The inner loops of the fill and of the sieve's marking are each one
//! store at the loop counter's address, which the machine runs as loop
//! kernels (`machine/handlers/loops.rs`): their ratios show those, not the
//! general handlers. fib and hash, and the two workloads outside this
//! bench (`copy_xor.wat`, `fill_masked.wat`, timed by the `bench_one`
//! example's `--times`), run on the general handlers.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use spartan_kernel::machine::{ExecState, Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

const WORKLOADS: [&str; 4] = ["fib", "sieve", "hash", "fill"];

/// Runs of each engine per workload in the summary table.
const REPS: usize = 9;

fn wat_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../fixtures/wat/bench/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Instantiates and runs `run` on the machine; returns the result and the
/// number of instructions executed.
fn machine_run(module: &Arc<Module>) -> (i64, u64) {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut instance =
        Instance::new(module.clone(), &mut space, &Limits::default(), &[]).expect("instantiate");
    let mut thread = Thread::new(&instance, "run", &[]).expect("thread");
    let fuel = u64::MAX / 2;
    match thread.run(&mut instance, &mut space, fuel) {
        Outcome::Finished(values) => match values.as_slice() {
            [Value::I64(v)] => (*v as i64, fuel - thread.fuel_left()),
            other => panic!("unexpected results {other:?}"),
        },
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn wasmi_run(engine: &wasmi::Engine, module: &wasmi::Module) -> i64 {
    let mut store = wasmi::Store::new(engine, ());
    let linker = wasmi::Linker::<()>::new(engine);
    let instance = linker
        .instantiate_and_start(&mut store, module)
        .expect("instantiate");
    let run = instance
        .get_typed_func::<(), i64>(&store, "run")
        .expect("run export");
    run.call(&mut store, ()).expect("run")
}

/// How long one call of `f` takes.
fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

/// Prints the side-by-side summary and returns the instruction counts.
fn summary() -> Vec<u64> {
    let engine = wasmi::Engine::default();
    println!(
        "{:<8} {:>14} {:>12} {:>12} {:>10} {:>10} {:>8}",
        "workload", "instructions", "machine", "wasmi", "M instr/s", "wasmi Mi/s", "ratio"
    );
    let mut counts = Vec::new();
    for name in WORKLOADS {
        let bytes = wat_bytes(name);
        let module = Module::new(&bytes).expect("machine module");
        let wmodule = wasmi::Module::new(&engine, &bytes[..]).expect("wasmi module");
        let (result, instructions) = machine_run(&module);
        assert_eq!(
            result,
            wasmi_run(&engine, &wmodule),
            "{name}: engines disagree"
        );
        // Interleaved, so that both engines see the same background load.
        let (mut m, mut w) = (Duration::MAX, Duration::MAX);
        for _ in 0..REPS {
            m = m.min(time(|| machine_run(&module)));
            w = w.min(time(|| wasmi_run(&engine, &wmodule)));
        }
        let ips = |d: Duration| instructions as f64 / d.as_secs_f64() / 1e6;
        println!(
            "{name:<8} {instructions:>14} {:>10.2}ms {:>10.2}ms {:>10.1} {:>10.1} {:>8.2}",
            m.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3,
            ips(m),
            ips(w),
            w.as_secs_f64() / m.as_secs_f64()
        );
        counts.push(instructions);
    }
    counts
}

fn workloads(c: &mut Criterion, counts: &[u64]) {
    let engine = wasmi::Engine::default();
    for (name, &instructions) in WORKLOADS.iter().zip(counts) {
        let bytes = wat_bytes(name);
        let module = Module::new(&bytes).expect("machine module");
        let wmodule = wasmi::Module::new(&engine, &bytes[..]).expect("wasmi module");
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Elements(instructions));
        group.sample_size(10);
        group.bench_function("machine", |b| b.iter(|| machine_run(&module)));
        group.bench_function("wasmi", |b| b.iter(|| wasmi_run(&engine, &wmodule)));
        group.finish();
    }
}

/// A thread stopped deep in fib's recursion (about 25 frames).
fn stopped_thread() -> (Arc<Module>, Instance, Thread) {
    let module = Module::new(&wat_bytes("fib")).expect("module");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut instance =
        Instance::new(module.clone(), &mut space, &Limits::default(), &[]).expect("instantiate");
    let mut thread = Thread::new(&instance, "run", &[]).expect("thread");
    let mut fuel = 1000;
    loop {
        assert_eq!(
            thread.run(&mut instance, &mut space, fuel),
            Outcome::OutOfFuel
        );
        if thread.depth() >= 20 {
            return (module, instance, thread);
        }
        fuel = 7;
    }
}

fn thread_state(c: &mut Criterion) {
    let (module, instance, thread) = stopped_thread();
    let mut group = c.benchmark_group("thread_state");
    group.bench_function(format!("export_depth_{}", thread.depth()), |b| {
        b.iter(|| thread.export_state(&instance).expect("export"))
    });
    let state = thread.export_state(&instance).expect("export");
    group.bench_function("export_and_serialize", |b| {
        b.iter(|| {
            let s = thread.export_state(&instance).expect("export");
            postcard::to_allocvec(&s).expect("serialize")
        })
    });
    let bytes = postcard::to_allocvec(&state).expect("serialize");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let fresh = Instance::new(module, &mut space, &Limits::default(), &[]).expect("instance");
    group.bench_function("deserialize_and_import", |b| {
        b.iter(|| {
            let s: ExecState = postcard::from_bytes(&bytes).expect("deserialize");
            Thread::import_state(&fresh, &s).expect("import")
        })
    });
    group.finish();
}

fn main() {
    let counts = summary();
    let mut c = Criterion::default().configure_from_args();
    workloads(&mut c, &counts);
    thread_state(&mut c);
    c.final_summary();
}
