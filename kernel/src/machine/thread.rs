//! Threads: one execution of an instance's code, with its own call frames,
//! operand stack and copy of the globals, sharing the instance's tables and
//! the address space with the other threads of the task. A global that
//! lives in an object shared with other instances (`shared.rs`) is not
//! copied: every thread reads and writes the shared object.

use super::Value;
use super::handlers::Instr;
use super::instance::Instance;
use super::module::{Export, ValType};
use super::trap::Trap;
use super::value::{type_of, value_of};
use crate::mm::AddressSpace;

/// Why [`Thread::run`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The entry function returned these results.
    Finished(Vec<Value>),
    /// The thread called imported function `import` (a system call) with
    /// `args`. Continue it with [`Thread::complete_host_call`] or
    /// [`Thread::reissue_host_call`]. An `import` at or above the module's
    /// function count is a function of another instance, called through a
    /// reference ([`Instance::foreign_function`] names it).
    HostCall { import: u32, args: Vec<Value> },
    /// The fuel of this run is used up; run again to continue.
    OutOfFuel,
    /// The thread trapped; it cannot continue.
    Trap(Trap),
}

/// Where a thread stands between runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Status {
    Ready,
    HostCall { import: u32, args: Vec<Value> },
    Finished(Vec<Value>),
    Trapped(Trap),
}

/// A caller's activation, saved while its callee runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallFrame {
    pub func: u32,
    /// Where the call op is in the caller's threaded code, in bytes: the
    /// interpreter returns past it with one addition.
    pub call_at: u32,
    pub fp: u32,
}

impl CallFrame {
    /// The frame of a caller of function `func` at op `call_pc` (a
    /// position in its code, at most `lower::MAX_OPS`).
    pub(crate) fn at(func: u32, call_pc: u32, fp: u32) -> CallFrame {
        CallFrame {
            func,
            call_at: call_pc * std::mem::size_of::<Instr>() as u32,
            fp,
        }
    }

    /// The position of the call op in the caller's code.
    pub(crate) fn call_pc(&self) -> u32 {
        self.call_at / std::mem::size_of::<Instr>() as u32
    }
}

/// Errors creating a thread or continuing it after a host call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThreadError {
    #[error("no exported function named {0:?}")]
    NoSuchExport(String),
    #[error("function {0} does not exist or is imported")]
    NotDefined(u32),
    #[error("arguments do not match the function's parameters")]
    ArgumentTypes,
    #[error("the thread is not in a host call")]
    NotInHostCall,
    #[error("results do not match the host call's result types")]
    ResultTypes,
    #[error("the entry function needs {need} stack slots, more than the limit of {limit}")]
    OperandStackLimit { need: u64, limit: u32 },
}

/// A thread of a task. Created at an entry function; runs in slices of fuel.
#[derive(Clone, Debug)]
pub struct Thread {
    /// Locals and operands of every frame, bottom first; `len()` is capacity.
    pub(crate) stack: Vec<u64>,
    pub(crate) sp: usize,
    /// Callers of the current frame, outermost first.
    pub(crate) frames: Vec<CallFrame>,
    pub(crate) func: u32,
    pub(crate) pc: u32,
    pub(crate) fp: u32,
    pub(crate) globals: Vec<u64>,
    pub(crate) status: Status,
    pub(crate) fuel_left: u64,
    /// Result types of the entry (outermost) function.
    pub(crate) entry_results: Box<[ValType]>,
}

/// Which function a thread starts in.
#[derive(Clone, Copy, Debug)]
pub enum Entry<'a> {
    /// By index in the function index space.
    Index(u32),
    /// By export name.
    Export(&'a str),
}

impl<'a> From<&'a str> for Entry<'a> {
    fn from(name: &'a str) -> Self {
        Entry::Export(name)
    }
}

impl From<u32> for Entry<'_> {
    fn from(index: u32) -> Self {
        Entry::Index(index)
    }
}

