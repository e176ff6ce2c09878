//! Lowering: a function's internal code (`Vec<Op>`, the translator's
//! output, which the resume table and state export keep using) into the
//! threaded code the interpreter runs (`handlers`): one [`Instr`] per op,
//! at the same position, so a `pc` means the same op in both.
//!
//! Lowering picks each op's handler once, specialised for its operator,
//! access kind and branch target kind, so that nothing dispatches on them
//! again at run time; the update that closes a loop and the branch after
//! it get one handler for both (`handlers/pairs.rs`), and a store that is
//! a loop's whole body gets one that runs the whole loop
//! (`handlers/loops.rs`). The instruction
//! keeps the op as its operands, with these rewrites:
//!
//! - branch targets skip `Fuel(0)` ops ([`threaded`]) and become relative
//!   to the instruction, in bytes (a handler needs no base pointer and no
//!   multiplication to jump);
//! - a `Refund` stub landing on a `Fuel` op takes over its charge and
//!   lands after it (its `fuel` operand becomes the net change);
//! - plain loads and stores, whose handler knows the access kind, all
//!   carry their offset as `I32Load(offset)` / `I32Store(offset)`.
//!
//! None of this changes where a run can stop or what it is charged: no run
//! stops at a `Fuel` op, and every charge is still made.

use super::code::Op;
use super::fuse::{Bin, Load, Store};
use super::handlers::kinds::{
    BinKind, with_add, with_bin, with_bin_in, with_cmp, with_load, with_loaded, with_store,
};
use super::handlers::{self as h, Handler, Instr};

/// The most ops a function's code may have: every jump's distance in
/// bytes of threaded code fits an `i32`. (About 89 million; the translator
/// refuses larger functions.)
pub(crate) const MAX_OPS: usize = i32::MAX as usize / std::mem::size_of::<Instr>();

/// The threaded code of `ops` (whose control flow is closed; at most
/// [`MAX_OPS`] of them).
pub(crate) fn lower(ops: &[Op]) -> Box<[Instr]> {
    let threaded = threaded_ops(ops);
    let ops = &threaded[..];
    ops.iter()
        .enumerate()
        .map(|(pc, op)| Instr {
            handler: loop_kernel(ops, pc)
                .or_else(|| pair_handler(ops, pc))
                .unwrap_or_else(|| handler_of(op, target_kind(ops, op))),
            op: operands_of(op, pc as u32),
        })
        .collect()
}

/// `ops` with every op [`threaded`].
fn threaded_ops(ops: &[Op]) -> Vec<Op> {
    ops.iter().map(|op| threaded(ops, op)).collect()
}

/// `op` with its branch target (if it has one) moved past the `Fuel(0)`
/// ops there: they charge nothing, and no run stops at a `Fuel` op, so
/// the branch may as well land after them. A `Refund` stub whose target is
/// a `Fuel(m)` op also takes over that charge and lands after it: in the
/// threaded code, its `fuel` is the net change, refund minus `m`, as an
/// `i32` ([`h::refund_delta`]).
fn threaded(ops: &[Op], op: &Op) -> Op {
    // A `Fuel` op falls through, so (with closed control flow) another op
    // follows it; `get` keeps unclosed code from panicking here.
    let fuel_at = |t: u32| match (ops.get(t as usize), ops.get(t as usize + 1)) {
        (Some(&Op::Fuel(m)), Some(_)) => Some(m),
        _ => None,
    };
    let past_empty = |t: &mut u32| {
        while fuel_at(*t) == Some(0) {
            *t += 1;
        }
    };
    let mut op = *op;
    if let Some(target) = op.target_mut() {
        past_empty(target);
    }
    if let Op::Refund { fuel, target } = &mut op
        && let Some(m) = fuel_at(*target)
    {
        // Each is at most one function's instruction count (below
        // `MAX_OPS`), so the difference fits an `i32`.
        *fuel = (*fuel as i64 - m as i64) as i32 as u32;
        *target += 1;
        past_empty(target);
    }
    op
}

/// The operands an op's handler reads (module docs).
fn operands_of(op: &Op, pc: u32) -> Op {
    let mut op = *op;
    if let Some(target) = op.target_mut() {
        // In bytes, so that a jump is one addition ([`h::jump`]); it fits
        // an `i32` since the code has at most [`MAX_OPS`] ops.
        let rel = (*target as i64 - pc as i64) * std::mem::size_of::<Instr>() as i64;
        *target = rel as i32 as u32;
    }
    if let Some((_, off)) = Load::of(&op) {
        return Op::I32Load(off);
    }
    if let Some((_, off)) = Store::of(&op) {
        return Op::I32Store(off);
    }
    op
}

