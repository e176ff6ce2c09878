//! The machine's internal code: what one function body is translated into.
//!
//! A compact stack code over untyped 64-bit slots, with fused ops for the
//! commonest short instruction sequences (`fuse.rs`). Branches carry their
//! target position and the operand-stack height (counted from the frame
//! base, locals included) and number of values kept, all precomputed by the
//! translator. Nothing in here is ever exported: the resume table maps the
//! positions where `run` can stop back to offsets in the function's wasm
//! code, with the operand types there, so thread state is saved in module
//! terms.

use super::fuse::{Bin, Load, Store};
use super::handlers::Instr;
use super::module::ValType;

macro_rules! define_ops {
    ($($name:ident)*) => {
        /// One internal instruction.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub(crate) enum Op {
            /// Charge fuel for the straight-line code that follows.
            Fuel(u32),
            /// Loop header: stop here if fuel is used up, else charge.
            LoopHeader(u32),
            /// Give back `fuel` charged for the rest of a block that a taken
            /// branch left early, then jump to `target` (a stub the branch
            /// jumps to).
            Refund { fuel: u32, target: u32 },
            Unreachable,
            Jump(u32),
            /// Pop a condition; jump if it is zero (an `if` without taking it).
            JumpIfZero(u32),
            /// Branch: keep the top `keep` values at `height`, then jump.
            Br { target: u32, height: u32, keep: u32 },
            /// Pop a condition; branch like `Br` if it is not zero.
            BrIf { target: u32, height: u32, keep: u32 },
            /// Pop an index; execute the entry `min(index, len)` of the `len + 1`
            /// `Br`/`Return` ops that follow.
            BrTable(u32),
            /// Return the top `keep` values to the caller.
            Return(u32),
            Call(u32),
            /// Call of an imported function: a system call.
            CallHost(u32),
            CallIndirect { type_index: u32, table: u32 },
            Drop,
            Select,
            LocalGet(u32),
            LocalSet(u32),
            LocalTee(u32),
            GlobalGet(u32),
            GlobalSet(u32),
            /// `global.get` of a global that may live in an object shared
            /// with other instances (imported, or exported, and mutable).
            GlobalGetShared(u32),
            GlobalSetShared(u32),
            Const(u64),
            I32Load(u32), I64Load(u32), F32Load(u32), F64Load(u32),
            I32Load8S(u32), I32Load8U(u32), I32Load16S(u32), I32Load16U(u32),
            I64Load8S(u32), I64Load8U(u32), I64Load16S(u32), I64Load16U(u32),
            I64Load32S(u32), I64Load32U(u32),
            I32Store(u32), I64Store(u32), F32Store(u32), F64Store(u32),
            I32Store8(u32), I32Store16(u32), I64Store8(u32), I64Store16(u32), I64Store32(u32),
            MemorySize,
            MemoryGrow,
            MemoryInit(u32),
            DataDrop(u32),
            MemoryCopy,
            MemoryFill,
            TableInit { table: u32, elem: u32 },
            ElemDrop(u32),
            TableCopy { dst: u32, src: u32 },
            TableGet(u32),
            TableSet(u32),
            TableGrow(u32),
            TableSize(u32),
            TableFill(u32),
            RefIsNull,
            // Fused ops: one op for a sequence of wasm instructions that
            // leaves the stack as the sequence would (see `fuse.rs`). `a`,
            // `b` and `d` are locals, `c` a constant operand (sign-extended
            // to 64 bits), `S` the top of the stack.
            /// `local.get a; local.get b; k`.
            BinLL { k: Bin, a: u32, b: u32 },
            /// `local.get a; const c; k`.
            BinLC { k: Bin, a: u32, c: i32 },
            /// `const c; k`.
            BinSC { k: Bin, c: i32 },
            /// `local.get a; local.get b; k; local.set d`.
            BinLLSet { k: Bin, a: u32, b: u32, d: u32 },
            /// `local.get a; const c; k; local.set d`.
            BinLCSet { k: Bin, a: u32, c: i32, d: u32 },
            /// `const c; k; local.set d`.
            BinSCSet { k: Bin, c: i32, d: u32 },
            /// `const c; k` with a constant too wide for `BinSC`.
            BinSW { k: Bin, c: u64 },
            /// `const c; k; local.set d` with a constant too wide for `BinSCSet`.
            BinSWSet { k: Bin, c: u64, d: u32 },
            /// `k; local.set d`.
            BinSSSet { k: Bin, d: u32 },
            /// `local.get a; local.get b; k` then jump if the result is not zero.
            JumpLL { k: Bin, a: u32, b: u32, target: u32 },
            /// `local.get a; const c; k` then jump if the result is not zero.
            JumpLC { k: Bin, a: u32, c: i32, target: u32 },
            /// `const c; k` then jump if the result is not zero.
            JumpSC { k: Bin, c: i32, target: u32 },
            /// `k` then jump if the result is not zero.
            JumpSS { k: Bin, target: u32 },
            /// `local.get a; load k offset off`.
            LoadL { k: Load, a: u32, off: u32 },
            /// `local.get a; local.get b; load l offset off; k`: the local
            /// `a` and the value loaded at local `b` + `off`. Its offset is
            /// the load's, the instruction that can trap.
            BinLLoad { k: Bin, a: u32, l: Load, b: u32, off: u32 },
            /// `local.get a; load l offset off; const c; k`: the value
            /// loaded at local `a` + `off` and `c`, for the operators
            /// [`Bin::with_loaded`] names. Its offset is the load's.
            BinLoadC { k: Bin, l: Load, a: u32, off: u32, c: i32 },
            /// `local.get a; load l offset off; k` with the constant 0 (or
            /// nothing, `k` comparing with 0) then jump if the result is not
            /// zero. Its offset is the load's, the instruction that can trap.
            JumpLoadZ { k: Bin, l: Load, a: u32, off: u32, target: u32 },
            /// `local.get a; local.get v; store k offset off`.
            StoreLL { k: Store, a: u32, v: u32, off: u32 },
            /// `local.get a; const c; store k offset off`.
            StoreLC { k: Store, a: u32, c: i32, off: u32 },
            /// `local.get a; <value>; store k offset off` where one op
            /// before computes the value from locals alone: the value on
            /// the stack stored at local `a` + `off` (`fuse_store_past`).
            StoreLS { k: Store, a: u32, off: u32 },
            /// `local.get v; store k offset off`, the address on the stack.
            StoreSL { k: Store, v: u32, off: u32 },
            /// `const c; store k offset off`, the address on the stack.
            StoreSC { k: Store, c: i32, off: u32 },
            $($name,)*
        }

        /// The internal op of a numeric instruction without immediates.
        pub(crate) fn numeric_op(op: &wasmparser::Operator<'_>) -> Option<Op> {
            match op {
                $(wasmparser::Operator::$name => Some(Op::$name),)*
                _ => None,
            }
        }
    };
}

