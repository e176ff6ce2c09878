//! Human-readable text for the reports of [`crate::show`],
//! [`crate::validate`], [`crate::diff`] and [`crate::pages`].
//!
//! The JSON form is the reports' serde serialization; this is the other
//! form. Output is deterministic: everything is printed in the reports'
//! (sorted) order.

mod diff;
mod show;

pub use diff::diff;
pub use show::overview;

use spartan_cli::escape;

use crate::hexdump;
use crate::pages::MemoryRange;
use crate::validate::ValidationReport;

/// `n` bytes as `12345 B` or `1.5 MiB (1572864 B)`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {} ({n} B)", UNITS[unit])
}

/// Seconds since the Unix epoch as an ISO 8601 UTC time
/// (`2023-11-14T22:13:20Z`), by the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`). Pure arithmetic: no clock is read.
pub fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The result of `validate`: `IMAGE: sound` or every problem, one a line.
pub fn validation(r: &ValidationReport) -> String {
    if r.sound {
        return format!("{}: sound\n", escape(&r.image));
    }
    let mut out = format!("{}: {} problem(s)\n", escape(&r.image), r.problems.len());
    for p in &r.problems {
        out.push_str(&format!("  {}\n", escape(&p.to_string())));
    }
    out
}

/// The result of `pages`: a line naming the range, then the hexdump.
pub fn memory(m: &MemoryRange) -> String {
    let sources: Vec<String> = m
        .pages
        .iter()
        .map(|p| format!("{:#x} {}", p.addr, p.source))
        .collect();
    format!(
        "task {} {:#x}..{:#x} ({} bytes; pages: {})\n{}",
        m.task,
        m.addr,
        u64::from(m.addr) + m.bytes.len() as u64,
        m.bytes.len(),
        sources.join(", "),
        hexdump::dump(m.addr, &m.bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::{bytes, utc};

    #[test]
    fn utc_times_are_calendar_correct() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4096), "4.0 KiB (4096 B)");
        assert_eq!(bytes(3 << 20), "3.0 MiB (3145728 B)");
    }
}
