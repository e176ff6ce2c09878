//! Translation of one function body from wasm into the internal code.
//!
//! Validation and translation go hand in hand: every operator is given to
//! wasmparser's `FuncValidator` first, and the translator reads operand
//! stack heights and types from it. Unreachable code is validated but not
//! translated. Fuel is charged in advance per block of code between branch
//! targets (a `Fuel` op, or the `LoopHeader` op of a loop, counts the wasm
//! instructions that follow it up to the next branch target); a conditional
//! branch taken out of the middle of such a block jumps through a stub that
//! refunds the rest. Fuel is checked at loop headers and calls; those
//! places, plus function entry, are the resume points recorded with their
//! wasm offset and operand types.

use wasmparser::{
    BlockType, FuncValidator, FuncValidatorAllocations, FunctionBody, Operator, OperatorsReader,
    ValidatorResources,
};

use super::code::{FuncCode, Op, ResumeKind, ResumePoint, numeric_op};
use super::fuse::{fuse, fuse_jump, fuse_store_past, trapping_replaced};
use super::module::{Module, ModuleError, ValType, val_type};

#[derive(Clone, Copy, PartialEq, Eq)]
enum CtrlKind {
    Func,
    Block,
    Loop,
    If,
    Else,
}

/// One entry of the translator's control stack.
struct Ctrl {
    kind: CtrlKind,
    /// The construct began in unreachable code: nothing of it is emitted.
    dead: bool,
    /// Operand-stack height below the block's parameters (locals included).
    height: u32,
    params: u32,
    results: u32,
    /// Branch target of a loop.
    loop_pc: u32,
    /// Ops whose target is the end of the block, patched at `end`.
    fixups: Vec<usize>,
    /// The `JumpIfZero` of an `if`, patched at `else` or `end`.
    else_fixup: Option<usize>,
}

struct Translator<'m> {
    module: &'m Module,
    ops: Vec<Op>,
    offsets: Vec<u32>,
    resume: Vec<ResumePoint>,
    ctrl: Vec<Ctrl>,
    /// The op charging fuel for the current straight-line block.
    fuel_at: Option<usize>,
    /// Conditional branches inside the current block, with the block's
    /// count just after each: taken, they skip the rest of the block,
    /// which was charged in advance and must be refunded.
    early_exits: Vec<(usize, u32)>,
    /// Branches whose target becomes a refund stub at the end of the code:
    /// (branch position, fuel to refund).
    refunds: Vec<(usize, u32)>,
    max_height: u32,
    offset: u32,
    func_results: u32,
    /// Position and operand types just after the last translated call,
    /// recorded as a resume point once the next instruction's offset is known.
    after_call: Option<(u32, Box<[ValType]>)>,
}

fn internal(what: &str) -> ModuleError {
    ModuleError::Unsupported(format!("translator: {what}"))
}

