//! The WebAssembly machine: a deterministic interpreter whose threads can be
//! stopped, saved and resumed at any point where `run` returns.
//!
//! The embedding surface is shaped for a kernel:
//!
//! - [`Module::new`] decodes (`.wasm` or `.wat`), validates (WebAssembly 2.0
//!   without SIMD, exactly) and translates a module once.
//! - [`Instance::new`] places it into an [`AddressSpace`](crate::mm::AddressSpace):
//!   memory 0 becomes the primary area, active segments are applied, tables
//!   and dropped-segment flags are held by the instance. Imported functions
//!   are system calls answered by the embedder.
//! - [`Thread::new`] creates a thread at an entry function;
//!   [`Thread::run`] runs it with a fuel budget and returns an [`Outcome`]:
//!   finished, host call, out of fuel, or trap. After a host call the
//!   embedder completes it ([`Thread::complete_host_call`]) or leaves it to
//!   be issued again ([`Thread::reissue_host_call`]).
//! - Instances can be linked with each other ([`Instance::link`], with an
//!   [`InstanceId`]): an exporter shares a table or mutable global
//!   ([`Instance::share_table`], [`Instance::share_global`]) and importers
//!   use that same object; a function reference can name another
//!   instance's function, and calling it is a host call the embedder runs
//!   in that instance ([`Instance::foreign_function`]). A kernel task's
//!   instance shares nothing and pays nothing for this.
//! - Wherever `run` returned, [`Thread::export_state`] gives the thread's
//!   state in module terms ([`ExecState`]) and [`Thread::import_state`]
//!   recreates the thread on a fresh instance of the same module, checking
//!   everything. [`Instance::export_state`] / [`Instance::import_state`] do
//!   the same for tables and dropped segments. Memory is the address space's.
//!
//! Fuel is one unit per wasm instruction, charged in advance per block of
//! code between branch targets (what a branch skips is refunded) and
//! checked at loop headers and calls: every loop iteration and call costs
//! fuel, and a run stops at the first loop header or call after its fuel is
//! used up. Only forward code (branches out of blocks, returns) can run in
//! between, so the overshoot is bounded by the code size of the functions on
//! the stack.
//! Floats follow IEEE 754 exactly; every NaN produced by arithmetic is the
//! canonical quiet NaN, so runs are bit-for-bit deterministic on any host.

mod code;
mod exec;
mod fuse;
mod handlers;
mod instance;
mod lower;
mod module;
mod num;
pub mod runner;
mod shared;
mod state;
mod tables;
mod thread;
mod translate;
mod trap;
mod value;

#[cfg(test)]
mod linking_tests;
#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod tests;

pub use instance::{Extern, Instance, InstanceStateError, InstantiateError};
pub use module::{
    Export, FuncType, GlobalType, Import, ImportKind, MemoryType, Module, ModuleError, TableType,
    ValType, features,
};
pub use shared::{FuncAddr, InstanceId, SharedGlobal, SharedTable};
pub use snapfmt::exec::{ExecState, Frame, InstanceState, Suspension, Value};
pub use state::StateError;
pub use thread::{Entry, Outcome, Thread, ThreadError};
pub use trap::{Trap, TrapKind};
pub use value::type_of;

/// Per-task limits of the machine. Exceeding one traps cleanly; a hostile
/// module can only exhaust its own limits. Memory limits are the address
/// space's ([`MemLimits`](crate::mm::MemLimits)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of active frames of one thread.
    pub max_call_depth: u32,
    /// Maximum number of value slots (locals and operands of all frames) of
    /// one thread.
    pub max_operand_stack: u32,
    /// Maximum number of elements of one table.
    pub max_table_elements: u32,
}

impl Default for Limits {
    /// 10,000 frames, 1 Mi slots (8 MiB), 1 Mi table elements.
    fn default() -> Self {
        Limits {
            max_call_depth: 10_000,
            max_operand_stack: 1 << 20,
            max_table_elements: 1 << 20,
        }
    }
}
