//! Numeric semantics that Rust's operators do not give exactly as the
//! WebAssembly specification wants: deterministic NaNs, `min`/`max`,
//! `nearest`, and trapping float-to-integer truncation.
//!
//! Every arithmetic float result that is a NaN becomes the canonical quiet
//! NaN (positive sign), so results are the same on every host. Operations
//! that only move bits (`neg`, `abs`, `copysign`, reinterpretations, loads,
//! stores, constants) never pass through here and keep payloads exactly.

use super::trap::TrapKind;

/// Canonical quiet NaN of `f32`.
pub const F32_NAN: u32 = 0x7fc0_0000;
/// Canonical quiet NaN of `f64`.
pub const F64_NAN: u64 = 0x7ff8_0000_0000_0000;

#[inline(always)]
pub fn f32_of(slot: u64) -> f32 {
    f32::from_bits(slot as u32)
}

#[inline(always)]
pub fn f64_of(slot: u64) -> f64 {
    f64::from_bits(slot)
}

/// An `f32` arithmetic result as a slot, NaNs canonicalised.
#[inline(always)]
pub fn c32(x: f32) -> u64 {
    if x.is_nan() {
        F32_NAN as u64
    } else {
        x.to_bits() as u64
    }
}

/// An `f64` arithmetic result as a slot, NaNs canonicalised.
#[inline(always)]
pub fn c64(x: f64) -> u64 {
    if x.is_nan() { F64_NAN } else { x.to_bits() }
}

macro_rules! min_max {
    ($min:ident, $max:ident, $t:ty) => {
        /// `min` per the specification: NaN if either is NaN, -0 < +0.
        #[inline]
        pub fn $min(a: $t, b: $t) -> $t {
            if a.is_nan() || b.is_nan() {
                <$t>::NAN
            } else if a == b {
                // Equal values, or +0 and -0: the one with the sign bit wins.
                <$t>::from_bits(a.to_bits() | b.to_bits())
            } else if a < b {
                a
            } else {
                b
            }
        }

        /// `max` per the specification: NaN if either is NaN, +0 > -0.
        #[inline]
        pub fn $max(a: $t, b: $t) -> $t {
            if a.is_nan() || b.is_nan() {
                <$t>::NAN
            } else if a == b {
                <$t>::from_bits(a.to_bits() & b.to_bits())
            } else if a > b {
                a
            } else {
                b
            }
        }
    };
}

min_max!(f32_min, f32_max, f32);
min_max!(f64_min, f64_max, f64);

macro_rules! trunc {
    ($name:ident, $f:ty, $i:ty, $lo:expr, $hi:expr) => {
        /// Trapping truncation: NaN is an invalid conversion, a value outside
        /// `(lo, hi)` (exclusive bounds, as floats) an integer overflow.
        #[inline]
        pub fn $name(x: $f) -> Result<$i, TrapKind> {
            if x.is_nan() {
                return Err(TrapKind::InvalidConversion);
            }
            if !(x > $lo && x < $hi) {
                return Err(TrapKind::IntegerOverflow);
            }
            Ok(x as $i)
        }
    };
}

trunc!(i32_trunc_f32, f32, i32, -2147483904.0f32, 2147483648.0f32);
trunc!(u32_trunc_f32, f32, u32, -1.0f32, 4294967296.0f32);
trunc!(i32_trunc_f64, f64, i32, -2147483649.0f64, 2147483648.0f64);
trunc!(u32_trunc_f64, f64, u32, -1.0f64, 4294967296.0f64);
trunc!(
    i64_trunc_f32,
    f32,
    i64,
    -9223373136366403584.0f32,
    9223372036854775808.0f32
);
trunc!(u64_trunc_f32, f32, u64, -1.0f32, 18446744073709551616.0f32);
trunc!(
    i64_trunc_f64,
    f64,
    i64,
    -9223372036854777856.0f64,
    9223372036854775808.0f64
);
trunc!(u64_trunc_f64, f64, u64, -1.0f64, 18446744073709551616.0f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_signed_zero_and_nan() {
        assert_eq!(f32_min(0.0, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f32_max(-0.0, 0.0).to_bits(), 0.0f32.to_bits());
        assert!(f64_min(f64::NAN, 1.0).is_nan());
        assert_eq!(f64_max(1.0, 2.0), 2.0);
    }

    #[test]
    fn truncation_bounds() {
        assert_eq!(i32_trunc_f32(-2147483648.0), Ok(i32::MIN));
        assert_eq!(i32_trunc_f32(2147483648.0), Err(TrapKind::IntegerOverflow));
        assert_eq!(u32_trunc_f64(-0.9), Ok(0));
        assert_eq!(u32_trunc_f64(-1.0), Err(TrapKind::IntegerOverflow));
        assert_eq!(i64_trunc_f64(f64::NAN), Err(TrapKind::InvalidConversion));
        assert_eq!(c32(f32::NAN) as u32, F32_NAN);
    }
}
