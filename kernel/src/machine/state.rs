//! Export and import of execution state in module terms.
//!
//! A thread's state is saved as frames of (function index, wasm code
//! offset, typed locals, typed operands), its globals and its suspension
//! ([`ExecState`]); an instance's as its tables and dropped segments
//! ([`InstanceState`]). Import treats the state as an allegation: every
//! function index, offset, type and the chain of calls between frames is
//! checked against the module, and anything inconsistent is a [`StateError`].
//!
//! State that lives in an object shared between instances (`shared.rs`)
//! belongs to its exporter. An imported table is exported as an empty list
//! (and must be one on import); the instance is restored linked to the same
//! shared table. A global that lives in a shared object is exported with
//! the value the thread sees, and on import into an instance where it lives
//! in a shared object too, the shared object's value stands (where it does
//! not, the value becomes the thread's copy). A reference to another
//! instance's function has no module terms: a thread holding one cannot be
//! exported ([`StateError::ForeignFunction`]); in an instance's own table it
//! is exported as an index at or above the module's function count, which
//! every import refuses.

use super::code::{FuncCode, Op, ResumeKind, ResumePoint};
use super::instance::{Instance, InstanceStateError};
use super::module::{Module, ValType};
use super::thread::{CallFrame, Status, Thread};
use super::value::{slot_of, type_of, value_of};
use super::{ExecState, Frame, InstanceState, Suspension, Value};

/// Why a thread state could not be exported or imported.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// A trapped thread has no state to resume.
    #[error("the thread trapped; it has no resumable state")]
    Trapped,
    /// The thread is stopped at a place that is not a resume point (an
    /// interpreter invariant was broken).
    #[error("the thread is not at a resume point (function {func}, position {pc})")]
    NotAtResumePoint { func: u32, pc: u32 },
    #[error("frame {frame}: function {func} does not exist or is imported")]
    BadFunction { frame: usize, func: u32 },
    #[error("frame {frame}: offset {offset:#x} is not a resume point of function {func}")]
    BadOffset {
        frame: usize,
        func: u32,
        offset: u32,
    },
    #[error("frame {frame}: locals do not match the function's locals")]
    BadLocals { frame: usize },
    #[error("frame {frame}: operands do not match the operand types at the offset")]
    BadOperands { frame: usize },
    #[error("frame {frame}: the next frame is not what its call instruction calls")]
    BadCallChain { frame: usize },
    #[error("globals do not match the module's globals")]
    BadGlobals,
    #[error("the suspension does not match the innermost frame")]
    BadSuspension,
    #[error("a finished thread must have no frames, a running one at least one")]
    BadFrameCount,
    #[error("the state exceeds the call depth or operand stack limit")]
    LimitExceeded,
    /// The thread holds a reference to (or is in a call of) a function of
    /// another instance, which module terms cannot express.
    #[error("the thread holds a reference to a function of another instance")]
    ForeignFunction,
}

/// Typed values of `slots`, refusing references to functions beyond the
/// module's `num_funcs` (another instance's).
fn typed(slots: &[u64], types: &[ValType], num_funcs: u32) -> Result<Vec<Value>, StateError> {
    slots
        .iter()
        .zip(types)
        .map(|(s, t)| own_value(value_of(*s, *t), num_funcs))
        .collect()
}

fn own_value(v: Value, num_funcs: u32) -> Result<Value, StateError> {
    match v {
        Value::FuncRef(Some(f)) if f >= num_funcs => Err(StateError::ForeignFunction),
        v => Ok(v),
    }
}

fn untyped(values: &[Value], types: &[ValType], num_funcs: u32) -> Option<Vec<u64>> {
    if values.len() != types.len() {
        return None;
    }
    values
        .iter()
        .zip(types)
        .map(|(v, t)| slot_of(*v, *t, num_funcs))
        .collect()
}

