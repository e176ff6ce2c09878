//! The table operations of an instance, over its own tables and the tables
//! it shares with other instances, and the conversion of function
//! references between an instance's terms and absolute terms (`shared.rs`).
//!
//! Every operation takes and returns slots relative to the instance. An own
//! table holds such slots and is read and written directly; a shared table
//! holds absolute references and converts at each access (only instances
//! linked with each other have one).

use super::instance::{Instance, Table, TableCell};
use super::module::ValType;
use super::shared::{CellValue, FuncAddr, FuncHandle, SharedGlobal, TableData, lock};
use super::trap::TrapKind;

impl Instance {
    /// The absolute reference of function reference slot `slot` (`None` for
    /// null, or for a slot naming no function).
    pub(crate) fn handle_of(&self, slot: u64) -> Option<FuncHandle> {
        let f = u32::try_from(slot.checked_sub(1)?).ok()?;
        match self.module.func_type(f) {
            Some(ty) => Some(FuncHandle {
                addr: FuncAddr {
                    instance: self.id,
                    func: f,
                },
                ty: ty.clone(),
            }),
            None => lock(&self.foreign)
                .get(f - self.module.num_funcs())
                .cloned(),
        }
    }

    /// The slot of an absolute reference in this instance's terms,
    /// registering a foreign function met for the first time.
    pub(crate) fn slot_of_handle(&self, handle: Option<&FuncHandle>) -> u64 {
        let Some(h) = handle else { return 0 };
        if h.addr.instance == self.id {
            return h.addr.func as u64 + 1;
        }
        let j = lock(&self.foreign).intern(h);
        self.module.num_funcs() as u64 + 1 + j as u64
    }

    /// An element slot of this instance as an element of shared table `data`.
    pub(crate) fn shared_slot_of(&self, data: &mut TableData, slot: u64) -> u64 {
        if data.ty.element != ValType::FuncRef {
            return slot;
        }
        match self.handle_of(slot) {
            Some(h) => data.funcs.intern(&h) as u64 + 1,
            None => 0,
        }
    }

    /// An element of shared table `data` as a slot of this instance.
    fn slot_of_shared(&self, data: &TableData, elem: u64) -> u64 {
        if data.ty.element != ValType::FuncRef {
            return elem;
        }
        let handle = elem.checked_sub(1).and_then(|k| data.funcs.get(k as u32));
        self.slot_of_handle(handle)
    }

    /// The value of shared global `cell` as a slot of this instance.
    pub(crate) fn cell_get(&self, cell: &SharedGlobal) -> u64 {
        let value = cell.lock().value.clone();
        match value {
            CellValue::Slot(s) => s,
            CellValue::Func(h) => self.slot_of_handle(h.as_ref()),
        }
    }

    /// Sets shared global `cell` to slot `slot` of this instance.
    pub(crate) fn cell_set(&self, cell: &SharedGlobal, slot: u64) {
        let is_func = cell.lock().ty.content == ValType::FuncRef;
        let value = if is_func {
            CellValue::Func(self.handle_of(slot))
        } else {
            CellValue::Slot(slot)
        };
        cell.lock().value = value;
    }

    /// `global.get` of a global that may live in a shared object.
    pub(crate) fn global_get(&self, index: u32, thread_globals: &[u64]) -> u64 {
        match self.global_cells.get(index as usize) {
            Some(Some(cell)) => self.cell_get(cell),
            _ => thread_globals.get(index as usize).copied().unwrap_or(0),
        }
    }

    /// `global.set` of a global that may live in a shared object.
    pub(crate) fn global_set(&self, index: u32, thread_globals: &mut [u64], slot: u64) {
        match self.global_cells.get(index as usize) {
            Some(Some(cell)) => self.cell_set(cell, slot),
            _ => {
                if let Some(g) = thread_globals.get_mut(index as usize) {
                    *g = slot;
                }
            }
        }
    }

