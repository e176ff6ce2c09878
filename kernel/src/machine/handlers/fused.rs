//! Handlers of the binary integer operators, plain and fused (`fuse.rs`),
//! one instance per operator ([`BinKind`]): `a`, `b` and `d` are locals,
//! `c` a constant, `S` the top of the stack.

use super::kinds::BinKind;
use super::take;
use super::{handler, jump, local, next, operands, pop, push, top};
use crate::machine::code::Op;

handler! {
    /// The plain operator: `S1 k S0`.
    fn bin_ss[K: BinKind](ip, sp, fp, fuel, cx) {
        let b = pop(&mut sp);
        let t = top(sp);
        *t = K::eval(*t, b);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_ll[K: BinKind](ip, sp, fp, fuel, cx) {
        let (a, b) = operands!(ip, Op::BinLL { a, b, .. } => (a, b));
        push(&mut sp, K::eval(*local(fp, a), *local(fp, b)));
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_lc[K: BinKind](ip, sp, fp, fuel, cx) {
        let (a, c) = operands!(ip, Op::BinLC { a, c, .. } => (a, c));
        push(&mut sp, K::eval(*local(fp, a), c as i64 as u64));
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_sc[K: BinKind](ip, sp, fp, fuel, cx) {
        let c = operands!(ip, Op::BinSC { c, .. } => c);
        let t = top(sp);
        *t = K::eval(*t, c as i64 as u64);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_sw[K: BinKind](ip, sp, fp, fuel, cx) {
        let c = operands!(ip, Op::BinSW { c, .. } => c);
        let t = top(sp);
        *t = K::eval(*t, c);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_ll_set[K: BinKind](ip, sp, fp, fuel, cx) {
        let (a, b, d) = operands!(ip, Op::BinLLSet { a, b, d, .. } => (a, b, d));
        *local(fp, d) = K::eval(*local(fp, a), *local(fp, b));
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_lc_set[K: BinKind](ip, sp, fp, fuel, cx) {
        let (a, c, d) = operands!(ip, Op::BinLCSet { a, c, d, .. } => (a, c, d));
        *local(fp, d) = K::eval(*local(fp, a), c as i64 as u64);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_sc_set[K: BinKind](ip, sp, fp, fuel, cx) {
        let (c, d) = operands!(ip, Op::BinSCSet { c, d, .. } => (c, d));
        let x = pop(&mut sp);
        *local(fp, d) = K::eval(x, c as i64 as u64);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_sw_set[K: BinKind](ip, sp, fp, fuel, cx) {
        let (c, d) = operands!(ip, Op::BinSWSet { c, d, .. } => (c, d));
        let x = pop(&mut sp);
        *local(fp, d) = K::eval(x, c);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn bin_ss_set[K: BinKind](ip, sp, fp, fuel, cx) {
        let d = operands!(ip, Op::BinSSSet { d, .. } => d);
        let y = pop(&mut sp);
        let x = pop(&mut sp);
        *local(fp, d) = K::eval(x, y);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn jump_ll[K: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        let (a, b, target) = operands!(ip, Op::JumpLL { a, b, target, .. } => (a, b, target));
        if K::eval(*local(fp, a), *local(fp, b)) as u32 != 0 {
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn jump_lc[K: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        let (a, c, target) = operands!(ip, Op::JumpLC { a, c, target, .. } => (a, c, target));
        if K::eval(*local(fp, a), c as i64 as u64) as u32 != 0 {
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn jump_sc[K: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        let (c, target) = operands!(ip, Op::JumpSC { c, target, .. } => (c, target));
        let x = pop(&mut sp);
        if K::eval(x, c as i64 as u64) as u32 != 0 {
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn jump_ss[K: BinKind, const T: u8](ip, sp, fp, fuel, cx) {
        let target = operands!(ip, Op::JumpSS { target, .. } => target);
        let y = pop(&mut sp);
        let x = pop(&mut sp);
        if K::eval(x, y) as u32 != 0 {
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}
