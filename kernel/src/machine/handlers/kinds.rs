//! Types that name one operator or access kind at compile time, so that a
//! generic handler (`bin_ll::<K>`, `load::<L>`) is monomorphised per kind
//! and never dispatches on it at run time; and the macros `lower.rs` uses
//! to pick the instance for a kind it holds as a value.

use super::mem::Mem;
use crate::machine::fuse::{Bin, Load, Store};
use crate::mm::{AddressSpace, Fault};

/// A binary operator of the fused ops.
pub(crate) trait BinKind {
    const K: Bin;
    /// Applies the operator (a match on a constant, folded away).
    #[inline(always)]
    fn eval(a: u64, b: u64) -> u64 {
        Self::K.eval(a, b)
    }
}

/// The value of kind `$k` at `$addr`, read with `$space.$get::<N>` (which
/// returns the bytes through `?`).
macro_rules! load_as {
    ($k:expr, $space:expr, $get:ident, $addr:expr) => {
        match $k {
            Load::U32 => u32::from_le_bytes($space.$get::<4>($addr)?) as u64,
            Load::U64 => u64::from_le_bytes($space.$get::<8>($addr)?),
            Load::I32S8 => $space.$get::<1>($addr)?[0] as i8 as i32 as u32 as u64,
            Load::U8 => $space.$get::<1>($addr)?[0] as u64,
            Load::I32S16 => i16::from_le_bytes($space.$get::<2>($addr)?) as i32 as u32 as u64,
            Load::U16 => u16::from_le_bytes($space.$get::<2>($addr)?) as u64,
            Load::I64S8 => $space.$get::<1>($addr)?[0] as i8 as i64 as u64,
            Load::I64S16 => i16::from_le_bytes($space.$get::<2>($addr)?) as i64 as u64,
            Load::I64S32 => i32::from_le_bytes($space.$get::<4>($addr)?) as i64 as u64,
        }
    };
}

/// Stores the low bytes of `$v` as width `$k` with `$space.$put`.
macro_rules! store_as {
    ($k:expr, $space:expr, $put:ident, $addr:expr, $v:expr) => {
        match $k {
            Store::B1 => $space.$put($addr, [$v as u8]),
            Store::B2 => $space.$put($addr, ($v as u16).to_le_bytes()),
            Store::B4 => $space.$put($addr, ($v as u32).to_le_bytes()),
            Store::B8 => $space.$put($addr, $v.to_le_bytes()),
        }
    };
}

/// A load kind: width and extension.
pub(crate) trait LoadKind {
    const K: Load;
    /// Loads the value at `addr` (a page still pending in a lazy
    /// restore's image is installed first).
    #[inline(always)]
    fn load(space: &mut AddressSpace, addr: u64) -> Result<u64, Fault> {
        Ok(load_as!(Self::K, space, load_mut, addr))
    }
    /// Loads the value at `addr` if the access cache holds its page
    /// ([`Mem::load_cached`]).
    #[inline(always)]
    fn load_cached(mem: &Mem<'_>, addr: u64) -> Option<u64> {
        Some(load_as!(Self::K, mem, load_cached, addr))
    }
}

/// A store width.
pub(crate) trait StoreKind {
    const K: Store;
    /// Stores the low bytes of `v` at `addr`.
    #[inline(always)]
    fn store(space: &mut AddressSpace, addr: u64, v: u64) -> Result<(), Fault> {
        store_as!(Self::K, space, store, addr, v)
    }
    /// Stores the low bytes of `v` at `addr` if the access cache holds its
    /// page for writing ([`Mem::store_cached`]); else false.
    #[inline(always)]
    fn store_cached(mem: &mut Mem<'_>, addr: u64, v: u64) -> bool {
        store_as!(Self::K, mem, store_cached, addr, v)
    }
}

macro_rules! kinds {
    ($tr:ident, $en:ident: $($k:ident)*) => {
        $(
            pub(crate) struct $k;
            impl $tr for $k {
                const K: $en = $en::$k;
            }
        )*
    };
}