define_ops! {
    I32Eqz I32Eq I32Ne I32LtS I32LtU I32GtS I32GtU I32LeS I32LeU I32GeS I32GeU
    I64Eqz I64Eq I64Ne I64LtS I64LtU I64GtS I64GtU I64LeS I64LeU I64GeS I64GeU
    F32Eq F32Ne F32Lt F32Gt F32Le F32Ge
    F64Eq F64Ne F64Lt F64Gt F64Le F64Ge
    I32Clz I32Ctz I32Popcnt I32Add I32Sub I32Mul I32DivS I32DivU I32RemS I32RemU
    I32And I32Or I32Xor I32Shl I32ShrS I32ShrU I32Rotl I32Rotr
    I64Clz I64Ctz I64Popcnt I64Add I64Sub I64Mul I64DivS I64DivU I64RemS I64RemU
    I64And I64Or I64Xor I64Shl I64ShrS I64ShrU I64Rotl I64Rotr
    F32Abs F32Neg F32Ceil F32Floor F32Trunc F32Nearest F32Sqrt
    F32Add F32Sub F32Mul F32Div F32Min F32Max F32Copysign
    F64Abs F64Neg F64Ceil F64Floor F64Trunc F64Nearest F64Sqrt
    F64Add F64Sub F64Mul F64Div F64Min F64Max F64Copysign
    I32WrapI64 I32TruncF32S I32TruncF32U I32TruncF64S I32TruncF64U
    I64ExtendI32S I64ExtendI32U I64TruncF32S I64TruncF32U I64TruncF64S I64TruncF64U
    F32ConvertI32S F32ConvertI32U F32ConvertI64S F32ConvertI64U F32DemoteF64
    F64ConvertI32S F64ConvertI32U F64ConvertI64S F64ConvertI64U F64PromoteF32
    I32ReinterpretF32 I64ReinterpretF64 F32ReinterpretI32 F64ReinterpretI64
    I32Extend8S I32Extend16S I64Extend8S I64Extend16S I64Extend32S
    I32TruncSatF32S I32TruncSatF32U I32TruncSatF64S I32TruncSatF64U
    I64TruncSatF32S I64TruncSatF32U I64TruncSatF64S I64TruncSatF64U
}