/// Operand types of a frame at resume point `rp`: all of them for a frame
/// about to execute the instruction, without the call's arguments for a
/// frame waiting in (or for) a call.
fn frame_operand_types(rp: &ResumePoint, in_call: bool) -> Option<&[ValType]> {
    match (rp.kind, in_call) {
        (ResumeKind::Call { params }, true) => rp
            .operands
            .get(..rp.operands.len().checked_sub(params as usize)?),
        (_, false) => Some(&rp.operands),
        _ => None,
    }
}

impl Thread {
    /// The thread's state in module terms, wherever `run` returned (and after
    /// [`Thread::complete_host_call`]).
    pub fn export_state(&self, instance: &Instance) -> Result<ExecState, StateError> {
        let module = &instance.module;
        let num_funcs = module.num_funcs();
        let own = |values: &[Value]| {
            values
                .iter()
                .map(|v| own_value(*v, num_funcs))
                .collect::<Result<Vec<_>, _>>()
        };
        let globals = (0..module.num_globals())
            .map(|g| {
                let ty = module.globals[g as usize].0.content;
                own_value(
                    value_of(instance.global_get(g, &self.globals), ty),
                    num_funcs,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let suspension = match &self.status {
            Status::Trapped(_) => return Err(StateError::Trapped),
            Status::Finished(results) => {
                return Ok(ExecState {
                    frames: Vec::new(),
                    globals,
                    suspension: Suspension::Finished {
                        results: own(results)?,
                    },
                    fuel_left: self.fuel_left,
                });
            }
            Status::Ready => Suspension::Ready,
            Status::HostCall { import, .. } if *import >= num_funcs => {
                return Err(StateError::ForeignFunction);
            }
            Status::HostCall { import, args } => Suspension::HostCall {
                import: *import,
                args: own(args)?,
            },
        };
        let in_host_call = matches!(suspension, Suspension::HostCall { .. });
        let mut activations: Vec<(u32, u32, usize, bool)> = self
            .frames
            .iter()
            .map(|f| (f.func, f.call_pc(), f.fp as usize, true))
            .collect();
        activations.push((self.func, self.pc, self.fp as usize, in_host_call));
        let mut frames = Vec::with_capacity(activations.len());
        for (k, &(func, pc, fp, in_call)) in activations.iter().enumerate() {
            let not_at = StateError::NotAtResumePoint { func, pc };
            let code = module.code_of(func).ok_or(not_at.clone())?;
            let rp = code.resume_at_pc(pc, in_call).ok_or(not_at.clone())?;
            let types = frame_operand_types(rp, in_call).ok_or(not_at.clone())?;
            let top = activations.get(k + 1).map_or(self.sp, |next| next.2);
            let base = fp + code.locals.len();
            let operands = self.stack.get(base..top).ok_or(not_at.clone())?;
            if operands.len() != types.len() {
                return Err(not_at);
            }
            frames.push(Frame {
                func_index: func,
                code_offset: rp.offset,
                locals: typed(&self.stack[fp..base], &code.locals, num_funcs)?,
                operands: typed(operands, types, num_funcs)?,
            });
        }
        Ok(ExecState {
            frames,
            globals,
            suspension,
            fuel_left: self.fuel_left,
        })
    }

    /// Recreates a thread of `instance` (a fresh instance of the same module
    /// will do) from an exported state, checking it completely. The values
    /// of globals that live in shared objects of `instance` are checked but
    /// not used: the shared objects keep theirs.
    pub fn import_state(instance: &Instance, state: &ExecState) -> Result<Thread, StateError> {
        let module = &instance.module;
        let num_funcs = module.num_funcs();
        let global_types: Vec<ValType> = module.globals.iter().map(|g| g.0.content).collect();
        let globals =
            untyped(&state.globals, &global_types, num_funcs).ok_or(StateError::BadGlobals)?;
        if let Suspension::Finished { results } = &state.suspension {
            if !state.frames.is_empty() {
                return Err(StateError::BadFrameCount);
            }
            return Ok(Thread {
                stack: Vec::new(),
                sp: 0,
                frames: Vec::new(),
                func: 0,
                pc: 0,
                fp: 0,
                globals,
                status: Status::Finished(results.clone()),
                fuel_left: state.fuel_left,
                entry_results: results.iter().map(type_of).collect(),
            });
        }
        let last = state
            .frames
            .len()
            .checked_sub(1)
            .ok_or(StateError::BadFrameCount)?;
        if state.frames.len() > instance.limits.max_call_depth as usize {
            return Err(StateError::LimitExceeded);
        }
        let mut stack: Vec<u64> = Vec::new();
        let mut frames = Vec::with_capacity(last);
        let mut current = (0u32, 0u32, 0usize);
        let mut innermost_code: Option<&FuncCode> = None;
        // Slots the frames can reach: each frame gets its whole frame back,
        // callers included (a caller may use more after its call returns
        // than its callee's frame reaches).
        let mut frames_need = 0usize;
        let mut entry_results = None;
        for (k, frame) in state.frames.iter().enumerate() {
            let func = frame.func_index;
            let code = module
                .code_of(func)
                .ok_or(StateError::BadFunction { frame: k, func })?;
            entry_results.get_or_insert_with(|| code.results.clone());
            let bad_offset = StateError::BadOffset {
                frame: k,
                func,
                offset: frame.code_offset,
            };
            let in_call = k < last || matches!(state.suspension, Suspension::HostCall { .. });
            // Where an entry or loop header shares its offset with a call or
            // an inner loop, the later point is taken: the ops in between
            // only charge fuel the stopped thread has already paid, so a
            // restored thread spends its fuel exactly as the original
            // (a thread that never ran is charged that block once less).
            let rp = code
                .resume_at_offset(frame.code_offset)
                .filter(|rp| !in_call || matches!(rp.kind, ResumeKind::Call { .. }))
                .filter(|rp| {
                    frame_operand_types(rp, in_call)
                        .is_some_and(|t| t.len() == frame.operands.len())
                })
                .last()
                .ok_or(bad_offset)?;
            let types = frame_operand_types(rp, in_call).ok_or(StateError::BadOffset {
                frame: k,
                func,
                offset: frame.code_offset,
            })?;
            let locals = untyped(&frame.locals, &code.locals, num_funcs)
                .ok_or(StateError::BadLocals { frame: k })?;
            let operands = untyped(&frame.operands, types, num_funcs)
                .ok_or(StateError::BadOperands { frame: k })?;
            let op = code.ops.get(rp.pc as usize).copied();
            if k < last {
                let callee = state.frames[k + 1].func_index;
                if !calls(module, op, callee) {
                    return Err(StateError::BadCallChain { frame: k });
                }
            } else if let Suspension::HostCall { import, args } = &state.suspension {
                if !calls(module, op, *import) || *import >= module.num_imported_funcs {
                    return Err(StateError::BadSuspension);
                }
                let params = module
                    .func_type(*import)
                    .map(|t| t.params.clone())
                    .ok_or(StateError::BadSuspension)?;
                untyped(args, &params, num_funcs).ok_or(StateError::BadSuspension)?;
            }
            let fp = stack.len();
            frames_need = frames_need.max(fp + code.max_height as usize);
            stack.extend_from_slice(&locals);
            stack.extend_from_slice(&operands);
            if k < last {
                frames.push(CallFrame::at(func, rp.pc, fp as u32));
            } else {
                current = (func, rp.pc, fp);
                innermost_code = Some(code);
            }
        }
        let sp = stack.len();
        let code = innermost_code.ok_or(StateError::BadFrameCount)?;
        let need = frames_need.max(current.2 + code.max_height as usize);
        if need.max(sp) > instance.limits.max_operand_stack as usize {
            return Err(StateError::LimitExceeded);
        }
        stack.resize(need.max(sp).max(16), 0);
        let status = match &state.suspension {
            Suspension::HostCall { import, args } => Status::HostCall {
                import: *import,
                args: args.clone(),
            },
            _ => Status::Ready,
        };
        Ok(Thread {
            stack,
            sp,
            frames,
            func: current.0,
            pc: current.1,
            fp: current.2 as u32,
            globals,
            status,
            fuel_left: state.fuel_left,
            entry_results: entry_results.unwrap_or_default(),
        })
    }
}

/// Whether the call op `op` can call function `callee`.
fn calls(module: &Module, op: Option<Op>, callee: u32) -> bool {
    match op {
        Some(Op::Call(f) | Op::CallHost(f)) => f == callee,
        Some(Op::CallIndirect { type_index, .. }) => {
            matches!((module.types.get(type_index as usize), module.func_type(callee)), (Some(a), Some(b)) if a == b)
        }
        _ => false,
    }
}

impl Instance {
    /// Tables and dropped segments, in module terms. Imported tables belong
    /// to their exporters and are exported empty.
    pub fn export_state(&self) -> InstanceState {
        let module = &self.module;
        InstanceState {
            tables: (0..module.tables.len() as u32)
                .map(|i| {
                    if i < module.num_imported_tables {
                        return Vec::new();
                    }
                    let ty = module.tables[i as usize].element;
                    let slots = self.table_slots(i).unwrap_or_default();
                    slots.iter().map(|s| value_of(*s, ty)).collect()
                })
                .collect(),
            dropped_data: (0..self.dropped_data.len() as u32)
                .filter(|i| self.dropped_data[*i as usize])
                .collect(),
            dropped_elems: (0..self.dropped_elems.len() as u32)
                .filter(|i| self.dropped_elems[*i as usize])
                .collect(),
        }
    }

    /// Replaces tables and dropped-segment flags with an exported state,
    /// checking sizes against the tables' limits and every element's type.
    /// Imported tables are their exporters' state: their lists must be empty.
    pub fn import_state(&mut self, state: &InstanceState) -> Result<(), InstanceStateError> {
        if state.tables.len() != self.tables.len() {
            return Err(InstanceStateError::TableCount {
                expected: self.tables.len(),
                given: state.tables.len(),
            });
        }
        let num_funcs = self.module.num_funcs();
        let mut tables = Vec::with_capacity(self.tables.len());
        for (i, (ty, values)) in self.module.tables.iter().zip(&state.tables).enumerate() {
            let len = values.len() as u64;
            if (i as u32) < self.module.num_imported_tables {
                if len != 0 {
                    return Err(InstanceStateError::ImportedTable(i as u32));
                }
                tables.push(None);
                continue;
            }
            if len < ty.min as u64
                || len
                    > ty.max
                        .unwrap_or(u32::MAX)
                        .min(self.limits.max_table_elements) as u64
            {
                return Err(InstanceStateError::TableSize(i as u32));
            }
            let types = vec![ty.element; values.len()];
            tables.push(Some(
                untyped(values, &types, num_funcs)
                    .ok_or(InstanceStateError::TableElement(i as u32))?,
            ));
        }
        let mut dropped_data = vec![false; self.dropped_data.len()];
        for &d in &state.dropped_data {
            *dropped_data
                .get_mut(d as usize)
                .ok_or(InstanceStateError::Segment(d))? = true;
        }
        let mut dropped_elems = vec![false; self.dropped_elems.len()];
        for &e in &state.dropped_elems {
            *dropped_elems
                .get_mut(e as usize)
                .ok_or(InstanceStateError::Segment(e))? = true;
        }
        for (i, elems) in tables.into_iter().enumerate() {
            if let Some(elems) = elems {
                self.set_table_slots(i as u32, elems);
            }
        }
        self.dropped_data = dropped_data;
        for (i, dropped) in dropped_elems.iter().enumerate() {
            if *dropped {
                self.elem_items[i].clear();
            } else {
                self.elem_items[i] = self.evaluate_elem(i);
            }
        }
        self.dropped_elems = dropped_elems;
        Ok(())
    }
}