/// Binary operator kinds.
pub(crate) mod bin {
    use super::{Bin, BinKind};
    kinds!(BinKind, Bin:
        I32Add I32Sub I32Mul I32And I32Or I32Xor I32Shl I32ShrS I32ShrU
        I32Eq I32Ne I32LtS I32LtU I32GtS I32GtU I32LeS I32LeU I32GeS I32GeU
        I64Add I64Sub I64Mul I64And I64Or I64Xor I64Shl I64ShrS I64ShrU
        I64Eq I64Ne I64LtS I64LtU I64GtS I64GtU I64LeS I64LeU I64GeS I64GeU);
}

/// Load kinds.
pub(crate) mod load {
    use super::{Load, LoadKind};
    kinds!(LoadKind, Load: U32 U64 I32S8 U8 I32S16 U16 I64S8 I64S16 I64S32);
}

/// Store widths.
pub(crate) mod store {
    use super::{Store, StoreKind};
    kinds!(StoreKind, Store: B1 B2 B4 B8);
}

/// Evaluates `$e` with the type `$K` naming the operator `$k` (a [`Bin`]).
macro_rules! with_bin {
    ($k:expr, $K:ident => $e:expr) => {{
        use $crate::machine::fuse::Bin as B;
        use $crate::machine::handlers::kinds::bin as b;
        match $k {
            B::I32Add => {
                type $K = b::I32Add;
                $e
            }
            B::I32Sub => {
                type $K = b::I32Sub;
                $e
            }
            B::I32Mul => {
                type $K = b::I32Mul;
                $e
            }
            B::I32And => {
                type $K = b::I32And;
                $e
            }
            B::I32Or => {
                type $K = b::I32Or;
                $e
            }
            B::I32Xor => {
                type $K = b::I32Xor;
                $e
            }
            B::I32Shl => {
                type $K = b::I32Shl;
                $e
            }
            B::I32ShrS => {
                type $K = b::I32ShrS;
                $e
            }
            B::I32ShrU => {
                type $K = b::I32ShrU;
                $e
            }
            B::I32Eq => {
                type $K = b::I32Eq;
                $e
            }
            B::I32Ne => {
                type $K = b::I32Ne;
                $e
            }
            B::I32LtS => {
                type $K = b::I32LtS;
                $e
            }
            B::I32LtU => {
                type $K = b::I32LtU;
                $e
            }
            B::I32GtS => {
                type $K = b::I32GtS;
                $e
            }
            B::I32GtU => {
                type $K = b::I32GtU;
                $e
            }
            B::I32LeS => {
                type $K = b::I32LeS;
                $e
            }
            B::I32LeU => {
                type $K = b::I32LeU;
                $e
            }
            B::I32GeS => {
                type $K = b::I32GeS;
                $e
            }
            B::I32GeU => {
                type $K = b::I32GeU;
                $e
            }
            B::I64Add => {
                type $K = b::I64Add;
                $e
            }
            B::I64Sub => {
                type $K = b::I64Sub;
                $e
            }
            B::I64Mul => {
                type $K = b::I64Mul;
                $e
            }
            B::I64And => {
                type $K = b::I64And;
                $e
            }
            B::I64Or => {
                type $K = b::I64Or;
                $e
            }
            B::I64Xor => {
                type $K = b::I64Xor;
                $e
            }
            B::I64Shl => {
                type $K = b::I64Shl;
                $e
            }
            B::I64ShrS => {
                type $K = b::I64ShrS;
                $e
            }
            B::I64ShrU => {
                type $K = b::I64ShrU;
                $e
            }
            B::I64Eq => {
                type $K = b::I64Eq;
                $e
            }
            B::I64Ne => {
                type $K = b::I64Ne;
                $e
            }
            B::I64LtS => {
                type $K = b::I64LtS;
                $e
            }
            B::I64LtU => {
                type $K = b::I64LtU;
                $e
            }
            B::I64GtS => {
                type $K = b::I64GtS;
                $e
            }
            B::I64GtU => {
                type $K = b::I64GtU;
                $e
            }
            B::I64LeS => {
                type $K = b::I64LeS;
                $e
            }
            B::I64LeU => {
                type $K = b::I64LeU;
                $e
            }
            B::I64GeS => {
                type $K = b::I64GeS;
                $e
            }
            B::I64GeU => {
                type $K = b::I64GeU;
                $e
            }
        }
    }};
}
pub(crate) use with_bin;

