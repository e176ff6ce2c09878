//! One `run` of more than 10^8 wasm instructions, through loads, stores,
//! fused ops, direct and indirect calls, globals, `select`, `br_table` and
//! float conversions, compared with the same computation written in Rust.
//! (Not with wasmi: its own tail-call handlers overflow the stack on this
//! run when it is built for the opt-level-1 test profile.)
//!
//! In optimized builds the interpreter's handlers tail-call each other
//! (`machine/handlers`): a handler whose tail call LLVM did not turn into a
//! jump grows the native stack with every instruction it runs, so a run
//! this long overflows the stack and fails here rather than in a task. In
//! the test profile the same handlers run under the loop backend, and the
//! test checks they compute the same as in the optimized one.

use spartan_kernel::machine::{Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

const WAT: &str = r#"(module
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (type $t (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $inc $dec)
  (func $inc (type $t) (i32.add (local.get 0) (i32.const 1)))
  (func $dec (type $t) (i32.sub (local.get 0) (i32.const 1)))
  (func (export "run") (param $n i32) (result i64)
    (local $i i32) (local $acc i64) (local $x i32) (local $p i32)
    (loop $l
      (local.set $p (i32.and (i32.mul (local.get $i) (i32.const 4)) (i32.const 0xfffc)))
      (i32.store (local.get $p) (local.get $i))
      (i32.store8 offset=1 (local.get $p) (i32.xor (local.get $i) (i32.const 0x5a)))
      (local.set $x (i32.load (local.get $p)))
      (local.set $x (i32.add (local.get $x) (i32.load16_u offset=2 (local.get $p))))
      (local.set $x (call $inc (local.get $x)))
      (local.set $x
        (call_indirect (type $t) (local.get $x) (i32.and (local.get $i) (i32.const 1))))
      (global.set $g (i32.add (global.get $g) (local.get $x)))
      (local.set $acc
        (i64.add (local.get $acc)
          (i64.extend_i32_u
            (select (local.get $x) (i32.const 7) (i32.and (local.get $i) (i32.const 2))))))
      (block $b2
        (block $b1
          (block $b0
            (br_table $b0 $b1 $b2 (i32.rem_u (local.get $i) (i32.const 3))))
          (local.set $acc (i64.add (local.get $acc) (i64.const 1)))
          (br $b2))
        (local.set $acc (i64.xor (local.get $acc) (i64.const 5))))
      (local.set $acc
        (i64.add (local.get $acc)
          (i64.trunc_f64_s (f64.sqrt (f64.convert_i32_u (local.get $i))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                          (local.get $n))))
    (i64.add (local.get $acc) (i64.extend_i32_u (global.get $g)))))"#;

/// Loop iterations: about 60 instructions each.
const N: u32 = 2_000_000;

/// What `run(n)` returns, computed directly.
fn expected(n: u32) -> u64 {
    let mut mem = vec![0u8; 65536];
    let (mut g, mut acc, mut i) = (0u32, 0u64, 0u32);
    loop {
        let p = (i.wrapping_mul(4) & 0xfffc) as usize;
        mem[p..p + 4].copy_from_slice(&i.to_le_bytes());
        mem[p + 1] = (i ^ 0x5a) as u8;
        let mut x = u32::from_le_bytes(mem[p..p + 4].try_into().unwrap());
        x = x.wrapping_add(u16::from_le_bytes([mem[p + 2], mem[p + 3]]) as u32);
        x = x.wrapping_add(1);
        x = if i & 1 == 0 {
            x.wrapping_add(1)
        } else {
            x.wrapping_sub(1)
        };
        g = g.wrapping_add(x);
        acc = acc.wrapping_add(if i & 2 != 0 { x } else { 7 } as u64);
        match i % 3 {
            0 => acc = acc.wrapping_add(1),
            1 => acc ^= 5,
            _ => {}
        }
        acc = acc.wrapping_add((i as f64).sqrt() as i64 as u64);
        i = i.wrapping_add(1);
        if i >= n {
            return acc.wrapping_add(g as u64);
        }
    }
}

#[test]
fn hundred_million_instructions_in_one_run() {
    let bytes = wat::parse_str(WAT).expect("wat");
    let module = Module::new(&bytes).expect("module");
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let mut instance =
        Instance::new(module, &mut space, &Limits::default(), &[]).expect("instance");
    let mut thread = Thread::new(&instance, "run", &[Value::I32(N)]).expect("thread");
    let fuel = u64::MAX / 2;
    let outcome = thread.run(&mut instance, &mut space, fuel);
    let used = fuel - thread.fuel_left();
    assert!(used > 100_000_000, "only {used} instructions ran");
    assert_eq!(outcome, Outcome::Finished(vec![Value::I64(expected(N))]));
}
