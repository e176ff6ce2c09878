//! Fused ops: the translator's peephole that turns the commonest short
//! sequences of wasm instructions into one internal op (`local.get a;
//! local.get b; i32.add`, `local.get i; i32.const 1; i32.add; local.set i`,
//! `local.get i; local.get n; i32.lt_u; br_if`, `local.get p; i32.load`,
//! `local.get v; i64.store` to an address computed before, ...).
//!
//! A fused op leaves the operand stack, locals and memory exactly as its
//! sequence would, and its wasm offset is that of the one instruction of
//! the sequence that can trap (a load or store): the last one, except in
//! `BinLLoad`, `BinLoadC` and `JumpLoadZ` ([`trapping_replaced`]). Fusion only
//! ever replaces the ops at the end of the current straight-line block, and
//! never a `Fuel`, `LoopHeader`, call or branch op, so no branch target and
//! no resume point falls inside a fused op: every place where `run` can stop
//! is still an op boundary with the same stack, and fuel still counts one
//! unit per wasm instruction.

use super::code::Op;

/// The binary operator of a fused op: the integer operators and
/// comparisons that compiled code uses most. i32 operators read only the
/// low 32 bits of their operands and yield a zero-extended result, so a
/// sign-extended constant operand is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bin {
    I32Add,
    I32Sub,
    I32Mul,
    I32And,
    I32Or,
    I32Xor,
    I32Shl,
    I32ShrS,
    I32ShrU,
    I32Eq,
    I32Ne,
    I32LtS,
    I32LtU,
    I32GtS,
    I32GtU,
    I32LeS,
    I32LeU,
    I32GeS,
    I32GeU,
    I64Add,
    I64Sub,
    I64Mul,
    I64And,
    I64Or,
    I64Xor,
    I64Shl,
    I64ShrS,
    I64ShrU,
    I64Eq,
    I64Ne,
    I64LtS,
    I64LtU,
    I64GtS,
    I64GtU,
    I64LeS,
    I64LeU,
    I64GeS,
    I64GeU,
}

impl Bin {
    /// The fused operator of a plain binary op, if it has one.
    pub fn of(op: &Op) -> Option<Bin> {
        Some(match op {
            Op::I32Add => Bin::I32Add,
            Op::I32Sub => Bin::I32Sub,
            Op::I32Mul => Bin::I32Mul,
            Op::I32And => Bin::I32And,
            Op::I32Or => Bin::I32Or,
            Op::I32Xor => Bin::I32Xor,
            Op::I32Shl => Bin::I32Shl,
            Op::I32ShrS => Bin::I32ShrS,
            Op::I32ShrU => Bin::I32ShrU,
            Op::I32Eq => Bin::I32Eq,
            Op::I32Ne => Bin::I32Ne,
            Op::I32LtS => Bin::I32LtS,
            Op::I32LtU => Bin::I32LtU,
            Op::I32GtS => Bin::I32GtS,
            Op::I32GtU => Bin::I32GtU,
            Op::I32LeS => Bin::I32LeS,
            Op::I32LeU => Bin::I32LeU,
            Op::I32GeS => Bin::I32GeS,
            Op::I32GeU => Bin::I32GeU,
            Op::I64Add => Bin::I64Add,
            Op::I64Sub => Bin::I64Sub,
            Op::I64Mul => Bin::I64Mul,
            Op::I64And => Bin::I64And,
            Op::I64Or => Bin::I64Or,
            Op::I64Xor => Bin::I64Xor,
            Op::I64Shl => Bin::I64Shl,
            Op::I64ShrS => Bin::I64ShrS,
            Op::I64ShrU => Bin::I64ShrU,
            Op::I64Eq => Bin::I64Eq,
            Op::I64Ne => Bin::I64Ne,
            Op::I64LtS => Bin::I64LtS,
            Op::I64LtU => Bin::I64LtU,
            Op::I64GtS => Bin::I64GtS,
            Op::I64GtU => Bin::I64GtU,
            Op::I64LeS => Bin::I64LeS,
            Op::I64LeU => Bin::I64LeU,
            Op::I64GeS => Bin::I64GeS,
            Op::I64GeU => Bin::I64GeU,
            _ => return None,
        })
    }

