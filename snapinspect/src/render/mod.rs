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

/// The result of `validate`: `IMAGE: sound` or every problem, one a line.
pub fn validation(r: &ValidationReport) -> String {
    if r.sound {
        return format!("{}: sound\n", r.image);
    }
    let mut out = format!("{}: {} problem(s)\n", r.image, r.problems.len());
    for p in &r.problems {
        out.push_str(&format!("  {p}\n"));
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
    use super::bytes;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(4096), "4.0 KiB (4096 B)");
        assert_eq!(bytes(3 << 20), "3.0 MiB (3145728 B)");
    }
}