/// The kind of `op`'s branch target ([`h::PLAIN`], [`h::LOOP`],
/// [`h::REFUND`], [`h::FUEL`]), for the handlers that branch.
fn target_kind(ops: &[Op], op: &Op) -> u8 {
    let Some(target) = op.target() else {
        return h::PLAIN;
    };
    match ops.get(target as usize) {
        Some(Op::LoopHeader(_)) => h::LOOP,
        Some(Op::Refund { .. }) => h::REFUND,
        Some(Op::Fuel(_)) => h::FUEL,
        _ => h::PLAIN,
    }
}

/// Evaluates `$e` with the constant `$T` the target kind `$t`.
macro_rules! with_target {
    ($t:expr, $T:ident => $e:expr) => {
        match $t {
            h::LOOP => {
                const $T: u8 = h::LOOP;
                $e
            }
            h::REFUND => {
                const $T: u8 = h::REFUND;
                $e
            }
            h::FUEL => {
                const $T: u8 = h::FUEL;
                $e
            }
            _ => {
                const $T: u8 = h::PLAIN;
                $e
            }
        }
    };
}

/// Evaluates `$e` with the constant `$TE` the test form `$t`.
macro_rules! with_test {
    ($t:expr, $TE:ident => $e:expr) => {
        match $t {
            h::TEST_LC => {
                const $TE: u8 = h::TEST_LC;
                $e
            }
            _ => {
                const $TE: u8 = h::TEST_LL;
                $e
            }
        }
    };
}
/// The positions in `ops` whose instructions run loop kernels.
#[cfg(test)]
pub(super) fn kernel_positions(ops: &[Op]) -> Vec<usize> {
    let threaded = threaded_ops(ops);
    (0..ops.len())
        .filter(|&pc| loop_kernel(&threaded, pc).is_some())
        .collect()
}

/// A loop kernel (`handlers/loops.rs`) for the store at `pc`, if the ops
/// around it make a loop of one of the shapes it runs.
fn loop_kernel(ops: &[Op], pc: usize) -> Option<Handler> {
    // The store's address local is the counter; a value from another local.
    let (d, s) = match ops[pc] {
        Op::StoreLC { a, k, .. } => (a, k),
        Op::StoreLL { a, v, k, .. } if v != a => (a, k),
        _ => return None,
    };
    // The update: `d = d + c` or `d = d + b` (another local), in i32.
    match *ops.get(pc + 1)? {
        Op::BinLCSet {
            k: Bin::I32Add,
            a,
            d: set,
            ..
        } if a == d && set == d => {}
        Op::BinLLSet {
            k: Bin::I32Add,
            a,
            b,
            d: set,
        } if a == d && b != d && set == d => {}
        _ => return None,
    }
    // The test of `d` against a constant or another local.
    let test_of = |op: &Op| match *op {
        Op::JumpLC { k, a, .. } if a == d => Some(k),
        Op::JumpLL { k, a, b, .. } if a == d && b != d => Some(k),
        _ => None,
    };
    let is_header = |at: usize| matches!(ops.get(at), Some(Op::LoopHeader(_)));
    let back = |op: &Op, header: usize| op.target() == Some(header as u32);
    let next = ops.get(pc + 2)?;
    if pc >= 2 && is_header(pc - 2) && matches!(next, Op::Jump(_)) && back(next, pc - 2) {
        let test = &ops[pc - 1];
        let k = test_of(test)?;
        let target = target_kind(ops, test);
        return with_bin_in!(k, C => Some(with_target!(target, T => with_store!(s, S => {
            h::store_loop::<S, C, { h::WHILE }, T>
        }))), else None; I32GeU I32GeS I32GtU I32GtS I32Eq);
    }
    if pc >= 1 && is_header(pc - 1) && back(next, pc - 1) {
        let k = test_of(next)?;
        return with_bin_in!(k, C => Some(with_store!(s, S => {
            h::store_loop::<S, C, { h::DO_WHILE }, { h::LOOP }>
        })), else None; I32LtU I32LtS I32LeU I32LeS I32Ne);
    }
    None
}

/// A pair handler (`handlers/pairs.rs`) for the op at `pc` and the one
/// after it, if they are a counter update and a branch it has one for.
fn pair_handler(ops: &[Op], pc: usize) -> Option<Handler> {
    let branch = ops.get(pc + 1)?;
    let target = target_kind(ops, branch);
    match ops[pc] {
        Op::BinLCSet { k, d, .. } => {
            with_add!(k, K => pair_with::<K, { h::SET_LC }>(ops, d, branch, target), else None)
        }
        Op::BinLLSet { k, d, .. } => {
            with_add!(k, K => pair_with::<K, { h::SET_LL }>(ops, d, branch, target), else None)
        }
        _ => None,
    }
}

