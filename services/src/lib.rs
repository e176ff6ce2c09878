//! Spartan's system services as native tasks, built on the kernel's
//! native task API (`spartan_kernel::task::native`): each is a
//! [`NativeProgram`](spartan_kernel::sched::sim::NativeProgram) the fuel
//! scheduler runs in the same round robin as guest threads, and each is a
//! cooperative task named in images by its persistent service id.
//!
//! - [`ns`]: the naming service (registration under service numbers and
//!   persistent ids, connections to services).
//! - [`coop`]: the cooperation framework, the service side of the
//!   checkpointer's protocol (per-connection state, lazy cooperation,
//!   holding and releasing connections, export and import).
//!
//! - [`checkpointer`]: checkpoint sets (Algorithm 1), checkpoints with
//!   the services' cooperation (Algorithm 2) and restores (Algorithm 3).
//!
//! Still to come (the services issue): the console, the VFS, the loader
//! and the `spartan` command.

pub mod checkpointer;
pub mod coop;
pub mod ns;