/// Validates and translates the body of function `func_index`.
pub(crate) fn translate_function(
    module: &Module,
    func_index: u32,
    body: &FunctionBody<'_>,
    mut v: FuncValidator<ValidatorResources>,
) -> Result<(FuncCode, FuncValidatorAllocations), ModuleError> {
    let ty = module
        .func_type(func_index)
        .ok_or_else(|| internal("function type"))?
        .clone();
    let body_start = body.range().start;
    let mut reader = body.get_binary_reader();
    v.read_locals(&mut reader)?;
    let nlocals = v.len_locals();
    let mut locals = Vec::with_capacity(nlocals as usize);
    for i in 0..nlocals {
        locals.push(val_type(
            v.get_local_type(i).ok_or_else(|| internal("local type"))?,
        )?);
    }
    let mut t = Translator {
        module,
        ops: Vec::new(),
        offsets: Vec::new(),
        resume: Vec::new(),
        ctrl: vec![Ctrl {
            kind: CtrlKind::Func,
            dead: false,
            height: nlocals,
            params: 0,
            results: ty.results.len() as u32,
            loop_pc: 0,
            fixups: Vec::new(),
            else_fixup: None,
        }],
        fuel_at: None,
        early_exits: Vec::new(),
        refunds: Vec::new(),
        max_height: nlocals,
        offset: 0,
        func_results: ty.results.len() as u32,
        after_call: None,
    };
    reader.set_features(super::module::features());
    let mut ops = OperatorsReader::new(reader);
    let mut first = true;
    while !ops.eof() {
        let (op, abs) = ops.read_with_offset()?;
        t.offset = u32::try_from(abs - body_start).map_err(|_| internal("offset"))?;
        if first {
            first = false;
            t.resume.push(ResumePoint {
                kind: ResumeKind::Entry,
                pc: 0,
                offset: t.offset,
                operands: Box::new([]),
            });
            t.fuel_at = Some(0);
            t.ops.push(Op::Fuel(0));
            t.offsets.push(t.offset);
        }
        if let Some((pc, operands)) = t.after_call.take() {
            t.resume.push(ResumePoint {
                kind: ResumeKind::AfterCall,
                pc,
                offset: t.offset,
                operands,
            });
        }
        let dead = t.ctrl.last().is_none_or(|c| c.dead)
            || v.get_control_frame(0).is_none_or(|f| f.unreachable);
        let height = nlocals + v.operand_stack_height();
        // Operand types are needed before resume points (reachable only).
        let types = if !dead
            && matches!(
                op,
                Operator::Loop { .. } | Operator::Call { .. } | Operator::CallIndirect { .. }
            ) {
            Some(operand_types(&v)?)
        } else {
            None
        };
        v.op(abs, &op)?;
        t.translate(op, dead, height, types)?;
        t.max_height = t.max_height.max(nlocals + v.operand_stack_height());
    }
    ops.finish()?;
    t.close_fuel_block();
    // Code that ends in unreachable code (after a loop that never exits,
    // say) gets an op that cannot be reached, so that no op falls off the end.
    if !matches!(
        t.ops.last(),
        Some(Op::Return(_) | Op::Unreachable | Op::Jump(_) | Op::Br { .. })
    ) {
        t.ops.push(Op::Unreachable);
        t.offsets.push(t.offset);
    }
    t.emit_refund_stubs();
    if t.ops.len() > super::lower::MAX_OPS {
        return Err(ModuleError::Unsupported(format!(
            "function {func_index} translates to {} internal ops, more than the {} a function may have",
            t.ops.len(),
            super::lower::MAX_OPS
        )));
    }
    let instrs = super::lower::lower(&t.ops);
    let code = FuncCode {
        num_params: ty.params.len() as u32,
        locals: locals.into_boxed_slice(),
        results: ty.results.clone(),
        ops: t.ops,
        offsets: t.offsets,
        resume: t.resume,
        max_height: t.max_height.saturating_add(1),
        instrs,
    };
    if !code.control_flow_is_closed() {
        return Err(internal("control flow leaves the code"));
    }
    Ok((code, v.into_allocations()))
}

/// The machine type of an operand type the validator inferred. The
/// validator types `ref.func $f` as a typed reference `(ref $t)` to the
/// function's type, a subtype of `funcref` that 2.0 code cannot declare
/// but can carry on the stack: the machine holds it as a `funcref`.
fn operand_type(t: wasmparser::ValType) -> Result<ValType, ModuleError> {
    match t {
        wasmparser::ValType::Ref(r) if r.is_concrete_type_ref() => Ok(ValType::FuncRef),
        other => val_type(other),
    }
}

fn operand_types(v: &FuncValidator<ValidatorResources>) -> Result<Box<[ValType]>, ModuleError> {
    let n = v.operand_stack_height() as usize;
    let mut types = Vec::with_capacity(n);
    for depth in (0..n).rev() {
        match v.get_operand_type(depth) {
            Some(Some(t)) => types.push(operand_type(t)?),
            _ => return Err(internal("operand of unknown type in reachable code")),
        }
    }
    Ok(types.into_boxed_slice())
}

