//! What the kernel does when no thread can run: it idles on its clock
//! until the next deadline of a blocked thread, then fires the timeouts
//! that expired. In simulation that is a jump of virtual time (exactly what
//! the drivers always did, so runs stay bit-for-bit the same); in live mode
//! the host thread sleeps, and a [`Waker`] rung by another host thread
//! ends the sleep early so the driver can deliver what arrived.

use super::clock::{Idle, Waker};
use crate::kernel::Kernel;

impl Kernel {
    /// Idles until the next deadline (firing the timeouts that expired) or,
    /// in live mode, until a [`Waker`] of this kernel is rung. Call it only
    /// when no thread is runnable: it does not look at them.
    pub fn idle(&mut self) -> Idle {
        let end = self.clock.idle_until(self.next_deadline());
        if end == Idle::Deadline {
            self.advance_time(0);
        }
        end
    }

    /// A doorbell that other host threads ring to end an idle wait: `None`
    /// in simulation, where nothing outside the run may steer it (input is
    /// injected by the driver at chosen virtual times instead).
    pub fn waker(&self) -> Option<Waker> {
        self.clock.waker()
    }
}
