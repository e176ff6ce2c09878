//! The kernel-side system call state of a thread.
//!
//! This is exactly what a snapshot's thread context carries besides the
//! machine state: which call is in progress (to be reissued on resume),
//! its deadline, the synchronous call already sent, and a result a wakeup
//! already delivered.

use serde::{Deserialize, Serialize};

use crate::ipc::CallId;

/// A blocking call in progress (the thread sleeps in it, is stopped in it,
/// or was woken and has not reissued it yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSyscall {
    pub number: u32,
    pub args: Vec<u64>,
    /// Absolute deadline fixed at the first issue.
    pub deadline: Option<u64>,
}

/// Per-thread kernel-side system call state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallState {
    pub in_progress: Option<PendingSyscall>,
    /// Sender-side id of the synchronous call this thread sent and waits
    /// for (thesis 5.4.8): a reissue waits instead of sending again.
    pub active_sync_call: Option<CallId>,
    /// The result a wakeup already delivered (thesis 5.3.6): the reissue
    /// returns it without running the call again.
    pub completed: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_postcard() {
        let s = SyscallState {
            in_progress: Some(PendingSyscall {
                number: 7,
                args: vec![1, 2, 3],
                deadline: Some(99),
            }),
            active_sync_call: Some(CallId(4)),
            completed: Some(-3),
        };
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<SyscallState>(&bytes).unwrap(), s);
    }
}