/// The pair handler of an update of local `d` with operator `K` and form
/// `SET` followed by `branch`, whose target is of kind `target`.
fn pair_with<K: BinKind, const SET: u8>(
    ops: &[Op],
    d: u32,
    branch: &Op,
    target: u8,
) -> Option<Handler> {
    if let Op::Jump(t) = *branch {
        // A `while` loop's jump back (counters that step by an i32
        // addition only: fewer instances).
        let while_loop = (target == h::LOOP && K::K == Bin::I32Add)
            .then(|| loop_test_handler::<SET>(ops, d, t as usize + 1))
            .flatten();
        return Some(while_loop.unwrap_or(with_target!(target, T => h::update_jump::<K, SET, T>)));
    }
    let (k, test) = test_of(branch, d)?;
    with_cmp!(k, C => Some(with_target!(target, T => with_test!(test, TE => {
        h::update_jump_test::<K, SET, C, TE, T>
    }))), else None)
}

/// The handler of an i32 update of local `d` with form `SET` whose `Jump`
/// goes back to a loop header that tests first (a `while` loop): if the op
/// at `test`, the header's next, is a `JumpLL` or `JumpLC` comparing local
/// `d`, the handler that also does the header and the test.
fn loop_test_handler<const SET: u8>(ops: &[Op], d: u32, test: usize) -> Option<Handler> {
    let op = ops.get(test)?;
    let target = target_kind(ops, op);
    let (k, test) = test_of(op, d)?;
    with_cmp!(k, C => Some(with_target!(target, T => with_test!(test, TE => {
        h::update_loop_test::<SET, C, TE, T>
    }))), else None)
}

/// The comparison and form ([`h::TEST_LC`], [`h::TEST_LL`]) of `op` if it
/// is a `JumpLC` or `JumpLL` whose first operand is local `d`.
fn test_of(op: &Op, d: u32) -> Option<(Bin, u8)> {
    match *op {
        Op::JumpLC { k, a, .. } if a == d => Some((k, h::TEST_LC)),
        Op::JumpLL { k, a, .. } if a == d => Some((k, h::TEST_LL)),
        _ => None,
    }
}

