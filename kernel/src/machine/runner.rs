//! The logic of the `wasmrun` example: run one exported function of a
//! module without arguments and describe its results the way wabt's
//! `wasm-interp --run-all-exports` does (`NAME() => i64:2864133`).
//!
//! Kept in the library so tests exercise exactly what the example runs.
//! Round-trip mode exports the thread and instance state at every slice
//! end, serializes both with postcard, deserializes them and resumes on a
//! fresh instance of the module ([`Instance::restore`]) over the same
//! address space (memory is the address space's business).

use super::{
    ExecState, Extern, ImportKind, Instance, InstanceState, InstantiateError, Limits, Module,
    ModuleError, Outcome, StateError, Thread, ThreadError, Value,
};
use crate::mm::{AddressSpace, MemLimits};

/// Why a run could not even start or continue (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Instantiate(#[from] InstantiateError),
    #[error(transparent)]
    Thread(#[from] ThreadError),
    #[error("state round trip: {0}")]
    State(#[from] StateError),
    #[error("state serialization: {0}")]
    Serialize(#[from] postcard::Error),
    #[error("import {0}.{1} is not a function; the runner supplies only functions")]
    Import(String, String),
    #[error("fuel slice must be at least 1")]
    ZeroSlice,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// `NAME() => type:value, ...` or `NAME() => error: <trap>`.
    pub line: String,
    /// The function finished (exit status 0) rather than trapped (1).
    pub ok: bool,
    /// Number of slices the run took.
    pub slices: u64,
}

/// How the runner runs the function.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Fuel per slice (`None`: one slice with unlimited fuel).
    pub slice: Option<u64>,
    /// Round-trip the state through serialization at every slice end.
    pub roundtrip: bool,
    pub limits: Limits,
    pub mem_limits: MemLimits,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            slice: None,
            roundtrip: false,
            limits: Limits::default(),
            mem_limits: MemLimits { max_bytes: 1 << 32 },
        }
    }
}

/// Formats a value as wabt does: `type:value`, integers unsigned decimal.
pub fn format_value(v: &Value) -> String {
    match v {
        Value::I32(x) => format!("i32:{x}"),
        Value::I64(x) => format!("i64:{x}"),
        Value::F32(b) => format!("f32:{}", f32::from_bits(*b)),
        Value::F64(b) => format!("f64:{}", f64::from_bits(*b)),
        Value::FuncRef(None) => "funcref:null".to_string(),
        Value::FuncRef(Some(f)) => format!("funcref:{f}"),
        Value::ExternRef(None) => "externref:null".to_string(),
        Value::ExternRef(Some(x)) => format!("externref:{x}"),
    }
}

/// Runs exported function `name` of the module in `bytes` (`.wat` or `.wasm`).
pub fn run(bytes: &[u8], name: &str, opts: &RunOptions) -> Result<RunReport, RunError> {
    if opts.slice == Some(0) {
        return Err(RunError::ZeroSlice);
    }
    let module = Module::new(bytes)?;
    let mut imports = Vec::new();
    for import in module.imports() {
        match import.kind {
            ImportKind::Func(_) => imports.push(Extern::Func),
            _ => return Err(RunError::Import(import.module.clone(), import.name.clone())),
        }
    }
    let mut space = AddressSpace::new(opts.mem_limits);
    let mut instance = Instance::new(module.clone(), &mut space, &opts.limits, &imports)?;
    let fuel = opts.slice.unwrap_or(u64::MAX);
    let mut slices = 0;
    let mut globals: Option<Vec<Value>> = None;
    let mut entries = Vec::new();
    if let Some(start) = module.start_function() {
        entries.push((start, false));
    }
    let target = match module.export(name) {
        Some(super::Export::Func(f)) => f,
        _ => return Err(ThreadError::NoSuchExport(name.to_string()).into()),
    };
    entries.push((target, true));
    for (func, is_target) in entries {
        let mut thread = Thread::new(&instance, func, &[])?;
        if let Some(g) = &globals {
            for (i, v) in g.iter().enumerate() {
                thread.set_global(&instance, i as u32, *v);
            }
        }
        let outcome = loop {
            slices += 1;
            match thread.run(&mut instance, &mut space, fuel) {
                Outcome::OutOfFuel => {
                    if opts.roundtrip {
                        (instance, thread) = roundtrip(
                            &module,
                            &mut space,
                            &opts.limits,
                            &imports,
                            &instance,
                            &thread,
                        )?;
                    }
                }
                Outcome::HostCall { import, .. } => {
                    let i = &module.imports()[import as usize];
                    let line = format!(
                        "{name}() => error: host call {}.{} not supported by the runner",
                        i.module, i.name
                    );
                    return Ok(RunReport {
                        line,
                        ok: false,
                        slices,
                    });
                }
                other => break other,
            }
        };
        globals = Some(
            (0..module.num_globals())
                .filter_map(|g| thread.global(&instance, g))
                .collect(),
        );
        match outcome {
            Outcome::Finished(values) if is_target => {
                let results: Vec<String> = values.iter().map(format_value).collect();
                let line = format!("{name}() => {}", results.join(", "));
                return Ok(RunReport {
                    line: line.trim_end().to_string(),
                    ok: true,
                    slices,
                });
            }
            Outcome::Finished(_) => {}
            Outcome::Trap(t) => {
                return Ok(RunReport {
                    line: format!("{name}() => error: {}", t.kind),
                    ok: false,
                    slices,
                });
            }
            Outcome::OutOfFuel | Outcome::HostCall { .. } => {}
        }
    }
    Ok(RunReport {
        line: format!("{name}() =>"),
        ok: true,
        slices,
    })
}

/// Exports both states, serializes and deserializes them, and resumes on a
/// fresh instance.
pub(super) fn roundtrip(
    module: &std::sync::Arc<Module>,
    space: &mut AddressSpace,
    limits: &Limits,
    imports: &[Extern],
    instance: &Instance,
    thread: &Thread,
) -> Result<(Instance, Thread), RunError> {
    let exec = postcard::to_allocvec(&thread.export_state(instance)?)?;
    let inst = postcard::to_allocvec(&instance.export_state())?;
    let exec: ExecState = postcard::from_bytes(&exec)?;
    let inst: InstanceState = postcard::from_bytes(&inst)?;
    let fresh = Instance::restore(module.clone(), space, limits, imports, &inst)?;
    let thread = Thread::import_state(&fresh, &exec)?;
    Ok((fresh, thread))
}
