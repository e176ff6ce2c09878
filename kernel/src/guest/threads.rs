//! The scheduler's half of the guest thread calls (`thread_create`,
//! `thread_exit`; the kernel's half is `syscall::thread`).
//!
//! A guest names a new thread's entry the way C names a function pointer:
//! by its index in table 0. The entry must be a function of the module
//! (not an import) taking one `i64` (the argument); its results are
//! dropped when it returns, which ends the thread like `thread_exit`. The
//! new thread starts with a copy of its creator's globals as they are at
//! the call (so a runtime sets its own stack pointer from the argument).

use crate::machine::{self, Instance, Value};

/// The machine state of a thread created by `creator` at table 0 element
/// `entry` with `arg`, or `None` if the entry is not a valid thread entry.
pub(super) fn thread_at_entry(
    instance: &Instance,
    creator: &machine::Thread,
    entry: u64,
    arg: u64,
) -> Option<machine::Thread> {
    let index = usize::try_from(entry).ok()?;
    let table = instance.table(0)?;
    let Value::FuncRef(Some(func)) = *table.get(index)? else {
        return None;
    };
    let mut thread = machine::Thread::new(instance, func, &[Value::I64(arg)]).ok()?;
    for i in 0..instance.module().num_globals() {
        if let Some(v) = creator.global(instance, i) {
            thread.set_global(instance, i, v);
        }
    }
    Some(thread)
}