    /// True if the operator works on i64 operands.
    fn is_i64(self) -> bool {
        self as u8 >= Bin::I64Add as u8
    }

    /// The comparison that is true exactly when this one is false (only
    /// comparisons have one).
    fn negated(self) -> Option<Bin> {
        use Bin::*;
        Some(match self {
            I32Eq => I32Ne,
            I32Ne => I32Eq,
            I32LtS => I32GeS,
            I32GeS => I32LtS,
            I32LtU => I32GeU,
            I32GeU => I32LtU,
            I32GtS => I32LeS,
            I32LeS => I32GtS,
            I32GtU => I32LeU,
            I32LeU => I32GtU,
            I64Eq => I64Ne,
            I64Ne => I64Eq,
            I64LtS => I64GeS,
            I64GeS => I64LtS,
            I64LtU => I64GeU,
            I64GeU => I64LtU,
            I64GtS => I64LeS,
            I64LeS => I64GtS,
            I64GtU => I64LeU,
            I64LeU => I64GtU,
            _ => return None,
        })
    }

    /// Whether a `BinLoadC` applies this operator (`with_loaded!`).
    pub(crate) fn with_loaded(self) -> bool {
        crate::machine::handlers::kinds::with_loaded!(self, K => {
            let _ = std::marker::PhantomData::<K>;
            true
        }, else false)
    }

    /// The constant operand `value` (a slot) as an immediate, if it fits.
    fn imm(self, value: u64) -> Option<i32> {
        if self.is_i64() {
            i32::try_from(value as i64).ok()
        } else {
            Some(value as u32 as i32)
        }
    }

    /// Applies the operator to two slots.
    #[inline(always)]
    pub fn eval(self, a: u64, b: u64) -> u64 {
        let (x, y) = (a as u32, b as u32);
        match self {
            Bin::I32Add => x.wrapping_add(y) as u64,
            Bin::I32Sub => x.wrapping_sub(y) as u64,
            Bin::I32Mul => x.wrapping_mul(y) as u64,
            Bin::I32And => (x & y) as u64,
            Bin::I32Or => (x | y) as u64,
            Bin::I32Xor => (x ^ y) as u64,
            Bin::I32Shl => x.wrapping_shl(y) as u64,
            Bin::I32ShrS => (x as i32).wrapping_shr(y) as u32 as u64,
            Bin::I32ShrU => x.wrapping_shr(y) as u64,
            Bin::I32Eq => (x == y) as u64,
            Bin::I32Ne => (x != y) as u64,
            Bin::I32LtS => ((x as i32) < y as i32) as u64,
            Bin::I32LtU => (x < y) as u64,
            Bin::I32GtS => (x as i32 > y as i32) as u64,
            Bin::I32GtU => (x > y) as u64,
            Bin::I32LeS => (x as i32 <= y as i32) as u64,
            Bin::I32LeU => (x <= y) as u64,
            Bin::I32GeS => (x as i32 >= y as i32) as u64,
            Bin::I32GeU => (x >= y) as u64,
            Bin::I64Add => a.wrapping_add(b),
            Bin::I64Sub => a.wrapping_sub(b),
            Bin::I64Mul => a.wrapping_mul(b),
            Bin::I64And => a & b,
            Bin::I64Or => a | b,
            Bin::I64Xor => a ^ b,
            Bin::I64Shl => a.wrapping_shl(b as u32),
            Bin::I64ShrS => (a as i64).wrapping_shr(b as u32) as u64,
            Bin::I64ShrU => a.wrapping_shr(b as u32),
            Bin::I64Eq => (a == b) as u64,
            Bin::I64Ne => (a != b) as u64,
            Bin::I64LtS => ((a as i64) < b as i64) as u64,
            Bin::I64LtU => (a < b) as u64,
            Bin::I64GtS => (a as i64 > b as i64) as u64,
            Bin::I64GtU => (a > b) as u64,
            Bin::I64LeS => (a as i64 <= b as i64) as u64,
            Bin::I64LeU => (a <= b) as u64,
            Bin::I64GeS => (a as i64 >= b as i64) as u64,
            Bin::I64GeU => (a >= b) as u64,
        }
    }
}

