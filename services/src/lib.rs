//! Spartan's system services as native tasks (naming service, VFS, console,
//! loader, checkpointer) and the `spartan` command. Built by the services
//! issue; empty until then.
