//! Parsing of addresses and address ranges given on the command line.
//!
//! Numbers are hexadecimal with a `0x` prefix or decimal; a range is
//! `ADDR` or `ADDR:LEN`. Everything is checked to fit the 32-bit address
//! space of a task.

use std::fmt;
use std::str::FromStr;

/// Default length of a range given without `:LEN`.
pub const DEFAULT_LEN: u32 = 256;

/// A problem with an address or range argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The text is not a decimal or 0x-prefixed hexadecimal number.
    #[error("`{0}` is not a number (use decimal or 0x-prefixed hex)")]
    NotANumber(String),
    /// The number does not fit 32 bits.
    #[error("`{0}` does not fit the 32-bit address space")]
    TooLarge(String),
    /// The range is empty.
    #[error("a range must not be empty")]
    Empty,
    /// The range runs past the end of the 32-bit address space.
    #[error("range {addr:#x}+{len:#x} runs past the end of the address space")]
    PastEnd { addr: u32, len: u32 },
}

/// Parses a 32-bit number: decimal, or hex with a `0x`/`0X` prefix.
pub fn parse_u32(text: &str) -> Result<u32, AddrError> {
    let t = text.trim();
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (t, 10),
    };
    let wide = u64::from_str_radix(&digits.replace('_', ""), radix)
        .map_err(|_| AddrError::NotANumber(text.to_string()))?;
    u32::try_from(wide).map_err(|_| AddrError::TooLarge(text.to_string()))
}

/// A non-empty range of a task's address space, within 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AddrRange {
    pub addr: u32,
    pub len: u32,
}

impl AddrRange {
    /// Builds a range, checking that it is non-empty and ends within 4 GiB.
    pub fn new(addr: u32, len: u32) -> Result<Self, AddrError> {
        if len == 0 {
            return Err(AddrError::Empty);
        }
        if u64::from(addr) + u64::from(len) > 1u64 << 32 {
            return Err(AddrError::PastEnd { addr, len });
        }
        Ok(Self { addr, len })
    }

    /// One past the last address, as a 64-bit number (may be exactly 4 GiB).
    pub fn end(&self) -> u64 {
        u64::from(self.addr) + u64::from(self.len)
    }
}

impl FromStr for AddrRange {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((a, l)) => AddrRange::new(parse_u32(a)?, parse_u32(l)?),
            None => AddrRange::new(parse_u32(s)?, DEFAULT_LEN),
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}:{:#x}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_both_radixes() {
        assert_eq!(parse_u32("4096"), Ok(4096));
        assert_eq!(parse_u32("0x1000"), Ok(4096));
        assert_eq!(parse_u32("0X1_000"), Ok(4096));
        assert_eq!(parse_u32("0xffffffff"), Ok(u32::MAX));
        assert!(matches!(
            parse_u32("0x1_0000_0000"),
            Err(AddrError::TooLarge(_))
        ));
        assert!(matches!(parse_u32("12ab"), Err(AddrError::NotANumber(_))));
        assert!(matches!(parse_u32(""), Err(AddrError::NotANumber(_))));
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(
            "0x2000:16".parse::<AddrRange>(),
            Ok(AddrRange {
                addr: 0x2000,
                len: 16
            })
        );
        assert_eq!(
            "0x2000".parse::<AddrRange>(),
            Ok(AddrRange {
                addr: 0x2000,
                len: DEFAULT_LEN
            })
        );
        assert_eq!("0x10:0".parse::<AddrRange>(), Err(AddrError::Empty));
        assert!(matches!(
            "0xffffff00:0x200".parse::<AddrRange>(),
            Err(AddrError::PastEnd { .. })
        ));
        assert_eq!(
            "0xffffff00:0x100".parse::<AddrRange>().map(|r| r.end()),
            Ok(1u64 << 32)
        );
    }
}
