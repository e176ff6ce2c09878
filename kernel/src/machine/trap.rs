//! Traps: why a thread stopped for good, and where.

use crate::mm::Fault;

/// Why a thread trapped. The messages are those of the WebAssembly
/// specification's reference interpreter where one exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrapKind {
    #[error("unreachable")]
    Unreachable,
    #[error("integer overflow")]
    IntegerOverflow,
    #[error("integer divide by zero")]
    DivideByZero,
    #[error("invalid conversion to integer")]
    InvalidConversion,
    /// A load, store or bulk memory operation outside accessible memory.
    #[error("out of bounds memory access ({0})")]
    MemoryOutOfBounds(Fault),
    /// A bulk memory operation whose source lies outside a data segment.
    #[error("out of bounds memory access (data segment)")]
    DataOutOfBounds,
    #[error("out of bounds table access")]
    TableOutOfBounds,
    /// `call_indirect` with an index beyond the table.
    #[error("undefined element")]
    UndefinedElement,
    /// `call_indirect` through a null entry.
    #[error("uninitialized element")]
    UninitializedElement,
    #[error("indirect call type mismatch")]
    IndirectCallTypeMismatch,
    /// `call_indirect` of a reference that names no function (an index
    /// beyond the module's functions and the foreign functions met).
    #[error("indirect call of a function of another instance")]
    ForeignFunction,
    /// The call depth limit was reached.
    #[error("call stack exhausted")]
    CallStackExhausted,
    /// The operand stack limit was reached.
    #[error("call stack exhausted (operand stack limit)")]
    OperandStackExhausted,
}

/// A trap with the place it happened: the function and the offset of the
/// faulting instruction in the function's wasm code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (in function {func} at code offset {offset:#x})")]
pub struct Trap {
    pub kind: TrapKind,
    pub func: u32,
    pub offset: u32,
}
