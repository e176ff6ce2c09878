//! Error numbers seen by tasks: in system call results (as `-errno`) and in
//! answers' return values (as the two's complement of `-errno`, `EOK` = 0).

use serde::{Deserialize, Serialize};

/// An error a system call or an answer reports to a task.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, thiserror::Error,
)]
#[repr(i64)]
pub enum Errno {
    /// No such object (phone, call id).
    #[error("ENOENT: no such object")]
    NoEntry = 1,
    /// An argument is out of range or malformed.
    #[error("EINVAL: invalid argument")]
    Invalid = 2,
    /// The other side of the connection hung up or is gone.
    #[error("EHANGUP: connection hung up")]
    Hangup = 3,
    /// A table is full (phones) or a size limit was exceeded.
    #[error("ELIMIT: limit reached")]
    Limit = 4,
    /// A wait ended at its deadline.
    #[error("ETIMEOUT: timed out")]
    Timeout = 5,
    /// The futex word no longer holds the expected value: try again.
    #[error("EAGAIN: value changed, try again")]
    Again = 6,
    /// A buffer address given by the task is not accessible.
    #[error("EFAULT: bad address")]
    Fault = 7,
    /// The operation is not supported (yet) for this kind of task.
    #[error("ENOTSUP: not supported")]
    NotSupported = 8,
    /// The call was refused (e.g. a connection attempt).
    #[error("EREFUSED: refused")]
    Refused = 9,
    /// No such system call.
    #[error("ENOSYS: no such system call")]
    NoSys = 10,
    /// The address range is taken by another area.
    #[error("EADDRINUSE: address range in use")]
    AddrInUse = 11,
}

/// The return value of a successful answer.
pub const EOK: u64 = 0;

impl Errno {
    /// Every errno, for decoding.
    pub const ALL: [Errno; 11] = [
        Errno::NoEntry,
        Errno::Invalid,
        Errno::Hangup,
        Errno::Limit,
        Errno::Timeout,
        Errno::Again,
        Errno::Fault,
        Errno::NotSupported,
        Errno::Refused,
        Errno::NoSys,
        Errno::AddrInUse,
    ];

    /// `-errno`: the value a system call returns.
    pub fn as_result(self) -> i64 {
        -(self as i64)
    }

    /// The answer return value carrying this error.
    pub fn retval(self) -> u64 {
        self.as_result() as u64
    }

    /// Decodes a system call result or answer return value; `None` for
    /// non-negative values and unknown codes.
    pub fn from_result(v: i64) -> Option<Errno> {
        Errno::ALL.into_iter().find(|e| e.as_result() == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_result(e.as_result()), Some(e));
            assert_eq!(Errno::from_result(e.retval() as i64), Some(e));
        }
        assert_eq!(Errno::from_result(0), None);
        assert_eq!(Errno::from_result(-999), None);
    }
}
