//! Portable execution state of a WebAssembly thread, in module terms.
//!
//! Everything here is expressed in terms of the *module* (function indices,
//! byte offsets into a function's code as it appears in the module's code
//! section, wasm values), never in terms of one interpreter build's internal
//! representation. Any kernel build implementing the same ABI can therefore
//! resume a thread from it.
//!
//! The kernel's WebAssembly machine produces these with its export operation
//! and consumes them with its import operation; snapfmt only stores them.

use serde::{Deserialize, Serialize};

/// One WebAssembly value, with its type.
///
/// Floats are carried as raw bit patterns so that NaN payloads survive a
/// round trip exactly.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    I32(u32),
    I64(u64),
    /// `f32`, as its IEEE-754 bit pattern.
    F32(u32),
    /// `f64`, as its IEEE-754 bit pattern.
    F64(u64),
    /// A function reference: `None` is `ref.null func`, `Some(i)` refers to
    /// function `i` of the module's function index space.
    FuncRef(Option<u32>),
    /// An external reference: `None` is `ref.null extern`; `Some(x)` is an
    /// opaque host value.
    ExternRef(Option<u32>),
}

/// One activation of a function on a thread's call stack.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Index of the function in the module's function index space
    /// (imported functions first).
    pub func_index: u32,
    /// Byte offset, relative to the start of the function's body in the code
    /// section (the byte after the body-size LEB), of the instruction that
    /// executes next when the thread resumes. For every frame but the
    /// innermost, this is the offset of the `call`/`call_indirect` that
    /// created the frame above it.
    pub code_offset: u32,
    /// The function's parameters followed by its declared locals.
    pub locals: Vec<Value>,
    /// The frame's operand stack, bottom first.
    pub operands: Vec<Value>,
}

/// Why the thread stopped where it did.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Suspension {
    /// Stopped between instructions (out of fuel, or not started yet): on
    /// resume, the instruction at the innermost frame's `code_offset` runs.
    Ready,
    /// Stopped inside a call to an imported function (a system call). The
    /// innermost frame's `code_offset` is that of the `call` instruction and
    /// the arguments have been popped off its operand stack into `args`.
    /// The host decides on resume whether the call completes with results or
    /// is issued again.
    HostCall { import: u32, args: Vec<Value> },
    /// The thread finished; `results` are the entry function's results.
    Finished { results: Vec<Value> },
}

/// Complete portable execution state of one thread.
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecState {
    /// Call frames, outermost first. Empty when the thread has finished.
    pub frames: Vec<Frame>,
    /// The values of the module's globals as the thread sees them, by
    /// global index: for a mutable global of its own, the thread's copy;
    /// for a mutable global shared with another instance (imported, or
    /// exported to an importer), the shared object's value at export, which
    /// the shared object keeps on import. Immutable globals hold their
    /// initial value and are included so the vector is indexed like the
    /// module's global index space.
    pub globals: Vec<Value>,
    /// Where the thread stands.
    pub suspension: Suspension,
    /// Fuel left in the current slice, if the machine tracks it per thread.
    pub fuel_left: u64,
}

/// State of a module instance shared by all of its threads, other than
/// memory (which lives in the address space).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    /// Every table's current elements, by table index.
    pub tables: Vec<Vec<Value>>,
    /// Indices of data segments dropped by `data.drop` (or consumed by
    /// instantiation, for active segments).
    pub dropped_data: Vec<u32>,
    /// Indices of element segments dropped by `elem.drop` (or consumed).
    pub dropped_elems: Vec<u32>,
}
