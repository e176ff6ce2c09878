//! Hexdumps of task memory, single and side by side.
//!
//! The single form is the canonical `hexdump -C` layout with the task's
//! addresses in the first column. The two-image form prints rows that are
//! equal once (prefixed with a space) and rows that differ as a `-` row from
//! the first image followed by a `+` row from the second, like a unified
//! diff, so that a changed byte is easy to find.

use std::fmt::Write;

/// Bytes per row.
pub const ROW: usize = 16;

/// Formats one row: address, up to 16 bytes in hex (in two groups of 8),
/// and their printable ASCII.
pub fn row(addr: u64, bytes: &[u8]) -> String {
    let mut s = String::with_capacity(80);
    let _ = write!(s, "{addr:08x} ");
    for i in 0..ROW {
        if i % 8 == 0 {
            s.push(' ');
        }
        match bytes.get(i) {
            Some(b) => {
                let _ = write!(s, "{b:02x} ");
            }
            None => s.push_str("   "),
        }
    }
    s.push_str(" |");
    for &b in bytes {
        s.push(if b.is_ascii_graphic() || b == b' ' {
            char::from(b)
        } else {
            '.'
        });
    }
    s.push('|');
    s
}

/// Formats `bytes`, which start at address `addr`, as `hexdump -C` rows.
pub fn dump(addr: u32, bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(ROW).enumerate() {
        out.push_str(&row(u64::from(addr) + (i * ROW) as u64, chunk));
        out.push('\n');
    }
    out
}

/// Formats two versions of the same range: equal rows once with a leading
/// space, differing rows as `-` (from `a`) then `+` (from `b`).
///
/// `a` and `b` must be the same length (both start at `addr`); if not, the
/// shorter one is treated as ending early and its missing rows are omitted.
pub fn dump_pair(addr: u32, a: &[u8], b: &[u8]) -> String {
    let mut out = String::new();
    let rows = a.len().max(b.len()).div_ceil(ROW);
    for i in 0..rows {
        let at = u64::from(addr) + (i * ROW) as u64;
        let ra = a.get(i * ROW..((i + 1) * ROW).min(a.len())).unwrap_or(&[]);
        let rb = b.get(i * ROW..((i + 1) * ROW).min(b.len())).unwrap_or(&[]);
        if ra == rb {
            let _ = writeln!(out, " {}", row(at, ra));
        } else {
            if !ra.is_empty() {
                let _ = writeln!(out, "-{}", row(at, ra));
            }
            if !rb.is_empty() {
                let _ = writeln!(out, "+{}", row(at, rb));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dump_matches_hexdump_c_layout() {
        let bytes: Vec<u8> = (0x40..0x40 + 20).collect();
        let text = dump(0x1000, &bytes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "00001000  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|"
        );
        assert_eq!(
            lines[1],
            "00001010  50 51 52 53                                       |PQRS|"
        );
    }

    #[test]
    fn pair_marks_only_differing_rows() {
        let a = vec![0u8; 48];
        let mut b = a.clone();
        b[17] = 0xff;
        let text = dump_pair(0, &a, &b);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(" 00000000"));
        assert!(lines[1].starts_with("-00000010"));
        assert!(lines[2].starts_with("+00000010  00 ff"));
        assert!(lines[3].starts_with(" 00000020"));
    }
}