impl Translator<'_> {
    /// Emits the op of one wasm instruction, fused with the ops before it
    /// when a fused op covers the sequence; returns its position.
    fn emit(&mut self, op: Op) -> usize {
        if let Some(store) = fuse_store_past(&self.ops, &op) {
            // Drop the `local.get` of the address, keep the op computing
            // the value (and its offset) after it.
            let at = self.ops.len() - 2;
            self.ops.remove(at);
            self.offsets.remove(at);
            return self.push_fused(store, 0);
        }
        match fuse(&self.ops, &op) {
            Some((fused, replaced)) => self.push_fused(fused, replaced),
            None => self.push_fused(op, 0),
        }
    }

    /// Replaces the last `replaced` ops by `op`, the op of the current wasm
    /// instruction (fused with them if `replaced > 0`), and charges one unit
    /// of fuel for the instruction. The op's offset is the instruction's,
    /// or that of the replaced load if the fused op traps there.
    fn push_fused(&mut self, op: Op, replaced: usize) -> usize {
        let pc = self.ops.len() - replaced;
        let offset = self
            .ops
            .get(pc..)
            .and_then(|tail| trapping_replaced(&op, tail))
            .and_then(|i| self.offsets.get(pc + i).copied())
            .unwrap_or(self.offset);
        self.ops.truncate(pc);
        self.offsets.truncate(pc);
        self.ops.push(op);
        self.offsets.push(offset);
        if let Some(i) = self.fuel_at
            && let Some(Op::Fuel(c) | Op::LoopHeader(c)) = self.ops.get_mut(i)
        {
            *c = c.saturating_add(1);
        }
        pc
    }

    /// Emits the jump of an `if`: to `target` (patched later if 0) when the
    /// popped condition is zero, fused with the ops computing the condition
    /// when possible.
    fn emit_jump_if_zero(&mut self, target: u32) -> usize {
        match fuse_jump(&self.ops, target, true) {
            Some((op, replaced)) => self.push_fused(op, replaced),
            None => self.push_fused(Op::JumpIfZero(target), 0),
        }
    }

    /// True if a branch to `depth` taken with operand-stack height `height`
    /// (locals included) moves no value: its results are already in place.
    fn branch_moves_nothing(&self, depth: u32, height: u32) -> bool {
        let Some(c) = self
            .ctrl
            .len()
            .checked_sub(1 + depth as usize)
            .and_then(|i| self.ctrl.get(i))
        else {
            return false;
        };
        let keep = match c.kind {
            CtrlKind::Func => return false,
            CtrlKind::Loop => c.params,
            _ => c.results,
        };
        c.height + keep == height
    }

    fn pc(&self) -> u32 {
        self.ops.len() as u32
    }

    /// The fuel the current block charges so far.
    fn block_fuel(&self) -> u32 {
        match self.fuel_at.and_then(|i| self.ops.get(i)) {
            Some(Op::Fuel(c) | Op::LoopHeader(c)) => *c,
            _ => 0,
        }
    }

    /// Continues the current block past the conditional branch just
    /// emitted at `at` (instead of starting a block with its own `Fuel` op):
    /// the fall-through costs no dispatch, and a taken branch is refunded
    /// what the rest of the block charged.
    fn continue_after_branch(&mut self, at: usize) {
        let charged = self.block_fuel();
        self.early_exits.push((at, charged));
    }

    /// Ends the current block: records the refund each early exit from it
    /// owes.
    fn close_fuel_block(&mut self) {
        let total = self.block_fuel();
        for (at, charged) in std::mem::take(&mut self.early_exits) {
            if total > charged {
                self.refunds.push((at, total - charged));
            }
        }
    }

    /// Appends a stub `Refund { fuel: n, target }` for every branch owing a
    /// refund and points the branch at it. Targets are final by now.
    fn emit_refund_stubs(&mut self) {
        for (at, n) in std::mem::take(&mut self.refunds) {
            let target = match self.ops.get(at) {
                Some(
                    Op::BrIf { target, .. }
                    | Op::JumpIfZero(target)
                    | Op::JumpLL { target, .. }
                    | Op::JumpLC { target, .. }
                    | Op::JumpSC { target, .. }
                    | Op::JumpSS { target, .. }
                    | Op::JumpLoadZ { target, .. },
                ) => *target,
                _ => continue,
            };
            let stub = self.pc();
            let offset = self.offsets.get(at).copied().unwrap_or(0);
            self.ops.push(Op::Refund { fuel: n, target });
            self.offsets.push(offset);
            self.patch(at, stub);
        }
    }

    /// Starts a new straight-line block (after a branch target or a fork).
    fn new_fuel_block(&mut self) {
        self.close_fuel_block();
        let pc = self.ops.len();
        self.ops.push(Op::Fuel(0));
        self.offsets.push(self.offset);
        self.fuel_at = Some(pc);
    }

    fn block_arity(&self, ty: BlockType) -> Result<(u32, u32), ModuleError> {
        Ok(match ty {
            BlockType::Empty => (0, 0),
            BlockType::Type(_) => (0, 1),
            BlockType::FuncType(i) => {
                let f = self
                    .module
                    .types
                    .get(i as usize)
                    .ok_or_else(|| internal("block type"))?;
                (f.params.len() as u32, f.results.len() as u32)
            }
        })
    }

    fn push_ctrl(&mut self, kind: CtrlKind, dead: bool, height: u32, params: u32, results: u32) {
        self.ctrl.push(Ctrl {
            kind,
            dead,
            height,
            params,
            results,
            loop_pc: 0,
            fixups: Vec::new(),
            else_fixup: None,
        });
    }

    /// A branch to `depth` as an op (`Br`, or `Return` for the function label).
    fn branch_op(&mut self, depth: u32, at: usize) -> Result<Op, ModuleError> {
        let idx = self
            .ctrl
            .len()
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| internal("branch depth"))?;
        let c = &mut self.ctrl[idx];
        Ok(match c.kind {
            CtrlKind::Func => Op::Return(self.func_results),
            CtrlKind::Loop => Op::Br {
                target: c.loop_pc,
                height: c.height,
                keep: c.params,
            },
            _ => {
                c.fixups.push(at);
                Op::Br {
                    target: 0,
                    height: c.height,
                    keep: c.results,
                }
            }
        })
    }

    fn patch(&mut self, at: usize, target: u32) {
        match self.ops.get_mut(at) {
            Some(Op::Br { target: t, .. } | Op::BrIf { target: t, .. }) => *t = target,
            Some(Op::Jump(t) | Op::JumpIfZero(t)) => *t = target,
            Some(
                Op::JumpLL { target: t, .. }
                | Op::JumpLC { target: t, .. }
                | Op::JumpSC { target: t, .. }
                | Op::JumpSS { target: t, .. }
                | Op::JumpLoadZ { target: t, .. },
            ) => *t = target,
            _ => {}
        }
    }

    fn translate(
        &mut self,
        op: Operator<'_>,
        dead: bool,
        height: u32,
        types: Option<Box<[ValType]>>,
    ) -> Result<(), ModuleError> {
        match op {
            Operator::Block { blockty } => {
                let (p, r) = self.block_arity(blockty)?;
                self.push_ctrl(CtrlKind::Block, dead, height.saturating_sub(p), p, r);
                return Ok(());
            }
            Operator::Loop { blockty } => {
                let (p, r) = self.block_arity(blockty)?;
                self.push_ctrl(CtrlKind::Loop, dead, height.saturating_sub(p), p, r);
                if !dead {
                    let pc = self.pc();
                    self.resume.push(ResumePoint {
                        kind: ResumeKind::Loop,
                        pc,
                        offset: self.offset,
                        operands: types.unwrap_or_default(),
                    });
                    self.close_fuel_block();
                    self.ops.push(Op::LoopHeader(0));
                    self.offsets.push(self.offset);
                    self.fuel_at = Some(pc as usize);
                    if let Some(c) = self.ctrl.last_mut() {
                        c.loop_pc = pc;
                    }
                }
                return Ok(());
            }
            Operator::If { blockty } => {
                let (p, r) = self.block_arity(blockty)?;
                self.push_ctrl(CtrlKind::If, dead, height.saturating_sub(p + 1), p, r);
                if !dead {
                    let at = self.emit_jump_if_zero(0);
                    if let Some(c) = self.ctrl.last_mut() {
                        c.else_fixup = Some(at);
                    }
                    self.continue_after_branch(at);
                }
                return Ok(());
            }
            Operator::Else => {
                let c_dead = self.ctrl.last().is_none_or(|c| c.dead);
                if !c_dead {
                    if !dead {
                        let at = self.emit(Op::Jump(0));
                        if let Some(c) = self.ctrl.last_mut() {
                            c.fixups.push(at);
                        }
                    }
                    let pc = self.pc();
                    if let Some(at) = self.ctrl.last_mut().and_then(|c| c.else_fixup.take()) {
                        self.patch(at, pc);
                    }
                    self.new_fuel_block();
                }
                if let Some(c) = self.ctrl.last_mut() {
                    c.kind = CtrlKind::Else;
                }
                return Ok(());
            }
            Operator::End => {
                let c = self.ctrl.pop().ok_or_else(|| internal("control stack"))?;
                if c.kind == CtrlKind::Func {
                    if !dead {
                        self.emit(Op::Return(self.func_results));
                    }
                    return Ok(());
                }
                if !c.dead {
                    let pc = self.pc();
                    if let Some(at) = c.else_fixup {
                        self.patch(at, pc);
                    }
                    for at in c.fixups {
                        self.patch(at, pc);
                    }
                    self.new_fuel_block();
                }
                return Ok(());
            }
            _ => {}
        }
        if dead {
            return Ok(());
        }
        let op = match op {
            Operator::Nop => return Ok(()),
            Operator::Unreachable => Op::Unreachable,
            Operator::Br { relative_depth } => {
                let at = self.ops.len();
                let op = match self.branch_op(relative_depth, at)? {
                    // Nothing to move: a plain jump.
                    Op::Br { target, .. } if self.branch_moves_nothing(relative_depth, height) => {
                        Op::Jump(target)
                    }
                    op => op,
                };
                self.emit(op);
                return Ok(());
            }
            Operator::BrIf { relative_depth } => {
                // After popping the condition, a branch that moves no value
                // is a plain conditional jump, fused with its condition.
                if self.branch_moves_nothing(relative_depth, height.saturating_sub(1))
                    && let Some((_, replaced)) = fuse_jump(&self.ops, 0, false)
                {
                    let at = self.ops.len() - replaced;
                    let Op::Br { target, .. } = self.branch_op(relative_depth, at)? else {
                        return Err(internal("br_if target"));
                    };
                    let (op, replaced) =
                        fuse_jump(&self.ops, target, false).ok_or_else(|| internal("br_if"))?;
                    let at = self.push_fused(op, replaced);
                    self.continue_after_branch(at);
                    return Ok(());
                }
                let at = self.ops.len();
                match self.branch_op(relative_depth, at)? {
                    Op::Br {
                        target,
                        height,
                        keep,
                    } => {
                        let at = self.emit(Op::BrIf {
                            target,
                            height,
                            keep,
                        });
                        self.continue_after_branch(at);
                    }
                    ret => {
                        let skip = at as u32 + 2;
                        self.emit(Op::JumpIfZero(skip));
                        self.emit(ret);
                        self.new_fuel_block();
                    }
                }
                return Ok(());
            }
            Operator::BrTable { targets } => {
                self.emit(Op::BrTable(targets.len()));
                let mut depths = Vec::with_capacity(targets.len() as usize + 1);
                for d in targets.targets() {
                    depths.push(d?);
                }
                depths.push(targets.default());
                for d in depths {
                    let at = self.ops.len();
                    let op = self.branch_op(d, at)?;
                    self.emit(op);
                }
                return Ok(());
            }
            Operator::Return => Op::Return(self.func_results),
            Operator::Call { function_index } => {
                let callee = self
                    .module
                    .func_type(function_index)
                    .ok_or_else(|| internal("callee"))?;
                self.call_resume(callee.params.len() as u32, &callee.results.clone(), types);
                if function_index < self.module.num_imported_funcs {
                    Op::CallHost(function_index)
                } else {
                    Op::Call(function_index)
                }
            }
            Operator::CallIndirect {
                type_index,
                table_index,
            } => {
                let callee = self
                    .module
                    .types
                    .get(type_index as usize)
                    .ok_or_else(|| internal("call type"))?;
                // The table index is consumed along with the arguments.
                self.call_resume(
                    callee.params.len() as u32 + 1,
                    &callee.results.clone(),
                    types,
                );
                Op::CallIndirect {
                    type_index,
                    table: table_index,
                }
            }
            Operator::Drop => Op::Drop,
            Operator::Select | Operator::TypedSelect { .. } => Op::Select,
            Operator::LocalGet { local_index } => Op::LocalGet(local_index),
            Operator::LocalSet { local_index } => Op::LocalSet(local_index),
            Operator::LocalTee { local_index } => Op::LocalTee(local_index),
            Operator::GlobalGet { global_index }
                if self.module.global_is_shareable(global_index) =>
            {
                Op::GlobalGetShared(global_index)
            }
            Operator::GlobalSet { global_index }
                if self.module.global_is_shareable(global_index) =>
            {
                Op::GlobalSetShared(global_index)
            }
            Operator::GlobalGet { global_index } => Op::GlobalGet(global_index),
            Operator::GlobalSet { global_index } => Op::GlobalSet(global_index),
            Operator::I32Const { value } => Op::Const(value as u32 as u64),
            Operator::I64Const { value } => Op::Const(value as u64),
            Operator::F32Const { value } => Op::Const(value.bits() as u64),
            Operator::F64Const { value } => Op::Const(value.bits()),
            Operator::RefNull { .. } => Op::Const(0),
            Operator::RefFunc { function_index } => Op::Const(function_index as u64 + 1),
            Operator::RefIsNull => Op::RefIsNull,
            Operator::I32Load { memarg } => Op::I32Load(mem_offset(&memarg)?),
            Operator::I64Load { memarg } => Op::I64Load(mem_offset(&memarg)?),
            Operator::F32Load { memarg } => Op::F32Load(mem_offset(&memarg)?),
            Operator::F64Load { memarg } => Op::F64Load(mem_offset(&memarg)?),
            Operator::I32Load8S { memarg } => Op::I32Load8S(mem_offset(&memarg)?),
            Operator::I32Load8U { memarg } => Op::I32Load8U(mem_offset(&memarg)?),
            Operator::I32Load16S { memarg } => Op::I32Load16S(mem_offset(&memarg)?),
            Operator::I32Load16U { memarg } => Op::I32Load16U(mem_offset(&memarg)?),
            Operator::I64Load8S { memarg } => Op::I64Load8S(mem_offset(&memarg)?),
            Operator::I64Load8U { memarg } => Op::I64Load8U(mem_offset(&memarg)?),
            Operator::I64Load16S { memarg } => Op::I64Load16S(mem_offset(&memarg)?),
            Operator::I64Load16U { memarg } => Op::I64Load16U(mem_offset(&memarg)?),
            Operator::I64Load32S { memarg } => Op::I64Load32S(mem_offset(&memarg)?),
            Operator::I64Load32U { memarg } => Op::I64Load32U(mem_offset(&memarg)?),
            Operator::I32Store { memarg } => Op::I32Store(mem_offset(&memarg)?),
            Operator::I64Store { memarg } => Op::I64Store(mem_offset(&memarg)?),
            Operator::F32Store { memarg } => Op::F32Store(mem_offset(&memarg)?),
            Operator::F64Store { memarg } => Op::F64Store(mem_offset(&memarg)?),
            Operator::I32Store8 { memarg } => Op::I32Store8(mem_offset(&memarg)?),
            Operator::I32Store16 { memarg } => Op::I32Store16(mem_offset(&memarg)?),
            Operator::I64Store8 { memarg } => Op::I64Store8(mem_offset(&memarg)?),
            Operator::I64Store16 { memarg } => Op::I64Store16(mem_offset(&memarg)?),
            Operator::I64Store32 { memarg } => Op::I64Store32(mem_offset(&memarg)?),
            Operator::MemorySize { .. } => Op::MemorySize,
            Operator::MemoryGrow { .. } => Op::MemoryGrow,
            Operator::MemoryInit { data_index, .. } => Op::MemoryInit(data_index),
            Operator::DataDrop { data_index } => Op::DataDrop(data_index),
            Operator::MemoryCopy { .. } => Op::MemoryCopy,
            Operator::MemoryFill { .. } => Op::MemoryFill,
            Operator::TableInit { elem_index, table } => Op::TableInit {
                table,
                elem: elem_index,
            },
            Operator::ElemDrop { elem_index } => Op::ElemDrop(elem_index),
            Operator::TableCopy {
                dst_table,
                src_table,
            } => Op::TableCopy {
                dst: dst_table,
                src: src_table,
            },
            Operator::TableGet { table } => Op::TableGet(table),
            Operator::TableSet { table } => Op::TableSet(table),
            Operator::TableGrow { table } => Op::TableGrow(table),
            Operator::TableSize { table } => Op::TableSize(table),
            Operator::TableFill { table } => Op::TableFill(table),
            other => match numeric_op(&other) {
                Some(op) => op,
                None => return Err(ModuleError::Unsupported(format!("operator {other:?}"))),
            },
        };
        self.emit(op);
        Ok(())
    }

    /// Records the resume points of a call: the call itself, and the place
    /// after it (completed once the next instruction is read).
    fn call_resume(&mut self, params: u32, results: &[ValType], types: Option<Box<[ValType]>>) {
        let pc = self.pc();
        let before = types.unwrap_or_default();
        let kept = before.len().saturating_sub(params as usize);
        let after: Vec<ValType> = before[..kept].iter().chain(results).copied().collect();
        self.after_call = Some((pc + 1, after.into_boxed_slice()));
        self.resume.push(ResumePoint {
            kind: ResumeKind::Call { params },
            pc,
            offset: self.offset,
            operands: before,
        });
    }
}

fn mem_offset(memarg: &wasmparser::MemArg) -> Result<u32, ModuleError> {
    u32::try_from(memarg.offset).map_err(|_| internal("memory offset"))
}
