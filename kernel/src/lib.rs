//! The Spartan microkernel.
//!
//! A hosted, HelenOS-style microkernel whose user tasks are WebAssembly
//! programs run by the kernel's own interpreter, so that every bit of a
//! task's state is the kernel's to stop, read, write and recreate.
//!
//! - [`mm`]: address spaces of areas and copy-on-write pages.
//! - [`machine`]: the deterministic WebAssembly interpreter.
//! - [`kernel`]: the [`Kernel`](kernel::Kernel) object owning everything.
//! - [`task`]: tasks, threads, native tasks, stop/go.
//! - [`guest`]: WebAssembly tasks bound to the kernel, the fuel scheduler.
//! - [`ipc`]: phones, answerboxes, calls.
//! - [`sched`]: clock, entropy, futexes, timeouts, the simulation driver.
//! - [`syscall`]: the system call ABI (`kernel/ABI.md`).
//! - [`checkpoint`]: checkpoint/restore of guest task sets into and from
//!   snapshot images; the per-task id view.

pub mod checkpoint;
pub mod guest;
pub mod ipc;
pub mod kernel;
pub mod machine;
pub mod mm;
pub mod sched;
pub mod syscall;
pub mod task;

pub use syscall::ABI_VERSION;

/// sha256 of the kernel crate's sources, computed at build time. Recorded in
/// every thread context of a snapshot image.
pub const KERNEL_BUILD_HASH: &str = env!("SPARTAN_KERNEL_BUILD_HASH");
