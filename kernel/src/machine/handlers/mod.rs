//! The threaded code: one handler function per internal op (per operator
//! and access kind for the fused ops), run over a function's lowered
//! instructions ([`Instr`], `lower.rs`).
//!
//! Every handler has one signature: the instruction pointer `ip`, the
//! operand stack pointer `sp` (one past the top slot), the frame pointer
//! `fp` (local 0), the fuel left, and the context [`Cx`] with everything
//! else. These registers travel as arguments, so they stay in machine
//! registers. A handler ends with [`next!`], which continues at the next
//! instruction in one of two ways, chosen by the build script's cfg
//! `spartan_tail_calls`:
//!
//! - tail backend (optimized builds on x86_64 and aarch64): it calls the
//!   next instruction's handler in tail position, which LLVM turns into a
//!   jump, so each handler ends in its own indirect jump and nothing
//!   dispatches through one central branch;
//! - loop backend (everything else, e.g. the opt-level-1 test profile): it
//!   stores the registers in [`Cx::regs`] and returns [`Done::Continue`];
//!   the driver loop (`exec.rs`) calls the next handler.
//!
//! Both run the same handlers, and in both a handler may return to the
//! driver loop instead (`next_via_driver!`), which the bulk memory and
//! table instructions do. Leaving the threaded code (finished, host
//! call, out of fuel, trap) stores the registers and a [`Stop`] in the
//! context and returns [`Done::Stop`]; the driver writes them back to the
//! thread.
//!
//! # Safety
//!
//! Handlers are `unsafe fn`s; the whole body of each runs in one `unsafe`
//! block (`handler!`). What makes their raw accesses sound, and what every
//! caller (the driver, and each handler through `next!`) upholds:
//!
//! 1. `ip` points at an instruction of the current function's lowered code
//!    (`cx.code` is its first), and the instruction's op has the shape its
//!    handler was chosen for (`lower.rs` picks the handler from the op).
//!    Control flow is closed (`FuncCode::control_flow_is_closed`, checked
//!    by the translator): an op that falls through is never last, every
//!    branch target is in the code and `lower` keeps positions, so
//!    `ip.add(1)` after a falling-through op and every jump target stay
//!    inside the code.
//! 2. The slots `fp .. fp + max_height` of the current function lie inside
//!    the thread's stack, and so do those of every caller: the stack is
//!    sized so on thread creation, import and every call (`enter`), and
//!    never shrinks; `ret` checks it again for the caller it returns to.
//!    Validation bounds local indices by the function's locals and the
//!    operand stack by `max_height`, so every slot a handler touches
//!    (`local`, `push`, `pop`, `top`) is in the stack.
//! 3. `sp` and `fp` are derived from the stack's buffer
//!    (`Vec::as_mut_ptr`, which creates no reference to the slots), and
//!    nothing creates a reference to the slots while they are live; the
//!    only code that moves the buffer (`enter` growing the stack, `ret`)
//!    re-derives them from indices.

mod control;
mod fused;
pub(crate) mod kinds;
mod loops;
mod mem;
mod memory;
mod numeric;
mod pairs;
mod stack;

pub(crate) use control::*;
pub(crate) use fused::*;
pub(crate) use loops::*;
pub(crate) use mem::Mem;
pub(crate) use memory::*;
pub(crate) use numeric::numeric_handler;
pub(crate) use pairs::*;
pub(crate) use stack::*;

use super::code::Op;
use super::instance::Instance;
use super::module::Module;
use super::thread::CallFrame;
use super::trap::TrapKind;

/// Position in a function's lowered code.
pub(crate) type Ip = *const Instr;
/// Pointer to a slot of the thread's stack.
pub(crate) type Sp = *mut u64;

/// A handler: executes the instruction at `ip` (and, in the tail backend,
/// all that follow it) with the registers `sp`, `fp` and fuel.
pub(crate) type Handler = for<'c, 'a> unsafe fn(Ip, Sp, Sp, i64, &'c mut Cx<'a>) -> Done;

