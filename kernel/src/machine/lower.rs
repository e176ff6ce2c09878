//! Lowering: a function's internal code (`Vec<Op>`, the translator's
//! output, which the resume table and state export keep using) into the
//! threaded code the interpreter runs (`handlers`): one [`Instr`] per op,
//! at the same position, so a `pc` means the same op in both.
//!
//! Lowering picks each op's handler once, specialised for its operator and
//! access kind, so that nothing dispatches on them again at run time. The
//! instruction keeps the op as its operands, with two rewrites: branch
//! targets become relative to the instruction (a handler needs no base
//! pointer to jump), and plain loads and stores, whose handler knows the
//! access kind, all carry their offset as `I32Load(offset)` /
//! `I32Store(offset)`.

use super::code::Op;
use super::fuse::{Bin, Load, Store};
use super::handlers::kinds::{with_bin, with_load, with_store};
use super::handlers::{self as h, Handler, Instr};

/// The threaded code of `ops` (whose control flow is closed).
pub(crate) fn lower(ops: &[Op]) -> Box<[Instr]> {
    ops.iter()
        .enumerate()
        .map(|(pc, op)| Instr {
            handler: handler_of(op, target_kind(ops, op)),
            op: operands_of(op, pc as u32),
        })
        .collect()
}

/// The operands an op's handler reads (module docs).
fn operands_of(op: &Op, pc: u32) -> Op {
    let mut op = *op;
    if let Some(target) = op.target_mut() {
        *target = target.wrapping_sub(pc);
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
/// [`h::REFUND`]), for the handlers that branch.
fn target_kind(ops: &[Op], op: &Op) -> u8 {
    // (`JumpLoadZ` has one handler for every kind of target.)
    let Some(target) = op.target() else {
        return h::PLAIN;
    };
    match ops.get(target as usize) {
        Some(Op::LoopHeader(_)) => h::LOOP,
        Some(Op::Refund { .. }) => h::REFUND,
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
            _ => {
                const $T: u8 = h::PLAIN;
                $e
            }
        }
    };
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
        Op::BinLLoad { k, l, .. } => {
            with_bin!(k, K => with_load!(l, L => h::bin_l_load::<K, L, false>))
        }
        Op::JumpLoadZ { k, l, .. } => {
            with_bin!(k, K => with_load!(l, L => h::jump_load_z::<K, L, false>))
        }
        Op::StoreLL { k, .. } => with_store!(k, S => h::store_ll::<S, false>),
        Op::StoreLC { k, .. } => with_store!(k, S => h::store_lc::<S, false>),
        // Every other op is a plain numeric, load, store or `Bin` op,
        // handled above; an op missing from both is a lowering bug.
        _ => h::unreachable,
    }
}