/// The kind of a fused load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Load {
    /// 4 bytes zero-extended (i32.load, f32.load, i64.load32_u).
    U32,
    /// 8 bytes (i64.load, f64.load).
    U64,
    I32S8,
    U8,
    I32S16,
    U16,
    I64S8,
    I64S16,
    I64S32,
}

impl Load {
    /// The kind and offset of a plain load op.
    pub(crate) fn of(op: &Op) -> Option<(Load, u32)> {
        Some(match *op {
            Op::I32Load(o) | Op::F32Load(o) | Op::I64Load32U(o) => (Load::U32, o),
            Op::I64Load(o) | Op::F64Load(o) => (Load::U64, o),
            Op::I32Load8S(o) => (Load::I32S8, o),
            Op::I32Load8U(o) | Op::I64Load8U(o) => (Load::U8, o),
            Op::I32Load16S(o) => (Load::I32S16, o),
            Op::I32Load16U(o) | Op::I64Load16U(o) => (Load::U16, o),
            Op::I64Load8S(o) => (Load::I64S8, o),
            Op::I64Load16S(o) => (Load::I64S16, o),
            Op::I64Load32S(o) => (Load::I64S32, o),
            _ => return None,
        })
    }
}

/// The width of a fused store (the low bytes of the value are stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    B1,
    B2,
    B4,
    B8,
}

impl Store {
    /// The width and offset of a plain store op.
    pub(crate) fn of(op: &Op) -> Option<(Store, u32)> {
        Some(match *op {
            Op::I32Store8(o) | Op::I64Store8(o) => (Store::B1, o),
            Op::I32Store16(o) | Op::I64Store16(o) => (Store::B2, o),
            Op::I32Store(o) | Op::F32Store(o) | Op::I64Store32(o) => (Store::B4, o),
            Op::I64Store(o) | Op::F64Store(o) => (Store::B8, o),
            _ => return None,
        })
    }

    /// The constant `value` (a slot) as an immediate, if its stored bytes
    /// survive sign extension from 32 bits.
    fn imm(self, value: u64) -> Option<i32> {
        match self {
            Store::B8 => i32::try_from(value as i64).ok(),
            _ => Some(value as u32 as i32),
        }
    }
}

/// The last one or two ops of `tail`, for matching.
fn last2(tail: &[Op]) -> (Option<&Op>, Option<&Op>) {
    match tail {
        [.., x, y] => (Some(x), Some(y)),
        [y] => (None, Some(y)),
        [] => (None, None),
    }
}

/// A fusion of `op` (about to be emitted) with the ops at the end of `tail`
/// (the current straight-line block): the fused op and how many ops of
/// `tail` it replaces. `None` if `op` is to be emitted as it is.
pub(crate) fn fuse(tail: &[Op], op: &Op) -> Option<(Op, usize)> {
    let (x, y) = last2(tail);
    if let Some(k) = Bin::of(op) {
        return match (x, y) {
            (Some(&Op::LocalGet(a)), Some(&Op::LocalGet(b))) => Some((Op::BinLL { k, a, b }, 2)),
            (Some(&Op::LocalGet(a)), Some(&Op::LoadL { k: l, a: b, off })) => {
                Some((Op::BinLLoad { k, a, l, b, off }, 2))
            }
            (Some(&Op::LocalGet(a)), Some(&Op::Const(v))) if k.imm(v).is_some() => {
                k.imm(v).map(|c| (Op::BinLC { k, a, c }, 2))
            }
            (Some(&Op::LoadL { k: l, a, off }), Some(&Op::Const(v)))
                if k.with_loaded() && k.imm(v).is_some() =>
            {
                k.imm(v).map(|c| (Op::BinLoadC { k, l, a, off, c }, 2))
            }
            (_, Some(&Op::Const(v))) => Some(match k.imm(v) {
                Some(c) => (Op::BinSC { k, c }, 1),
                None => (Op::BinSW { k, c: v }, 1),
            }),
            _ => None,
        };
    }
    match *op {
        Op::I32Eqz | Op::I64Eqz => {
            let k = if *op == Op::I32Eqz {
                Bin::I32Eq
            } else {
                Bin::I64Eq
            };
            Some(match y {
                Some(&Op::LocalGet(a)) => (Op::BinLC { k, a, c: 0 }, 1),
                _ => (Op::BinSC { k, c: 0 }, 0),
            })
        }
        Op::LocalSet(d) => match y? {
            &Op::BinLL { k, a, b } => Some((Op::BinLLSet { k, a, b, d }, 1)),
            &Op::BinLC { k, a, c } => Some((Op::BinLCSet { k, a, c, d }, 1)),
            &Op::BinSC { k, c } => Some((Op::BinSCSet { k, c, d }, 1)),
            &Op::BinSW { k, c } => Some((Op::BinSWSet { k, c, d }, 1)),
            other => Bin::of(other).map(|k| (Op::BinSSSet { k, d }, 1)),
        },
        _ => {
            if let Some((k, off)) = Load::of(op) {
                return match y? {
                    &Op::LocalGet(a) => Some((Op::LoadL { k, a, off }, 1)),
                    _ => None,
                };
            }
            let (k, off) = Store::of(op)?;
            match (x, y?) {
                (Some(&Op::LocalGet(a)), &Op::LocalGet(v)) => {
                    Some((Op::StoreLL { k, a, v, off }, 2))
                }
                (Some(&Op::LocalGet(a)), &Op::Const(v)) => {
                    k.imm(v).map(|c| (Op::StoreLC { k, a, c, off }, 2))
                }
                // The address computed by the ops before.
                (_, &Op::LocalGet(v)) => Some((Op::StoreSL { k, v, off }, 1)),
                (_, &Op::Const(v)) => k.imm(v).map(|c| (Op::StoreSC { k, c, off }, 1)),
                _ => None,
            }
        }
    }
}

