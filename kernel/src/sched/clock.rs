//! The kernel's clock, in nanoseconds since boot.
//!
//! In simulation the clock is virtual: it moves only when the scheduler
//! advances it, so a run is reproducible. In live mode it follows the host's
//! monotonic clock and `advance` only records that time may pass.

use std::time::Instant;

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
}

/// The live clock: host monotonic time since the kernel was created.
#[derive(Debug, Clone)]
pub struct RealClock {
    start: Instant,
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock {
            start: Instant::now(),
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
}