/// Evaluates `$e` with the type `$K` naming the operator `$k` if it is one
/// of the comparisons (the operators a loop's closing branch tests), else
/// `$other`: for the pair handlers (`pairs.rs`), so that they are
/// monomorphised only for operators they are chosen for.
macro_rules! with_cmp {
    ($k:expr, $K:ident => $e:expr, else $other:expr) => {
        $crate::machine::handlers::kinds::with_bin_in!($k, $K => $e, else $other;
            I32Eq I32Ne I32LtS I32LtU I32GtS I32GtU I32LeS I32LeU I32GeS I32GeU
            I64Eq I64Ne I64LtS I64LtU I64GtS I64GtU I64LeS I64LeU I64GeS I64GeU)
    };
}
pub(crate) use with_cmp;

/// Evaluates `$e` with the type `$K` naming the operator `$k` if it is an
/// addition (a loop counter's step), else `$other` (see [`with_cmp`]).
macro_rules! with_add {
    ($k:expr, $K:ident => $e:expr, else $other:expr) => {
        $crate::machine::handlers::kinds::with_bin_in!($k, $K => $e, else $other; I32Add I64Add)
    };
}
pub(crate) use with_add;

/// Evaluates `$e` with the type `$K` naming the operator `$k` if it is one
/// a `BinLoadC` may apply to a loaded value and a constant (masks, shifts,
/// offsets, bit flips), else `$other`: the one list of them, for fusion
/// (`Bin::with_loaded`) and lowering alike.
macro_rules! with_loaded {
    ($k:expr, $K:ident => $e:expr, else $other:expr) => {
        $crate::machine::handlers::kinds::with_bin_in!($k, $K => $e, else $other;
            I32Add I32Sub I32And I32Or I32Xor I32Shl I32ShrS I32ShrU
            I64Add I64And I64Or I64Xor I64Shl I64ShrU)
    };
}
pub(crate) use with_loaded;

/// Evaluates `$e` with the type `$K` naming the operator `$k` if it is one
/// of the operators listed, else `$other`.
macro_rules! with_bin_in {
    ($k:expr, $K:ident => $e:expr, else $other:expr; $($name:ident)*) => {{
        use $crate::machine::fuse::Bin as B;
        use $crate::machine::handlers::kinds::bin as b;
        match $k {
            $(B::$name => {
                type $K = b::$name;
                $e
            })*
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    }};
}
pub(crate) use with_bin_in;

/// Evaluates `$e` with the type `$L` naming the load kind `$l` (a [`Load`]).
macro_rules! with_load {
    ($l:expr, $L:ident => $e:expr) => {{
        use $crate::machine::fuse::Load as L;
        use $crate::machine::handlers::kinds::load as l;
        match $l {
            L::U32 => {
                type $L = l::U32;
                $e
            }
            L::U64 => {
                type $L = l::U64;
                $e
            }
            L::I32S8 => {
                type $L = l::I32S8;
                $e
            }
            L::U8 => {
                type $L = l::U8;
                $e
            }
            L::I32S16 => {
                type $L = l::I32S16;
                $e
            }
            L::U16 => {
                type $L = l::U16;
                $e
            }
            L::I64S8 => {
                type $L = l::I64S8;
                $e
            }
            L::I64S16 => {
                type $L = l::I64S16;
                $e
            }
            L::I64S32 => {
                type $L = l::I64S32;
                $e
            }
        }
    }};
}
pub(crate) use with_load;

/// Evaluates `$e` with the type `$S` naming the store width `$s` (a [`Store`]).
macro_rules! with_store {
    ($s:expr, $S:ident => $e:expr) => {{
        use $crate::machine::fuse::Store as S;
        use $crate::machine::handlers::kinds::store as s;
        match $s {
            S::B1 => {
                type $S = s::B1;
                $e
            }
            S::B2 => {
                type $S = s::B2;
                $e
            }
            S::B4 => {
                type $S = s::B4;
                $e
            }
            S::B8 => {
                type $S = s::B8;
                $e
            }
        }
    }};
}
pub(crate) use with_store;
