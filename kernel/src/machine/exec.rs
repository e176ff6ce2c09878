//! The interpreter's driver: enters the threaded code (`handlers`) at the
//! thread's position and, when it stops, writes the registers back to the
//! [`Thread`] and turns the stop into an [`Outcome`].
//!
//! The stack holds untyped 64-bit slots; typed values exist only at the API
//! boundary. Fuel is charged by `Fuel`/`LoopHeader` ops (and given back by
//! `Refund` when a branch skips code already charged) and checked at loop
//! headers and calls, which are resume points: stopping there leaves the
//! thread exactly at the op, so the next run executes it again.

use super::Value;
use super::handlers::{Cx, Done, Mem, Regs, Stop};
use super::instance::Instance;
use super::thread::{Outcome, Status, Thread};
use super::trap::{Trap, TrapKind};
use super::value::value_of;
use crate::mm::AddressSpace;

/// Runs `th` until it finishes, calls the host, runs out of `fuel` or traps.
/// Returns the outcome and the fuel left (negative if overspent).
pub(crate) fn execute(
    th: &mut Thread,
    inst: &mut Instance,
    space: &mut AddressSpace,
    fuel: i64,
) -> (Outcome, i64) {
    let module = inst.module.clone();
    let limits = inst.limits;
    let func = th.func;
    let Some(code) = module.code_of(func) else {
        return (
            Outcome::Trap(Trap {
                kind: TrapKind::Unreachable,
                func,
                offset: 0,
            }),
            fuel,
        );
    };
    // The handlers' contract (`handlers` module docs): the current frame
    // fits in the stack (thread creation and import size it so; this keeps
    // a violation from reaching outside it), `pc` is in the code and `sp`
    // lies between the frame's locals and its height.
    let need = th.fp as usize + code.max_height as usize;
    if th.stack.len() < need {
        th.stack.resize(need, 0);
    }
    let pc = th.pc as usize;
    if pc >= code.instrs.len() || th.sp > need || th.sp < th.fp as usize + code.locals.len() {
        return (
            Outcome::Trap(Trap {
                kind: TrapKind::Unreachable,
                func,
                offset: code.offset_of(th.pc),
            }),
            fuel,
        );
    }
    let base = th.stack.as_mut_ptr();
    // Safety: `pc` is inside the code and `sp`, `fp` inside the stack
    // (checked above).
    let regs = unsafe {
        Regs {
            ip: code.instrs.as_ptr().add(pc),
            sp: base.add(th.sp),
            fp: base.add(th.fp as usize),
            fuel,
        }
    };
    let mut cx = Cx {
        module: &module,
        inst: &mut *inst,
        mem: Mem::new(space),
        stack: &mut th.stack,
        frames: &mut th.frames,
        globals: &mut th.globals,
        max_call_depth: limits.max_call_depth as usize,
        max_stack: limits.max_operand_stack as usize,
        func,
        code: code.instrs.as_ptr(),
        regs,
        stop: None,
    };
    run(&mut cx);
    let Regs { ip, sp, fp, fuel } = cx.regs;
    let base = cx.stack.as_mut_ptr();
    // Safety: the registers a handler stores when it stops point into the
    // current function's code (`cx.code`) and into the stack (`base`).
    let (pc, sp, fp) = unsafe {
        (
            ip.offset_from(cx.code) as u32,
            sp.offset_from(base) as usize,
            fp.offset_from(base) as usize,
        )
    };
    let func = cx.func;
    let stop = cx.stop.unwrap_or(Stop::Trap(TrapKind::Unreachable));
    th.func = func;
    th.pc = pc;
    th.sp = sp;
    th.fp = fp as u32;
    match stop {
        Stop::OutOfFuel => (Outcome::OutOfFuel, fuel),
        Stop::Finished => {
            let results: Vec<Value> = th
                .entry_results
                .iter()
                .zip(&th.stack[fp..sp])
                .map(|(t, s)| value_of(*s, *t))
                .collect();
            th.sp = 0;
            th.status = Status::Finished(results.clone());
            (Outcome::Finished(results), fuel)
        }
        Stop::HostCall(import) => host_call(th, &module, import, func, pc as usize, sp, fp, fuel),
        Stop::Foreign { type_index, callee } => {
            let pc = pc as usize;
            match call_foreign(th, inst, type_index, callee, func, pc, sp - 1, fp, fuel) {
                Ok(outcome) => outcome,
                Err(k) => trapped(th, &module, k, fuel),
            }
        }
        Stop::Trap(k) => trapped(th, &module, k, fuel),
    }
}

