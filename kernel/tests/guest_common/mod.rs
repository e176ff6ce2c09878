//! Shared set-up of the guest-task tests (`guest_tasks`, `guest_share`,
//! `guest_threads`): a simulated kernel, spawning a checkpointable WAT
//! program built with the runtime of `guest::rt`, and one task's log.

#![allow(dead_code)]

use spartan_kernel::guest::{Scheduler, rt};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};

/// A kernel in simulation mode with `seed`.
pub fn kernel(seed: u64) -> Kernel {
    Kernel::new(KernelConfig::simulation(seed))
}

/// Spawns `body` (wrapped by [`rt::program`]) as a checkpointable guest
/// task running its export `main` with `args`.
pub fn spawn(
    s: &mut Scheduler,
    k: &mut Kernel,
    name: &str,
    body: &str,
    args: &[Value],
) -> (TaskId, ThreadId) {
    s.spawn_guest(
        k,
        name,
        TaskPolicy::Checkpointable,
        rt::program(body).as_bytes(),
        "main",
        args,
    )
    .expect("guest loads")
}

/// The lines `task` wrote to the kernel log, in order.
pub fn log_of(k: &Kernel, task: TaskId) -> Vec<String> {
    k.log()
        .iter()
        .filter(|l| l.task == task)
        .map(|l| l.text.clone())
        .collect()
}