/// The store `op` (of width `k`, offset `off`) taking its address from
/// local `a` when `tail` ends with `local.get a` and one op that pushes the
/// value from locals (and memory) alone, writing no local: the caller
/// removes the `local.get` and keeps that op, which stays where it can
/// trap. `None` for any other tail.
pub(crate) fn fuse_store_past(tail: &[Op], op: &Op) -> Option<Op> {
    let (k, off) = Store::of(op)?;
    match *tail {
        [
            ..,
            Op::LocalGet(a),
            Op::LoadL { .. }
            | Op::BinLoadC { .. }
            | Op::BinLL { .. }
            | Op::BinLC { .. }
            | Op::BinLLoad { .. },
        ] => Some(Op::StoreLS { k, a, off }),
        _ => None,
    }
}

/// For a fused op that takes the wasm offset of one of the ops it replaces
/// (`replaced`), its load, rather than that of the instruction completing
/// it: the position of that op in `replaced`.
pub(crate) fn trapping_replaced(op: &Op, replaced: &[Op]) -> Option<usize> {
    if !matches!(
        op,
        Op::BinLLoad { .. } | Op::BinLoadC { .. } | Op::JumpLoadZ { .. }
    ) {
        return None;
    }
    replaced.iter().rposition(|r| matches!(r, Op::LoadL { .. }))
}

