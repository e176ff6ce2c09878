//! The envelope of every JSON document `snapinspect` prints.
//!
//! Each document is an object whose first key is `"schema"`, the version
//! of the JSON layout ([`SCHEMA`]), followed by the report's own fields.
//! The number grows when a field is removed, renamed or changes type;
//! adding a field keeps it. Values are typed: numbers are numbers,
//! yes/no are booleans, and something absent is `null` (never a
//! placeholder string such as `"-"`).

use serde::Serialize;

/// The version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// A report with the schema key in front of its fields.
#[derive(Debug, Serialize)]
pub struct Versioned<'a, T: Serialize> {
    pub schema: u32,
    #[serde(flatten)]
    pub report: &'a T,
}

impl<'a, T: Serialize> Versioned<'a, T> {
    pub fn new(report: &'a T) -> Self {
        Versioned {
            schema: SCHEMA,
            report,
        }
    }
}
