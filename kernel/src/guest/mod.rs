//! Guest tasks: WebAssembly programs bound to the kernel.
//!
//! - [`load`]: decoding a module and resolving its `"spartan"` imports to
//!   system calls by name, with signature checks.
//! - [`memory`]: [`GuestMemory`], the task's address space as the kernel's
//!   [`UserMemory`](crate::task::UserMemory).
//! - [`sched`]: the deterministic fuel [`Scheduler`] running guest threads
//!   and native programs, issuing host calls through `Kernel::syscall`.
//! - [`rt`]: a small WAT runtime (imports and helpers) for test programs.
//! - `threads`: the scheduler's half of `thread_create` / `thread_exit`.
//! - [`image`]: the scheduler's side of checkpoint/restore (machine state
//!   of a task's threads out, restored tasks and threads in).

pub mod image;
pub mod load;
pub mod memory;
pub mod rt;
pub mod sched;
mod threads;

pub use load::LoadError;
pub use memory::GuestMemory;
pub use sched::{GuestError, SchedConfig, SchedStats, Scheduler, guest_space, guest_space_ref};
