//! The interpreter loop.
//!
//! Registers of the loop (`pc`, `sp`, `fp`, the current code) live in local
//! variables and are written back to the [`Thread`] whenever the loop
//! returns. The stack holds untyped 64-bit slots; typed values exist only at
//! the API boundary. Fuel is charged by `Fuel`/`LoopHeader` ops (and given
//! back by `Refund` when a branch skips code already charged) and checked
//! at loop headers and calls, which are resume points: stopping there leaves
//! the thread exactly at the op, so the next run executes it again.

use super::Value;
use super::code::Op;
use super::fuse::{Load, Store};
use super::instance::{Instance, TableCell, check_memory_range};
use super::num::*;
use super::thread::{CallFrame, Outcome, Status, Thread};
use super::trap::{Trap, TrapKind};
use super::value::value_of;
use crate::mm::AddressSpace;

/// Runs `th` until it finishes, calls the host, runs out of `fuel` or traps.
/// Returns the outcome and the fuel left (negative if overspent).
pub(crate) fn execute(
    th: &mut Thread,
    inst: &mut Instance,
    space: &mut AddressSpace,
    mut fuel: i64,
) -> (Outcome, i64) {
    let module = inst.module.clone();
    let limits = inst.limits;
    let max_stack = limits.max_operand_stack as usize;
    let mut func = th.func;
    let Some(mut code) = module.code_of(func) else {
        return (
            Outcome::Trap(Trap {
                kind: TrapKind::Unreachable,
                func,
                offset: 0,
            }),
            fuel,
        );
    };
    let mut ops: &[Op] = &code.ops;
    let mut pc = th.pc as usize;
    let mut sp = th.sp;
    let mut fp = th.fp as usize;
    // The stack as a slice in a local (pointer and length in registers, not
    // behind the `Vec`); re-taken whenever the `Vec` grows.
    let stack_vec = &mut th.stack;
    let mut stack: &mut [u64] = stack_vec;
    let globals = &mut th.globals;
    let frames = &mut th.frames;

    macro_rules! save {
        () => {{
            th.func = func;
            th.pc = pc as u32;
            th.sp = sp;
            th.fp = fp as u32;
        }};
    }
    macro_rules! trap {
        ($kind:expr) => {{
            let trap = Trap {
                kind: $kind,
                func,
                offset: code.offset_of(pc as u32),
            };
            th.func = func;
            th.pc = pc as u32;
            th.sp = sp;
            th.fp = fp as u32;
            th.status = Status::Trapped(trap);
            return (Outcome::Trap(trap), fuel);
        }};
    }
    macro_rules! pop {
        () => {{
            sp -= 1;
            stack[sp]
        }};
    }
    // Pushes a frame for defined function `$callee` (code `$c`) whose
    // arguments end at stack index `$args_end`, then continues in it. Traps
    // (call depth, operand stack) leave `sp` as it was.
    macro_rules! enter_frame {
        ($callee:expr, $c:expr, $args_end:expr) => {{
            let c = $c;
            let args_end = $args_end;
            // `frames` holds the callers: the callee makes `frames.len() + 2`
            // active frames, at most `max_call_depth` (what import accepts).
            if frames.len() + 2 > limits.max_call_depth as usize {
                trap!(TrapKind::CallStackExhausted);
            }
            let new_fp = args_end - c.num_params as usize;
            let need = new_fp + c.max_height as usize;
            if need > stack.len() {
                if need > max_stack {
                    trap!(TrapKind::OperandStackExhausted);
                }
                let grown = need.max(stack.len() * 2).min(max_stack);
                stack_vec.resize(grown, 0);
                stack = stack_vec;
            }
            let top = new_fp + c.locals.len();
            stack[args_end..top].fill(0);
            frames.push(CallFrame {
                func,
                call_pc: pc as u32,
                fp: fp as u32,
            });
            func = $callee;
            code = c;
            ops = &code.ops;
            pc = 0;
            fp = new_fp;
            sp = top;
            continue;
        }};
    }
    macro_rules! push {
        ($v:expr) => {{
            let v = $v;
            stack[sp] = v;
            sp += 1;
        }};
    }
    macro_rules! un {
        (|$a:ident| $e:expr) => {{
            let $a = stack[sp - 1];
            stack[sp - 1] = $e;
        }};
    }
    macro_rules! bin {
        (|$a:ident, $b:ident| $e:expr) => {{
            sp -= 1;
            let $b = stack[sp];
            let $a = stack[sp - 1];
            stack[sp - 1] = $e;
        }};
    }
    macro_rules! try_un {
        (|$a:ident| $e:expr) => {{
            let $a = stack[sp - 1];
            match $e {
                Ok(v) => stack[sp - 1] = v,
                Err(k) => trap!(k),
            }
        }};
    }
    macro_rules! try_bin {
        (|$a:ident, $b:ident| $e:expr) => {{
            let $b = stack[sp - 1];
            let $a = stack[sp - 2];
            match $e {
                Ok(v) => {
                    sp -= 1;
                    stack[sp - 1] = v;
                }
                Err(k) => trap!(k),
            }
        }};
    }
    macro_rules! load {
        ($off:expr, $n:literal, |$b:ident| $conv:expr) => {{
            let addr = stack[sp - 1] as u32 as u64 + $off as u64;
            match space.load::<$n>(addr) {
                Ok($b) => stack[sp - 1] = $conv,
                Err(f) => trap!(TrapKind::MemoryOutOfBounds(f)),
            }
        }};
    }
    macro_rules! store {
        ($off:expr, |$v:ident| $bytes:expr) => {{
            let $v = stack[sp - 1];
            let addr = stack[sp - 2] as u32 as u64 + $off as u64;
            if let Err(f) = space.store(addr, $bytes) {
                trap!(TrapKind::MemoryOutOfBounds(f));
            }
            sp -= 2;
        }};
    }
    // Loads `$n` bytes at `$addr` and converts them, or traps.
    macro_rules! load_at {
        ($addr:expr, $n:literal, |$b:ident| $conv:expr) => {{
            match space.load::<$n>($addr) {
                Ok($b) => $conv,
                Err(f) => trap!(TrapKind::MemoryOutOfBounds(f)),
            }
        }};
    }
    // Stores the low bytes of `$v` at `$addr` as a store of width `$k`, or traps.
    macro_rules! store_at {
        ($k:expr, $addr:expr, $v:expr) => {{
            let (addr, v) = ($addr, $v);
            let r = match $k {
                Store::B1 => space.store(addr, [v as u8]),
                Store::B2 => space.store(addr, (v as u16).to_le_bytes()),
                Store::B4 => space.store(addr, (v as u32).to_le_bytes()),
                Store::B8 => space.store(addr, v.to_le_bytes()),
            };
            if let Err(f) = r {
                trap!(TrapKind::MemoryOutOfBounds(f));
            }
        }};
    }
    // Loads a value of fused-load kind `$k` at `$addr`, or traps.
    macro_rules! load_kind {
        ($k:expr, $addr:expr) => {{
            let addr = $addr;
            match $k {
                Load::U32 => load_at!(addr, 4, |b| u32::from_le_bytes(b) as u64),
                Load::U64 => load_at!(addr, 8, |b| u64::from_le_bytes(b)),
                Load::I32S8 => load_at!(addr, 1, |b| b[0] as i8 as i32 as u32 as u64),
                Load::U8 => load_at!(addr, 1, |b| b[0] as u64),
                Load::I32S16 => {
                    load_at!(addr, 2, |b| i16::from_le_bytes(b) as i32 as u32 as u64)
                }
                Load::U16 => load_at!(addr, 2, |b| u16::from_le_bytes(b) as u64),
                Load::I64S8 => load_at!(addr, 1, |b| b[0] as i8 as i64 as u64),
                Load::I64S16 => load_at!(addr, 2, |b| i16::from_le_bytes(b) as i64 as u64),
                Load::I64S32 => load_at!(addr, 4, |b| i32::from_le_bytes(b) as i64 as u64),
            }
        }};
    }
    macro_rules! local {
        ($i:expr) => {
            stack[fp + $i as usize]
        };
    }
    macro_rules! cmp {
        (|$a:ident, $b:ident| $e:expr) => {
            bin!(|$a, $b| ($e) as u64)
        };
    }
    macro_rules! out_of_fuel {
        () => {{
            save!();
            return (Outcome::OutOfFuel, fuel);
        }};
    }

    // Jumps to `$target`.
    macro_rules! goto {
        ($target:expr) => {{
            pc = $target as usize;
            continue;
        }};
    }

    loop {
        // Safety: `pc < ops.len()`. Translation refuses code whose control
        // flow is not closed (`FuncCode::control_flow_is_closed`): its last
        // op never falls through, and every branch target, `BrTable` entry
        // and resume point is inside the code. `pc` starts at 0 (entry, code
        // never empty), at a resume point (thread creation, import,
        // `execute` returning), or at a call op + 1 (return to a caller,
        // `complete_host_call`; a call op is never last); every op below
        // either moves to its successor (it is not last, so the successor
        // exists), jumps to a checked target, or leaves the loop. Skipping
        // the bounds check here lets the compiler duplicate the dispatch
        // into the handlers (measured: sieve 0.25 -> 0.19 s user time).
        let op = unsafe { ops.get_unchecked(pc) };
        match *op {
            Op::Fuel(cost) => fuel -= cost as i64,
            Op::LoopHeader(cost) => {
                if fuel <= 0 {
                    out_of_fuel!();
                }
                fuel -= cost as i64;
            }
            Op::Refund { fuel: n, target } => {
                fuel += n as i64;
                goto!(target);
            }
            Op::Unreachable => trap!(TrapKind::Unreachable),
            Op::Jump(target) => {
                goto!(target);
            }
            Op::JumpIfZero(target) => {
                if pop!() as u32 == 0 {
                    goto!(target);
                }
            }
            Op::Br {
                target,
                height,
                keep,
            } => {
                let dst = fp + height as usize;
                let keep = keep as usize;
                if dst + keep != sp {
                    stack.copy_within(sp - keep..sp, dst);
                    sp = dst + keep;
                }
                goto!(target);
            }
            Op::BrIf {
                target,
                height,
                keep,
            } => {
                if pop!() as u32 != 0 {
                    let dst = fp + height as usize;
                    let keep = keep as usize;
                    if dst + keep != sp {
                        stack.copy_within(sp - keep..sp, dst);
                        sp = dst + keep;
                    }
                    goto!(target);
                }
            }
            Op::BrTable(len) => {
                let i = pop!() as u32;
                pc += 1 + i.min(len) as usize;
                continue;
            }
            Op::Return(keep) => {
                let keep = keep as usize;
                match keep {
                    0 => {}
                    1 => stack[fp] = stack[sp - 1],
                    _ => stack.copy_within(sp - keep..sp, fp),
                }
                sp = fp + keep;
                match frames.pop() {
                    Some(caller) => {
                        func = caller.func;
                        pc = caller.call_pc as usize + 1;
                        fp = caller.fp as usize;
                        code = match module.code_of(func) {
                            Some(c) => c,
                            None => trap!(TrapKind::Unreachable),
                        };
                        ops = &code.ops;
                        continue;
                    }
                    None => {
                        let results: Vec<Value> = th
                            .entry_results
                            .iter()
                            .zip(&stack[..keep])
                            .map(|(t, s)| value_of(*s, *t))
                            .collect();
                        save!();
                        th.sp = 0;
                        th.status = Status::Finished(results.clone());
                        return (Outcome::Finished(results), fuel);
                    }
                }
            }
            Op::Call(callee) => {
                if fuel <= 0 {
                    out_of_fuel!();
                }
                let Some(c) = module.code_of(callee) else {
                    trap!(TrapKind::Unreachable)
                };
                enter_frame!(callee, c, sp);
            }
            Op::CallHost(import) => {
                if fuel <= 0 {
                    out_of_fuel!();
                }
                return host_call(th, &module, import, func, pc, sp, fp, fuel);
            }
            Op::CallIndirect { type_index, table } => {
                if fuel <= 0 {
                    out_of_fuel!();
                }
                let i = stack[sp - 1] as u32 as usize;
                let entry = match inst.tables.get(table as usize) {
                    Some(TableCell::Own(t)) => match t.elems.get(i) {
                        Some(&e) => e,
                        None => trap!(TrapKind::UndefinedElement),
                    },
                    _ => match inst.indirect_entry(table, i) {
                        Ok(e) => e,
                        Err(k) => trap!(k),
                    },
                };
                if entry == 0 {
                    trap!(TrapKind::UninitializedElement);
                }
                let callee = (entry - 1) as u32;
                let (Some(want), Some(have)) = (
                    module.types.get(type_index as usize),
                    module.func_type(callee),
                ) else {
                    // Not a function of this module: another instance's.
                    match call_foreign(th, inst, type_index, callee, func, pc, sp - 1, fp, fuel) {
                        Ok(outcome) => return outcome,
                        Err(k) => trap!(k),
                    }
                };
                if want != have {
                    trap!(TrapKind::IndirectCallTypeMismatch);
                }
                if callee < module.num_imported_funcs {
                    sp -= 1;
                    return host_call(th, &module, callee, func, pc, sp, fp, fuel);
                }
                let Some(c) = module.code_of(callee) else {
                    trap!(TrapKind::Unreachable)
                };
                // The table index is consumed; a trap leaves it on the stack.
                enter_frame!(callee, c, sp - 1);
            }
            Op::Drop => sp -= 1,
            Op::Select => {
                let c = pop!() as u32;
                let b = pop!();
                if c == 0 {
                    stack[sp - 1] = b;
                }
            }
            Op::LocalGet(i) => push!(stack[fp + i as usize]),
            Op::LocalSet(i) => {
                let v = pop!();
                stack[fp + i as usize] = v;
            }
            Op::LocalTee(i) => stack[fp + i as usize] = stack[sp - 1],
            Op::GlobalGet(i) => push!(globals[i as usize]),
            Op::GlobalSet(i) => globals[i as usize] = pop!(),
            Op::GlobalGetShared(i) => push!(inst.global_get(i, globals)),
            Op::GlobalSetShared(i) => {
                let v = pop!();
                inst.global_set(i, globals, v);
            }
            Op::Const(v) => push!(v),
            Op::I32Load(o) => load!(o, 4, |b| u32::from_le_bytes(b) as u64),
            Op::I64Load(o) => load!(o, 8, |b| u64::from_le_bytes(b)),
            Op::F32Load(o) => load!(o, 4, |b| u32::from_le_bytes(b) as u64),
            Op::F64Load(o) => load!(o, 8, |b| u64::from_le_bytes(b)),
            Op::I32Load8S(o) => load!(o, 1, |b| b[0] as i8 as i32 as u32 as u64),
            Op::I32Load8U(o) => load!(o, 1, |b| b[0] as u64),
            Op::I32Load16S(o) => load!(o, 2, |b| i16::from_le_bytes(b) as i32 as u32 as u64),
            Op::I32Load16U(o) => load!(o, 2, |b| u16::from_le_bytes(b) as u64),
            Op::I64Load8S(o) => load!(o, 1, |b| b[0] as i8 as i64 as u64),
            Op::I64Load8U(o) => load!(o, 1, |b| b[0] as u64),
            Op::I64Load16S(o) => load!(o, 2, |b| i16::from_le_bytes(b) as i64 as u64),
            Op::I64Load16U(o) => load!(o, 2, |b| u16::from_le_bytes(b) as u64),
            Op::I64Load32S(o) => load!(o, 4, |b| i32::from_le_bytes(b) as i64 as u64),
            Op::I64Load32U(o) => load!(o, 4, |b| u32::from_le_bytes(b) as u64),
            Op::I32Store(o) | Op::F32Store(o) => store!(o, |v| (v as u32).to_le_bytes()),
            Op::I64Store(o) | Op::F64Store(o) => store!(o, |v| v.to_le_bytes()),
            Op::I32Store8(o) | Op::I64Store8(o) => store!(o, |v| [v as u8]),
            Op::I32Store16(o) | Op::I64Store16(o) => store!(o, |v| (v as u16).to_le_bytes()),
            Op::I64Store32(o) => store!(o, |v| (v as u32).to_le_bytes()),
            Op::MemorySize => push!(space.primary_wasm_pages() as u64),
            Op::MemoryGrow => {
                let delta = stack[sp - 1] as u32;
                stack[sp - 1] = match space.grow_primary(delta) {
                    Some(old) => old as u64,
                    None => u32::MAX as u64,
                };
            }
            Op::MemoryInit(seg) => {
                let n = stack[sp - 1] as u32;
                let s = stack[sp - 2] as u32;
                let d = stack[sp - 3] as u32;
                if let Err(k) = inst.memory_init(space, seg, d, s, n) {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::DataDrop(seg) => {
                if let Some(d) = inst.dropped_data.get_mut(seg as usize) {
                    *d = true;
                }
            }
            Op::MemoryCopy => {
                let n = stack[sp - 1] as u32 as u64;
                let s = stack[sp - 2] as u32 as u64;
                let d = stack[sp - 3] as u32 as u64;
                let r = if n == 0 {
                    check_memory_range(space, s, 0).and_then(|_| check_memory_range(space, d, 0))
                } else {
                    space
                        .check_range(s, n, false)
                        .and_then(|_| space.copy_within(d, s, n))
                        .map_err(TrapKind::MemoryOutOfBounds)
                };
                if let Err(k) = r {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::MemoryFill => {
                let n = stack[sp - 1] as u32 as u64;
                let v = stack[sp - 2] as u8;
                let d = stack[sp - 3] as u32 as u64;
                let r = if n == 0 {
                    check_memory_range(space, d, 0)
                } else {
                    space.fill(d, v, n).map_err(TrapKind::MemoryOutOfBounds)
                };
                if let Err(k) = r {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::TableInit { table, elem } => {
                let n = stack[sp - 1] as u32;
                let s = stack[sp - 2] as u32;
                let d = stack[sp - 3] as u32;
                if let Err(k) = inst.table_init(table, elem, d, s, n) {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::ElemDrop(seg) => inst.drop_elem(seg),
            Op::TableCopy { dst, src } => {
                let n = stack[sp - 1] as u32 as usize;
                let s = stack[sp - 2] as u32 as usize;
                let d = stack[sp - 3] as u32 as usize;
                if let Err(k) = inst.table_copy(dst, src, d, s, n) {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::TableGet(t) => {
                let i = stack[sp - 1] as u32 as usize;
                match inst.table_get(t, i) {
                    Ok(v) => stack[sp - 1] = v,
                    Err(k) => trap!(k),
                }
            }
            Op::TableSet(t) => {
                let v = stack[sp - 1];
                let i = stack[sp - 2] as u32 as usize;
                if let Err(k) = inst.table_set(t, i, v) {
                    trap!(k);
                }
                sp -= 2;
            }
            Op::TableSize(t) => push!(inst.table_size(t) as u64),
            Op::TableGrow(t) => {
                let n = stack[sp - 1] as u32;
                let init = stack[sp - 2];
                sp -= 1;
                stack[sp - 1] = inst.table_grow(t, n, init);
            }
            Op::TableFill(t) => {
                let n = stack[sp - 1] as u32 as usize;
                let v = stack[sp - 2];
                let i = stack[sp - 3] as u32 as usize;
                if let Err(k) = inst.table_fill(t, i, n, v) {
                    trap!(k);
                }
                sp -= 3;
            }
            Op::RefIsNull => un!(|a| (a == 0) as u64),

            Op::BinLL { k, a, b } => push!(k.eval(local!(a), local!(b))),
            Op::BinLC { k, a, c } => push!(k.eval(local!(a), c as i64 as u64)),
            Op::BinSC { k, c } => un!(|x| k.eval(x, c as i64 as u64)),
            Op::BinLLSet { k, a, b, d } => local!(d) = k.eval(local!(a), local!(b)),
            Op::BinLCSet { k, a, c, d } => local!(d) = k.eval(local!(a), c as i64 as u64),
            Op::BinSCSet { k, c, d } => {
                let x = pop!();
                local!(d) = k.eval(x, c as i64 as u64);
            }
            Op::BinSW { k, c } => un!(|x| k.eval(x, c)),
            Op::BinSWSet { k, c, d } => {
                let x = pop!();
                local!(d) = k.eval(x, c);
            }
            Op::BinSSSet { k, d } => {
                let y = pop!();
                let x = pop!();
                local!(d) = k.eval(x, y);
            }
            Op::JumpLL { k, a, b, target } => {
                if k.eval(local!(a), local!(b)) as u32 != 0 {
                    goto!(target);
                }
            }
            Op::JumpLC { k, a, c, target } => {
                if k.eval(local!(a), c as i64 as u64) as u32 != 0 {
                    goto!(target);
                }
            }
            Op::JumpSC { k, c, target } => {
                let x = pop!();
                if k.eval(x, c as i64 as u64) as u32 != 0 {
                    goto!(target);
                }
            }
            Op::JumpSS { k, target } => {
                let y = pop!();
                let x = pop!();
                if k.eval(x, y) as u32 != 0 {
                    goto!(target);
                }
            }
            Op::LoadL { k, a, off } => {
                let v = load_kind!(k, local!(a) as u32 as u64 + off as u64);
                push!(v);
            }
            Op::BinLLoad { k, a, l, b, off } => {
                let y = load_kind!(l, local!(b) as u32 as u64 + off as u64);
                push!(k.eval(local!(a), y));
            }
            Op::JumpLoadZ {
                k,
                l,
                a,
                off,
                target,
            } => {
                let v = load_kind!(l, local!(a) as u32 as u64 + off as u64);
                if k.eval(v, 0) as u32 != 0 {
                    goto!(target);
                }
            }
            Op::StoreLL { k, a, v, off } => {
                store_at!(k, local!(a) as u32 as u64 + off as u64, local!(v))
            }
            Op::StoreLC { k, a, c, off } => {
                store_at!(k, local!(a) as u32 as u64 + off as u64, c as i64 as u64)
            }

            Op::I32Eqz => un!(|a| (a as u32 == 0) as u64),
            Op::I32Eq => cmp!(|a, b| a as u32 == b as u32),
            Op::I32Ne => cmp!(|a, b| a as u32 != b as u32),
            Op::I32LtS => cmp!(|a, b| (a as i32) < b as i32),
            Op::I32LtU => cmp!(|a, b| (a as u32) < b as u32),
            Op::I32GtS => cmp!(|a, b| a as i32 > b as i32),
            Op::I32GtU => cmp!(|a, b| a as u32 > b as u32),
            Op::I32LeS => cmp!(|a, b| a as i32 <= b as i32),
            Op::I32LeU => cmp!(|a, b| a as u32 <= b as u32),
            Op::I32GeS => cmp!(|a, b| a as i32 >= b as i32),
            Op::I32GeU => cmp!(|a, b| a as u32 >= b as u32),
            Op::I64Eqz => un!(|a| (a == 0) as u64),
            Op::I64Eq => cmp!(|a, b| a == b),
            Op::I64Ne => cmp!(|a, b| a != b),
            Op::I64LtS => cmp!(|a, b| (a as i64) < b as i64),
            Op::I64LtU => cmp!(|a, b| a < b),
            Op::I64GtS => cmp!(|a, b| a as i64 > b as i64),
            Op::I64GtU => cmp!(|a, b| a > b),
            Op::I64LeS => cmp!(|a, b| a as i64 <= b as i64),
            Op::I64LeU => cmp!(|a, b| a <= b),
            Op::I64GeS => cmp!(|a, b| a as i64 >= b as i64),
            Op::I64GeU => cmp!(|a, b| a >= b),
            Op::F32Eq => cmp!(|a, b| f32_of(a) == f32_of(b)),
            Op::F32Ne => cmp!(|a, b| f32_of(a) != f32_of(b)),
            Op::F32Lt => cmp!(|a, b| f32_of(a) < f32_of(b)),
            Op::F32Gt => cmp!(|a, b| f32_of(a) > f32_of(b)),
            Op::F32Le => cmp!(|a, b| f32_of(a) <= f32_of(b)),
            Op::F32Ge => cmp!(|a, b| f32_of(a) >= f32_of(b)),
            Op::F64Eq => cmp!(|a, b| f64_of(a) == f64_of(b)),
            Op::F64Ne => cmp!(|a, b| f64_of(a) != f64_of(b)),
            Op::F64Lt => cmp!(|a, b| f64_of(a) < f64_of(b)),
            Op::F64Gt => cmp!(|a, b| f64_of(a) > f64_of(b)),
            Op::F64Le => cmp!(|a, b| f64_of(a) <= f64_of(b)),
            Op::F64Ge => cmp!(|a, b| f64_of(a) >= f64_of(b)),

            Op::I32Clz => un!(|a| (a as u32).leading_zeros() as u64),
            Op::I32Ctz => un!(|a| (a as u32).trailing_zeros() as u64),
            Op::I32Popcnt => un!(|a| (a as u32).count_ones() as u64),
            Op::I32Add => bin!(|a, b| (a as u32).wrapping_add(b as u32) as u64),
            Op::I32Sub => bin!(|a, b| (a as u32).wrapping_sub(b as u32) as u64),
            Op::I32Mul => bin!(|a, b| (a as u32).wrapping_mul(b as u32) as u64),
            Op::I32DivS => try_bin!(|a, b| {
                let (a, b) = (a as i32, b as i32);
                if b == 0 {
                    Err(TrapKind::DivideByZero)
                } else if a == i32::MIN && b == -1 {
                    Err(TrapKind::IntegerOverflow)
                } else {
                    Ok((a / b) as u32 as u64)
                }
            }),
            Op::I32DivU => try_bin!(|a, b| match b as u32 {
                0 => Err(TrapKind::DivideByZero),
                b => Ok(((a as u32) / b) as u64),
            }),
            Op::I32RemS => try_bin!(|a, b| match b as i32 {
                0 => Err(TrapKind::DivideByZero),
                b => Ok((a as i32).wrapping_rem(b) as u32 as u64),
            }),
            Op::I32RemU => try_bin!(|a, b| match b as u32 {
                0 => Err(TrapKind::DivideByZero),
                b => Ok(((a as u32) % b) as u64),
            }),
            Op::I32And => bin!(|a, b| a & b),
            Op::I32Or => bin!(|a, b| a | b),
            Op::I32Xor => bin!(|a, b| a ^ b),
            Op::I32Shl => bin!(|a, b| (a as u32).wrapping_shl(b as u32) as u64),
            Op::I32ShrS => bin!(|a, b| (a as i32).wrapping_shr(b as u32) as u32 as u64),
            Op::I32ShrU => bin!(|a, b| (a as u32).wrapping_shr(b as u32) as u64),
            Op::I32Rotl => bin!(|a, b| (a as u32).rotate_left(b as u32 % 32) as u64),
            Op::I32Rotr => bin!(|a, b| (a as u32).rotate_right(b as u32 % 32) as u64),
            Op::I64Clz => un!(|a| a.leading_zeros() as u64),
            Op::I64Ctz => un!(|a| a.trailing_zeros() as u64),
            Op::I64Popcnt => un!(|a| a.count_ones() as u64),
            Op::I64Add => bin!(|a, b| a.wrapping_add(b)),
            Op::I64Sub => bin!(|a, b| a.wrapping_sub(b)),
            Op::I64Mul => bin!(|a, b| a.wrapping_mul(b)),
            Op::I64DivS => try_bin!(|a, b| {
                let (a, b) = (a as i64, b as i64);
                if b == 0 {
                    Err(TrapKind::DivideByZero)
                } else if a == i64::MIN && b == -1 {
                    Err(TrapKind::IntegerOverflow)
                } else {
                    Ok((a / b) as u64)
                }
            }),
            Op::I64DivU => try_bin!(|a, b| match b {
                0 => Err(TrapKind::DivideByZero),
                b => Ok(a / b),
            }),
            Op::I64RemS => try_bin!(|a, b| match b as i64 {
                0 => Err(TrapKind::DivideByZero),
                b => Ok((a as i64).wrapping_rem(b) as u64),
            }),
            Op::I64RemU => try_bin!(|a, b| match b {
                0 => Err(TrapKind::DivideByZero),
                b => Ok(a % b),
            }),
            Op::I64And => bin!(|a, b| a & b),
            Op::I64Or => bin!(|a, b| a | b),
            Op::I64Xor => bin!(|a, b| a ^ b),
            Op::I64Shl => bin!(|a, b| a.wrapping_shl(b as u32)),
            Op::I64ShrS => bin!(|a, b| (a as i64).wrapping_shr(b as u32) as u64),
            Op::I64ShrU => bin!(|a, b| a.wrapping_shr(b as u32)),
            Op::I64Rotl => bin!(|a, b| a.rotate_left((b % 64) as u32)),
            Op::I64Rotr => bin!(|a, b| a.rotate_right((b % 64) as u32)),

            Op::F32Abs => un!(|a| a & 0x7fff_ffff),
            Op::F32Neg => un!(|a| (a ^ 0x8000_0000) & 0xffff_ffff),
            Op::F32Ceil => un!(|a| c32(f32_of(a).ceil())),
            Op::F32Floor => un!(|a| c32(f32_of(a).floor())),
            Op::F32Trunc => un!(|a| c32(f32_of(a).trunc())),
            Op::F32Nearest => un!(|a| c32(f32_of(a).round_ties_even())),
            Op::F32Sqrt => un!(|a| c32(f32_of(a).sqrt())),
            Op::F32Add => bin!(|a, b| c32(f32_of(a) + f32_of(b))),
            Op::F32Sub => bin!(|a, b| c32(f32_of(a) - f32_of(b))),
            Op::F32Mul => bin!(|a, b| c32(f32_of(a) * f32_of(b))),
            Op::F32Div => bin!(|a, b| c32(f32_of(a) / f32_of(b))),
            Op::F32Min => bin!(|a, b| c32(f32_min(f32_of(a), f32_of(b)))),
            Op::F32Max => bin!(|a, b| c32(f32_max(f32_of(a), f32_of(b)))),
            Op::F32Copysign => bin!(|a, b| (a & 0x7fff_ffff) | (b & 0x8000_0000)),
            Op::F64Abs => un!(|a| a & 0x7fff_ffff_ffff_ffff),
            Op::F64Neg => un!(|a| a ^ 0x8000_0000_0000_0000),
            Op::F64Ceil => un!(|a| c64(f64_of(a).ceil())),
            Op::F64Floor => un!(|a| c64(f64_of(a).floor())),
            Op::F64Trunc => un!(|a| c64(f64_of(a).trunc())),
            Op::F64Nearest => un!(|a| c64(f64_of(a).round_ties_even())),
            Op::F64Sqrt => un!(|a| c64(f64_of(a).sqrt())),
            Op::F64Add => bin!(|a, b| c64(f64_of(a) + f64_of(b))),
            Op::F64Sub => bin!(|a, b| c64(f64_of(a) - f64_of(b))),
            Op::F64Mul => bin!(|a, b| c64(f64_of(a) * f64_of(b))),
            Op::F64Div => bin!(|a, b| c64(f64_of(a) / f64_of(b))),
            Op::F64Min => bin!(|a, b| c64(f64_min(f64_of(a), f64_of(b)))),
            Op::F64Max => bin!(|a, b| c64(f64_max(f64_of(a), f64_of(b)))),
            Op::F64Copysign => {
                bin!(|a, b| (a & 0x7fff_ffff_ffff_ffff) | (b & 0x8000_0000_0000_0000))
            }

            Op::I32WrapI64 => un!(|a| a as u32 as u64),
            Op::I32TruncF32S => try_un!(|a| i32_trunc_f32(f32_of(a)).map(|v| v as u32 as u64)),
            Op::I32TruncF32U => try_un!(|a| u32_trunc_f32(f32_of(a)).map(|v| v as u64)),
            Op::I32TruncF64S => try_un!(|a| i32_trunc_f64(f64_of(a)).map(|v| v as u32 as u64)),
            Op::I32TruncF64U => try_un!(|a| u32_trunc_f64(f64_of(a)).map(|v| v as u64)),
            Op::I64ExtendI32S => un!(|a| a as i32 as i64 as u64),
            Op::I64ExtendI32U => un!(|a| a as u32 as u64),
            Op::I64TruncF32S => try_un!(|a| i64_trunc_f32(f32_of(a)).map(|v| v as u64)),
            Op::I64TruncF32U => try_un!(|a| u64_trunc_f32(f32_of(a))),
            Op::I64TruncF64S => try_un!(|a| i64_trunc_f64(f64_of(a)).map(|v| v as u64)),
            Op::I64TruncF64U => try_un!(|a| u64_trunc_f64(f64_of(a))),
            Op::F32ConvertI32S => un!(|a| (a as i32 as f32).to_bits() as u64),
            Op::F32ConvertI32U => un!(|a| (a as u32 as f32).to_bits() as u64),
            Op::F32ConvertI64S => un!(|a| (a as i64 as f32).to_bits() as u64),
            Op::F32ConvertI64U => un!(|a| (a as f32).to_bits() as u64),
            Op::F32DemoteF64 => un!(|a| c32(f64_of(a) as f32)),
            Op::F64ConvertI32S => un!(|a| (a as i32 as f64).to_bits()),
            Op::F64ConvertI32U => un!(|a| (a as u32 as f64).to_bits()),
            Op::F64ConvertI64S => un!(|a| (a as i64 as f64).to_bits()),
            Op::F64ConvertI64U => un!(|a| (a as f64).to_bits()),
            Op::F64PromoteF32 => un!(|a| c64(f32_of(a) as f64)),
            Op::I32ReinterpretF32 | Op::F32ReinterpretI32 => {}
            Op::I64ReinterpretF64 | Op::F64ReinterpretI64 => {}
            Op::I32Extend8S => un!(|a| a as i8 as i32 as u32 as u64),
            Op::I32Extend16S => un!(|a| a as i16 as i32 as u32 as u64),
            Op::I64Extend8S => un!(|a| a as i8 as i64 as u64),
            Op::I64Extend16S => un!(|a| a as i16 as i64 as u64),
            Op::I64Extend32S => un!(|a| a as i32 as i64 as u64),
            Op::I32TruncSatF32S => un!(|a| f32_of(a) as i32 as u32 as u64),
            Op::I32TruncSatF32U => un!(|a| f32_of(a) as u32 as u64),
            Op::I32TruncSatF64S => un!(|a| f64_of(a) as i32 as u32 as u64),
            Op::I32TruncSatF64U => un!(|a| f64_of(a) as u32 as u64),
            Op::I64TruncSatF32S => un!(|a| f32_of(a) as i64 as u64),
            Op::I64TruncSatF32U => un!(|a| f32_of(a) as u64),
            Op::I64TruncSatF64S => un!(|a| f64_of(a) as i64 as u64),
            Op::I64TruncSatF64U => un!(|a| f64_of(a) as u64),
        }
        pc += 1;
    }
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
