//! Time, randomness, futexes and the deterministic driver of native tasks.
//!
//! Every source of nondeterminism a task can observe enters through this
//! module: the [`clock::Clock`] (virtual in simulation, monotonic host time
//! in live mode, with its [`clock::Waker`], the doorbell external input
//! rings to end an idle wait) and the seeded [`entropy::Entropy`] that the
//! simulation uses to pick the next thread.
//!
//! - [`clock`]: the clock trait and its two implementations.
//! - [`idle`]: what the kernel does when no thread can run
//!   ([`Kernel::idle`](crate::kernel::Kernel::idle)).
//! - [`entropy`]: seeded randomness.
//! - [`futex`]: futex keys and wait queues.
//! - [`timeout`]: deadlines of blocked threads.
//! - [`waitq`]: wait queues ordered by when each sleeper went to sleep.
//! - [`sim`]: a seeded round-robin driver for native programs.

pub mod clock;
pub mod entropy;
pub mod futex;
pub mod idle;
pub mod sim;
pub mod timeout;
pub mod waitq;
