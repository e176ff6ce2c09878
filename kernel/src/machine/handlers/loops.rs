//! Loop kernels: a loop whose whole body is one store at the counter's
//! address (`a[i] = v`, a fill or a sieve's marking) runs as a native loop
//! inside one handler, with the counter in a register.
//!
//! Two shapes qualify, both closed by an i32 addition to the counter `d`
//! and a test of it:
//!
//! - `while`: `LoopHeader`, a `JumpLC`/`JumpLL` that leaves the loop when
//!   the comparison `C` of `d` holds, the store, the update, a `Jump` back
//!   to the header;
//! - `do`-`while`: `LoopHeader`, the store, the update, a `JumpLC`/`JumpLL`
//!   back to the header while `C` holds.
//!
//! The store's address is local `d` plus its offset; the value stored, the
//! step and the bound are constants or other locals, which neither the
//! store nor the update can change, so the kernel reads them once. The
//! counter lives in a register and is written back to its local on every
//! iteration: the chain from one iteration to the next is one addition,
//! not a store and a reload, and the instruction pointer stays put.
//!
//! Lowering (`lower.rs`) gives the store's instruction a kernel handler
//! when the ops around it have one of these shapes; the update, the
//! branches and the header keep their own handlers and positions. Each
//! iteration does what the ops would, in their order, and charges and
//! checks fuel as they would (the header's charge on every jump back to
//! it, a stop at the header when fuel is used up), so a thread stops,
//! traps and exports the same state as without the kernel. A store that
//! misses the access cache leaves the kernel for the store's slow
//! instance, which continues at the update.
//!
//! Safety, besides the handler contract (`handlers/mod.rs`): lowering
//! picks a kernel only when the instructions at the fixed distances read
//! here have the shapes named (the header two before the store in a
//! `while` loop and one before in a `do`-`while`, the test one before or
//! two after, the update one after), with the test's operand `a` and the
//! store's address local both `d`, every other local operand different
//! from `d`, and the exit of a `while` loop a target of kind `T`.

use super::kinds::StoreKind;
use super::kinds::{BinKind, bin::I32Add};
use super::{Stop, handler, jump, local, next, operands, stop, store_lc, store_ll, take};
use crate::machine::code::Op;

/// The loop tests at its header and leaves when the comparison holds.
pub(crate) const WHILE: u8 = 0;
/// The loop tests at its end and goes on while the comparison holds.
pub(crate) const DO_WHILE: u8 = 1;

/// The value of a `Const`-or-local operand pair as the fused ops hold it:
/// the constant of an `..LC` op or local `b` of an `..LL` op.
macro_rules! lc_or_ll {
    ($ip:expr, $fp:expr, $lc:ident { $c:ident }, $ll:ident { $b:ident }) => {
        match (*$ip).op {
            Op::$lc { $c, .. } => $c as i64 as u64,
            Op::$ll { $b, .. } => *local($fp, $b),
            // Safety: lowering checked the shape (module docs).
            _ => std::hint::unreachable_unchecked(),
        }
    };
}

handler! {
    /// The store at `ip` (width `S`) and the rest of its loop of form
    /// `FORM`, testing the counter with `C`; a `while` loop's exit is a
    /// target of kind `T`.
    #[inline(never)]
    fn store_loop[S: StoreKind, C: BinKind, const FORM: u8, const T: u8](ip, sp, fp, fuel, cx) {
        let (d, off, value, lc) = match (*ip).op {
            Op::StoreLC { a, c, off, .. } => (a, off, c as i64 as u64, true),
            Op::StoreLL { a, v, off, .. } => (a, off, *local(fp, v), false),
            // Safety: lowering checked the shape (module docs).
            _ => std::hint::unreachable_unchecked(),
        };
        let update = ip.add(1);
        let step = lc_or_ll!(update, fp, BinLCSet { c }, BinLLSet { b });
        let (header, test) = if FORM == WHILE {
            (ip.sub(2), ip.sub(1))
        } else {
            (ip.sub(1), ip.add(2))
        };
        let bound = lc_or_ll!(test, fp, JumpLC { c }, JumpLL { b });
        let charge = operands!(header, Op::LoopHeader(n) => n) as i64;
        let mut v = *local(fp, d);
        loop {
            let addr = v as u32 as u64 + off as u64;
            if !S::store_cached(&mut cx.mem, addr, value) {
                // The slow instance stores (or traps) and continues at
                // the update, with the counter already in its local.
                if lc {
                    return store_lc::<S, true>(ip, sp, fp, fuel, cx);
                }
                return store_ll::<S, true>(ip, sp, fp, fuel, cx);
            }
            v = I32Add::eval(v, step);
            *local(fp, d) = v;
            if FORM == WHILE {
                // The jump back to the header, the header, the test.
                if fuel <= 0 {
                    return stop(header, sp, fp, fuel, cx, Stop::OutOfFuel);
                }
                fuel -= charge;
                if C::eval(v, bound) as u32 != 0 {
                    let target = operands!(test, Op::JumpLC { target, .. } | Op::JumpLL { target, .. } => target);
                    take!(T, jump(test, target), sp, fp, fuel, cx)
                }
            } else {
                // The test, then the jump back to the header and the
                // header.
                if C::eval(v, bound) as u32 == 0 {
                    next!(test.add(1), sp, fp, fuel, cx)
                }
                if fuel <= 0 {
                    return stop(header, sp, fp, fuel, cx, Stop::OutOfFuel);
                }
                fuel -= charge;
            }
        }
    }
}
