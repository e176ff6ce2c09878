//! Pair handlers: one handler for the two ops that close most loops, a
//! counter update (`BinLCSet` or `BinLLSet` with an addition: `i = i + 8`,
//! `j = j + i`) and the branch right after it (`Jump` back to the loop
//! header, or `JumpLC`/`JumpLL` comparing that local).
//!
//! Lowering (`lower.rs`) gives the update's instruction a pair handler
//! when the op after it is such a branch. The handler does the update,
//! reads the branch's operands from the next instruction and takes or
//! skips the branch itself, so the pair costs one dispatch. The branch
//! keeps its own instruction and handler at its own position: a jump to
//! it, a resume point or a stop there work as before, and fuel is charged
//! exactly as the two ops would (the update charges nothing; the branch
//! charges only through its target, [`take!`]).
//!
//! A `while` loop tests at its header and jumps back from its end: when
//! such a `Jump` goes to a loop header whose next op is a `JumpLC` or
//! `JumpLL` test, one handler does the update, the header (its fuel check
//! and charge, stopping at the header when fuel is used up) and the test.
//!
//! Every branch fused here tests the local the update has just set (its
//! first operand is the update's destination; lowering checks it), and
//! takes the new value from the update rather than reading the slot back:
//! the read would wait for the store just issued. Likewise, when the loop
//! header is one of the two places a short loop's header has, the handler
//! computes it from its own position instead of waiting for the branch
//! target's load ([`near`]).
//!
//! Safety, besides the handler contract (`handlers/mod.rs`): an update op
//! falls through, so by closed control flow the instruction after it is
//! in the code, and lowering picks a pair handler only when that
//! instruction's op has the shape the handler reads, with a target of
//! kind `T`; for a loop test, that the jump's target is a loop header
//! (never the last op) and the op after it the test, whose target is of
//! kind `T`.

use super::kinds::BinKind;
use super::kinds::bin::I32Add;
use super::{Ip, LOOP, Sp, Stop, branch, handler, jump, local, next, operands, stop, take};
use crate::machine::code::Op;

/// The update is a `BinLCSet`.
pub(crate) const SET_LC: u8 = 0;
/// The update is a `BinLLSet`.
pub(crate) const SET_LL: u8 = 1;

/// The branch that tests the counter is a `JumpLC`.
pub(crate) const TEST_LC: u8 = 0;
/// The branch that tests the counter is a `JumpLL`.
pub(crate) const TEST_LL: u8 = 1;

/// Does the update at `ip` (a `BinLCSet` if `SET` is [`SET_LC`], else a
/// `BinLLSet`) with the operator `K`: the new value of the local set.
///
/// # Safety
/// The handler contract, and the op at `ip` has the shape `SET` names.
#[inline(always)]
unsafe fn update<K: BinKind, const SET: u8>(ip: Ip, fp: Sp) -> u64 {
    // Safety: the caller's contract.
    unsafe {
        let (x, y, d) = if SET == SET_LC {
            operands!(ip, Op::BinLCSet { a, c, d, .. } => (*local(fp, a), c as i64 as u64, d))
        } else {
            operands!(ip, Op::BinLLSet { a, b, d, .. } => (*local(fp, a), *local(fp, b), d))
        };
        let v = K::eval(x, y);
        *local(fp, d) = v;
        v
    }
}

/// `t`, a loop header just read from a branch target, computed from `ip`
/// instead when it is `A` or `B` instructions before it (the header of a
/// loop whose body is one or two instructions long before `ip`).
///
/// `t` depends on the target's load, and `ip` on the previous iteration's
/// `t`: a chain of loads through which every iteration waits for the one
/// before. Comparing `t` with the guesses and branching, which the
/// processor predicts, breaks it: `ip.sub(A)` depends on `ip` alone.
#[inline(always)]
fn near<const A: usize, const B: usize>(t: Ip, ip: Ip) -> Ip {
    /// `p`, hidden from the compiler, which otherwise would see that it
    /// equals `t` in its branch and use `t` instead (where the tail
    /// backend runs; elsewhere the chain matters less).
    #[inline(always)]
    fn opaque(p: Ip) -> Ip {
        let mut addr = p.addr();
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        // Safety: an empty assembly block (a comment), which reads and
        // writes nothing and leaves `addr` as it was.
        unsafe {
            std::arch::asm!("/* {0} */", inout(reg) addr, options(pure, nomem, nostack, preserves_flags))
        };
        p.with_addr(addr)
    }
    let (a, b) = (ip.wrapping_sub(A), ip.wrapping_sub(B));
    if t == a {
        opaque(a)
    } else if t == b {
        opaque(b)
    } else {
        t
    }
}

handler! {
    /// An update, then `Jump` to a target of kind `T`.
    fn update_jump[K: BinKind, const SET: u8, const T: u8](ip, sp, fp, fuel, cx) {
        update::<K, SET>(ip, fp);
        let j = ip.add(1);
        let target = operands!(j, Op::Jump(t) => t);
        take!(T, jump(j, target), sp, fp, fuel, cx)
    }
}

/// The other operand and the target of the branch at `test` that tests
/// the counter: a `JumpLC` if `TEST` is [`TEST_LC`], else a `JumpLL`.
///
/// # Safety
/// The handler contract, and the op at `test` has the shape `TEST` names.
#[inline(always)]
unsafe fn test_operands<const TEST: u8>(test: Ip, fp: Sp) -> (u64, u32) {
    // Safety: the caller's contract.
    unsafe {
        if TEST == TEST_LC {
            operands!(test, Op::JumpLC { c, target, .. } => (c as i64 as u64, target))
        } else {
            operands!(test, Op::JumpLL { b, target, .. } => (*local(fp, b), target))
        }
    }
}

handler! {
    /// An update, then the branch testing the local just set (`TEST`),
    /// with the comparison `C`, to a target of kind `T`.
    fn update_jump_test[K: BinKind, const SET: u8, C: BinKind, const TEST: u8, const T: u8](ip, sp, fp, fuel, cx) {
        let v = update::<K, SET>(ip, fp);
        let j = ip.add(1);
        let (y, target) = test_operands::<TEST>(j, fp);
        if C::eval(v, y) as u32 != 0 {
            take!(T, near::<2, 3>(jump(j, target), ip), sp, fp, fuel, cx)
        }
        next!(ip.add(2), sp, fp, fuel, cx)
    }
}

handler! {
    /// An i32 update, then `Jump` back to a loop header whose next op is
    /// the loop's test of the local just set (`TEST`), with the comparison
    /// `C`, to a target of kind `T`.
    fn update_loop_test[const SET: u8, C: BinKind, const TEST: u8, const T: u8](ip, sp, fp, fuel, cx) {
        let v = update::<I32Add, SET>(ip, fp);
        let j = ip.add(1);
        let header = near::<3, 4>(jump(j, operands!(j, Op::Jump(t) => t)), ip);
        let Some(test) = branch::<LOOP>(header, &mut fuel) else {
            return stop(header, sp, fp, fuel, cx, Stop::OutOfFuel);
        };
        let (y, target) = test_operands::<TEST>(test, fp);
        if C::eval(v, y) as u32 != 0 {
            take!(T, jump(test, target), sp, fp, fuel, cx)
        }
        next!(test.add(1), sp, fp, fuel, cx)
    }
}