/// The handler of `op`, whose branch target (if it has one) is of kind
/// `target`.
fn handler_of(op: &Op, target: u8) -> Handler {
    if let Some(k) = Bin::of(op) {
        return with_bin!(k, K => h::bin_ss::<K>);
    }
    if let Some(handler) = h::numeric_handler(op) {
        return handler;
    }
    if let Some((l, _)) = Load::of(op) {
        return with_load!(l, L => h::load::<L, false>);
    }
    if let Some((s, _)) = Store::of(op) {
        return with_store!(s, S => h::store::<S, false>);
    }
    match *op {
        Op::Fuel(_) => h::fuel,
        Op::LoopHeader(_) => h::loop_header,
        Op::Refund { .. } => with_target!(target, T => h::refund::<T>),
        Op::Unreachable => h::unreachable,
        Op::Jump(_) => with_target!(target, T => h::jump_to::<T>),
        Op::JumpIfZero(_) => with_target!(target, T => h::jump_if_zero::<T>),
        Op::Br { .. } => with_target!(target, T => h::br::<T>),
        Op::BrIf { .. } => with_target!(target, T => h::br_if::<T>),
        Op::BrTable(_) => h::br_table,
        Op::Return(0) => h::ret::<0>,
        Op::Return(1) => h::ret::<1>,
        Op::Return(_) => h::ret::<{ h::MANY }>,
        Op::Call(_) => h::call,
        Op::CallHost(_) => h::call_host,
        Op::CallIndirect { .. } => h::call_indirect,
        Op::Drop => h::drop_top,
        Op::Select => h::select,
        Op::LocalGet(_) => h::local_get,
        Op::LocalSet(_) => h::local_set,
        Op::LocalTee(_) => h::local_tee,
        Op::GlobalGet(_) => h::global_get,
        Op::GlobalSet(_) => h::global_set,
        Op::GlobalGetShared(_) => h::global_get_shared,
        Op::GlobalSetShared(_) => h::global_set_shared,
        Op::Const(_) => h::constant,
        Op::MemorySize => h::memory_size,
        Op::MemoryGrow => h::memory_grow,
        Op::MemoryInit(_) => h::memory_init,
        Op::DataDrop(_) => h::data_drop,
        Op::MemoryCopy => h::memory_copy,
        Op::MemoryFill => h::memory_fill,
        Op::TableInit { .. } => h::table_init,
        Op::ElemDrop(_) => h::elem_drop,
        Op::TableCopy { .. } => h::table_copy,
        Op::TableGet(_) => h::table_get,
        Op::TableSet(_) => h::table_set,
        Op::TableGrow(_) => h::table_grow,
        Op::TableSize(_) => h::table_size,
        Op::TableFill(_) => h::table_fill,
        Op::BinLL { k, .. } => with_bin!(k, K => h::bin_ll::<K>),
        Op::BinLC { k, .. } => with_bin!(k, K => h::bin_lc::<K>),
        Op::BinSC { k, .. } => with_bin!(k, K => h::bin_sc::<K>),
        Op::BinLLSet { k, .. } => with_bin!(k, K => h::bin_ll_set::<K>),
        Op::BinLCSet { k, .. } => with_bin!(k, K => h::bin_lc_set::<K>),
        Op::BinSCSet { k, .. } => with_bin!(k, K => h::bin_sc_set::<K>),
        Op::BinSW { k, .. } => with_bin!(k, K => h::bin_sw::<K>),
        Op::BinSWSet { k, .. } => with_bin!(k, K => h::bin_sw_set::<K>),
        Op::BinSSSet { k, .. } => with_bin!(k, K => h::bin_ss_set::<K>),
        Op::JumpLL { k, .. } => with_target!(target, T => with_bin!(k, K => h::jump_ll::<K, T>)),
        Op::JumpLC { k, .. } => with_target!(target, T => with_bin!(k, K => h::jump_lc::<K, T>)),
        Op::JumpSC { k, .. } => with_target!(target, T => with_bin!(k, K => h::jump_sc::<K, T>)),
        Op::JumpSS { k, .. } => with_target!(target, T => with_bin!(k, K => h::jump_ss::<K, T>)),
        Op::LoadL { k, .. } => with_load!(k, L => h::load_l::<L, false>),
        Op::BinLoadC { k, l, .. } => with_loaded!(k, K => {
            with_load!(l, L => h::bin_load_c::<K, L, false>)
        }, else h::unreachable),
        Op::BinLLoad { k, l, .. } => {
            with_bin!(k, K => with_load!(l, L => h::bin_l_load::<K, L, false>))
        }
        // A loaded value tested for zero or not zero (`eqz`, `if`) jumps to
        // any kind of target; the rarer comparisons with zero treat every
        // target as plain (fewer instances).
        Op::JumpLoadZ {
            k: k @ (Bin::I32Eq | Bin::I32Ne),
            l,
            ..
        } => with_bin_in!(k, K => with_target!(target, T => {
            with_load!(l, L => h::jump_load_z::<K, L, T, false>)
        }), else h::unreachable; I32Eq I32Ne),
        Op::JumpLoadZ { k, l, .. } => {
            with_bin!(k, K => with_load!(l, L => h::jump_load_z::<K, L, { h::PLAIN }, false>))
        }
        Op::StoreLL { k, .. } => with_store!(k, S => h::store_ll::<S, false>),
        Op::StoreLC { k, .. } => with_store!(k, S => h::store_lc::<S, false>),
        Op::StoreLS { k, .. } => with_store!(k, S => h::store_ls::<S, false>),
        Op::StoreSL { k, .. } => with_store!(k, S => h::store_sl::<S, false>),
        Op::StoreSC { k, .. } => with_store!(k, S => h::store_sc::<S, false>),
        // Every other op is a plain numeric, load, store or `Bin` op,
        // handled above; an op missing from both is a lowering bug.
        _ => h::unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Instance, Limits, Module, Outcome, Thread, Value};
    use crate::mm::{AddressSpace, MemLimits};

    /// Loops closed by each kind of pair (`handlers/pairs.rs`), one whose
    /// exit branches land on `Fuel` ops, and one whose branch tests another
    /// local than the update sets (no pair).
    const LOOPS: &str = r#"(module
      (memory 1)
      (func (export "lc") (param $n i32) (result i32) (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 3)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 300))))
        (i32.add (local.get $i) (local.get $n)))
      (func (export "ll") (param $n i32) (result i32) (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
        (local.get $i))
      (func (export "while") (param $n i32) (result i32)
        (local $j i32) (local $s i32) (local $one i32)
        (local.set $one (i32.const 1))
        (block $done
          (loop $l
            (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
            (i32.store8 (local.get $j) (i32.const 1))
            (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $j))))
            (local.set $j (i32.add (local.get $j) (local.get $one)))
            (br $l)))
        (if (i32.eqz (local.get $j)) (then (local.set $j (i32.const 7))))
        (i32.add (local.get $j) (local.get $s)))
      (func (export "other") (param $n i32) (result i32) (local $i i32) (local $k i32)
        (loop $l
          (local.set $k (i32.add (local.get $k) (i32.const 2)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $k) (local.get $n))))
        (local.get $i)))"#;

    fn run(name: &str, n: u32, fuel: u64) -> (Outcome, u64) {
        let module = Module::new(LOOPS.as_bytes()).expect("module");
        let mut space = AddressSpace::new(MemLimits::unlimited());
        let mut inst =
            Instance::new(module, &mut space, &Limits::default(), &[]).expect("instance");
        let mut th = Thread::new(&inst, name, &[Value::I32(n)]).expect("thread");
        let mut used = 0;
        loop {
            let out = th.run(&mut inst, &mut space, fuel);
            used += fuel - th.fuel_left();
            if out != Outcome::OutOfFuel {
                return (out, used);
            }
        }
    }

    #[test]
    fn loop_closing_pairs_get_one_handler() {
        let module = Module::new(LOOPS.as_bytes()).expect("module");
        for (f, code) in module.code.iter().enumerate() {
            let pairs: Vec<usize> = (0..code.ops.len())
                .filter(|&pc| pair_handler(&code.ops, pc).is_some())
                .collect();
            if f == 3 {
                assert_eq!(pairs, [], "{:?}", code.ops);
                continue;
            }
            assert_eq!(pairs.len(), 1, "function {f}: {:?}", code.ops);
            // The `while` loop's jump goes to a header that tests first.
            let header = code.ops[pairs[0] + 1].target().map(|t| t as usize + 1);
            assert_eq!(
                header
                    .and_then(|test| loop_test_handler::<{ h::SET_LL }>(&code.ops, 1, test))
                    .is_some(),
                f == 2,
                "function {f}"
            );
            let next = code.ops[pairs[0] + 1];
            assert!(
                matches!(
                    (f, next),
                    (0, Op::JumpLC { .. }) | (1, Op::JumpLL { .. }) | (2, Op::Jump(_))
                ),
                "function {f}: {next:?}"
            );
        }
    }

    #[test]
    fn branches_land_past_empty_fuel_ops_and_stubs_past_charges() {
        let ops = [
            Op::Fuel(2),
            Op::Jump(3),
            Op::Fuel(0),
            Op::Fuel(0),
            Op::Fuel(4),
            Op::Return(0),
        ];
        assert_eq!(threaded(&ops, &ops[1]), Op::Jump(4));
        assert_eq!(target_kind(&ops, &threaded(&ops, &ops[1])), h::FUEL);
        let stub = |fuel| Op::Refund { fuel, target: 2 };
        // A stub takes over the charge of the `Fuel` op it lands on.
        assert_eq!(threaded(&ops, &stub(7)), Op::Refund { fuel: 3, target: 5 });
        assert_eq!(
            threaded(&ops, &stub(1)),
            Op::Refund {
                fuel: -3i32 as u32,
                target: 5
            }
        );
    }

    #[test]
    fn pairs_charge_one_unit_per_instruction_and_stop_in_any_slice() {
        // (A slice's overspent fuel is not carried over, so only whole runs
        // count fuel exactly.)
        // Per iteration: lc and ll 8 instructions (get, const/get, add,
        // set, get, const/get, lt, br_if); while 17.
        for (name, per_iteration) in [("lc", 8), ("ll", 8), ("while", 17)] {
            let n = 40;
            let (whole, used) = run(name, n, u64::MAX / 2);
            let (_, fewer) = run(name, n - 10, u64::MAX / 2);
            if name != "lc" {
                assert_eq!(used - fewer, 10 * per_iteration, "{name}");
            }
            for slice in 1..=9 {
                assert_eq!(run(name, n, slice).0, whole, "{name} slice {slice}");
            }
        }
        assert_eq!(
            run("lc", 5, 1000).0,
            Outcome::Finished(vec![Value::I32(305)])
        );
        assert_eq!(run("ll", 0, 1000).0, Outcome::Finished(vec![Value::I32(1)]));
        assert_eq!(
            run("while", 0, 1000).0,
            Outcome::Finished(vec![Value::I32(7)])
        );
        assert_eq!(
            run("while", 9, 1000).0,
            Outcome::Finished(vec![Value::I32(18)])
        );
    }
}