/// Runs the threaded code from `cx.regs` until a handler stops. In the
/// tail backend the first handler runs everything up to a stop or a
/// handler that returns to this loop (`next_via_driver!`); in the loop
/// backend every handler returns here.
fn run(cx: &mut Cx<'_>) {
    loop {
        let Regs { ip, sp, fp, fuel } = cx.regs;
        // The handler before may have used the space (and its cache).
        cx.mem.refresh();
        // Safety: the registers keep the handlers' contract (`execute`,
        // and every handler that returns `Continue` stores them so).
        if unsafe { ((*ip).handler)(ip, sp, fp, fuel, cx) } == Done::Stop {
            return;
        }
    }
}

/// Marks the thread trapped with `kind` at its position.
fn trapped(
    th: &mut Thread,
    module: &super::module::Module,
    kind: TrapKind,
    fuel: i64,
) -> (Outcome, i64) {
    let offset = module.code_of(th.func).map_or(0, |c| c.offset_of(th.pc));
    let trap = Trap {
        kind,
        func: th.func,
        offset,
    };
    th.status = Status::Trapped(trap);
    (Outcome::Trap(trap), fuel)
}

/// Suspends the thread in a call of `import`: pops the arguments and leaves
/// `pc` at the call op.
#[allow(clippy::too_many_arguments)]
fn host_call(
    th: &mut Thread,
    module: &super::module::Module,
    import: u32,
    func: u32,
    pc: usize,
    sp: usize,
    fp: usize,
    fuel: i64,
) -> (Outcome, i64) {
    let params: &[_] = module.func_type(import).map_or(&[], |t| &t.params);
    suspend_in_call(th, params, import, func, pc, sp, fp, fuel)
}

/// `call_indirect` of function `callee` of the extended index space, which
/// is not the module's: a function of another instance (`shared.rs`). After
/// the type check, the thread is suspended in a host call of `callee`; the
/// embedder runs the function in its own instance. `sp` is without the
/// table index.
#[allow(clippy::too_many_arguments)]
#[cold]
fn call_foreign(
    th: &mut Thread,
    inst: &Instance,
    type_index: u32,
    callee: u32,
    func: u32,
    pc: usize,
    sp: usize,
    fp: usize,
    fuel: i64,
) -> Result<(Outcome, i64), TrapKind> {
    let have = inst
        .function_type(callee)
        .ok_or(TrapKind::ForeignFunction)?;
    if inst.module.types.get(type_index as usize) != Some(&have) {
        return Err(TrapKind::IndirectCallTypeMismatch);
    }
    Ok(suspend_in_call(
        th,
        &have.params,
        callee,
        func,
        pc,
        sp,
        fp,
        fuel,
    ))
}

/// Suspends the thread in a host call of `import` whose parameters are
/// `params`: pops the arguments and leaves `pc` at the call op.
#[allow(clippy::too_many_arguments)]
fn suspend_in_call(
    th: &mut Thread,
    params: &[super::module::ValType],
    import: u32,
    func: u32,
    pc: usize,
    mut sp: usize,
    fp: usize,
    fuel: i64,
) -> (Outcome, i64) {
    sp -= params.len();
    let args: Vec<Value> = params
        .iter()
        .zip(&th.stack[sp..])
        .map(|(t, s)| value_of(*s, *t))
        .collect();
    th.func = func;
    th.pc = pc as u32;
    th.sp = sp;
    th.fp = fp as u32;
    th.status = Status::HostCall {
        import,
        args: args.clone(),
    };
    (Outcome::HostCall { import, args }, fuel)
}
