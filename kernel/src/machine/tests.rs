//! Unit tests of the machine: results, traps, host calls, limits, and
//! export/import of the thread state at every slice end (fuel 1..N)
//! compared with an uninterrupted run.

use std::sync::Arc;

use super::*;
use crate::mm::{AddressSpace, MemLimits};

const PROGRAMS: &str = r#"(module
  (import "spartan" "log" (func $log (param i32) (result i32)))
  (memory 1)
  (global $g (mut i32) (i32.const 7))
  (table 2 funcref)
  (elem (i32.const 0) $fac $sq)
  (type $unary (func (param i64) (result i64)))
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func $sq (param i64) (result i64) (i64.mul (local.get 0) (local.get 0)))
  (func (export "indirect") (result i64)
    (i64.add (call_indirect (type $unary) (i64.const 5) (i32.const 0))
             (call_indirect (type $unary) (i64.const 9) (i32.const 1))))
  (func (export "sum") (result i64) (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
    (local.get $acc))
  (func (export "hash") (result i32) (local $i i32) (local $h i32)
    (memory.fill (i32.const 0) (i32.const 3) (i32.const 256))
    (local.set $h (i32.const 2166136261))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 256)))
      (i32.store8 (local.get $i) (i32.add (i32.load8_u (local.get $i)) (local.get $i)))
      (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $i))) (i32.const 16777619)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (global.set $g (i32.add (global.get $g) (local.get $h)))
    (global.get $g))
  (func (export "multi") (result i32 i64 f32)
    (i32.const 1) (i64.const 2) (f32.const 0.5)
    (block (param i32 i64 f32) (result i32 i64 f32)))
  (func (export "syscall") (result i32)
    (i32.add (call $log (i32.const 40)) (i32.const 2)))
  (func (export "boom") (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
  (func $deep (param i32) (result i32)
    (call $deep (i32.add (local.get 0) (i32.const 1))))
  (func (export "deep") (result i32) (call $deep (i32.const 0)))
)"#;

fn setup() -> (Arc<Module>, AddressSpace, Instance) {
    let module = Module::new(PROGRAMS.as_bytes()).expect("valid module");
    let mut space = AddressSpace::new(MemLimits { max_bytes: 1 << 24 });
    let limits = Limits {
        max_call_depth: 200,
        ..Limits::default()
    };
    let instance =
        Instance::new(module.clone(), &mut space, &limits, &[Extern::Func]).expect("instantiates");
    (module, space, instance)
}

/// Runs to completion, answering `log(x)` with `x`.
fn run_all(name: &str, fuel: u64, roundtrip: bool) -> (Outcome, u64) {
    let (module, mut space, mut instance) = setup();
    let mut thread = Thread::new(&instance, name, &[]).expect("thread");
    let mut slices = 0;
    loop {
        slices += 1;
        assert!(slices < 100_000, "no progress");
        match thread.run(&mut instance, &mut space, fuel) {
            Outcome::OutOfFuel => {}
            Outcome::HostCall { import, args } => {
                assert_eq!(import, 0);
                thread
                    .complete_host_call(&instance, &args)
                    .expect("types match");
            }
            other => return (other, slices),
        }
        if roundtrip {
            let exec = thread.export_state(&instance).expect("exportable");
            let inst = instance.export_state();
            let exec: ExecState =
                postcard::from_bytes(&postcard::to_allocvec(&exec).expect("ser")).expect("de");
            let fresh = Instance::restore(
                module.clone(),
                &mut space,
                &instance.limits,
                &[Extern::Func],
                &inst,
            )
            .expect("restore");
            thread = Thread::import_state(&fresh, &exec).expect("importable");
            assert_eq!(thread.export_state(&fresh).expect("re-export"), exec);
            instance = fresh;
        }
    }
}

#[test]
fn results() {
    assert_eq!(
        run_all("indirect", u64::MAX, false).0,
        Outcome::Finished(vec![Value::I64(120 + 81)])
    );
    assert_eq!(
        run_all("sum", u64::MAX, false).0,
        Outcome::Finished(vec![Value::I64(4950)])
    );
    assert_eq!(
        run_all("multi", u64::MAX, false).0,
        Outcome::Finished(vec![
            Value::I32(1),
            Value::I64(2),
            Value::F32(0.5f32.to_bits())
        ])
    );
    assert_eq!(
        run_all("syscall", u64::MAX, false).0,
        Outcome::Finished(vec![Value::I32(42)])
    );
}

#[test]
fn traps_carry_kind_and_place() {
    match run_all("boom", u64::MAX, false).0 {
        Outcome::Trap(t) => {
            assert_eq!(t.kind, TrapKind::DivideByZero);
            assert!(t.offset > 0);
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    match run_all("deep", u64::MAX, false).0 {
        Outcome::Trap(t) => assert_eq!(t.kind, TrapKind::CallStackExhausted),
        other => panic!("expected exhaustion, got {other:?}"),
    }
}

#[test]
fn every_slice_end_round_trips() {
    for name in ["indirect", "sum", "hash", "multi", "syscall"] {
        let (reference, _) = run_all(name, u64::MAX, false);
        for fuel in 1..=40 {
            let (outcome, _) = run_all(name, fuel, true);
            assert_eq!(outcome, reference, "{name} with fuel {fuel}");
        }
    }
}

#[test]
fn fuel_bounds_every_run() {
    let (_, slices) = run_all("sum", 10, false);
    // 100 iterations of ~15 instructions each: every iteration is a slice.
    assert!(slices >= 100, "{slices} slices");
    let (_, slices) = run_all("sum", 200, false);
    assert!((7..=12).contains(&slices), "{slices} slices");
}

#[test]
fn host_call_reissue_and_type_check() {
    let (_, mut space, mut instance) = setup();
    let mut thread = Thread::new(&instance, "syscall", &[]).expect("thread");
    let first = thread.run(&mut instance, &mut space, 1000);
    assert_eq!(
        first,
        Outcome::HostCall {
            import: 0,
            args: vec![Value::I32(40)]
        }
    );
    thread.reissue_host_call().expect("in a host call");
    assert_eq!(thread.run(&mut instance, &mut space, 1000), first);
    assert_eq!(
        thread.complete_host_call(&instance, &[Value::I64(1)]),
        Err(ThreadError::ResultTypes)
    );
    let state = thread.export_state(&instance).expect("export");
    assert!(matches!(
        state.suspension,
        Suspension::HostCall { import: 0, .. }
    ));
    let mut thread = Thread::import_state(&instance, &state).expect("import");
    thread
        .complete_host_call(&instance, &[Value::I32(0)])
        .expect("complete");
    // The state after completing (before running on) is exportable too.
    let after = thread
        .export_state(&instance)
        .expect("export after completion");
    let mut thread = Thread::import_state(&instance, &after).expect("import");
    assert_eq!(
        thread.run(&mut instance, &mut space, 1000),
        Outcome::Finished(vec![Value::I32(2)])
    );
}

#[test]
fn bad_states_are_errors() {
    let (_, mut space, mut instance) = setup();
    let mut thread = Thread::new(&instance, "sum", &[]).expect("thread");
    assert_eq!(
        thread.run(&mut instance, &mut space, 30),
        Outcome::OutOfFuel
    );
    let good = thread.export_state(&instance).expect("export");
    let mut bad = good.clone();
    bad.frames[0].code_offset += 1;
    assert!(Thread::import_state(&instance, &bad).is_err());
    let mut bad = good.clone();
    bad.frames[0].locals[0] = Value::F64(0);
    assert!(matches!(
        Thread::import_state(&instance, &bad),
        Err(StateError::BadLocals { .. })
    ));
    let mut bad = good.clone();
    bad.frames[0].func_index = 999;
    assert!(Thread::import_state(&instance, &bad).is_err());
    let mut bad = good.clone();
    bad.frames[0].operands.push(Value::I32(1));
    assert!(Thread::import_state(&instance, &bad).is_err());
    let mut bad = good.clone();
    bad.globals.pop();
    assert_eq!(
        Thread::import_state(&instance, &bad).err(),
        Some(StateError::BadGlobals)
    );
    let mut bad = good;
    bad.frames.push(bad.frames[0].clone());
    assert!(Thread::import_state(&instance, &bad).is_err());
}

#[test]
fn nan_results_are_canonical_and_bits_preserved() {
    let m = Module::new(
        br#"(module
        (func (export "add") (result f32) (f32.add (f32.const nan:0x200000) (f32.const 1)))
        (func (export "neg") (result f32) (f32.neg (f32.const nan:0x200000))))"#,
    )
    .expect("valid");
    let mut space = AddressSpace::new(MemLimits { max_bytes: 0 });
    let mut inst = Instance::new(m, &mut space, &Limits::default(), &[]).expect("inst");
    let mut t = Thread::new(&inst, "add", &[]).expect("thread");
    assert_eq!(
        t.run(&mut inst, &mut space, 100),
        Outcome::Finished(vec![Value::F32(0x7fc0_0000)])
    );
    let mut t = Thread::new(&inst, "neg", &[]).expect("thread");
    assert_eq!(
        t.run(&mut inst, &mut space, 100),
        Outcome::Finished(vec![Value::F32(0xffa0_0000)])
    );
}

#[test]
fn fac_with_argument() {
    let (_, mut space, mut instance) = setup();
    let mut t = Thread::new(&instance, "fac", &[Value::I64(10)]).expect("thread");
    assert_eq!(
        t.run(&mut instance, &mut space, u64::MAX),
        Outcome::Finished(vec![Value::I64(3628800)])
    );
    assert_eq!(
        Thread::new(&instance, "fac", &[Value::I32(1)]).err(),
        Some(ThreadError::ArgumentTypes)
    );
}

#[test]
fn runner_prints_like_wabt_and_round_trips() {
    use super::runner::{RunOptions, run};
    let wat = br#"(module (memory 1)
      (func (export "h") (result i64) (local $i i32) (local $h i64)
        (local.set $h (i64.const 5381))
        (loop $l
          (i32.store8 (local.get $i) (local.get $i))
          (local.set $h (i64.add (i64.mul (local.get $h) (i64.const 33))
                                 (i64.load8_u (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 300))))
        (local.get $h))
      (func (export "two") (result i32 f64) (i32.const -1) (f64.const 1.5))
      (func (export "bad") (unreachable)))"#;
    let plain = run(wat, "h", &RunOptions::default()).expect("runs");
    assert!(
        plain.ok && plain.line.starts_with("h() => i64:"),
        "{}",
        plain.line
    );
    for slice in [1, 7, 64] {
        let opts = RunOptions {
            slice: Some(slice),
            roundtrip: true,
            ..RunOptions::default()
        };
        let sliced = run(wat, "h", &opts).expect("runs");
        assert_eq!(sliced.line, plain.line);
        assert!(sliced.slices > 1);
    }
    let two = run(wat, "two", &RunOptions::default()).expect("runs");
    assert_eq!(two.line, "two() => i32:4294967295, f64:1.5");
    let bad = run(wat, "bad", &RunOptions::default()).expect("runs");
    assert_eq!(
        (bad.line.as_str(), bad.ok),
        ("bad() => error: unreachable", false)
    );
    assert!(run(b"(module", "x", &RunOptions::default()).is_err());
    assert!(run(wat, "missing", &RunOptions::default()).is_err());
}

#[test]
fn entry_frame_over_the_stack_limit_is_refused() {
    let module = Module::new(
        br#"(module (func (export "wide") (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)))"#,
    )
    .expect("valid module");
    let mut space = AddressSpace::new(MemLimits { max_bytes: 1 << 20 });
    let limits = Limits {
        max_operand_stack: 4,
        ..Limits::default()
    };
    let instance = Instance::new(module, &mut space, &limits, &[]).expect("instance");
    match Thread::new(&instance, "wide", &[]) {
        Err(ThreadError::OperandStackLimit { need, limit: 4 }) => assert!(need >= 10),
        other => panic!("expected the stack limit error, got {other:?}"),
    }
}

#[test]
fn typed_function_reference_on_the_stack_round_trips() {
    // `ref.func` is typed `(ref $t)` by the validator; here it sits on the
    // stack across a loop header and a call, both resume points.
    let wat = r#"(module
      (elem declare func $id)
      (func $id (param i32) (result i32) (local.get 0))
      (func (export "run") (result i32) (local $i i32)
        (ref.func $id)
        (loop $l
          (local.set $i (call $id (i32.add (local.get $i) (i32.const 1))))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
        (ref.is_null)
        (i32.add (local.get $i))))"#;
    let module = Module::new(wat.as_bytes()).expect("typed funcref operand accepted");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut inst =
        Instance::new(module.clone(), &mut space, &Limits::default(), &[]).expect("instance");
    let mut th = Thread::new(&inst, "run", &[]).expect("thread");
    let mut stops = 0;
    loop {
        match th.run(&mut inst, &mut space, 7) {
            Outcome::OutOfFuel => {
                let state = th.export_state(&inst).expect("export");
                let bytes = postcard::to_allocvec(&state).expect("serialize");
                let back: ExecState = postcard::from_bytes(&bytes).expect("deserialize");
                th = Thread::import_state(&inst, &back).expect("import");
                stops += 1;
            }
            Outcome::Finished(v) => {
                assert_eq!(v, vec![Value::I32(50)]);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(stops > 10, "{stops} stops");
}

#[test]
fn translated_control_flow_is_closed() {
    // Code ending in an endless loop: nothing falls off the end.
    let module = Module::new(
        br#"(module (func (export "spin") (loop (br 0)))
                    (func (result i32) (block (br 0)) (i32.const 1)))"#,
    )
    .expect("module");
    for code in &module.code {
        assert!(code.control_flow_is_closed(), "{:?}", code.ops);
    }
    // The check refuses what the interpreter could not run unchecked.
    let mut bad = module.code[1].clone();
    assert!(bad.control_flow_is_closed());
    bad.ops.insert(0, code::Op::Jump(bad.ops.len() as u32 + 1));
    assert!(!bad.control_flow_is_closed(), "target past the end");
    let mut bad = module.code[1].clone();
    bad.ops.pop();
    bad.ops.push(code::Op::Fuel(0));
    assert!(!bad.control_flow_is_closed(), "last op falls through");
    let mut bad = module.code[1].clone();
    let last = bad.ops.len() - 1;
    bad.ops.insert(last, code::Op::BrTable(1));
    assert!(!bad.control_flow_is_closed(), "br_table entries missing");
}

#[test]
fn fuel_counts_executed_instructions_when_a_branch_skips_code() {
    let module = Module::new(
        br#"(module (func (export "f") (param i32) (result i32)
              (block $b
                (br_if $b (local.get 0))
                (local.set 0 (i32.const 5))
                (if (i32.eqz (local.get 0)) (then (local.set 0 (i32.const 6)))))
              (local.get 0)))"#,
    )
    .expect("module");
    let used = |arg: u32| {
        let mut space = AddressSpace::new(MemLimits::unlimited());
        let mut inst =
            Instance::new(module.clone(), &mut space, &Limits::default(), &[]).expect("instance");
        let mut th = Thread::new(&inst, "f", &[Value::I32(arg)]).expect("thread");
        let out = th.run(&mut inst, &mut space, 1000);
        (out, 1000 - th.fuel_left())
    };
    // Taken: local.get, br_if, local.get, return.
    assert_eq!(used(1), (Outcome::Finished(vec![Value::I32(1)]), 4));
    // Not taken: 2 + const, set, get, eqz, if (not taken) + get, return.
    assert_eq!(used(0), (Outcome::Finished(vec![Value::I32(5)]), 9));
}

#[test]
fn call_depth_limit_counts_active_frames_and_round_trips_at_the_limit() {
    let module = Module::new(
        br#"(module (func $r (export "r") (param i32) (result i32)
              (if (result i32) (local.get 0)
                (then (call $r (i32.sub (local.get 0) (i32.const 1))))
                (else (i32.const 7)))))"#,
    )
    .expect("module");
    let limits = Limits {
        max_call_depth: 10,
        ..Limits::default()
    };
    let run = |depth: u32, fuel: u64| {
        let mut space = AddressSpace::new(MemLimits::unlimited());
        let mut inst = Instance::new(module.clone(), &mut space, &limits, &[]).expect("instance");
        let mut th = Thread::new(&inst, "r", &[Value::I32(depth)]).expect("thread");
        loop {
            match th.run(&mut inst, &mut space, fuel) {
                Outcome::OutOfFuel => {
                    let state = th.export_state(&inst).expect("export");
                    th = Thread::import_state(&inst, &state).expect("import at any depth");
                }
                other => return other,
            }
        }
    };
    // r(9) makes 10 active frames: the limit.
    assert_eq!(run(9, 1 << 20), Outcome::Finished(vec![Value::I32(7)]));
    assert_eq!(run(9, 1), Outcome::Finished(vec![Value::I32(7)]));
    assert!(matches!(
        run(10, 1 << 20),
        Outcome::Trap(Trap {
            kind: TrapKind::CallStackExhausted,
            ..
        })
    ));
}