    /// All elements of table `index`.
    pub(crate) fn table_slots(&self, index: u32) -> Option<Vec<u64>> {
        match self.tables.get(index as usize)? {
            TableCell::Own(t) => Some(t.elems.clone()),
            TableCell::Shared(s) => {
                let data = s.lock();
                Some(
                    data.elems
                        .iter()
                        .map(|e| self.slot_of_shared(&data, *e))
                        .collect(),
                )
            }
        }
    }

    /// Replaces all elements of own or shared table `index`.
    pub(crate) fn set_table_slots(&mut self, index: u32, slots: Vec<u64>) {
        match self.tables.get_mut(index as usize) {
            Some(TableCell::Own(t)) => t.elems = slots,
            Some(TableCell::Shared(s)) => {
                let s = s.clone();
                let mut data = s.lock();
                data.elems.clear();
                for slot in slots {
                    let e = self.shared_slot_of(&mut data, slot);
                    data.elems.push(e);
                }
            }
            None => {}
        }
    }

    /// The entry `call_indirect` finds at `i` of a table that is not an own
    /// one (own tables are read in the interpreter loop).
    pub(crate) fn indirect_entry(&self, table: u32, i: usize) -> Result<u64, TrapKind> {
        self.table_entry(table, i).ok_or(TrapKind::UndefinedElement)
    }

    /// Entry `i` of table `table` as a slot value; `None` past its end.
    fn table_entry(&self, table: u32, i: usize) -> Option<u64> {
        match self.tables.get(table as usize) {
            Some(TableCell::Own(t)) => t.elems.get(i).copied(),
            Some(TableCell::Shared(s)) => {
                let data = s.lock();
                data.elems.get(i).map(|e| self.slot_of_shared(&data, *e))
            }
            None => None,
        }
    }

    /// `table.size`.
    pub(crate) fn table_size(&self, table: u32) -> u32 {
        match self.tables.get(table as usize) {
            Some(TableCell::Own(t)) => t.elems.len() as u32,
            Some(TableCell::Shared(s)) => s.lock().elems.len() as u32,
            None => 0,
        }
    }

    /// `table.get`.
    pub(crate) fn table_get(&self, table: u32, i: usize) -> Result<u64, TrapKind> {
        self.table_entry(table, i).ok_or(TrapKind::TableOutOfBounds)
    }

    /// `table.set`.
    pub(crate) fn table_set(&mut self, table: u32, i: usize, v: u64) -> Result<(), TrapKind> {
        match self.tables.get_mut(table as usize) {
            Some(TableCell::Own(t)) => match t.elems.get_mut(i) {
                Some(e) => {
                    *e = v;
                    Ok(())
                }
                None => Err(TrapKind::TableOutOfBounds),
            },
            Some(TableCell::Shared(s)) => {
                let s = s.clone();
                let mut data = s.lock();
                if i >= data.elems.len() {
                    return Err(TrapKind::TableOutOfBounds);
                }
                data.elems[i] = self.shared_slot_of(&mut data, v);
                Ok(())
            }
            None => Err(TrapKind::TableOutOfBounds),
        }
    }

    /// `table.grow`: the old size, or `u32::MAX` (as `-1`) if the table
    /// cannot grow by `n`.
    pub(crate) fn table_grow(&mut self, table: u32, n: u32, init: u64) -> u64 {
        let max_elems = self.limits.max_table_elements;
        let grown = |ty_max: Option<u32>, old: usize| {
            let new = old as u64 + n as u64;
            (new <= ty_max.unwrap_or(u32::MAX).min(max_elems) as u64).then_some(new as usize)
        };
        match self.tables.get_mut(table as usize) {
            Some(TableCell::Own(t)) => match grown(t.ty.max, t.elems.len()) {
                Some(new) => {
                    let old = t.elems.len() as u64;
                    t.elems.resize(new, init);
                    old
                }
                None => u32::MAX as u64,
            },
            Some(TableCell::Shared(s)) => {
                let s = s.clone();
                let mut data = s.lock();
                match grown(data.ty.max, data.elems.len()) {
                    Some(new) => {
                        let old = data.elems.len() as u64;
                        let e = self.shared_slot_of(&mut data, init);
                        data.elems.resize(new, e);
                        old
                    }
                    None => u32::MAX as u64,
                }
            }
            None => u32::MAX as u64,
        }
    }

