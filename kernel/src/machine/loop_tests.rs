//! Tests of the loop kernels (`handlers/loops.rs`): store loops of every
//! shape they run, and near misses they must not run, give wasmi's results,
//! memory and traps, also when stopped at every slice end and resumed from
//! an exported, serialized and imported thread state; and they charge one
//! unit of fuel per wasm instruction.

use std::sync::Arc;

use super::code::Op;
use super::*;
use crate::mm::{AddressSpace, MemLimits};

/// One store loop: `form` is `while` (leave when `cmp` holds) or `do`
/// (go on while it holds); the other fields are WAT fragments.
struct Case {
    form: &'static str,
    cmp: &'static str,
    /// The store instruction, e.g. `i64.store offset=8`.
    store: &'static str,
    /// The value stored: `(local.get $v)` or a constant.
    value: &'static str,
    /// The step added to `$i`: `(local.get $s)` or a constant.
    step: &'static str,
    /// The bound `$i` is compared with: `(local.get $n)` or a constant.
    bound: &'static str,
    start: i32,
}

/// The module of `case`: `run` sets the locals, runs the loop and returns
/// a checksum of the first 8 KiB of memory (where the stores land) plus the
/// final counter.
fn wat(case: &Case, v: &str, s: i32, n: i32) -> String {
    let Case {
        form,
        cmp,
        store,
        value,
        step,
        bound,
        start,
    } = case;
    let ty = &store[..3];
    // An i32 local gets the value's low 32 bits.
    let v = match ty {
        "i32" => (v.parse::<i64>().expect("number") as i32).to_string(),
        _ => v.to_string(),
    };
    let store_op = format!("({store} (local.get $i) {value})");
    let update = format!("(local.set $i (i32.add (local.get $i) {step}))");
    let test = format!("(i32.{cmp} (local.get $i) {bound})");
    let body = match *form {
        "while" => {
            format!("(block $done (loop $l (br_if $done {test}) {store_op} {update} (br $l)))")
        }
        _ => format!("(loop $l {store_op} {update} (br_if $l {test}))"),
    };
    format!(
        r#"(module
          (memory 1)
          (func (export "run") (result i64)
            (local $i i32) (local $v {ty}) (local $s i32) (local $n i32)
            (local $k i32) (local $sum i64)
            (local.set $i (i32.const {start}))
            (local.set $v ({ty}.const {v}))
            (local.set $s (i32.const {s}))
            (local.set $n (i32.const {n}))
            {body}
            (loop $c
              (local.set $sum (i64.add (i64.mul (local.get $sum) (i64.const 31))
                                       (i64.load (local.get $k))))
              (local.set $k (i32.add (local.get $k) (i32.const 8)))
              (br_if $c (i32.lt_u (local.get $k) (i32.const 8192))))
            (i64.add (local.get $sum) (i64.extend_i32_u (local.get $i)))))"#
    )
}

/// What wasmi says: the result, or `None` for a trap. (On a thread with a
/// large stack: wasmi's handlers call each other and recurse in builds
/// that do not turn those calls into jumps, like the test profile.)
fn wasmi_run(bytes: &[u8]) -> Option<i64> {
    let bytes = bytes.to_vec();
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || wasmi_run_here(&bytes))
        .expect("thread")
        .join()
        .expect("wasmi runs")
}

fn wasmi_run_here(bytes: &[u8]) -> Option<i64> {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, bytes).expect("wasmi module");
    let mut store = wasmi::Store::new(&engine, ());
    let instance = wasmi::Linker::<()>::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .expect("wasmi instance");
    let run = instance
        .get_typed_func::<(), i64>(&store, "run")
        .expect("run");
    run.call(&mut store, ()).ok()
}

