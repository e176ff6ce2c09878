//! Handlers of loads, stores and the bulk memory and table instructions.

use super::kinds::{BinKind, LoadKind, StoreKind};
use super::{
    Cx, checked, handler, jump, local, next, next_via_driver, operands, pop, push, stopped, take,
    top,
};
use crate::machine::code::Op;
use crate::machine::instance::check_memory_range;
use crate::machine::trap::TrapKind;

/// The effective address of a wasm access: a 32-bit base plus the offset.
#[inline(always)]
fn addr(base: u64, off: u32) -> u64 {
    base as u32 as u64 + off as u64
}

// Every access handler comes in two instances. The fast one (`SLOW`
// false) does the access only through the copy of the address space's
// access cache in the context (`mem.rs`), which needs no call; on a miss it starts over as the slow instance
// (`SLOW` true) in a tail call, before it has changed anything. The slow
// instance does the whole access out of line and continues through the
// driver loop. Keeping every call out of the fast instance keeps it
// without a stack frame, and its tail call a jump (`inline(never)`: the
// slow instance must not be inlined back into the fast one).

/// Loads a value of kind `L` at `addr`: through the cache alone if not
/// `SLOW` (`None` on a miss), else in full (`None` after recording the
/// trap).
#[inline(always)]
fn load_value<L: LoadKind, const SLOW: bool>(cx: &mut Cx<'_>, addr: u64) -> Option<u64> {
    if SLOW {
        load_uncached::<L>(cx, addr)
    } else {
        L::load_cached(&cx.mem, addr)
    }
}

/// The whole load, out of line (scalar arguments, result in registers).
#[inline(never)]
fn load_uncached<L: LoadKind>(cx: &mut Cx<'_>, addr: u64) -> Option<u64> {
    checked(cx, |cx| {
        L::load(cx.mem.space(), addr).map_err(TrapKind::MemoryOutOfBounds)
    })
}

/// Stores `v` as width `S` at `addr` like [`load_value`]: false on a miss
/// (not `SLOW`) or after recording the trap (`SLOW`).
#[inline(always)]
fn store_value<S: StoreKind, const SLOW: bool>(cx: &mut Cx<'_>, addr: u64, v: u64) -> bool {
    if SLOW {
        store_uncached::<S>(cx, addr, v)
    } else {
        S::store_cached(&mut cx.mem, addr, v)
    }
}

/// The whole store, out of line like [`load_uncached`].
#[inline(never)]
fn store_uncached<S: StoreKind>(cx: &mut Cx<'_>, addr: u64, v: u64) -> bool {
    checked(cx, |cx| {
        S::store(cx.mem.space(), addr, v).map_err(TrapKind::MemoryOutOfBounds)
    })
    .is_some()
}

/// An access that [`load_value`] or [`store_value`] refused: the fast
/// instance starts over as `$slow`, the slow one leaves with the trap.
macro_rules! missed {
    ($SLOW:ident, $slow:expr, $ip:ident, $sp:ident, $fp:ident, $fuel:ident, $cx:ident) => {{
        if $SLOW {
            return stopped($ip, $sp, $fp, $fuel, $cx);
        }
        return $slow($ip, $sp, $fp, $fuel, $cx);
    }};
}

/// Continues at `$ip`: in a tail call from the fast instance, through the
/// driver loop from the slow one.
macro_rules! go_on {
    ($SLOW:ident, $ip:expr, $sp:expr, $fp:expr, $fuel:expr, $cx:expr) => {{
        if $SLOW {
            next_via_driver!($ip, $sp, $fp, $fuel, $cx)
        }
        next!($ip, $sp, $fp, $fuel, $cx)
    }};
}

