//! The machine side: runs a module on Spartan's interpreter, answering host
//! calls with `host_call`. With `Interrupt::Slices` it also acts as the
//! checkpoint oracle: every run is cut into random fuel slices, and at every
//! slice end and host call the whole task state (thread and instance state
//! serialized with postcard, memory pages through a snapshot) is moved into
//! a fresh address space and instance before resuming.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spartan_kernel::machine::{
    ExecState, Export, Extern, Instance, InstanceState, Limits, Module, Outcome, Thread, TrapKind,
    ValType, Value,
};
use spartan_kernel::mm::{AddressSpace, AreaKind, MemLimits, PAGE_SIZE};

use super::{ArgType, CallEnd, ModuleRun, Observation, TrapClass, Val, args_for, host_call};

/// How runs are sliced.
#[derive(Clone, Copy, Debug)]
pub enum Interrupt {
    /// One run per call (plus one per host call).
    None,
    /// Random slices of 1..=max fuel from a ChaCha8 stream of `seed`, with a
    /// full state round trip at every slice end.
    Slices { seed: u64, max: u64 },
}

fn to_val(v: &Value) -> Val {
    match v {
        Value::I32(x) => Val::I32(*x),
        Value::I64(x) => Val::I64(*x),
        Value::F32(x) => Val::f32(*x),
        Value::F64(x) => Val::f64(*x),
        Value::FuncRef(r) => Val::Ref { null: r.is_none() },
        Value::ExternRef(r) => Val::Ref { null: r.is_none() },
    }
}

fn from_val(v: &Val, ty: ValType) -> Value {
    match (v, ty) {
        (Val::I32(x), _) => Value::I32(*x),
        (Val::I64(x), _) => Value::I64(*x),
        (Val::F32(x), _) => Value::F32(*x),
        (Val::F64(x), _) => Value::F64(*x),
        (Val::Ref { .. }, ValType::ExternRef) => Value::ExternRef(None),
        (Val::Ref { .. }, _) => Value::FuncRef(None),
    }
}

fn arg_type(t: ValType) -> ArgType {
    match t {
        ValType::I32 => ArgType::I32,
        ValType::I64 => ArgType::I64,
        ValType::F32 => ArgType::F32,
        ValType::F64 => ArgType::F64,
        _ => ArgType::Ref,
    }
}

fn classify(kind: TrapKind) -> CallEnd {
    CallEnd::Trapped(match kind {
        TrapKind::CallStackExhausted | TrapKind::OperandStackExhausted => {
            return CallEnd::Exhausted;
        }
        TrapKind::Unreachable => TrapClass::Unreachable,
        TrapKind::MemoryOutOfBounds(_) | TrapKind::DataOutOfBounds => TrapClass::MemoryOutOfBounds,
        TrapKind::TableOutOfBounds | TrapKind::UndefinedElement => TrapClass::TableOutOfBounds,
        TrapKind::UninitializedElement => TrapClass::IndirectCallToNull,
        TrapKind::IndirectCallTypeMismatch => TrapClass::IndirectCallTypeMismatch,
        TrapKind::DivideByZero => TrapClass::DivideByZero,
        TrapKind::IntegerOverflow => TrapClass::IntegerOverflow,
        TrapKind::InvalidConversion => TrapClass::InvalidConversion,
        _ => TrapClass::Other,
    })
}

/// A task: module, instance, address space.
struct Task {
    module: Arc<Module>,
    instance: Instance,
    space: AddressSpace,
    imports: Vec<Extern>,
}

