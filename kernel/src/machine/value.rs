//! Conversion between typed [`Value`]s of the API and the interpreter's
//! untyped 64-bit slots.
//!
//! Slot encoding: `i32` and `f32` in the low 32 bits (upper bits zero),
//! `i64` and `f64` as they are, references as 0 for null and `x + 1` for
//! function (or extern value) `x`.

use super::Value;
use super::module::ValType;

/// The slot of `value` if it has type `ty` (and a function reference names
/// one of the `num_funcs` functions).
pub(crate) fn slot_of(value: Value, ty: ValType, num_funcs: u32) -> Option<u64> {
    Some(match (value, ty) {
        (Value::I32(x), ValType::I32) => x as u64,
        (Value::I64(x), ValType::I64) => x,
        (Value::F32(x), ValType::F32) => x as u64,
        (Value::F64(x), ValType::F64) => x,
        (Value::FuncRef(None), ValType::FuncRef) => 0,
        (Value::FuncRef(Some(f)), ValType::FuncRef) if f < num_funcs => f as u64 + 1,
        (Value::ExternRef(None), ValType::ExternRef) => 0,
        (Value::ExternRef(Some(x)), ValType::ExternRef) => x as u64 + 1,
        _ => return None,
    })
}

/// The typed value of a slot holding a value of type `ty`.
pub(crate) fn value_of(slot: u64, ty: ValType) -> Value {
    let reference = |s: u64| s.checked_sub(1).map(|x| x as u32);
    match ty {
        ValType::I32 => Value::I32(slot as u32),
        ValType::I64 => Value::I64(slot),
        ValType::F32 => Value::F32(slot as u32),
        ValType::F64 => Value::F64(slot),
        ValType::FuncRef => Value::FuncRef(reference(slot)),
        ValType::ExternRef => Value::ExternRef(reference(slot)),
    }
}

/// The type of a value.
pub fn type_of(value: &Value) -> ValType {
    match value {
        Value::I32(_) => ValType::I32,
        Value::I64(_) => ValType::I64,
        Value::F32(_) => ValType::F32,
        Value::F64(_) => ValType::F64,
        Value::FuncRef(_) => ValType::FuncRef,
        Value::ExternRef(_) => ValType::ExternRef,
    }
}
