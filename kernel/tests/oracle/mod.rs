//! Shared pieces of the differential test and the checkpoint oracle:
//! module generation with wasm-smith, the deterministic host functions, and
//! one driver per engine (`wasmi_side`, `machine_side`) that runs every
//! exported function of a module in order and records what it observes.

pub mod generate;
pub mod machine_side;
pub mod wasmi_side;

/// A value as both engines can report it. NaNs compare by class only (the
/// machine canonicalizes NaN results); references by null-ness only (wasmi
/// function references are opaque handles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    I32(u32),
    I64(u64),
    F32(u32),
    F64(u64),
    Ref { null: bool },
}

impl Val {
    pub fn f32(bits: u32) -> Val {
        if f32::from_bits(bits).is_nan() {
            Val::F32(0x7fc0_0000)
        } else {
            Val::F32(bits)
        }
    }

    pub fn f64(bits: u64) -> Val {
        if f64::from_bits(bits).is_nan() {
            Val::F64(0x7ff8_0000_0000_0000)
        } else {
            Val::F64(bits)
        }
    }
}

/// Trap classes common to both engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapClass {
    Unreachable,
    MemoryOutOfBounds,
    TableOutOfBounds,
    IndirectCallToNull,
    IndirectCallTypeMismatch,
    DivideByZero,
    IntegerOverflow,
    InvalidConversion,
    Other,
}

/// How one call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEnd {
    Returned(Vec<Val>),
    Trapped(TrapClass),
    /// Out of fuel or out of stack: the engines' budgets differ, so nothing
    /// after this is compared.
    Exhausted,
}

/// What one call of an exported function left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub export: String,
    pub end: CallEnd,
    /// Values of the exported globals after the call, by export name order.
    pub globals: Vec<(String, Val)>,
    /// Memory 0 after the call (empty without memory).
    pub memory: Vec<u8>,
    /// Host-call trace of the call (import name and arguments).
    pub trace: Vec<String>,
}

/// The result of running a whole module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleRun {
    /// Instantiation (segments or start function) failed.
    InstantiationFailed,
    /// The start function ran out of fuel or stack.
    StartExhausted,
    Calls(Vec<Observation>),
}

/// The deterministic host functions offered to generated modules (module
/// "spartan"): their signatures are in `generate::IMPORTS_WAT`.
pub fn host_call(name: &str, args: &[Val], trace: &mut Vec<String>) -> Option<Vec<Val>> {
    trace.push(format!("{name}{args:?}"));
    match (name, args) {
        ("mix", [Val::I32(a), Val::I32(b)]) => Some(vec![Val::I32(a.wrapping_mul(31) ^ b)]),
        ("mix64", [Val::I64(x)]) => Some(vec![Val::I64(x.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15)]),
        ("log", [Val::I32(_)]) => Some(vec![]),
        _ => None,
    }
}

/// Arguments for a call with the given parameter types, from `seed`.
pub fn args_for(types: &[ArgType], seed: u64) -> Vec<Val> {
    let mut x = seed ^ 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    types
        .iter()
        .map(|t| {
            let r = next();
            let small = r % 4 != 0;
            match t {
                ArgType::I32 => Val::I32(if small {
                    (r >> 8) as u32 % 100
                } else {
                    (r >> 8) as u32
                }),
                ArgType::I64 => Val::I64(if small { (r >> 8) % 100 } else { r }),
                ArgType::F32 => Val::F32(
                    if small {
                        ((r >> 8) % 100) as f32
                    } else {
                        f32::from_bits(r as u32)
                    }
                    .to_bits(),
                ),
                ArgType::F64 => Val::F64(
                    if small {
                        ((r >> 8) % 100) as f64
                    } else {
                        f64::from_bits(r)
                    }
                    .to_bits(),
                ),
                ArgType::Ref => Val::Ref { null: true },
            }
        })
        .collect()
}

/// Parameter types, as far as argument generation needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    I32,
    I64,
    F32,
    F64,
    Ref,
}

/// Compares two runs, returning a description of the first difference.
pub fn compare(a_name: &str, a: &ModuleRun, b_name: &str, b: &ModuleRun) -> Result<(), String> {
    match (a, b) {
        (ModuleRun::StartExhausted, _) | (_, ModuleRun::StartExhausted) => Ok(()),
        (ModuleRun::Calls(xs), ModuleRun::Calls(ys)) => {
            for (x, y) in xs.iter().zip(ys) {
                if x.end == CallEnd::Exhausted || y.end == CallEnd::Exhausted {
                    return Ok(());
                }
                if x != y {
                    let what = if x.end != y.end {
                        format!("{a_name}: {:?}, {b_name}: {:?}", x.end, y.end)
                    } else if x.globals != y.globals {
                        format!(
                            "globals {a_name}: {:?}, {b_name}: {:?}",
                            x.globals, y.globals
                        )
                    } else if x.trace != y.trace {
                        format!(
                            "host calls {a_name}: {:?}, {b_name}: {:?}",
                            x.trace, y.trace
                        )
                    } else {
                        let at = x.memory.iter().zip(&y.memory).position(|(p, q)| p != q);
                        format!(
                            "memory differs (sizes {} and {}, first difference at {at:?})",
                            x.memory.len(),
                            y.memory.len()
                        )
                    };
                    return Err(format!("call of {:?}: {what}", x.export));
                }
            }
            if xs.len() != ys.len() {
                return Err(format!(
                    "{a_name} made {} calls, {b_name} {}",
                    xs.len(),
                    ys.len()
                ));
            }
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{a_name}: {a:?}, {b_name}: {b:?}")),
    }
}
