//! Handlers of the operand stack, locals, globals and constants.

use super::{handler, local, next, operands, pop, push, top};
use crate::machine::code::Op;

handler! {
    fn drop_top(ip, sp, fp, fuel, cx) {
        sp = sp.sub(1);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn select(ip, sp, fp, fuel, cx) {
        let c = pop(&mut sp) as u32;
        let b = pop(&mut sp);
        if c == 0 {
            *top(sp) = b;
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn local_get(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::LocalGet(i) => i);
        push(&mut sp, *local(fp, i));
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn local_set(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::LocalSet(i) => i);
        *local(fp, i) = pop(&mut sp);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn local_tee(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::LocalTee(i) => i);
        *local(fp, i) = *top(sp);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn global_get(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::GlobalGet(i) => i);
        push(&mut sp, cx.globals[i as usize]);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn global_set(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::GlobalSet(i) => i);
        cx.globals[i as usize] = pop(&mut sp);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `global.get` of a global that may live in a shared object.
    fn global_get_shared(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::GlobalGetShared(i) => i);
        push(&mut sp, cx.inst.global_get(i, cx.globals));
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn global_set_shared(ip, sp, fp, fuel, cx) {
        let i = operands!(ip, Op::GlobalSetShared(i) => i);
        let v = pop(&mut sp);
        cx.inst.global_set(i, cx.globals, v);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn constant(ip, sp, fp, fuel, cx) {
        let v = operands!(ip, Op::Const(v) => v);
        push(&mut sp, v);
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}