impl Thread {
    /// Creates a thread about to run `entry` with `args`.
    pub fn new<'a>(
        instance: &Instance,
        entry: impl Into<Entry<'a>>,
        args: &[Value],
    ) -> Result<Thread, ThreadError> {
        let module = &instance.module;
        let func = match entry.into() {
            Entry::Index(i) => i,
            Entry::Export(name) => match module.export(name) {
                Some(Export::Func(i)) => i,
                _ => return Err(ThreadError::NoSuchExport(name.to_string())),
            },
        };
        let code = module.code_of(func).ok_or(ThreadError::NotDefined(func))?;
        if args.len() != code.num_params as usize {
            return Err(ThreadError::ArgumentTypes);
        }
        let limit = instance.limits.max_operand_stack;
        if code.max_height as u64 > u64::from(limit) {
            return Err(ThreadError::OperandStackLimit {
                need: code.max_height as u64,
                limit,
            });
        }
        let mut stack = vec![0u64; (code.max_height as usize).max(16)];
        for (i, (arg, ty)) in args.iter().zip(code.locals.iter()).enumerate() {
            stack[i] = instance
                .slot_of(*arg, *ty)
                .ok_or(ThreadError::ArgumentTypes)?;
        }
        Ok(Thread {
            stack,
            sp: code.locals.len(),
            frames: Vec::new(),
            func,
            pc: 0,
            fp: 0,
            globals: instance.globals.clone(),
            status: Status::Ready,
            fuel_left: 0,
            entry_results: code.results.clone(),
        })
    }

    /// Runs the thread for about `fuel` units (one per wasm instruction
    /// executed, charged per straight-line block and checked at loop headers
    /// and calls; see the module documentation for the bound on overshoot).
    pub fn run(&mut self, instance: &mut Instance, space: &mut AddressSpace, fuel: u64) -> Outcome {
        match &self.status {
            Status::Ready => {}
            Status::HostCall { import, args } => {
                return Outcome::HostCall {
                    import: *import,
                    args: args.clone(),
                };
            }
            Status::Finished(results) => return Outcome::Finished(results.clone()),
            Status::Trapped(trap) => return Outcome::Trap(*trap),
        }
        let fuel = i64::try_from(fuel).unwrap_or(i64::MAX);
        let (outcome, left) = super::exec::execute(self, instance, space, fuel);
        self.fuel_left = left.max(0) as u64;
        outcome
    }

    /// Completes the pending host call with `results` (type-checked against
    /// the import's signature); the next run continues after the call.
    pub fn complete_host_call(
        &mut self,
        instance: &Instance,
        results: &[Value],
    ) -> Result<(), ThreadError> {
        let Status::HostCall { import, .. } = &self.status else {
            return Err(ThreadError::NotInHostCall);
        };
        let module = &instance.module;
        let foreign;
        let ty = match module.func_type(*import) {
            Some(ty) => ty,
            None => {
                foreign = instance
                    .function_type(*import)
                    .ok_or(ThreadError::ResultTypes)?;
                &foreign
            }
        };
        if results.len() != ty.results.len() {
            return Err(ThreadError::ResultTypes);
        }
        let need = self.sp + results.len();
        if need > self.stack.len() {
            self.stack.resize(need, 0);
        }
        for (r, t) in results.iter().zip(ty.results.iter()) {
            if type_of(r) != *t {
                return Err(ThreadError::ResultTypes);
            }
            self.stack[self.sp] = instance.slot_of(*r, *t).ok_or(ThreadError::ResultTypes)?;
            self.sp += 1;
        }
        self.pc += 1;
        self.status = Status::Ready;
        Ok(())
    }

    /// Leaves the pending host call to be issued again: the next run returns
    /// the same [`Outcome::HostCall`] without executing anything else.
    pub fn reissue_host_call(&mut self) -> Result<(), ThreadError> {
        match self.status {
            Status::HostCall { .. } => Ok(()),
            _ => Err(ThreadError::NotInHostCall),
        }
    }

    /// The pending host call, if the thread is in one.
    pub fn pending_host_call(&self) -> Option<(u32, &[Value])> {
        match &self.status {
            Status::HostCall { import, args } => Some((*import, args)),
            _ => None,
        }
    }

    /// Fuel left over by the last run (zero if it ran out).
    pub fn fuel_left(&self) -> u64 {
        self.fuel_left
    }

    /// Call depth: number of active frames (0 once finished).
    pub fn depth(&self) -> usize {
        match self.status {
            Status::Finished(_) => 0,
            _ => self.frames.len() + 1,
        }
    }

    /// Number of value slots (locals and operands of all frames) in use.
    pub fn stack_slots(&self) -> usize {
        self.sp
    }

    /// The thread's current value of global `index` (of the shared object
    /// for a global that lives in one).
    pub fn global(&self, instance: &Instance, index: u32) -> Option<Value> {
        let ty = instance.module.globals.get(index as usize)?.0.content;
        self.globals.get(index as usize)?;
        Some(value_of(instance.global_get(index, &self.globals), ty))
    }

    /// Sets the thread's copy of global `index` (the shared object for a
    /// global that lives in one); false on a type mismatch.
    pub fn set_global(&mut self, instance: &Instance, index: u32, value: Value) -> bool {
        let Some((ty, _)) = instance.module.globals.get(index as usize) else {
            return false;
        };
        match (
            instance.slot_of(value, ty.content),
            self.globals.get(index as usize),
        ) {
            (Some(s), Some(_)) => {
                instance.global_set(index, &mut self.globals, s);
                true
            }
            _ => false,
        }
    }
}
