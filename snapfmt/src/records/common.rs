//! Small types shared by several records.

use serde::{Deserialize, Serialize};

/// The other end of a connection, call or shared area.
///
/// Task ids are not persistent across reboots, so cooperative services are
/// named by their persistent service id (thesis 5.4.7).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// A checkpointable task of this image's checkpoint set, by the task id
    /// it had at checkpoint time.
    Task(u64),
    /// A cooperative service, by its persistent service id.
    Service(String),
    /// A task outside the checkpoint set (an excluded client, thesis
    /// 5.4.8); restore substitutes a stand-in task.
    Outside(u64),
}

/// A point in time: seconds and nanoseconds since the Unix epoch (or since
/// boot of a simulated clock; the writer decides, the format just stores).
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}
