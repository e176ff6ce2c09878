//! The format version and the compatibility rule between versions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A `major.minor` format version.
///
/// A reader of version `M.n` accepts every `M.k` with `k <= n` and refuses
/// anything else (see `FORMAT.md`, "Compatibility").
#[cfg_attr(any(test, feature = "arbitrary"), derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct FormatVersion {
    pub major: u16,
    pub minor: u16,
}

/// The version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: FormatVersion = FormatVersion { major: 1, minor: 4 };

/// Format 1.4 (chunks may be packed: [`crate::ChunkHome::Packed`]).
pub const FORMAT_1_4: FormatVersion = FormatVersion { major: 1, minor: 4 };

/// Format 1.0 (chunk addresses over page digests).
pub const FORMAT_1_0: FormatVersion = FormatVersion { major: 1, minor: 0 };

impl FormatVersion {
    /// Whether a reader of version `self` may read data written as `other`.
    pub fn can_read(self, other: FormatVersion) -> bool {
        self.major == other.major && other.minor <= self.minor
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_rule() {
        let r = FormatVersion { major: 1, minor: 4 };
        assert!(r.can_read(FormatVersion { major: 1, minor: 0 }));
        assert!(r.can_read(FormatVersion { major: 1, minor: 4 }));
        assert!(!r.can_read(FormatVersion { major: 1, minor: 5 }));
        assert!(!r.can_read(FormatVersion { major: 0, minor: 2 }));
        assert!(!r.can_read(FormatVersion { major: 2, minor: 0 }));
        assert_eq!(r.to_string(), "1.4");
    }
}