/// One lowered instruction: its handler and its operands. The operands are
/// the op itself, except that `lower` rewrites branch targets (relative,
/// in bytes, past `Fuel(0)` ops), folds a refund stub's landing charge
/// into its refund, and gives plain loads and stores one variant per
/// handler (see `lower.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Instr {
    pub handler: Handler,
    pub op: Op,
}

impl std::fmt::Debug for Instr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.op.fmt(f)
    }
}

/// The interpreter registers, stored when a handler leaves the threaded
/// code (and, in the loop backend, between instructions).
#[derive(Clone, Copy)]
pub(crate) struct Regs {
    pub ip: Ip,
    pub sp: Sp,
    pub fp: Sp,
    pub fuel: i64,
}

/// Why the threaded code stopped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    /// The entry function returned; its results are at `fp`..`sp`.
    Finished,
    /// Fuel ran out at a loop header or call (`ip`).
    OutOfFuel,
    /// A call of an import (or of one through a table) at `ip`, its
    /// arguments on top of the stack.
    HostCall(u32),
    /// `call_indirect` at `ip` of a function not in this module; `sp`
    /// still includes the table index.
    Foreign { type_index: u32, callee: u32 },
    /// A trap at `ip`.
    Trap(TrapKind),
}

/// What a handler returns.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    /// Run the handler at `cx.regs.ip` next (`next_via_driver!`).
    Continue,
    /// Leave the threaded code (`cx.stop` says why).
    Stop,
}

/// Everything a handler reaches besides its registers.
pub(crate) struct Cx<'a> {
    pub module: &'a Module,
    pub inst: &'a mut Instance,
    /// The address space, with a copy of its cache entries for the fast
    /// paths of loads and stores ([`Mem`]).
    pub mem: Mem<'a>,
    pub stack: &'a mut Vec<u64>,
    /// Callers of the current frame, outermost first.
    pub frames: &'a mut Vec<CallFrame>,
    pub globals: &'a mut Vec<u64>,
    pub max_call_depth: usize,
    pub max_stack: usize,
    /// The current function.
    pub func: u32,
    /// The current function's first instruction.
    pub code: Ip,
    pub regs: Regs,
    pub stop: Option<Stop>,
}

/// Continues at instruction `$ip` with the registers given (module docs):
/// tail backend, a call in tail position.
#[cfg(spartan_tail_calls)]
macro_rules! next {
    ($ip:expr, $sp:expr, $fp:expr, $fuel:expr, $cx:expr) => {{
        let ip: $crate::machine::handlers::Ip = $ip;
        // Safety: `ip` is an instruction of the current function (module
        // docs, point 1) and the registers keep points 2-3.
        return unsafe { ((*ip).handler)(ip, $sp, $fp, $fuel, $cx) };
    }};
}

/// Continues at instruction `$ip` with the registers given (module docs):
/// loop backend, back to the driver.
#[cfg(not(spartan_tail_calls))]
macro_rules! next {
    ($($regs:tt)*) => {
        $crate::machine::handlers::next_via_driver!($($regs)*)
    };
}

/// Continues at instruction `$ip` with the registers given through the
/// driver loop, in both backends: for the rare handlers whose out-of-line
/// work (bulk memory and table instructions) leaves a stack slot whose
/// address escapes, where LLVM cannot turn a tail call into a jump.
macro_rules! next_via_driver {
    ($ip:expr, $sp:expr, $fp:expr, $fuel:expr, $cx:expr) => {{
        $cx.regs = $crate::machine::handlers::Regs {
            ip: $ip,
            sp: $sp,
            fp: $fp,
            fuel: $fuel,
        };
        return $crate::machine::handlers::Done::Continue;
    }};
}
pub(crate) use next;
pub(crate) use next_via_driver;