#[test]
fn caller_imported_below_its_callee_gets_its_whole_frame_back() {
    // `run` calls `$spin` with nothing on its stack, then, after the call,
    // uses far more operand slots than the callee's frame ends at. A state
    // stopped inside `$spin` and imported gives `run` back its whole frame
    // (the stack used to end at the callee's frame: index out of bounds).
    let mut deep = String::from("(i32.const 1)");
    for _ in 0..40 {
        deep = format!("(i32.add (i32.const 1) {deep})");
    }
    let wat = format!(
        r#"(module
      (func $spin (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 100)))))
      (func (export "run") (result i32)
        (call $spin)
        {deep}))"#
    );
    let module = Module::new(wat.as_bytes()).expect("module");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut inst =
        Instance::new(module.clone(), &mut space, &Limits::default(), &[]).expect("instance");
    let mut th = Thread::new(&inst, "run", &[]).expect("thread");
    assert_eq!(th.run(&mut inst, &mut space, 200), Outcome::OutOfFuel);
    assert_eq!(th.depth(), 2, "stopped in the callee");
    let state = th.export_state(&inst).expect("export");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut fresh = Instance::new(module, &mut space, &Limits::default(), &[]).expect("instance");
    let mut th = Thread::import_state(&fresh, &state).expect("import");
    assert_eq!(
        th.run(&mut fresh, &mut space, 1 << 20),
        Outcome::Finished(vec![Value::I32(41)])
    );
}
