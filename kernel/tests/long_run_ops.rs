//! Every numeric instruction, each in its own loop of 300,000 iterations
//! run in one `run`: in optimized builds the interpreter's handlers
//! tail-call each other (`machine/handlers`), and a handler whose call
//! LLVM did not turn into a jump would grow the native stack by at least
//! one frame per execution and overflow it here (a test thread has 2 MiB),
//! not in a task. `long_run.rs` does the same for memory, call and control
//! instructions in one mixed loop.

use spartan_kernel::machine::{Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

const ITERATIONS: i32 = 300_000;

/// Operator, operand types, result type.
fn ops() -> Vec<(String, &'static [&'static str], &'static str)> {
    let mut v: Vec<(String, &'static [&'static str], &'static str)> = Vec::new();
    for t in ["i32", "i64"] {
        let tt: &'static [&'static str] = if t == "i32" {
            &["i32", "i32"]
        } else {
            &["i64", "i64"]
        };
        let one: &'static [&'static str] = if t == "i32" { &["i32"] } else { &["i64"] };
        for op in [
            "add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor", "shl",
            "shr_s", "shr_u", "rotl", "rotr",
        ] {
            v.push((format!("{t}.{op}"), tt, t));
        }
        for op in [
            "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u",
        ] {
            v.push((format!("{t}.{op}"), tt, "i32"));
        }
        for op in ["clz", "ctz", "popcnt", "extend8_s", "extend16_s"] {
            v.push((format!("{t}.{op}"), one, t));
        }
        v.push((format!("{t}.eqz"), one, "i32"));
    }
    v.push(("i64.extend32_s".into(), &["i64"], "i64"));
    for t in ["f32", "f64"] {
        let tt: &'static [&'static str] = if t == "f32" {
            &["f32", "f32"]
        } else {
            &["f64", "f64"]
        };
        let one: &'static [&'static str] = if t == "f32" { &["f32"] } else { &["f64"] };
        for op in ["add", "sub", "mul", "div", "min", "max", "copysign"] {
            v.push((format!("{t}.{op}"), tt, t));
        }
        for op in ["eq", "ne", "lt", "gt", "le", "ge"] {
            v.push((format!("{t}.{op}"), tt, "i32"));
        }
        for op in ["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"] {
            v.push((format!("{t}.{op}"), one, t));
        }
    }
    let conversions: [(&str, &'static [&'static str], &str); 25] = [
        ("i32.wrap_i64", &["i64"], "i32"),
        ("i64.extend_i32_s", &["i32"], "i64"),
        ("i64.extend_i32_u", &["i32"], "i64"),
        ("i32.trunc_f32_s", &["f32"], "i32"),
        ("i32.trunc_f32_u", &["f32"], "i32"),
        ("i32.trunc_f64_s", &["f64"], "i32"),
        ("i32.trunc_f64_u", &["f64"], "i32"),
        ("i64.trunc_f32_s", &["f32"], "i64"),
        ("i64.trunc_f32_u", &["f32"], "i64"),
        ("i64.trunc_f64_s", &["f64"], "i64"),
        ("i64.trunc_f64_u", &["f64"], "i64"),
        ("i32.trunc_sat_f32_s", &["f32"], "i32"),
        ("i32.trunc_sat_f64_u", &["f64"], "i32"),
        ("i64.trunc_sat_f32_u", &["f32"], "i64"),
        ("i64.trunc_sat_f64_s", &["f64"], "i64"),
        ("f32.convert_i32_s", &["i32"], "f32"),
        ("f32.convert_i64_u", &["i64"], "f32"),
        ("f64.convert_i32_u", &["i32"], "f64"),
        ("f64.convert_i64_s", &["i64"], "f64"),
        ("f32.demote_f64", &["f64"], "f32"),
        ("f64.promote_f32", &["f32"], "f64"),
        ("i32.reinterpret_f32", &["f32"], "i32"),
        ("i64.reinterpret_f64", &["f64"], "i64"),
        ("f32.reinterpret_i32", &["i32"], "f32"),
        ("f64.reinterpret_i64", &["i64"], "f64"),
    ];
    for (op, args, r) in conversions {
        v.push((op.into(), args, r));
    }
    v
}

/// A module whose `run` executes `op` on locals (7 and 3 of each type,
/// so nothing traps) once per iteration, accumulating into a local.
fn module(op: &str, args: &[&str], result: &str) -> String {
    let operands: String = args
        .iter()
        .enumerate()
        .map(|(i, t)| format!("(local.get ${t}{i})"))
        .collect::<Vec<_>>()
        .join(" ");
    let locals: String = args
        .iter()
        .enumerate()
        .map(|(i, t)| format!("(local ${t}{i} {t})"))
        .collect::<Vec<_>>()
        .join(" ");
    let inits: String = args
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = if i == 0 { 7 } else { 3 };
            format!("(local.set ${t}{i} ({t}.const {v}))")
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"(module
  (func (export "run") (result i32)
    (local $i i32) (local $acc {result}) {locals}
    {inits}
    (loop $l
      (local.set $acc ({op} {operands}))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {ITERATIONS}))))
    (local.get $i)))"#
    )
}

#[test]
fn every_numeric_instruction_runs_300_000_times_in_one_run() {
    let all = ops();
    assert!(all.len() > 120, "{} operators", all.len());
    for (op, args, result) in all {
        let wat = module(&op, args, result);
        let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{op}: {e}"));
        let module = Module::new(&bytes).unwrap_or_else(|e| panic!("{op}: {e:?}"));
        let mut space = AddressSpace::new(MemLimits::unlimited());
        let mut instance = Instance::new(module, &mut space, &Limits::default(), &[])
            .unwrap_or_else(|e| panic!("{op}: {e:?}"));
        let mut thread =
            Thread::new(&instance, "run", &[]).unwrap_or_else(|e| panic!("{op}: {e:?}"));
        match thread.run(&mut instance, &mut space, u64::MAX / 2) {
            Outcome::Finished(v) => assert_eq!(v, vec![Value::I32(ITERATIONS as u32)], "{op}"),
            other => panic!("{op}: {other:?}"),
        }
    }
}
