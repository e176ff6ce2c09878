//! Handlers of fuel, branches, calls and returns.

use std::ptr;

use super::take;
use super::{
    Cx, Done, Ip, Sp, Stop, checked, handler, jump, next, next_via_driver, operands, pop,
    refund_delta, stop, stopped, top, trap,
};
use crate::machine::code::{FuncCode, Op};
use crate::machine::instance::TableCell;
use crate::machine::thread::CallFrame;
use crate::machine::trap::TrapKind;

handler! {
    /// `Fuel`: charge the straight-line code that follows.
    fn fuel(ip, sp, fp, fuel, cx) {
        fuel -= operands!(ip, Op::Fuel(n) => n) as i64;
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `LoopHeader`: stop if fuel is used up, else charge.
    fn loop_header(ip, sp, fp, fuel, cx) {
        if fuel <= 0 {
            return stop(ip, sp, fp, fuel, cx, Stop::OutOfFuel);
        }
        fuel -= operands!(ip, Op::LoopHeader(n) => n) as i64;
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn refund[const T: u8](ip, sp, fp, fuel, cx) {
        let (n, target) = operands!(ip, Op::Refund { fuel, target } => (fuel, target));
        fuel += refund_delta(n);
        take!(T, jump(ip, target), sp, fp, fuel, cx)
    }
}

handler! {
    /// `unreachable`, and the trap of code that cannot be reached (out of
    /// line: callers tail-call it with their registers alone).
    #[cold]
    #[inline(never)]
    fn unreachable(ip, sp, fp, fuel, cx) {
        trap(ip, sp, fp, fuel, cx, TrapKind::Unreachable)
    }
}

handler! {
    fn jump_to[const T: u8](ip, sp, fp, fuel, cx) {
        let target = operands!(ip, Op::Jump(t) => t);
        take!(T, jump(ip, target), sp, fp, fuel, cx)
    }
}

handler! {
    fn jump_if_zero[const T: u8](ip, sp, fp, fuel, cx) {
        let target = operands!(ip, Op::JumpIfZero(t) => t);
        if pop(&mut sp) as u32 == 0 {
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

/// Keeps the top `keep` slots at `fp + height`; returns the new `sp`.
///
/// # Safety
/// `height` and `keep` come from a branch the translator made for this
/// frame: `height + keep` is at most the current height.
#[inline(always)]
unsafe fn keep_at(sp: Sp, fp: Sp, height: u32, keep: u32) -> Sp {
    // Safety: the caller's contract; `ptr::copy` allows overlap.
    unsafe {
        let dst = fp.add(height as usize);
        let keep = keep as usize;
        if dst.add(keep) != sp {
            ptr::copy(sp.sub(keep), dst, keep);
        }
        dst.add(keep)
    }
}

handler! {
    fn br[const T: u8](ip, sp, fp, fuel, cx) {
        let (target, height, keep) =
            operands!(ip, Op::Br { target, height, keep } => (target, height, keep));
        sp = keep_at(sp, fp, height, keep);
        take!(T, jump(ip, target), sp, fp, fuel, cx)
    }
}

handler! {
    fn br_if[const T: u8](ip, sp, fp, fuel, cx) {
        let (target, height, keep) =
            operands!(ip, Op::BrIf { target, height, keep } => (target, height, keep));
        if pop(&mut sp) as u32 != 0 {
            sp = keep_at(sp, fp, height, keep);
            take!(T, jump(ip, target), sp, fp, fuel, cx)
        }
        next!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `BrTable(len)`: the entry `min(index, len)` of the ops that follow.
    fn br_table(ip, sp, fp, fuel, cx) {
        let len = operands!(ip, Op::BrTable(n) => n);
        let i = pop(&mut sp) as u32;
        next!(ip.add(1 + i.min(len) as usize), sp, fp, fuel, cx)
    }
}

/// The `KEEP` of [`ret`] for a return of two or more values.
pub(crate) const MANY: u32 = u32::MAX;

handler! {
    /// `Return` of `KEEP` values: 0, 1, or [`MANY`] (the count in the op).
    /// Specialised so that the common returns copy without a call, which
    /// leaves the handler without a stack frame.
    fn ret[const KEEP: u32](ip, sp, fp, fuel, cx) {
        let keep = match KEEP {
            MANY => operands!(ip, Op::Return(k) => k),
            k => k,
        } as usize;
        match KEEP {
            0 => {}
            1 => *fp = *top(sp),
            _ => ptr::copy(sp.sub(keep), fp, keep),
        }
        sp = fp.add(keep);
        let Some(caller) = cx.frames.pop() else {
            return stop(ip, sp, fp, fuel, cx, Stop::Finished);
        };
        let Some(code) = cx.module.code_of(caller.func) else {
            // (A handler, so that no trap kind is passed through memory.)
            return unreachable(ip, sp, fp, fuel, cx);
        };
        let base = cx.stack.as_mut_ptr();
        let fp_at = caller.fp as usize;
        cx.func = caller.func;
        cx.code = code.instrs.as_ptr();
        // `call_at` is a call op, never the last of its code.
        let ip = cx.code.byte_add(caller.call_at as usize).add(1);
        let need = fp_at + code.max_height as usize;
        if need > cx.stack.len() {
            let sp_at = sp.offset_from(base) as usize;
            return resume_grown(ip, sp_at, fp_at, fuel, cx, need);
        }
        // `sp` is derived from the buffer as it is now (module docs, point
        // 3): only the caller's `fp`, saved as an index, is re-derived.
        next!(ip, sp, base.add(fp_at), fuel, cx)
    }
}

/// Continues a return whose caller's frame does not fit in the stack:
/// never taken (module docs, point 2), kept so that a violation cannot
/// reach outside the stack. Grows the stack to `need` and continues at
/// `ip` with the stack indices `sp_at` and `fp_at`.
#[cold]
#[inline(never)]
fn resume_grown(
    ip: Ip,
    sp_at: usize,
    fp_at: usize,
    fuel: i64,
    cx: &mut Cx<'_>,
    need: usize,
) -> Done {
    let base = grow(cx.stack, need, need);
    // Safety: both indices are below `need`, the length of the stack now.
    let (sp, fp) = unsafe { (base.add(sp_at), base.add(fp_at)) };
    next_via_driver!(ip, sp, fp, fuel, cx)
}

/// Grows the stack to at least `need` slots (doubling, at most `max`
/// unless `need` is more); returns the new buffer.
#[cold]
#[inline(never)]
fn grow(stack: &mut Vec<u64>, need: usize, max: usize) -> Sp {
    let grown = need.max(stack.len() * 2).min(max.max(need));
    stack.resize(grown, 0);
    stack.as_mut_ptr()
}

/// Pushes a frame for defined function `callee` (code `code`) whose
/// arguments end at `args_end`, called by the op at `ip`; returns the
/// callee's first instruction, `sp` and `fp`. On a trap (call depth,
/// operand stack) nothing has changed.
///
/// # Safety
/// The registers keep the module docs' contract and the callee's
/// parameters are the slots below `args_end`.
#[inline(always)]
unsafe fn enter(
    ip: Ip,
    fp: Sp,
    cx: &mut Cx<'_>,
    callee: u32,
    code: &FuncCode,
    args_end: Sp,
) -> Result<(Ip, Sp, Sp), TrapKind> {
    // `frames` holds the callers: the callee makes `frames.len() + 2`
    // active frames, at most `max_call_depth` (what import accepts).
    if cx.frames.len() + 2 > cx.max_call_depth {
        return Err(TrapKind::CallStackExhausted);
    }
    // Safety: `args_end` and `fp` point into the stack (module docs), the
    // callee's frame is made to fit before it is touched, and pointers are
    // re-derived after the buffer moves.
    unsafe {
        let mut base = cx.stack.as_mut_ptr();
        let args_at = args_end.offset_from(base) as usize;
        let fp_at = fp.offset_from(base) as u32;
        let new_fp = args_at - code.num_params as usize;
        let need = new_fp + code.max_height as usize;
        if need > cx.stack.len() {
            if need > cx.max_stack {
                return Err(TrapKind::OperandStackExhausted);
            }
            base = grow(cx.stack, need, cx.max_stack);
        }
        let top = new_fp + code.locals.len();
        // Locals past the parameters start at zero. (No `memset` call for
        // a function without them.)
        if top > args_at {
            ptr::write_bytes(base.add(args_at), 0, top - args_at);
        }
        cx.frames.push(caller_frame(cx, ip, fp_at));
        Ok((switch_to(cx, callee, code), base.add(top), base.add(new_fp)))
    }
}

/// The frame that saves the current function while the call op at `ip`
/// runs its callee: `fp_at` is the current frame's index in the stack.
/// (`ret` takes it back.)
///
/// # Safety
/// `ip` is an instruction of the current function (module docs, point 1).
#[inline(always)]
unsafe fn caller_frame(cx: &Cx<'_>, ip: Ip, fp_at: u32) -> CallFrame {
    CallFrame {
        func: cx.func,
        // Safety: the caller's contract; the code is at most `MAX_OPS`
        // instructions, whose byte offsets fit an `i32`.
        call_at: unsafe { ip.byte_offset_from(cx.code) } as u32,
        fp: fp_at,
    }
}

/// Makes defined function `callee`, whose code is `code`, the current
/// function: its first instruction.
#[inline(always)]
fn switch_to(cx: &mut Cx<'_>, callee: u32, code: &FuncCode) -> Ip {
    cx.func = callee;
    cx.code = code.instrs.as_ptr();
    cx.code
}

/// Locals past the parameters that [`enter_fast`] zeroes inline.
const FAST_LOCALS: usize = 4;

/// [`enter`] for the common case, without any call: the call depth and
/// the callee's frame fit, the frame list has room and the callee has at
/// most [`FAST_LOCALS`] locals past its parameters. `None` (nothing has
/// changed) sends the call to [`call_slow`]. Keeping every call out of
/// this path keeps the call handlers without a stack frame.
///
/// # Safety
/// As for [`enter`].
#[inline(always)]
unsafe fn enter_fast(
    ip: Ip,
    fp: Sp,
    cx: &mut Cx<'_>,
    callee: u32,
    code: &FuncCode,
    args_end: Sp,
) -> Option<(Ip, Sp, Sp)> {
    let depth = cx.frames.len();
    if depth + 2 > cx.max_call_depth || depth == cx.frames.capacity() {
        return None;
    }
    // Safety: as in `enter`; the frame is checked to fit before it is
    // touched, and the buffer does not move.
    unsafe {
        let base = cx.stack.as_mut_ptr();
        let args_at = args_end.offset_from(base) as usize;
        let new_fp = args_at - code.num_params as usize;
        let top = new_fp + code.locals.len();
        let extra = top - args_at;
        if new_fp + code.max_height as usize > cx.stack.len() || extra > FAST_LOCALS {
            return None;
        }
        for k in 0..FAST_LOCALS {
            if k < extra {
                args_end.add(k).write(0);
            }
        }
        // `Vec::push` without its growth path (a call): `depth` is below
        // the capacity, checked above.
        let frame = caller_frame(cx, ip, fp.offset_from(base) as u32);
        cx.frames.as_mut_ptr().add(depth).write(frame);
        cx.frames.set_len(depth + 1);
        Some((switch_to(cx, callee, code), base.add(top), base.add(new_fp)))
    }
}

/// The call of defined function `callee` by the call op at `ip` that
/// [`enter_fast`] declined: [`enter`] in full (growing the stack or the
/// frame list, or trapping), then on through the driver loop.
#[cold]
#[inline(never)]
fn call_slow(ip: Ip, sp: Sp, fp: Sp, fuel: i64, cx: &mut Cx<'_>, callee: u32) -> Done {
    let Some(code) = cx.module.code_of(callee) else {
        return trap(ip, sp, fp, fuel, cx, TrapKind::Unreachable);
    };
    // Safety: `ip` is the call op (handler contract); the arguments of
    // `call_indirect` end below its table index.
    unsafe {
        let args_end = match (*ip).op {
            Op::CallIndirect { .. } => sp.sub(1),
            _ => sp,
        };
        match enter(ip, fp, cx, callee, code, args_end) {
            Ok((ip, sp, fp)) => next_via_driver!(ip, sp, fp, fuel, cx),
            Err(k) => trap(ip, sp, fp, fuel, cx, k),
        }
    }
}

handler! {
    fn call(ip, sp, fp, fuel, cx) {
        if fuel <= 0 {
            return stop(ip, sp, fp, fuel, cx, Stop::OutOfFuel);
        }
        let callee = operands!(ip, Op::Call(f) => f);
        let Some(code) = cx.module.code_of(callee) else {
            return call_slow(ip, sp, fp, fuel, cx, callee);
        };
        match enter_fast(ip, fp, cx, callee, code, sp) {
            Some((ip, sp, fp)) => next!(ip, sp, fp, fuel, cx),
            None => call_slow(ip, sp, fp, fuel, cx, callee),
        }
    }
}

handler! {
    /// Call of an imported function: leaves the threaded code.
    fn call_host(ip, sp, fp, fuel, cx) {
        if fuel <= 0 {
            return stop(ip, sp, fp, fuel, cx, Stop::OutOfFuel);
        }
        let import = operands!(ip, Op::CallHost(f) => f);
        stop(ip, sp, fp, fuel, cx, Stop::HostCall(import))
    }
}

/// Entry `i` of a table the instance does not own (`shared.rs`), or
/// `None` after recording the trap. Out of line with scalar arguments, so
/// `call_indirect` keeps no stack slot whose address escapes (which would
/// keep LLVM from turning its tail call into a jump).
#[inline(never)]
fn shared_entry(cx: &mut Cx<'_>, table: u32, i: usize) -> Option<u64> {
    checked(cx, |cx| cx.inst.indirect_entry(table, i))
}

handler! {
    fn call_indirect(ip, sp, fp, fuel, cx) {
        if fuel <= 0 {
            return stop(ip, sp, fp, fuel, cx, Stop::OutOfFuel);
        }
        let (type_index, table) =
            operands!(ip, Op::CallIndirect { type_index, table } => (type_index, table));
        let i = *top(sp) as u32 as usize;
        let entry = match cx.inst.tables.get(table as usize) {
            Some(TableCell::Own(t)) => match t.elems.get(i) {
                Some(&e) => e,
                None => return trap(ip, sp, fp, fuel, cx, TrapKind::UndefinedElement),
            },
            _ => match shared_entry(cx, table, i) {
                Some(e) => e,
                None => return stopped(ip, sp, fp, fuel, cx),
            },
        };
        if entry == 0 {
            return trap(ip, sp, fp, fuel, cx, TrapKind::UninitializedElement);
        }
        let callee = (entry - 1) as u32;
        let module = cx.module;
        let (Some(want), Some(have)) = (
            module.types.get(type_index as usize),
            module.func_type(callee),
        ) else {
            // Not a function of this module: another instance's.
            return stop(ip, sp, fp, fuel, cx, Stop::Foreign { type_index, callee });
        };
        if want != have {
            return trap(ip, sp, fp, fuel, cx, TrapKind::IndirectCallTypeMismatch);
        }
        if callee < module.num_imported_funcs {
            return stop(ip, sp.sub(1), fp, fuel, cx, Stop::HostCall(callee));
        }
        let Some(code) = module.code_of(callee) else {
            return trap(ip, sp, fp, fuel, cx, TrapKind::Unreachable);
        };
        // The table index is consumed; a trap leaves it on the stack.
        match enter_fast(ip, fp, cx, callee, code, sp.sub(1)) {
            Some((ip, sp, fp)) => next!(ip, sp, fp, fuel, cx),
            None => call_slow(ip, sp, fp, fuel, cx, callee),
        }
    }
}