    /// `table.fill`.
    pub(crate) fn table_fill(
        &mut self,
        table: u32,
        i: usize,
        n: usize,
        v: u64,
    ) -> Result<(), TrapKind> {
        match self.tables.get_mut(table as usize) {
            Some(TableCell::Own(t)) if i + n <= t.elems.len() => {
                t.elems[i..i + n].fill(v);
                Ok(())
            }
            Some(TableCell::Shared(s)) => {
                let s = s.clone();
                let mut data = s.lock();
                if i + n > data.elems.len() {
                    return Err(TrapKind::TableOutOfBounds);
                }
                let e = self.shared_slot_of(&mut data, v);
                data.elems[i..i + n].fill(e);
                Ok(())
            }
            _ => Err(TrapKind::TableOutOfBounds),
        }
    }

    /// `table.copy`: `n` elements from `s` of table `src` to `d` of table `dst`.
    pub(crate) fn table_copy(
        &mut self,
        dst: u32,
        src: u32,
        d: usize,
        s: usize,
        n: usize,
    ) -> Result<(), TrapKind> {
        let dlen = self.tables.get(dst as usize).map(|_| self.table_size(dst));
        let slen = self.tables.get(src as usize).map(|_| self.table_size(src));
        let (Some(dlen), Some(slen)) = (dlen, slen) else {
            return Err(TrapKind::TableOutOfBounds);
        };
        if s + n > slen as usize || d + n > dlen as usize {
            return Err(TrapKind::TableOutOfBounds);
        }
        if src == dst {
            if let Some(TableCell::Own(t)) = self.tables.get_mut(dst as usize) {
                t.elems.copy_within(s..s + n, d);
                return Ok(());
            }
        } else if let (Some(TableCell::Own(from)), Some(TableCell::Own(_))) =
            (self.tables.get(src as usize), self.tables.get(dst as usize))
        {
            let items = from.elems[s..s + n].to_vec();
            return self.write_slots(dst, d, &items);
        }
        let items: Vec<u64> = (s..s + n)
            .map(|i| self.table_get(src, i))
            .collect::<Result<_, _>>()?;
        self.write_slots(dst, d, &items)
    }

    /// `table.init`: copies `n` items of segment `seg` from `src` to `dst`.
    pub(crate) fn table_init(
        &mut self,
        table: u32,
        seg: u32,
        dst: u32,
        src: u32,
        n: u32,
    ) -> Result<(), TrapKind> {
        let items = self
            .elem_items
            .get(seg as usize)
            .ok_or(TrapKind::TableOutOfBounds)?;
        let (src, dst, n) = (src as usize, dst as usize, n as usize);
        let Some(items) = items.get(src..src.saturating_add(n)) else {
            return Err(TrapKind::TableOutOfBounds);
        };
        if let Some(TableCell::Own(t)) = self.tables.get_mut(table as usize) {
            let Some(to) = t.elems.get_mut(dst..dst.saturating_add(n)) else {
                return Err(TrapKind::TableOutOfBounds);
            };
            to.copy_from_slice(items);
            return Ok(());
        }
        let items = items.to_vec();
        self.write_slots(table, dst, &items)
    }

    /// Writes `items` at `dst` of table `table`, or traps (writing nothing)
    /// if they do not fit.
    fn write_slots(&mut self, table: u32, dst: usize, items: &[u64]) -> Result<(), TrapKind> {
        let n = items.len();
        match self.tables.get_mut(table as usize) {
            Some(TableCell::Own(Table { elems, .. })) if dst + n <= elems.len() => {
                elems[dst..dst + n].copy_from_slice(items);
                Ok(())
            }
            Some(TableCell::Shared(s)) => {
                let s = s.clone();
                let mut data = s.lock();
                if dst + n > data.elems.len() {
                    return Err(TrapKind::TableOutOfBounds);
                }
                for (k, slot) in items.iter().enumerate() {
                    data.elems[dst + k] = self.shared_slot_of(&mut data, *slot);
                }
                Ok(())
            }
            _ => Err(TrapKind::TableOutOfBounds),
        }
    }
}
