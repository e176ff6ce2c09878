//! The reference side: runs a module on wasmi with fuel, answering the
//! imports with `host_call`.

use wasmi::TrapCode;
use wasmi::{Config, Engine, Extern, Func, Linker, Module, Store, Val as WVal, ValType};

use super::{CallEnd, ModuleRun, Observation, TrapClass, Val, args_for, host_call};

/// Per-call fuel of wasmi: far more than the machine gets, so that in
/// practice only the machine runs out (wasmi charges differently).
pub const FUEL_FACTOR: u64 = 4;

struct Host {
    trace: Vec<String>,
}

fn to_val(v: &WVal) -> Val {
    match v {
        WVal::I32(x) => Val::I32(*x as u32),
        WVal::I64(x) => Val::I64(*x as u64),
        WVal::F32(x) => Val::f32(x.to_bits()),
        WVal::F64(x) => Val::f64(x.to_bits()),
        WVal::FuncRef(r) => Val::Ref { null: r.is_null() },
        WVal::ExternRef(r) => Val::Ref { null: r.is_null() },
        WVal::V128(_) => Val::Ref { null: false },
    }
}

fn from_val(v: &Val, ty: &ValType) -> WVal {
    match (v, ty) {
        (Val::I32(x), _) => WVal::I32(*x as i32),
        (Val::I64(x), _) => WVal::I64(*x as i64),
        (Val::F32(x), _) => WVal::F32(wasmi::F32::from_bits(*x)),
        (Val::F64(x), _) => WVal::F64(wasmi::F64::from_bits(*x)),
        (Val::Ref { .. }, t) => WVal::default_for_ty(*t),
    }
}

fn arg_type(t: &ValType) -> super::ArgType {
    match t {
        ValType::I32 => super::ArgType::I32,
        ValType::I64 => super::ArgType::I64,
        ValType::F32 => super::ArgType::F32,
        ValType::F64 => super::ArgType::F64,
        _ => super::ArgType::Ref,
    }
}

fn classify(err: &wasmi::Error) -> CallEnd {
    match err.as_trap_code() {
        Some(TrapCode::OutOfFuel | TrapCode::StackOverflow) => CallEnd::Exhausted,
        Some(TrapCode::UnreachableCodeReached) => CallEnd::Trapped(TrapClass::Unreachable),
        Some(TrapCode::MemoryOutOfBounds) => CallEnd::Trapped(TrapClass::MemoryOutOfBounds),
        Some(TrapCode::TableOutOfBounds) => CallEnd::Trapped(TrapClass::TableOutOfBounds),
        Some(TrapCode::IndirectCallToNull) => CallEnd::Trapped(TrapClass::IndirectCallToNull),
        Some(TrapCode::BadSignature) => CallEnd::Trapped(TrapClass::IndirectCallTypeMismatch),
        Some(TrapCode::IntegerDivisionByZero) => CallEnd::Trapped(TrapClass::DivideByZero),
        Some(TrapCode::IntegerOverflow) => CallEnd::Trapped(TrapClass::IntegerOverflow),
        Some(TrapCode::BadConversionToInteger) => CallEnd::Trapped(TrapClass::InvalidConversion),
        _ => CallEnd::Trapped(TrapClass::Other),
    }
}

/// Runs every exported function of `bytes` in export-name order, each with
/// `fuel * FUEL_FACTOR`, with arguments derived from `seed`.
pub fn run(bytes: &[u8], fuel: u64, seed: u64) -> Result<ModuleRun, String> {
    let mut config = Config::default();
    config.consume_fuel(true);
    let engine = Engine::new(&config);
    let module =
        Module::new(&engine, bytes).map_err(|e| format!("wasmi rejects the module: {e}"))?;
    let mut store = Store::new(&engine, Host { trace: Vec::new() });
    store
        .set_fuel(fuel * FUEL_FACTOR)
        .map_err(|e| e.to_string())?;
    let mut linker = Linker::<Host>::new(&engine);
    for name in ["mix", "mix64", "log"] {
        let ty = match name {
            "mix" => wasmi::FuncType::new([ValType::I32, ValType::I32], [ValType::I32]),
            "mix64" => wasmi::FuncType::new([ValType::I64], [ValType::I64]),
            _ => wasmi::FuncType::new([ValType::I32], []),
        };
        let func = Func::new(&mut store, ty, move |mut caller, params, results| {
            let args: Vec<Val> = params.iter().map(to_val).collect();
            let out = host_call(name, &args, &mut caller.data_mut().trace)
                .ok_or_else(|| wasmi::Error::new("bad host call"))?;
            for (slot, v) in results.iter_mut().zip(&out) {
                *slot = from_val(v, &slot.ty());
            }
            Ok(())
        });
        linker
            .define("spartan", name, func)
            .map_err(|e| e.to_string())?;
    }
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => instance,
        Err(e) if classify(&e) == CallEnd::Exhausted => return Ok(ModuleRun::StartExhausted),
        Err(_) => return Ok(ModuleRun::InstantiationFailed),
    };
    let mut exports: Vec<(String, Extern)> = instance
        .exports(&store)
        .map(|e| (e.name().to_string(), e.into_extern()))
        .collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    let mut calls = Vec::new();
    for (k, (name, ext)) in exports.iter().enumerate() {
        let Extern::Func(func) = ext else { continue };
        let ty = func.ty(&store);
        let arg_types: Vec<_> = ty.params().iter().map(arg_type).collect();
        let args: Vec<WVal> = args_for(&arg_types, seed.wrapping_add(k as u64))
            .iter()
            .zip(ty.params())
            .map(|(v, t)| from_val(v, t))
            .collect();
        let mut results: Vec<WVal> = ty
            .results()
            .iter()
            .map(|t| WVal::default_for_ty(*t))
            .collect();
        store
            .set_fuel(fuel * FUEL_FACTOR)
            .map_err(|e| e.to_string())?;
        store.data_mut().trace.clear();
        let end = match func.call(&mut store, &args, &mut results) {
            Ok(()) => CallEnd::Returned(results.iter().map(to_val).collect()),
            Err(e) => classify(&e),
        };
        let globals = exports
            .iter()
            .filter_map(|(n, e)| match e {
                Extern::Global(g) => Some((n.clone(), to_val(&g.get(&store)))),
                _ => None,
            })
            .collect();
        let memory = exports
            .iter()
            .find_map(|(_, e)| match e {
                Extern::Memory(m) => Some(m.data(&store).to_vec()),
                _ => None,
            })
            .unwrap_or_default();
        let exhausted = end == CallEnd::Exhausted;
        calls.push(Observation {
            export: name.clone(),
            end,
            globals,
            memory,
            trace: std::mem::take(&mut store.data_mut().trace),
        });
        if exhausted {
            break;
        }
    }
    Ok(ModuleRun::Calls(calls))
}
