//! A seeded driver for native programs: the deterministic simulation loop.
//!
//! Each program is a state machine bound to one native thread. At every
//! step the driver picks one runnable program with the kernel's seeded
//! [`Entropy`](super::entropy::Entropy), lets it make progress, and moves
//! virtual time on by a fixed quantum; when nothing is runnable it idles
//! ([`Kernel::idle`]: a jump to the next deadline in simulation, a sleep in
//! live mode). The same seed gives the same interleaving, hence the same
//! trace.

use super::clock::Idle;
use crate::kernel::Kernel;
use crate::task::ThreadId;

/// What a program reports after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It made progress or blocked; step it again when it is runnable.
    Continue,
    /// It is finished.
    Done,
}

/// A native program: `step` runs until the thread blocks or a bit of work
/// is done.
pub trait NativeProgram {
    /// The thread it runs on.
    fn thread(&self) -> ThreadId;
    fn step(&mut self, k: &mut Kernel) -> Step;
}

/// Why [`Simulation::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every program finished.
    AllDone,
    /// Nothing can run and nothing could change that: no deadline is
    /// pending and (live mode) no waker exists.
    Deadlock,
    /// The step budget ran out.
    StepLimit,
    /// Live mode only: nothing could run and the kernel's
    /// [`Waker`](super::clock::Waker) was rung. Deliver what arrived, then
    /// run again.
    Woken,
}

/// The driver.
pub struct Simulation {
    programs: Vec<Box<dyn NativeProgram>>,
    done: Vec<bool>,
    /// Virtual nanoseconds per step.
    pub quantum_ns: u64,
}

impl Simulation {
    pub fn new(quantum_ns: u64) -> Self {
        Simulation {
            programs: Vec::new(),
            done: Vec::new(),
            quantum_ns,
        }
    }

    pub fn add(&mut self, p: Box<dyn NativeProgram>) {
        self.programs.push(p);
        self.done.push(false);
    }

    /// Runs at most `max_steps` steps.
    pub fn run(&mut self, k: &mut Kernel, max_steps: u64) -> RunEnd {
        for _ in 0..max_steps {
            let runnable = k.runnable_threads();
            let ready: Vec<usize> = (0..self.programs.len())
                .filter(|i| !self.done[*i] && runnable.contains(&self.programs[*i].thread()))
                .collect();
            if ready.is_empty() {
                if self.done.iter().all(|d| *d) {
                    return RunEnd::AllDone;
                }
                match k.idle() {
                    Idle::Deadline => continue,
                    Idle::Woken => return RunEnd::Woken,
                    Idle::Nothing => return RunEnd::Deadlock,
                }
            }
            let pick = ready[k.entropy().below(ready.len() as u64) as usize];
            if self.programs[pick].step(k) == Step::Done {
                self.done[pick] = true;
            }
            k.advance_time(self.quantum_ns);
        }
        if self.done.iter().all(|d| *d) {
            RunEnd::AllDone
        } else {
            RunEnd::StepLimit
        }
    }
}
