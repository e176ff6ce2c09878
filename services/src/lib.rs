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
//! Still to come (the services issue): the console, the VFS, the loader,
//! the checkpointer and the `spartan` command.

pub mod coop;
pub mod ns;