impl Task {
    /// Moves the task and `thread` into a fresh address space and instance,
    /// through the serialized forms an image would hold.
    fn round_trip(&mut self, thread: &Thread) -> Result<Thread, String> {
        let exec: ExecState = thread
            .export_state(&self.instance)
            .map_err(|e| format!("export: {e}"))?;
        let exec_bytes = postcard::to_allocvec(&exec).map_err(|e| e.to_string())?;
        let inst: InstanceState = self.instance.export_state();
        let inst_bytes = postcard::to_allocvec(&inst).map_err(|e| e.to_string())?;

        let snapshot = self.space.snapshot();
        let mut space = AddressSpace::new(MemLimits::unlimited());
        for area in &snapshot.areas {
            if let AreaKind::Primary { max_wasm_pages } = area.kind {
                let pages = (area.size / spartan_kernel::mm::WASM_PAGE_SIZE) as u32;
                space
                    .create_primary(pages, Some(max_wasm_pages))
                    .map_err(|e| e.to_string())?;
                for (index, page) in area.pages() {
                    let copy: [u8; 4096] = **page;
                    space
                        .restore_page(index * PAGE_SIZE, &copy)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        let inst: InstanceState = postcard::from_bytes(&inst_bytes).map_err(|e| e.to_string())?;
        let exec: ExecState = postcard::from_bytes(&exec_bytes).map_err(|e| e.to_string())?;
        let instance = Instance::restore(
            self.module.clone(),
            &mut space,
            &Limits::default(),
            &self.imports,
            &inst,
        )
        .map_err(|e| format!("instance restore: {e}"))?;
        let thread =
            Thread::import_state(&instance, &exec).map_err(|e| format!("thread import: {e}"))?;
        self.space = space;
        self.instance = instance;
        Ok(thread)
    }

    /// Runs `thread` to completion within `fuel`, answering host calls.
    fn drive(
        &mut self,
        mut thread: Thread,
        fuel: u64,
        mode: &mut Option<(ChaCha8Rng, u64)>,
        trace: &mut Vec<String>,
    ) -> Result<(CallEnd, Thread), String> {
        let mut left = fuel;
        // Sliced runs may overshoot a slice by a block: allow for it.
        let mut sliced_budget = fuel.saturating_mul(4) + 10_000;
        loop {
            let slice = match mode {
                Some((rng, max)) => rng.random_range(1..=*max),
                None => left,
            };
            let outcome = thread.run(&mut self.instance, &mut self.space, slice);
            let used = slice - thread.fuel_left().min(slice);
            match mode {
                Some(_) => sliced_budget = sliced_budget.saturating_sub(used.max(1)),
                None => left = left.saturating_sub(used),
            }
            match outcome {
                Outcome::Finished(values) => {
                    return Ok((
                        CallEnd::Returned(values.iter().map(to_val).collect()),
                        thread,
                    ));
                }
                Outcome::Trap(trap) => return Ok((classify(trap.kind), thread)),
                Outcome::OutOfFuel => {
                    if mode.is_none() || sliced_budget == 0 {
                        return Ok((CallEnd::Exhausted, thread));
                    }
                }
                Outcome::HostCall { import, args } => {
                    let name = self
                        .module
                        .imports()
                        .get(import as usize)
                        .map(|i| i.name.clone())
                        .unwrap_or_default();
                    let args: Vec<Val> = args.iter().map(to_val).collect();
                    let results =
                        host_call(&name, &args, trace).ok_or(format!("bad host call {name}"))?;
                    let types = self
                        .module
                        .func_type(import)
                        .ok_or("no import type")?
                        .results
                        .clone();
                    let results: Vec<Value> = results
                        .iter()
                        .zip(types.iter())
                        .map(|(v, t)| from_val(v, *t))
                        .collect();
                    if mode.is_some() {
                        // Checkpoint in the system call, then complete it.
                        thread = self.round_trip(&thread)?;
                    }
                    thread
                        .complete_host_call(&self.instance, &results)
                        .map_err(|e| e.to_string())?;
                }
            }
            if mode.is_some() {
                thread = self.round_trip(&thread)?;
            }
        }
    }

    fn memory(&self) -> Vec<u8> {
        let len = u64::from(self.space.primary_wasm_pages()) * spartan_kernel::mm::WASM_PAGE_SIZE;
        let mut buf = vec![0; len as usize];
        self.space
            .read(0, &mut buf)
            .map(|()| buf)
            .unwrap_or_default()
    }
}

/// Runs every exported function of `bytes` in export-name order, each with
/// `fuel`, with arguments derived from `seed` (as `wasmi_side::run` does).
pub fn run(bytes: &[u8], fuel: u64, seed: u64, interrupt: Interrupt) -> Result<ModuleRun, String> {
    let module = Module::new(bytes).map_err(|e| format!("machine rejects the module: {e}"))?;
    let imports = vec![Extern::Func; module.imports().len()];
    let mut space = AddressSpace::new(MemLimits::unlimited());
    let instance = match Instance::new(module.clone(), &mut space, &Limits::default(), &imports) {
        Ok(instance) => instance,
        Err(_) => return Ok(ModuleRun::InstantiationFailed),
    };
    let mut task = Task {
        module: module.clone(),
        instance,
        space,
        imports,
    };
    let mut mode = match interrupt {
        Interrupt::None => None,
        Interrupt::Slices { seed, max } => Some((ChaCha8Rng::seed_from_u64(seed), max)),
    };
    let num_globals = module.num_globals();
    let mut globals: Vec<Value> = Vec::new();
    let mut scratch = Vec::new();
    if let Some(start) = task.instance.start_function() {
        let thread = Thread::new(&task.instance, start, &[]).map_err(|e| e.to_string())?;
        match task.drive(thread, fuel, &mut mode, &mut scratch)? {
            (CallEnd::Exhausted, _) => return Ok(ModuleRun::StartExhausted),
            (CallEnd::Trapped(_), _) => return Ok(ModuleRun::InstantiationFailed),
            (CallEnd::Returned(_), thread) => {
                globals = (0..num_globals)
                    .filter_map(|g| thread.global(&task.instance, g))
                    .collect();
            }
        }
    }
    let exports: Vec<(String, Export)> = module
        .exports()
        .iter()
        .map(|(n, e)| (n.clone(), *e))
        .collect();
    let mut calls = Vec::new();
    for (k, (name, export)) in exports.iter().enumerate() {
        let Export::Func(func) = export else { continue };
        let ty = module.func_type(*func).ok_or("no type")?.clone();
        let arg_types: Vec<ArgType> = ty.params.iter().map(|t| arg_type(*t)).collect();
        let args: Vec<Value> = args_for(&arg_types, seed.wrapping_add(k as u64))
            .iter()
            .zip(ty.params.iter())
            .map(|(v, t)| from_val(v, *t))
            .collect();
        let mut trace = Vec::new();
        let (end, thread) = if *func < module.num_imported_funcs() {
            // An exported import: the host function itself.
            let name = &module.imports()[*func as usize].name;
            let args: Vec<Val> = args.iter().map(to_val).collect();
            let out = host_call(name, &args, &mut trace).ok_or("bad host call")?;
            let thread = None;
            (CallEnd::Returned(out), thread)
        } else {
            let mut thread =
                Thread::new(&task.instance, *func, &args).map_err(|e| e.to_string())?;
            for (g, v) in globals.iter().enumerate() {
                thread.set_global(&task.instance, g as u32, *v);
            }
            let (end, thread) = task.drive(thread, fuel, &mut mode, &mut trace)?;
            (end, Some(thread))
        };
        if let Some(thread) = &thread {
            globals = (0..num_globals)
                .filter_map(|g| thread.global(&task.instance, g))
                .collect();
        }
        let exported_globals = exports
            .iter()
            .filter_map(|(n, e)| match e {
                Export::Global(g) => Some((n.clone(), to_val(globals.get(*g as usize)?))),
                _ => None,
            })
            .collect();
        let exhausted = end == CallEnd::Exhausted;
        calls.push(Observation {
            export: name.clone(),
            end,
            globals: exported_globals,
            memory: task.memory(),
            trace,
        });
        if exhausted {
            break;
        }
    }
    Ok(ModuleRun::Calls(calls))
}
