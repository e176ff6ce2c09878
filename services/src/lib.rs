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
//! - [`console`]: virtual consoles with an in-memory screen, styled
//!   writes, cursor, size and key events, cooperating (a waiting read is
//!   retracted, so a checkpoint never waits for a key).
//!
//! - [`player`]: a scripted player typing keys into a console on a
//!   timeline of kernel time (the tests' and the demo's tetris game).
//! - [`rt`]: the guest runtime with helpers for the service protocols.
//! - [`vfs`]: files of a host directory, with directories and a working
//!   directory per connection; open files exported with their identity
//!   under the four file policies (backups saved in the image).
//!
//! - [`loader`]: starts programs of the VFS root for guests.
//! - [`control`]: the control protocol of a running system (frames,
//!   requests, responses, the client); [`server`]: its socket and the
//!   loop that serves it.
//! - [`cli`]: the `spartan` command line and what its clients share.
//! - [`system`]: a whole booted system and its operations (what the
//!   `spartan` command drives).
//!
//! - [`term`]: the host terminal side of a virtual console (drawing a
//!   screen through crossterm, terminal keys to console keys).
//! - [`demo`]: `spartan demo`, the whole story in one run.

pub mod checkpointer;
pub mod cli;
pub mod console;
pub mod control;
pub mod coop;
pub mod demo;
pub mod loader;
pub mod ns;
pub mod player;
pub mod rt;
pub mod server;
pub mod system;
pub mod term;
pub mod vfs;

use std::cell::RefCell;
use std::rc::Rc;

use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::task::ThreadId;

/// A service the scheduler runs and the host reaches too (to push a key
/// into the console, read a screen): the scheduler steps it, the host
/// borrows it between steps. Single-threaded, so deterministic.
pub struct Shared<P>(pub Rc<RefCell<P>>);

impl<P> Shared<P> {
    pub fn new(p: P) -> Shared<P> {
        Shared(Rc::new(RefCell::new(p)))
    }
}

impl<P> Clone for Shared<P> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<P: NativeProgram> NativeProgram for Shared<P> {
    fn thread(&self) -> ThreadId {
        self.0.borrow().thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        self.0.borrow_mut().step(k)
    }
}
