//! Handlers of the numeric instructions that have no fused form: one
//! handler per op, named after it, and [`numeric_handler`] to find it.
//! (The integer operators of `fuse::Bin` use `fused::bin_ss`.)

use super::{Handler, handler, next, pop, top, trap};
use crate::machine::code::Op;
use crate::machine::num::*;
use crate::machine::trap::TrapKind;

macro_rules! numeric {
    (
        un { $($un:ident |$ua:ident| $ue:expr;)* }
        bin { $($bn:ident |$ba:ident, $bb:ident| $be:expr;)* }
        try_un { $($tun:ident |$tua:ident| $tue:expr;)* }
        try_bin { $($tbn:ident |$tba:ident, $tbb:ident| $tbe:expr;)* }
        nop { $($nop:ident)* }
    ) => {
        $(handler! {
            fn $un(ip, sp, fp, fuel, cx) {
                let t = top(sp);
                let $ua = *t;
                *t = $ue;
                next!(ip.add(1), sp, fp, fuel, cx)
            }
        })*
        $(handler! {
            fn $bn(ip, sp, fp, fuel, cx) {
                let $bb = pop(&mut sp);
                let t = top(sp);
                let $ba = *t;
                *t = $be;
                next!(ip.add(1), sp, fp, fuel, cx)
            }
        })*
        $(handler! {
            fn $tun(ip, sp, fp, fuel, cx) {
                let t = top(sp);
                let $tua = *t;
                let r: Result<u64, TrapKind> = $tue;
                match r {
                    Ok(v) => *t = v,
                    Err(k) => return trap(ip, sp, fp, fuel, cx, k),
                }
                next!(ip.add(1), sp, fp, fuel, cx)
            }
        })*
        $(handler! {
            fn $tbn(ip, sp, fp, fuel, cx) {
                let $tbb = *sp.sub(1);
                let $tba = *sp.sub(2);
                let r: Result<u64, TrapKind> = $tbe;
                match r {
                    Ok(v) => *sp.sub(2) = v,
                    Err(k) => return trap(ip, sp, fp, fuel, cx, k),
                }
                next!(ip.add(1), sp.sub(1), fp, fuel, cx)
            }
        })*
        handler! {
            /// Reinterpretations: the slot stays as it is.
            fn nop(ip, sp, fp, fuel, cx) {
                next!(ip.add(1), sp, fp, fuel, cx)
            }
        }

        /// The handler of a numeric op without a fused form, if `op` is one.
        pub(crate) fn numeric_handler(op: &Op) -> Option<Handler> {
            Some(match op {
                $(Op::$un => $un,)*
                $(Op::$bn => $bn,)*
                $(Op::$tun => $tun,)*
                $(Op::$tbn => $tbn,)*
                $(Op::$nop => nop,)*
                _ => return None,
            })
        }
    };
}

