//! The kernel's clock, in nanoseconds since boot, and what the kernel does
//! with time when no thread can run.
//!
//! In simulation the clock is virtual: it moves only when the scheduler
//! advances it, so a run is reproducible, and an idle kernel jumps straight
//! to the next deadline. In live mode it follows the host's monotonic clock,
//! `advance` only records that time may pass, and an idle kernel *sleeps*
//! (the host thread blocks) until the next deadline or until a [`Waker`]
//! is rung: the doorbell through which the outside world (a key press, a
//! control request) gets the kernel's attention. Time and the doorbell are
//! the only ways the host's timing enters; a virtual clock has no doorbell,
//! so nothing outside a simulation can change its course.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How an idle wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// The deadline was reached (a virtual clock jumped to it).
    Deadline,
    /// A [`Waker`] was rung (live clocks only): something from outside is
    /// waiting to be delivered.
    Woken,
    /// Nothing can end the wait: no deadline, and no waker that could ring
    /// (always so for a virtual clock without a deadline).
    Nothing,
}

/// A source of time.
pub trait Clock: Send {
    /// Nanoseconds since boot.
    fn now(&self) -> u64;
    /// Lets `ns` nanoseconds pass (virtual clocks jump; live clocks ignore).
    fn advance(&mut self, ns: u64);
    /// Moves the clock to `t` if it is in the future (virtual clocks only).
    fn advance_to(&mut self, t: u64);
    /// Whether time moves only when advanced.
    fn is_virtual(&self) -> bool;
    /// Idles until time `deadline` (absolute) or, for a live clock, until
    /// its waker is rung, whichever comes first. A virtual clock jumps to
    /// the deadline at once. Without a deadline a live clock blocks only
    /// while a waker exists that could end the wait.
    fn idle_until(&mut self, deadline: Option<u64>) -> Idle;
    /// A doorbell for other host threads, or `None` (virtual clocks).
    fn waker(&self) -> Option<Waker>;
}

/// The simulation clock.
#[derive(Debug, Default, Clone)]
pub struct VirtualClock {
    now: u64,
}

impl VirtualClock {
    pub fn new(start: u64) -> Self {
        VirtualClock { now: start }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> u64 {
        self.now
    }
    fn advance(&mut self, ns: u64) {
        self.now = self.now.saturating_add(ns);
    }
    fn advance_to(&mut self, t: u64) {
        self.now = self.now.max(t);
    }
    fn is_virtual(&self) -> bool {
        true
    }
    fn idle_until(&mut self, deadline: Option<u64>) -> Idle {
        match deadline {
            Some(t) => {
                self.advance_to(t);
                Idle::Deadline
            }
            None => Idle::Nothing,
        }
    }
    fn waker(&self) -> Option<Waker> {
        None
    }
}

/// The live clock: host monotonic time since the kernel was created.
#[derive(Debug, Clone)]
pub struct RealClock {
    start: Instant,
    bell: Arc<Bell>,
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock {
            start: Instant::now(),
            bell: Arc::default(),
        }
    }
}

impl Clock for RealClock {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn advance(&mut self, _ns: u64) {}
    fn advance_to(&mut self, _t: u64) {}
    fn is_virtual(&self) -> bool {
        false
    }
    fn idle_until(&mut self, deadline: Option<u64>) -> Idle {
        let mut st = self.bell.lock();
        loop {
            if st.rung {
                st.rung = false;
                return Idle::Woken;
            }
            match deadline {
                Some(t) => {
                    let now = self.now();
                    if now >= t {
                        return Idle::Deadline;
                    }
                    // Spurious or early returns only go round the loop.
                    let wait = Duration::from_nanos(t - now);
                    st = self
                        .bell
                        .cv
                        .wait_timeout(st, wait)
                        .map_or_else(|e| e.into_inner().0, |r| r.0);
                }
                None if st.wakers == 0 => return Idle::Nothing,
                None => {
                    st = self
                        .bell
                        .cv
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }
    fn waker(&self) -> Option<Waker> {
        self.bell.lock().wakers += 1;
        Some(Waker {
            bell: Arc::clone(&self.bell),
        })
    }
}

/// The doorbell of a live clock: its state and the condition variable an
/// idle kernel sleeps on.
#[derive(Debug, Default)]
struct Bell {
    state: Mutex<BellState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct BellState {
    /// Rung since the last idle wait ended.
    rung: bool,
    /// Live [`Waker`] handles (while there are none, an idle wait without
    /// a deadline could never end, so it does not start).
    wakers: usize,
}

impl Bell {
    /// Locks the state. A poisoned lock is taken over: a flag and a count
    /// cannot be left half-updated.
    fn lock(&self) -> MutexGuard<'_, BellState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A handle that other host threads use to end a live kernel's idle wait
/// (from [`Kernel::waker`](crate::kernel::Kernel::waker)): ring it after
/// putting the event where the driver of the kernel will look for it. A
/// ring while the kernel is busy is kept until its next idle wait.
#[derive(Debug)]
pub struct Waker {
    bell: Arc<Bell>,
}

impl Waker {
    /// Ends the current (or the next) idle wait with [`Idle::Woken`].
    pub fn ring(&self) {
        self.bell.lock().rung = true;
        self.bell.cv.notify_all();
    }
}

impl Clone for Waker {
    fn clone(&self) -> Self {
        self.bell.lock().wakers += 1;
        Waker {
            bell: Arc::clone(&self.bell),
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.bell.lock().wakers -= 1;
        // A wait without a deadline may have no one left to end it.
        self.bell.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let mut c = VirtualClock::new(5);
        assert_eq!(c.now(), 5);
        c.advance(10);
        c.advance_to(12);
        assert_eq!(c.now(), 15);
        c.advance_to(40);
        assert_eq!(c.now(), 40);
        c.advance(u64::MAX);
        assert_eq!(c.now(), u64::MAX);
    }

    #[test]
    fn a_virtual_clock_idles_by_jumping_and_has_no_doorbell() {
        let mut c = VirtualClock::new(5);
        assert!(c.waker().is_none());
        assert_eq!(c.idle_until(Some(3)), Idle::Deadline);
        assert_eq!(c.now(), 5);
        assert_eq!(c.idle_until(Some(70)), Idle::Deadline);
        assert_eq!(c.now(), 70);
        assert_eq!(c.idle_until(None), Idle::Nothing);
        assert_eq!(c.now(), 70);
    }

    #[test]
    fn a_live_clock_sleeps_until_the_deadline_or_a_ring() {
        let mut c = RealClock::default();
        // No deadline and no waker: nothing could end the wait.
        assert_eq!(c.idle_until(None), Idle::Nothing);
        let t = c.now() + 5_000_000;
        assert_eq!(c.idle_until(Some(t)), Idle::Deadline);
        assert!(c.now() >= t);
        // A ring before the wait is kept; a ring from another thread ends
        // a wait that has no deadline.
        let w = c.waker().expect("live clocks have a doorbell");
        w.ring();
        assert_eq!(c.idle_until(Some(u64::MAX)), Idle::Woken);
        let w2 = w.clone();
        drop(w);
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            w2.ring();
        });
        assert_eq!(c.idle_until(None), Idle::Woken);
        ringer.join().expect("ringer");
        // The last waker is gone: a wait without a deadline ends at once.
        assert_eq!(c.idle_until(None), Idle::Nothing);
    }
}