/// Runs `run` in slices of `fuel`, resuming after every slice on a fresh
/// instance from the serialized states (`wasmrun --roundtrip`): the result
/// (`None` for a trap), the fuel used and the space.
fn machine_run(module: &Arc<Module>, fuel: u64) -> (Option<i64>, u64, AddressSpace) {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let limits = Limits::default();
    let mut instance = Instance::new(module.clone(), &mut space, &limits, &[]).expect("instance");
    let mut thread = Thread::new(&instance, "run", &[]).expect("thread");
    let mut used = 0;
    for _ in 0..1_000_000 {
        let out = thread.run(&mut instance, &mut space, fuel);
        used += fuel - thread.fuel_left();
        match out {
            Outcome::OutOfFuel => {}
            Outcome::Finished(values) => match values[..] {
                [Value::I64(v)] => return (Some(v as i64), used, space),
                _ => panic!("results {values:?}"),
            },
            Outcome::Trap(t) => {
                assert!(matches!(t.kind, TrapKind::MemoryOutOfBounds(_)), "{t:?}");
                return (None, used, space);
            }
            other => panic!("outcome {other:?}"),
        }
        (instance, thread) =
            super::runner::roundtrip(module, &mut space, &limits, &[], &instance, &thread)
                .expect("round trip");
    }
    panic!("no progress");
}

const CASES: &[Case] = &[
    // A fill, as in the interp bench.
    Case {
        form: "do",
        cmp: "lt_u",
        store: "i64.store",
        value: "(local.get $v)",
        step: "(i32.const 8)",
        bound: "(i32.const 4096)",
        start: 0,
    },
    // A sieve's marking, as in the interp bench.
    Case {
        form: "while",
        cmp: "ge_u",
        store: "i32.store8",
        value: "(i32.const 1)",
        step: "(local.get $s)",
        bound: "(local.get $n)",
        start: 9,
    },
    Case {
        form: "do",
        cmp: "ne",
        store: "i32.store8 offset=3",
        value: "(i32.const 7)",
        step: "(local.get $s)",
        bound: "(local.get $n)",
        start: 0,
    },
    Case {
        form: "do",
        cmp: "le_u",
        store: "i32.store16",
        value: "(i32.const -2)",
        step: "(i32.const 4)",
        bound: "(i32.const 1000)",
        start: 100,
    },
    Case {
        form: "do",
        cmp: "lt_s",
        store: "i64.store32",
        value: "(local.get $v)",
        step: "(i32.const 12)",
        bound: "(local.get $n)",
        start: 4,
    },
    Case {
        form: "do",
        cmp: "le_s",
        store: "i32.store",
        value: "(local.get $v)",
        step: "(local.get $s)",
        bound: "(i32.const 2000)",
        start: 0,
    },
    Case {
        form: "while",
        cmp: "gt_s",
        store: "i32.store",
        value: "(local.get $v)",
        step: "(i32.const 5)",
        bound: "(i32.const 2000)",
        start: 1,
    },
    Case {
        form: "while",
        cmp: "eq",
        store: "i64.store offset=16",
        value: "(i64.const -1)",
        step: "(i32.const -8)",
        bound: "(i32.const 0)",
        start: 4000,
    },
    Case {
        form: "while",
        cmp: "gt_u",
        store: "i64.store16",
        value: "(local.get $v)",
        step: "(local.get $s)",
        bound: "(local.get $n)",
        start: 2,
    },
    Case {
        form: "while",
        cmp: "ge_s",
        store: "i32.store8",
        value: "(local.get $v)",
        step: "(i32.const 1)",
        bound: "(local.get $n)",
        start: 0,
    },
    // Not kernels: the value is the counter; the step multiplies.
    Case {
        form: "do",
        cmp: "lt_u",
        store: "i32.store",
        value: "(local.get $i)",
        step: "(i32.const 4)",
        bound: "(i32.const 4000)",
        start: 0,
    },
    Case {
        form: "while",
        cmp: "ge_u",
        store: "i32.store8",
        value: "(i32.const 9)",
        step: "(local.get $i)",
        bound: "(i32.const 3000)",
        start: 1,
    },
];

#[test]
fn kernels_run_the_store_loops_and_only_those() {
    for (c, case) in CASES.iter().enumerate() {
        let bytes = wat::parse_str(wat(case, "1", 3, 300)).expect("wat");
        let module = Module::new(&bytes).expect("module");
        let ops = &module.code[0].ops;
        let kernels = super::lower::kernel_positions(ops);
        // The last two cases are near misses.
        let expected = usize::from(c < CASES.len() - 2);
        assert_eq!(kernels.len(), expected, "case {c}: {ops:?}");
        for pc in kernels {
            assert!(
                matches!(ops[pc], Op::StoreLC { .. } | Op::StoreLL { .. }),
                "case {c}: {:?}",
                ops[pc]
            );
        }
    }
}