/// What kind of place a resume point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResumeKind {
    /// Before the first instruction of the function.
    Entry,
    /// A loop header, where fuel is checked.
    Loop,
    /// A call instruction (direct, indirect or to an import). As the
    /// innermost frame of a ready thread: about to call (arguments on the
    /// stack). As an outer frame: waiting for the callee's results.
    /// `params` counts the operands the call consumes (arguments, and the
    /// table index of `call_indirect`).
    Call { params: u32 },
    /// Just after a call returned (the callee's results on the stack): where
    /// a thread stands after [`super::Thread::complete_host_call`]. Its
    /// offset is that of the instruction following the call.
    AfterCall,
}

/// A position where `run` can stop, in both internal and module terms.
#[derive(Clone, Debug)]
pub(crate) struct ResumePoint {
    pub kind: ResumeKind,
    /// Position of the op in the internal code.
    pub pc: u32,
    /// Offset of the wasm instruction, from the start of the function body.
    pub offset: u32,
    /// Types of the whole operand stack of the frame before the instruction.
    pub operands: Box<[ValType]>,
}

/// A translated function.
#[derive(Clone, Debug)]
pub(crate) struct FuncCode {
    /// Number of parameters (the first locals).
    pub num_params: u32,
    /// Types of all locals, parameters first.
    pub locals: Box<[ValType]>,
    /// Result types.
    pub results: Box<[ValType]>,
    pub ops: Vec<Op>,
    /// Wasm code offset of the instruction each op came from.
    pub offsets: Vec<u32>,
    /// Resume points in increasing `pc` (and offset) order.
    pub resume: Vec<ResumePoint>,
    /// Largest stack use of one activation, locals included, in slots.
    pub max_height: u32,
    /// The threaded code the interpreter runs: `ops` lowered (`lower.rs`),
    /// one instruction per op at the same position.
    pub instrs: Box<[Instr]>,
}

impl Op {
    /// The position a branching op jumps to (in the same function's code).
    pub(crate) fn target(&self) -> Option<u32> {
        let mut op = *self;
        op.target_mut().copied()
    }

    /// [`target`](Self::target), to rewrite it.
    pub(crate) fn target_mut(&mut self) -> Option<&mut u32> {
        match self {
            Op::Jump(t) | Op::JumpIfZero(t) => Some(t),
            Op::Br { target, .. }
            | Op::BrIf { target, .. }
            | Op::Refund { target, .. }
            | Op::JumpLL { target, .. }
            | Op::JumpLC { target, .. }
            | Op::JumpSC { target, .. }
            | Op::JumpSS { target, .. }
            | Op::JumpLoadZ { target, .. } => Some(target),
            _ => None,
        }
    }
}

impl FuncCode {
    /// The resume point at internal position `pc`, if there is one: a call
    /// if `in_call` (a frame waiting in or for a call), else any (several
    /// can share a position, all meaning "before the instruction there").
    pub fn resume_at_pc(&self, pc: u32, in_call: bool) -> Option<&ResumePoint> {
        let start = self.resume.partition_point(|r| r.pc < pc);
        self.resume[start..]
            .iter()
            .take_while(|r| r.pc == pc)
            .find(|r| !in_call || matches!(r.kind, ResumeKind::Call { .. }))
    }

    /// The resume points at wasm offset `offset` (at most two: an entry or
    /// loop header sharing its offset with a call or loop).
    pub fn resume_at_offset(&self, offset: u32) -> impl Iterator<Item = &ResumePoint> {
        let start = self.resume.partition_point(|r| r.offset < offset);
        self.resume[start..]
            .iter()
            .take_while(move |r| r.offset == offset)
    }

    /// Checks the control-flow invariant the interpreter loop relies on to
    /// read ops without a bounds check: the code is not empty, its last op
    /// never falls through (so every op that does has a successor), every
    /// branch target is a position in the code, every `BrTable` has all its
    /// entries, and every resume point is a position in the code.
    pub fn control_flow_is_closed(&self) -> bool {
        let len = self.ops.len();
        let in_code = |t: u32| (t as usize) < len;
        let last_closes = matches!(
            self.ops.last(),
            Some(Op::Return(_) | Op::Unreachable | Op::Jump(_) | Op::Br { .. } | Op::Refund { .. })
        );
        last_closes
            && self.resume.iter().all(|r| in_code(r.pc))
            && self.ops.iter().enumerate().all(|(pc, op)| match *op {
                Op::BrTable(n) => pc + 1 + (n as usize) < len,
                op => op.target().is_none_or(in_code),
            })
    }

    /// Wasm code offset of the op at `pc`.
    pub fn offset_of(&self, pc: u32) -> u32 {
        self.offsets.get(pc as usize).copied().unwrap_or(0)
    }
}