handler! {
    /// A plain load (its op lowered to `I32Load(offset)`).
    #[inline(never)]
    fn load[L: LoadKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let off = operands!(ip, Op::I32Load(o) => o);
        let t = top(sp);
        match load_value::<L, SLOW>(cx, addr(*t, off)) {
            Some(v) => *t = v,
            None => missed!(SLOW, load::<L, true>, ip, sp, fp, fuel, cx),
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// A plain store (its op lowered to `I32Store(offset)`).
    #[inline(never)]
    fn store[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let off = operands!(ip, Op::I32Store(o) => o);
        let v = *sp.sub(1);
        let a = addr(*sp.sub(2), off);
        if !store_value::<S, SLOW>(cx, a, v) {
            missed!(SLOW, store::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp.sub(2), fp, fuel, cx)
    }
}

handler! {
    /// `LoadL`: `local.get a; load`.
    #[inline(never)]
    fn load_l[L: LoadKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, off) = operands!(ip, Op::LoadL { a, off, .. } => (a, off));
        match load_value::<L, SLOW>(cx, addr(*local(fp, a), off)) {
            Some(v) => push(&mut sp, v),
            None => missed!(SLOW, load_l::<L, true>, ip, sp, fp, fuel, cx),
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `BinLLoad`: local `a` and the value loaded at local `b` + `off`.
    #[inline(never)]
    fn bin_l_load[K: BinKind, L: LoadKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, b, off) = operands!(ip, Op::BinLLoad { a, b, off, .. } => (a, b, off));
        match load_value::<L, SLOW>(cx, addr(*local(fp, b), off)) {
            Some(y) => push(&mut sp, K::eval(*local(fp, a), y)),
            None => missed!(SLOW, bin_l_load::<K, L, true>, ip, sp, fp, fuel, cx),
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `BinLoadC`: the value loaded at local `a` + `off` and constant `c`.
    #[inline(never)]
    fn bin_load_c[K: BinKind, L: LoadKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, off, c) = operands!(ip, Op::BinLoadC { a, off, c, .. } => (a, off, c));
        match load_value::<L, SLOW>(cx, addr(*local(fp, a), off)) {
            Some(x) => push(&mut sp, K::eval(x, c as i64 as u64)),
            None => missed!(SLOW, bin_load_c::<K, L, true>, ip, sp, fp, fuel, cx),
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `JumpLoadZ`: jump if `k(load(local a + off), 0)` is not zero, to a
    /// target of kind `T`.
    #[inline(never)]
    fn jump_load_z[K: BinKind, L: LoadKind, const T: u8, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, off, target) =
            operands!(ip, Op::JumpLoadZ { a, off, target, .. } => (a, off, target));
        match load_value::<L, SLOW>(cx, addr(*local(fp, a), off)) {
            Some(v) => {
                if K::eval(v, 0) as u32 != 0 {
                    if SLOW {
                        take!(next_via_driver, T, jump(ip, target), sp, fp, fuel, cx)
                    }
                    take!(T, jump(ip, target), sp, fp, fuel, cx)
                }
            }
            None => missed!(SLOW, jump_load_z::<K, L, T, true>, ip, sp, fp, fuel, cx),
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `StoreLL`: store local `v` at local `a` + `off`.
    #[inline(never)]
    fn store_ll[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, v, off) = operands!(ip, Op::StoreLL { a, v, off, .. } => (a, v, off));
        if !store_value::<S, SLOW>(cx, addr(*local(fp, a), off), *local(fp, v)) {
            missed!(SLOW, store_ll::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `StoreLC`: store constant `c` at local `a` + `off`.
    #[inline(never)]
    fn store_lc[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, c, off) = operands!(ip, Op::StoreLC { a, c, off, .. } => (a, c, off));
        if !store_value::<S, SLOW>(cx, addr(*local(fp, a), off), c as i64 as u64) {
            missed!(SLOW, store_lc::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    /// `StoreLS`: store the top of the stack at local `a` + `off`.
    #[inline(never)]
    fn store_ls[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (a, off) = operands!(ip, Op::StoreLS { a, off, .. } => (a, off));
        if !store_value::<S, SLOW>(cx, addr(*local(fp, a), off), *sp.sub(1)) {
            missed!(SLOW, store_ls::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp.sub(1), fp, fuel, cx)
    }
}

handler! {
    /// `StoreSL`: store local `v` at the top of the stack + `off`.
    #[inline(never)]
    fn store_sl[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (v, off) = operands!(ip, Op::StoreSL { v, off, .. } => (v, off));
        if !store_value::<S, SLOW>(cx, addr(*sp.sub(1), off), *local(fp, v)) {
            missed!(SLOW, store_sl::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp.sub(1), fp, fuel, cx)
    }
}

handler! {
    /// `StoreSC`: store constant `c` at the top of the stack + `off`.
    #[inline(never)]
    fn store_sc[S: StoreKind, const SLOW: bool](ip, sp, fp, fuel, cx) {
        let (c, off) = operands!(ip, Op::StoreSC { c, off, .. } => (c, off));
        if !store_value::<S, SLOW>(cx, addr(*sp.sub(1), off), c as i64 as u64) {
            missed!(SLOW, store_sc::<S, true>, ip, sp, fp, fuel, cx)
        }
        go_on!(SLOW, ip.add(1), sp.sub(1), fp, fuel, cx)
    }
}

handler! {
    fn memory_size(ip, sp, fp, fuel, cx) {
        push(&mut sp, cx.mem.space().primary_wasm_pages() as u64);
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn memory_grow(ip, sp, fp, fuel, cx) {
        let t = top(sp);
        *t = match cx.mem.space().grow_primary(*t as u32) {
            Some(old) => old as u64,
            None => u32::MAX as u64,
        };
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn memory_init(ip, sp, fp, fuel, cx) {
        let seg = operands!(ip, Op::MemoryInit(s) => s);
        let n = *sp.sub(1) as u32;
        let s = *sp.sub(2) as u32;
        let d = *sp.sub(3) as u32;
        if checked(cx, |cx| cx.inst.memory_init(cx.mem.space(), seg, d, s, n)).is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}

handler! {
    fn data_drop(ip, sp, fp, fuel, cx) {
        let seg = operands!(ip, Op::DataDrop(s) => s);
        if let Some(d) = cx.inst.dropped_data.get_mut(seg as usize) {
            *d = true;
        }
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn memory_copy(ip, sp, fp, fuel, cx) {
        let n = *sp.sub(1) as u32 as u64;
        let s = *sp.sub(2) as u32 as u64;
        let d = *sp.sub(3) as u32 as u64;
        let copied = checked(cx, |cx| {
            let space = cx.mem.space();
            if n == 0 {
                check_memory_range(space, s, 0).and_then(|_| check_memory_range(space, d, 0))
            } else {
                space
                    .check_range(s, n, false)
                    .and_then(|_| space.copy_within(d, s, n))
                    .map_err(TrapKind::MemoryOutOfBounds)
            }
        });
        if copied.is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}

handler! {
    fn memory_fill(ip, sp, fp, fuel, cx) {
        let n = *sp.sub(1) as u32 as u64;
        let v = *sp.sub(2) as u8;
        let d = *sp.sub(3) as u32 as u64;
        let filled = checked(cx, |cx| {
            let space = cx.mem.space();
            if n == 0 {
                check_memory_range(space, d, 0)
            } else {
                space.fill(d, v, n).map_err(TrapKind::MemoryOutOfBounds)
            }
        });
        if filled.is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}

handler! {
    fn table_init(ip, sp, fp, fuel, cx) {
        let (table, elem) = operands!(ip, Op::TableInit { table, elem } => (table, elem));
        let n = *sp.sub(1) as u32;
        let s = *sp.sub(2) as u32;
        let d = *sp.sub(3) as u32;
        if checked(cx, |cx| cx.inst.table_init(table, elem, d, s, n)).is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}

handler! {
    fn elem_drop(ip, sp, fp, fuel, cx) {
        let seg = operands!(ip, Op::ElemDrop(s) => s);
        cx.inst.drop_elem(seg);
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn table_copy(ip, sp, fp, fuel, cx) {
        let (dst, src) = operands!(ip, Op::TableCopy { dst, src } => (dst, src));
        let n = *sp.sub(1) as u32 as usize;
        let s = *sp.sub(2) as u32 as usize;
        let d = *sp.sub(3) as u32 as usize;
        if checked(cx, |cx| cx.inst.table_copy(dst, src, d, s, n)).is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}

handler! {
    fn table_get(ip, sp, fp, fuel, cx) {
        let t = operands!(ip, Op::TableGet(t) => t);
        let slot = top(sp);
        let i = *slot as u32 as usize;
        match checked(cx, |cx| cx.inst.table_get(t, i)) {
            Some(v) => *slot = v,
            None => return stopped(ip, sp, fp, fuel, cx),
        }
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn table_set(ip, sp, fp, fuel, cx) {
        let t = operands!(ip, Op::TableSet(t) => t);
        let v = *sp.sub(1);
        let i = *sp.sub(2) as u32 as usize;
        if checked(cx, |cx| cx.inst.table_set(t, i, v)).is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(2), fp, fuel, cx)
    }
}

handler! {
    fn table_size(ip, sp, fp, fuel, cx) {
        let t = operands!(ip, Op::TableSize(t) => t);
        push(&mut sp, cx.inst.table_size(t) as u64);
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn table_grow(ip, sp, fp, fuel, cx) {
        let t = operands!(ip, Op::TableGrow(t) => t);
        let n = pop(&mut sp) as u32;
        let slot = top(sp);
        *slot = cx.inst.table_grow(t, n, *slot);
        next_via_driver!(ip.add(1), sp, fp, fuel, cx)
    }
}

handler! {
    fn table_fill(ip, sp, fp, fuel, cx) {
        let t = operands!(ip, Op::TableFill(t) => t);
        let n = *sp.sub(1) as u32 as usize;
        let v = *sp.sub(2);
        let i = *sp.sub(3) as u32 as usize;
        if checked(cx, |cx| cx.inst.table_fill(t, i, n, v)).is_none() {
            return stopped(ip, sp, fp, fuel, cx);
        }
        next_via_driver!(ip.add(1), sp.sub(3), fp, fuel, cx)
    }
}