/// A conditional jump to `target` fused with the ops at the end of `tail`
/// that compute its condition: taken when the condition is not zero, or
/// when it is zero if `if_zero`. `None` if the tail computes the condition
/// in no way a fused jump can express.
pub(crate) fn fuse_jump(tail: &[Op], target: u32, if_zero: bool) -> Option<(Op, usize)> {
    let pick = |k: Bin| if if_zero { k.negated() } else { Some(k) };
    // A condition loaded from memory, or a loaded value compared with zero.
    match *tail {
        [.., Op::LoadL { k: l, a, off }] => {
            let k = if if_zero { Bin::I32Eq } else { Bin::I32Ne };
            return Some((
                Op::JumpLoadZ {
                    k,
                    l,
                    a,
                    off,
                    target,
                },
                1,
            ));
        }
        [.., Op::LoadL { k: l, a, off }, Op::BinSC { k, c: 0 }] => {
            let k = pick(k)?;
            return Some((
                Op::JumpLoadZ {
                    k,
                    l,
                    a,
                    off,
                    target,
                },
                2,
            ));
        }
        _ => {}
    }
    let y = tail.last()?;
    // A condition read from a local: compare it with zero.
    if let &Op::LocalGet(a) = y {
        let k = if if_zero { Bin::I32Eq } else { Bin::I32Ne };
        return Some((Op::JumpLC { k, a, c: 0, target }, 1));
    }
    Some(match *y {
        Op::BinLL { k, a, b } => (
            Op::JumpLL {
                k: pick(k)?,
                a,
                b,
                target,
            },
            1,
        ),
        Op::BinLC { k, a, c } => (
            Op::JumpLC {
                k: pick(k)?,
                a,
                c,
                target,
            },
            1,
        ),
        Op::BinSC { k, c } => (
            Op::JumpSC {
                k: pick(k)?,
                c,
                target,
            },
            1,
        ),
        ref other => (
            Op::JumpSS {
                k: pick(Bin::of(other)?)?,
                target,
            },
            1,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Instance, Limits, Module, Outcome, Thread, Value};
    use super::*;
    use crate::mm::{AddressSpace, MemLimits};

    /// Each function is one fusable pattern (or a near miss), with operands
    /// chosen where a wrong immediate or a missing i32 mask would show.
    const PATTERNS: &str = r#"(module
      (memory 1)
      (data (i32.const 200) "\07")
      (func (export "or_minus_one") (param i32) (result i64)
        (i64.extend_i32_u (i32.or (local.get 0) (i32.const -1))))
      (func (export "shl_local") (param i32 i32) (result i64)
        (local $r i32)
        (local.set $r (i32.shl (local.get 0) (local.get 1)))
        (i64.extend_i32_u (local.get $r)))
      (func (export "big_i64_const") (param i64) (result i64)
        (i64.add (local.get 0) (i64.const 0x1_0000_0000)))
      (func (export "neg_i64_const") (param i64) (result i64)
        (i64.add (local.get 0) (i64.const -5)))
      (func (export "count_down") (param i32) (result i64)
        (local $n i64)
        (block $out
          (loop $l
            (br_if $out (i32.eqz (local.get 0)))
            (local.set $n (i64.add (local.get $n) (i64.const 3)))
            (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
            (br $l)))
        (local.get $n))
      (func (export "if_ge_s") (param i32 i32) (result i64)
        (if (result i64) (i32.ge_s (local.get 0) (local.get 1))
          (then (i64.const 1)) (else (i64.const 2))))
      (func (export "store_load") (param i32) (result i64)
        (i64.store (local.get 0) (i64.const -2))
        (i32.store8 (local.get 0) (i32.const 0x1ff))
        (i64.load (local.get 0)))
      (func (export "oob") (param i32) (result i64)
        (i64.load offset=8 (local.get 0)))
      (func (export "xor_load") (param i64 i32) (result i64)
        (i64.xor (local.get 0) (i64.load8_u offset=2 (local.get 1))))
      (func (export "if_byte") (param i32) (result i64)
        (if (result i64) (i32.eqz (i32.load8_u offset=1 (local.get 0)))
          (then (i64.const 1)) (else (i64.const 2))))
      (func (export "wide_set") (param i64) (result i64)
        (local $h i64)
        (local.set $h (i64.mul (local.get 0) (i64.const 1099511628211)))
        (local.get $h))
      (func (export "store_computed") (param i32 i64) (result i64)
        (i64.store offset=8 (i32.and (local.get 0) (i32.const 0x1fff0)) (local.get 1))
        (i32.store16 offset=1 (i32.add (local.get 0) (i32.const 4)) (i32.const -3))
        (i64.load offset=8 (i32.and (local.get 0) (i32.const 0x1fff0))))
      (func (export "load_xor") (param i32) (result i64)
        (i64.extend_i32_u (i32.xor (i32.load8_u offset=2 (local.get 0)) (i32.const 0x5a))))
      (func (export "load_shr") (param i32) (result i64)
        (i64.shr_u (i64.load16_s (local.get 0)) (i64.const 4)))
      (func (export "copy_byte") (param i32 i32) (result i64)
        (i32.store8 offset=1 (local.get 0) (i32.xor (i32.load8_u (local.get 1)) (i32.const 3)))
        (i64.load8_u offset=1 (local.get 0)))
    )"#;

    fn call(name: &str, args: &[Value]) -> Outcome {
        let module = Module::new(PATTERNS.as_bytes()).expect("module");
        let mut space = AddressSpace::new(MemLimits::unlimited());
        let mut inst =
            Instance::new(module, &mut space, &Limits::default(), &[]).expect("instance");
        let mut th = Thread::new(&inst, name, args).expect("thread");
        th.run(&mut inst, &mut space, 1 << 20)
    }

    fn i64_result(name: &str, args: &[Value]) -> i64 {
        match call(name, args) {
            Outcome::Finished(v) => match v.as_slice() {
                [Value::I64(x)] => *x as i64,
                other => panic!("{name}: {other:?}"),
            },
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn op_stays_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Op>(), 16);
    }

    #[test]
    fn fused_ops_compute_like_the_sequence() {
        assert_eq!(i64_result("or_minus_one", &[Value::I32(5)]), 0xffff_ffff);
        assert_eq!(
            i64_result("shl_local", &[Value::I32(3), Value::I32(33)]),
            6,
            "shift count taken mod 32"
        );
        assert_eq!(i64_result("big_i64_const", &[Value::I64(1)]), 0x1_0000_0001);
        assert_eq!(i64_result("neg_i64_const", &[Value::I64(1)]), -4);
        assert_eq!(i64_result("count_down", &[Value::I32(7)]), 21);
        assert_eq!(
            i64_result("if_ge_s", &[Value::I32(-1i32 as u32), Value::I32(0)]),
            2
        );
        assert_eq!(i64_result("if_ge_s", &[Value::I32(0), Value::I32(0)]), 1);
        assert_eq!(i64_result("store_load", &[Value::I32(16)]), -256 + 0xff);
        assert_eq!(
            i64_result("xor_load", &[Value::I64(0x100), Value::I32(198)]),
            0x107,
            "byte 7 at 200"
        );
        assert_eq!(
            i64_result("if_byte", &[Value::I32(199)]),
            2,
            "byte 7 at 200"
        );
        assert_eq!(i64_result("if_byte", &[Value::I32(100)]), 1);
        assert_eq!(
            i64_result("wide_set", &[Value::I64(-3i64 as u64)]),
            (-3i64).wrapping_mul(1099511628211)
        );
        // The i64 at 40 (0x2a & 0x1fff0 = 32, offset 8), then 0xfffd at
        // 0x2a + 4 + 1 = 47: its low byte lands in the i64's last byte.
        assert_eq!(
            i64_result(
                "store_computed",
                &[Value::I32(0x2a), Value::I64(0x0102030405060708)]
            ),
            0xfd02030405060708u64 as i64
        );
    }

    #[test]
    fn loaded_value_and_constant_fuse_and_trap_at_the_load() {
        let module = Module::new(PATTERNS.as_bytes()).expect("module");
        let ops = |i: usize| module.code[i].ops.clone();
        assert!(ops(12).iter().any(|op| matches!(
            op,
            Op::BinLoadC {
                k: Bin::I32Xor,
                l: Load::U8,
                off: 2,
                c: 0x5a,
                ..
            }
        )));
        assert!(ops(13).iter().any(|op| matches!(
            op,
            Op::BinLoadC {
                k: Bin::I64ShrU,
                l: Load::I64S16,
                c: 4,
                ..
            }
        )));
        // Byte 7 at 200: the i16 at 199 is 0x0700.
        assert_eq!(i64_result("load_xor", &[Value::I32(198)]), 7 ^ 0x5a);
        assert_eq!(i64_result("load_shr", &[Value::I32(199)]), 0x0700 >> 4);
        let Outcome::Trap(t) = call("load_xor", &[Value::I32(65534)]) else {
            panic!("no trap");
        };
        // `local.get 0` at 1, the load at 3, `i32.const` at 6, `i32.xor`
        // at 8.
        assert_eq!(t.offset, 3, "{t:?}");
        for k in [Bin::I32Mul, Bin::I32Eq, Bin::I64Sub] {
            assert!(!k.with_loaded(), "{k:?}");
        }
    }

    #[test]
    fn store_of_a_value_computed_after_its_address_fuses_and_traps_in_place() {
        let module = Module::new(PATTERNS.as_bytes()).expect("module");
        let ops = &module.code[14].ops;
        assert!(
            matches!(
                ops[..],
                [
                    _,
                    Op::BinLoadC { a: 1, .. },
                    Op::StoreLS {
                        k: Store::B1,
                        a: 0,
                        off: 1
                    },
                    ..
                ]
            ),
            "{ops:?}"
        );
        // Byte 7 at 200, copied to 301 as 7 ^ 3.
        let copied = i64_result("copy_byte", &[Value::I32(300), Value::I32(200)]);
        assert_eq!(copied, 7 ^ 3);
        // `local.get 0` at 1, `local.get 1` at 3, the load at 5, `i32.const`
        // at 8, `i32.xor` at 10, the store at 11.
        for (args, offset) in [((0, 65536), 5), ((65535, 0), 11)] {
            let Outcome::Trap(t) = call("copy_byte", &[Value::I32(args.0), Value::I32(args.1)])
            else {
                panic!("no trap");
            };
            assert_eq!(t.offset, offset, "{t:?}");
        }
    }

    #[test]
    fn store_to_a_computed_address_traps_at_the_store() {
        // `local.get 0` at 1, `i32.const` at 3, `i32.and` at 7, `local.get
        // 1` at 8, the i64 store at 10; `local.get 0` at 13, `i32.const`
        // at 15, `i32.add` at 17, `i32.const` at 18, the i32 store at 20.
        for (x, offset) in [(0x10000, 10), (65535, 20)] {
            let Outcome::Trap(t) = call("store_computed", &[Value::I32(x), Value::I64(0)]) else {
                panic!("no trap");
            };
            assert_eq!(t.offset, offset, "{t:?}");
        }
    }

    #[test]
    fn patterns_are_fused() {
        let module = Module::new(PATTERNS.as_bytes()).expect("module");
        let ops = |i: usize| module.code[i].ops.clone();
        assert!(matches!(ops(0)[1], Op::BinLC { k: Bin::I32Or, .. }));
        assert!(matches!(ops(1)[1], Op::BinLLSet { k: Bin::I32Shl, .. }));
        // 0x1_0000_0000 does not fit an immediate: the wide form.
        assert!(ops(2).contains(&Op::BinSW {
            k: Bin::I64Add,
            c: 0x1_0000_0000
        }));
        assert!(
            ops(3)
                .iter()
                .any(|op| matches!(op, Op::BinLC { c: -5, .. }))
        );
        let loop_ops = ops(4);
        assert!(loop_ops.iter().any(|op| matches!(
            op,
            Op::JumpLC {
                k: Bin::I32Eq,
                c: 0,
                ..
            }
        )));
        assert!(loop_ops.iter().any(|op| matches!(
            op,
            Op::BinLCSet {
                k: Bin::I64Add,
                c: 3,
                ..
            }
        )));
        assert!(
            ops(5)
                .iter()
                .any(|op| matches!(op, Op::JumpLL { k: Bin::I32LtS, .. }))
        );
        assert!(ops(8).contains(&Op::BinLLoad {
            k: Bin::I64Xor,
            a: 0,
            l: Load::U8,
            b: 1,
            off: 2
        }));
        assert!(ops(9).iter().any(|op| matches!(
            op,
            Op::JumpLoadZ {
                k: Bin::I32Ne,
                l: Load::U8,
                off: 1,
                ..
            }
        )));
        assert!(ops(10).contains(&Op::BinSWSet {
            k: Bin::I64Mul,
            c: 1099511628211,
            d: 1
        }));
        let computed = ops(11);
        assert!(computed.iter().any(|op| matches!(
            op,
            Op::StoreSL {
                k: Store::B8,
                v: 1,
                off: 8
            }
        )));
        assert!(computed.iter().any(|op| matches!(
            op,
            Op::StoreSC {
                k: Store::B2,
                c: -3,
                off: 1
            }
        )));
        let mem = ops(6);
        assert!(mem.iter().any(|op| matches!(
            op,
            Op::StoreLC {
                k: Store::B8,
                c: -2,
                ..
            }
        )));
        assert!(
            mem.iter()
                .any(|op| matches!(op, Op::StoreLC { k: Store::B1, .. }))
        );
        assert!(
            mem.iter()
                .any(|op| matches!(op, Op::LoadL { k: Load::U64, .. }))
        );
    }
}