numeric! {
    un {
        I32Eqz |a| (a as u32 == 0) as u64;
        I64Eqz |a| (a == 0) as u64;
        RefIsNull |a| (a == 0) as u64;
        I32Clz |a| (a as u32).leading_zeros() as u64;
        I32Ctz |a| (a as u32).trailing_zeros() as u64;
        I32Popcnt |a| (a as u32).count_ones() as u64;
        I64Clz |a| a.leading_zeros() as u64;
        I64Ctz |a| a.trailing_zeros() as u64;
        I64Popcnt |a| a.count_ones() as u64;
        F32Abs |a| a & 0x7fff_ffff;
        F32Neg |a| (a ^ 0x8000_0000) & 0xffff_ffff;
        F32Ceil |a| c32(f32_of(a).ceil());
        F32Floor |a| c32(f32_of(a).floor());
        F32Trunc |a| c32(f32_of(a).trunc());
        F32Nearest |a| c32(f32_of(a).round_ties_even());
        F32Sqrt |a| c32(f32_of(a).sqrt());
        F64Abs |a| a & 0x7fff_ffff_ffff_ffff;
        F64Neg |a| a ^ 0x8000_0000_0000_0000;
        F64Ceil |a| c64(f64_of(a).ceil());
        F64Floor |a| c64(f64_of(a).floor());
        F64Trunc |a| c64(f64_of(a).trunc());
        F64Nearest |a| c64(f64_of(a).round_ties_even());
        F64Sqrt |a| c64(f64_of(a).sqrt());
        I32WrapI64 |a| a as u32 as u64;
        I64ExtendI32S |a| a as i32 as i64 as u64;
        I64ExtendI32U |a| a as u32 as u64;
        F32ConvertI32S |a| (a as i32 as f32).to_bits() as u64;
        F32ConvertI32U |a| (a as u32 as f32).to_bits() as u64;
        F32ConvertI64S |a| (a as i64 as f32).to_bits() as u64;
        F32ConvertI64U |a| (a as f32).to_bits() as u64;
        F32DemoteF64 |a| c32(f64_of(a) as f32);
        F64ConvertI32S |a| (a as i32 as f64).to_bits();
        F64ConvertI32U |a| (a as u32 as f64).to_bits();
        F64ConvertI64S |a| (a as i64 as f64).to_bits();
        F64ConvertI64U |a| (a as f64).to_bits();
        F64PromoteF32 |a| c64(f32_of(a) as f64);
        I32Extend8S |a| a as i8 as i32 as u32 as u64;
        I32Extend16S |a| a as i16 as i32 as u32 as u64;
        I64Extend8S |a| a as i8 as i64 as u64;
        I64Extend16S |a| a as i16 as i64 as u64;
        I64Extend32S |a| a as i32 as i64 as u64;
        I32TruncSatF32S |a| f32_of(a) as i32 as u32 as u64;
        I32TruncSatF32U |a| f32_of(a) as u32 as u64;
        I32TruncSatF64S |a| f64_of(a) as i32 as u32 as u64;
        I32TruncSatF64U |a| f64_of(a) as u32 as u64;
        I64TruncSatF32S |a| f32_of(a) as i64 as u64;
        I64TruncSatF32U |a| f32_of(a) as u64;
        I64TruncSatF64S |a| f64_of(a) as i64 as u64;
        I64TruncSatF64U |a| f64_of(a) as u64;
    }
    bin {
        I32Rotl |a, b| (a as u32).rotate_left(b as u32 % 32) as u64;
        I32Rotr |a, b| (a as u32).rotate_right(b as u32 % 32) as u64;
        I64Rotl |a, b| a.rotate_left((b % 64) as u32);
        I64Rotr |a, b| a.rotate_right((b % 64) as u32);
        F32Eq |a, b| (f32_of(a) == f32_of(b)) as u64;
        F32Ne |a, b| (f32_of(a) != f32_of(b)) as u64;
        F32Lt |a, b| (f32_of(a) < f32_of(b)) as u64;
        F32Gt |a, b| (f32_of(a) > f32_of(b)) as u64;
        F32Le |a, b| (f32_of(a) <= f32_of(b)) as u64;
        F32Ge |a, b| (f32_of(a) >= f32_of(b)) as u64;
        F64Eq |a, b| (f64_of(a) == f64_of(b)) as u64;
        F64Ne |a, b| (f64_of(a) != f64_of(b)) as u64;
        F64Lt |a, b| (f64_of(a) < f64_of(b)) as u64;
        F64Gt |a, b| (f64_of(a) > f64_of(b)) as u64;
        F64Le |a, b| (f64_of(a) <= f64_of(b)) as u64;
        F64Ge |a, b| (f64_of(a) >= f64_of(b)) as u64;
        F32Add |a, b| c32(f32_of(a) + f32_of(b));
        F32Sub |a, b| c32(f32_of(a) - f32_of(b));
        F32Mul |a, b| c32(f32_of(a) * f32_of(b));
        F32Div |a, b| c32(f32_of(a) / f32_of(b));
        F32Min |a, b| c32(f32_min(f32_of(a), f32_of(b)));
        F32Max |a, b| c32(f32_max(f32_of(a), f32_of(b)));
        F32Copysign |a, b| (a & 0x7fff_ffff) | (b & 0x8000_0000);
        F64Add |a, b| c64(f64_of(a) + f64_of(b));
        F64Sub |a, b| c64(f64_of(a) - f64_of(b));
        F64Mul |a, b| c64(f64_of(a) * f64_of(b));
        F64Div |a, b| c64(f64_of(a) / f64_of(b));
        F64Min |a, b| c64(f64_min(f64_of(a), f64_of(b)));
        F64Max |a, b| c64(f64_max(f64_of(a), f64_of(b)));
        F64Copysign |a, b| (a & 0x7fff_ffff_ffff_ffff) | (b & 0x8000_0000_0000_0000);
    }
    try_un {
        I32TruncF32S |a| i32_trunc_f32(f32_of(a)).map(|v| v as u32 as u64);
        I32TruncF32U |a| u32_trunc_f32(f32_of(a)).map(|v| v as u64);
        I32TruncF64S |a| i32_trunc_f64(f64_of(a)).map(|v| v as u32 as u64);
        I32TruncF64U |a| u32_trunc_f64(f64_of(a)).map(|v| v as u64);
        I64TruncF32S |a| i64_trunc_f32(f32_of(a)).map(|v| v as u64);
        I64TruncF32U |a| u64_trunc_f32(f32_of(a));
        I64TruncF64S |a| i64_trunc_f64(f64_of(a)).map(|v| v as u64);
        I64TruncF64U |a| u64_trunc_f64(f64_of(a));
    }
    try_bin {
        I32DivS |a, b| {
            let (a, b) = (a as i32, b as i32);
            if b == 0 {
                Err(TrapKind::DivideByZero)
            } else if a == i32::MIN && b == -1 {
                Err(TrapKind::IntegerOverflow)
            } else {
                Ok((a / b) as u32 as u64)
            }
        };
        I32DivU |a, b| match b as u32 {
            0 => Err(TrapKind::DivideByZero),
            b => Ok(((a as u32) / b) as u64),
        };
        I32RemS |a, b| match b as i32 {
            0 => Err(TrapKind::DivideByZero),
            b => Ok((a as i32).wrapping_rem(b) as u32 as u64),
        };
        I32RemU |a, b| match b as u32 {
            0 => Err(TrapKind::DivideByZero),
            b => Ok(((a as u32) % b) as u64),
        };
        I64DivS |a, b| {
            let (a, b) = (a as i64, b as i64);
            if b == 0 {
                Err(TrapKind::DivideByZero)
            } else if a == i64::MIN && b == -1 {
                Err(TrapKind::IntegerOverflow)
            } else {
                Ok((a / b) as u64)
            }
        };
        I64DivU |a, b| match b {
            0 => Err(TrapKind::DivideByZero),
            b => Ok(a / b),
        };
        I64RemS |a, b| match b as i64 {
            0 => Err(TrapKind::DivideByZero),
            b => Ok((a as i64).wrapping_rem(b) as u64),
        };
        I64RemU |a, b| match b {
            0 => Err(TrapKind::DivideByZero),
            b => Ok(a % b),
        };
    }
    nop { I32ReinterpretF32 F32ReinterpretI32 I64ReinterpretF64 F64ReinterpretI64 }
}