#[test]
fn store_loops_match_wasmi_in_every_slice() {
    for (c, case) in CASES.iter().enumerate() {
        for (v, s, n) in [("81985529216486895", 3, 300), ("-5", 6, 1206)] {
            let text = wat(case, v, s, n);
            let bytes = wat::parse_str(&text).expect("wat");
            let expected = wasmi_run(&bytes);
            assert!(expected.is_some(), "case {c} traps in wasmi");
            let module = Module::new(&bytes).expect("module");
            let (whole, fuel, _) = machine_run(&module, u64::MAX / 2);
            assert_eq!(whole, expected, "case {c} ({v}, {s}, {n})");
            for slice in [1, 2, 3, 5, 7, 11, 1000] {
                let (result, _, _) = machine_run(&module, slice);
                assert_eq!(result, expected, "case {c} slice {slice}");
            }
            let _ = fuel;
        }
    }
}

#[test]
fn kernels_charge_one_unit_per_wasm_instruction() {
    // Per iteration: the do loop 11 instructions (get, get, store, get,
    // const, add, set, get, get, lt_u, br_if); the while loop 12 (get,
    // get, ge_u, br_if, get, const, store8, get, get, add, set, br).
    let fill = Case {
        bound: "(local.get $n)",
        ..CASES[0]
    };
    for (case, per_iteration, n) in [(&fill, 11, 800), (&CASES[1], 12, 309)] {
        let fuel = |n: i32| {
            let bytes = wat::parse_str(wat(case, "1", 3, n)).expect("wat");
            let module = Module::new(&bytes).expect("module");
            machine_run(&module, u64::MAX / 2).1
        };
        // Ten more iterations (step 8 from 0, step 3 from 9).
        let more = if per_iteration == 11 { 80 } else { 30 };
        assert_eq!(fuel(n + more) - fuel(n), 10 * per_iteration);
    }
}

#[test]
fn a_store_out_of_bounds_traps_with_the_memory_before_it_written() {
    let case = Case {
        form: "do",
        cmp: "lt_u",
        store: "i64.store",
        value: "(local.get $v)",
        step: "(i32.const 8)",
        bound: "(i32.const 70000)",
        start: 65536 - 800,
    };
    let bytes = wat::parse_str(wat(&case, "42", 0, 0)).expect("wat");
    assert_eq!(wasmi_run(&bytes), None);
    let module = Module::new(&bytes).expect("module");
    for slice in [u64::MAX / 2, 1, 4] {
        let (result, _, space) = machine_run(&module, slice);
        assert_eq!(result, None, "slice {slice}");
        for addr in [65536 - 800, 65536 - 8] {
            assert_eq!(
                space.load::<8>(addr).expect("in memory"),
                42u64.to_le_bytes()
            );
        }
    }
}

#[test]
fn entering_and_leaving_kernels_keeps_the_native_stack() {
    // Two million two-iteration kernel loops, each on another page than
    // the last: the first store of each misses the access cache and
    // leaves the kernel for the slow store, the loop comes back to the
    // kernel and leaves it at its end. In optimized builds every exit is a
    // tail call: one that was not would overflow the test's 2 MiB stack.
    let text = r#"(module
      (memory 1)
      (func (export "run") (result i64)
        (local $k i32) (local $i i32) (local $end i32) (local $sum i64)
        (loop $outer
          (local.set $i (i32.and (i32.mul (local.get $k) (i32.const 4096)) (i32.const 0xffff)))
          (local.set $end (i32.add (local.get $i) (i32.const 8)))
          (loop $l
            (i32.store (local.get $i) (local.get $k))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $end))))
          (local.set $sum (i64.add (local.get $sum) (i64.load (i32.sub (local.get $i) (i32.const 8)))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $outer (i32.lt_u (local.get $k) (i32.const 2000000))))
        (local.get $sum)))"#;
    let module = Module::new(text.as_bytes()).expect("module");
    assert_eq!(super::lower::kernel_positions(&module.code[0].ops).len(), 1);
    let expected: u64 = (0..2_000_000u64)
        .map(|k| k | k << 32)
        .fold(0, u64::wrapping_add);
    let (result, _, _) = machine_run(&module, u64::MAX / 2);
    assert_eq!(result, Some(expected as i64));
}
