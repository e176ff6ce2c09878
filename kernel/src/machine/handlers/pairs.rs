//! Pair handlers: one handler for the two ops that close most loops, a
//! counter update (`BinLCSet` or `BinLLSet` with an addition: `i = i + 8`,
//! `j = j + i`) and the branch right after it (`Jump` back to the loop
//! header, or `JumpLC`/`JumpLL` comparing a local).
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
//! Safety, besides the handler contract (`handlers/mod.rs`): an update op
//! falls through, so by closed control flow the instruction after it is
//! in the code, and lowering picks a pair handler only when that
//! instruction's op has the shape the handler reads, with a target of
//! kind `T`.

use super::kinds::BinKind;
use super::{Ip, Sp, handler, jump, local, next, operands, take};
use crate::machine::code::Op;

/// The update is a `BinLCSet`.
pub(crate) const SET_LC: u8 = 0;
/// The update is a `BinLLSet`.
pub(crate) const SET_LL: u8 = 1;

/// Does the update at `ip` (a `BinLCSet` if `SET` is [`SET_LC`], else a
/// `BinLLSet`) with the operator `K`.
///
/// # Safety
/// The handler contract, and the op at `ip` has the shape `SET` names.
#[inline(always)]
unsafe fn update<K: BinKind, const SET: u8>(ip: Ip, fp: Sp) {
    // Safety: the caller's contract.
    unsafe {
        let (x, y, d) = if SET == SET_LC {
            operands!(ip, Op::BinLCSet { a, c, d, .. } => (*local(fp, a), c as i64 as u64, d))
        } else {
            operands!(ip, Op::BinLLSet { a, b, d, .. } => (*local(fp, a), *local(fp, b), d))
        };
        *local(fp, d) = K::eval(x, y);
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

handler! {
    /// An update, then `JumpLC` with the comparison `C` to a target of
    /// kind `T`.
    fn update_jump_lc[K: BinKind, const SET: u8, C: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        update::<K, SET>(ip, fp);
        let j = ip.add(1);
        let (a, c, target) = operands!(j, Op::JumpLC { a, c, target, .. } => (a, c, target));
        if C::eval(*local(fp, a), c as i64 as u64) as u32 != 0 {
            take!(T, jump(j, target), sp, fp, fuel, cx)
        }
        next!(ip.add(2), sp, fp, fuel, cx)
    }
}

handler! {
    /// An update, then `JumpLL` with the comparison `C` to a target of
    /// kind `T`.
    fn update_jump_ll[K: BinKind, const SET: u8, C: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        update::<K, SET>(ip, fp);
        let j = ip.add(1);
        let (a, b, target) = operands!(j, Op::JumpLL { a, b, target, .. } => (a, b, target));
        if C::eval(*local(fp, a), *local(fp, b)) as u32 != 0 {
            take!(T, jump(j, target), sp, fp, fuel, cx)
        }
        next!(ip.add(2), sp, fp, fuel, cx)
    }
}