/// Defines a handler: the common signature, the body in one `unsafe`
/// block whose soundness the module docs argue. Generic parameters go in
/// brackets: `fn bin_ll[K: BinKind](ip, sp, fp, fuel, cx) { .. }`.
macro_rules! handler {
    ($(#[$m:meta])* fn $name:ident $([$($g:tt)*])?
        ($ip:ident, $sp:ident, $fp:ident, $fuel:ident, $cx:ident) $body:block) => {
        $(#[$m])*
        #[allow(unused_mut, unused_variables, non_snake_case, clippy::missing_safety_doc)]
        pub(crate) unsafe fn $name $(<$($g)*>)? (
            mut $ip: $crate::machine::handlers::Ip,
            mut $sp: $crate::machine::handlers::Sp,
            mut $fp: $crate::machine::handlers::Sp,
            mut $fuel: i64,
            $cx: &mut $crate::machine::handlers::Cx<'_>,
        ) -> $crate::machine::handlers::Done {
            // Safety: the handler contract of the module docs.
            #[allow(unused_unsafe)]
            unsafe { $body }
        }
    };
}
pub(crate) use handler;

/// The operands of the instruction at `$ip`, destructured with `$pat`.
macro_rules! operands {
    ($ip:expr, $pat:pat => $e:expr) => {
        match (*$ip).op {
            $pat => $e,
            // Safety: `lower` gives this handler only ops of this shape
            // (module docs, point 1).
            _ => std::hint::unreachable_unchecked(),
        }
    };
}
pub(crate) use operands;

/// Leaves the threaded code with the registers and `why`.
#[inline]
pub(crate) fn stop(ip: Ip, sp: Sp, fp: Sp, fuel: i64, cx: &mut Cx<'_>, why: Stop) -> Done {
    cx.regs = Regs { ip, sp, fp, fuel };
    cx.stop = Some(why);
    Done::Stop
}

/// Leaves the threaded code with a trap of the instruction at `ip`.
#[cold]
#[inline(never)]
pub(crate) fn trap(ip: Ip, sp: Sp, fp: Sp, fuel: i64, cx: &mut Cx<'_>, kind: TrapKind) -> Done {
    stop(ip, sp, fp, fuel, cx, Stop::Trap(kind))
}

/// Leaves the threaded code with the registers and the stop an
/// out-of-line helper has already recorded in `cx.stop`.
#[cold]
#[inline(never)]
pub(crate) fn stopped(ip: Ip, sp: Sp, fp: Sp, fuel: i64, cx: &mut Cx<'_>) -> Done {
    cx.regs = Regs { ip, sp, fp, fuel };
    Done::Stop
}

/// Runs `f` (an instruction's work that can trap): its result, or `None`
/// with the trap recorded in `cx.stop` (leave with [`stopped`]).
#[inline(always)]
pub(crate) fn checked<T>(
    cx: &mut Cx<'_>,
    f: impl FnOnce(&mut Cx<'_>) -> Result<T, TrapKind>,
) -> Option<T> {
    match f(cx) {
        Ok(v) => Some(v),
        Err(k) => {
            cx.stop = Some(Stop::Trap(k));
            None
        }
    }
}

/// Pushes `v`.
///
/// # Safety
/// `*sp` is a slot of the frame (below `fp + max_height`).
#[inline(always)]
pub(crate) unsafe fn push(sp: &mut Sp, v: u64) {
    // Safety: the caller's contract.
    unsafe {
        sp.write(v);
        *sp = sp.add(1);
    }
}

/// Pops the top slot.
///
/// # Safety
/// The frame's operand stack is not empty (validation).
#[inline(always)]
pub(crate) unsafe fn pop(sp: &mut Sp) -> u64 {
    // Safety: the caller's contract.
    unsafe {
        *sp = sp.sub(1);
        sp.read()
    }
}

/// The top slot.
///
/// # Safety
/// The frame's operand stack is not empty (validation).
#[inline(always)]
pub(crate) unsafe fn top(sp: Sp) -> *mut u64 {
    // Safety: the caller's contract.
    unsafe { sp.sub(1) }
}

/// Local `i` of the frame at `fp`.
///
/// # Safety
/// `i` is a local of the current function (validation).
#[inline(always)]
pub(crate) unsafe fn local(fp: Sp, i: u32) -> *mut u64 {
    // Safety: the caller's contract.
    unsafe { fp.add(i as usize) }
}

/// Branch target kinds, known at lowering (`lower.rs`): a branch to a
/// loop header, a refund stub or a `Fuel` op does the target's work itself
/// (the header's fuel check and charge; the stub's refund and jump; the
/// charge) instead of dispatching to it. Fuel is charged and checked
/// exactly as if the target ran: a loop header out of fuel stops the
/// thread at the header. This one: any other op.
pub(crate) const PLAIN: u8 = 0;
/// The branch target is a `LoopHeader`.
pub(crate) const LOOP: u8 = 1;
/// The branch target is a `Refund` stub.
pub(crate) const REFUND: u8 = 2;
/// The branch target is a `Fuel` op.
pub(crate) const FUEL: u8 = 3;

/// Takes a branch to `t`, a target of kind `T`: the instruction to run
/// next, or `None` if `t` is a loop header and the fuel is used up (stop at
/// `t`).
///
/// # Safety
/// `t` is an instruction of the current function whose op has kind `T`.
#[inline(always)]
pub(crate) unsafe fn branch<const T: u8>(t: Ip, fuel: &mut i64) -> Option<Ip> {
    // Safety: the caller's contract; a loop header or `Fuel` op is never
    // the last op, and a refund's target is in the code.
    unsafe {
        match T {
            LOOP => {
                if *fuel <= 0 {
                    return None;
                }
                *fuel -= operands!(t, Op::LoopHeader(n) => n) as i64;
                Some(t.add(1))
            }
            REFUND => {
                let (n, rel) = operands!(t, Op::Refund { fuel, target } => (fuel, target));
                *fuel += refund_delta(n);
                Some(jump(t, rel))
            }
            FUEL => {
                *fuel -= operands!(t, Op::Fuel(n) => n) as i64;
                Some(t.add(1))
            }
            _ => Some(t),
        }
    }
}

/// The fuel change of a lowered `Refund` stub's `fuel` operand: the
/// refund less the charge of the `Fuel` op it skips, as an `i32`
/// (`lower.rs`).
#[inline(always)]
pub(crate) fn refund_delta(fuel: u32) -> i64 {
    fuel as i32 as i64
}

/// Branches to `$t`, a target of kind `$T` ([`branch`]), continuing with
/// [`next!`], or with `$next` if given (`next_via_driver`, from handlers
/// that must not tail-call).
macro_rules! take {
    ($T:ident, $t:expr, $sp:expr, $fp:expr, $fuel:ident, $cx:expr) => {
        $crate::machine::handlers::take!(next, $T, $t, $sp, $fp, $fuel, $cx)
    };
    ($next:ident, $T:ident, $t:expr, $sp:expr, $fp:expr, $fuel:ident, $cx:expr) => {{
        let t = $t;
        match $crate::machine::handlers::branch::<$T>(t, &mut $fuel) {
            Some(ip) => $crate::machine::handlers::$next!(ip, $sp, $fp, $fuel, $cx),
            None => {
                return $crate::machine::handlers::stop(
                    t,
                    $sp,
                    $fp,
                    $fuel,
                    $cx,
                    $crate::machine::handlers::Stop::OutOfFuel,
                );
            }
        }
    }};
}
pub(crate) use take;

/// The instruction `rel` (a relative branch target in bytes, `lower.rs`)
/// away.
///
/// # Safety
/// `rel` is a target `lower` made relative to `ip`'s own position.
#[inline(always)]
pub(crate) unsafe fn jump(ip: Ip, rel: u32) -> Ip {
    // Safety: the caller's contract; targets are inside the code.
    unsafe { ip.byte_offset(rel as i32 as isize) }
}
