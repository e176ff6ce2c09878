//! Tables and mutable globals shared between instances, and references to
//! functions of other instances.
//!
//! A kernel task has one instance whose tables and globals are its own; it
//! shares nothing and nothing here costs it anything. An embedder that links
//! instances with each other (the spec test harness does) can share a table
//! or a mutable global: the exporter turns it into a shared object
//! ([`Instance::share_table`](super::Instance::share_table),
//! [`Instance::share_global`](super::Instance::share_global)) and every
//! importer is linked to that same object ([`Extern::Table`](super::Extern::Table),
//! [`Extern::MutableGlobal`](super::Extern::MutableGlobal)), so a write
//! through one instance is seen through every other. The object belongs to
//! its exporter: an importer's exported state does not contain it.
//!
//! Function references. Inside an instance a reference is a slot relative
//! to that instance: 0 is null, `f + 1` its function `f`, and above the
//! module's function count, `num_funcs + 1 + j` the `j`-th *foreign
//! function* the instance has met (a function of another instance, read
//! from a shared table or global or handed over by the embedder), numbered
//! in order of first appearance. Shared objects hold references in absolute
//! terms, as [`FuncHandle`]s: the function's address ([`FuncAddr`]: the
//! embedder's [`InstanceId`] of its instance and its index there) and its
//! type, which `call_indirect` checks. Calling a foreign function is a host
//! call of its extended index; the embedder finds the function with
//! [`Instance::foreign_function`](super::Instance::foreign_function) and runs
//! it on a thread of its own instance, as it does for imported functions.
//!
//! Everything is ordered by index or by address (a `BTreeMap`), never by
//! memory address or hash, so a run is deterministic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Value;
use super::instance::{Instance, TableCell};
use super::module::{FuncType, GlobalType, TableType, ValType};
use super::value::slot_of;

/// Names an instance among the instances an embedder links with each other;
/// chosen by the embedder, distinct for every instance that shares a table
/// or global. [`InstanceId::UNLINKED`] (the id of [`Instance::new`](super::Instance::new))
/// cannot share anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u32);

impl InstanceId {
    /// The id of an instance that is linked with no other.
    pub const UNLINKED: InstanceId = InstanceId(0);
}

/// A function of some instance: what a call of a foreign function names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FuncAddr {
    pub instance: InstanceId,
    /// Index in that instance's module's function index space.
    pub func: u32,
}

/// A function reference in absolute terms, with the function's type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FuncHandle {
    pub addr: FuncAddr,
    pub ty: FuncType,
}

/// A list of functions numbered in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct FuncList {
    list: Vec<FuncHandle>,
    index: BTreeMap<FuncAddr, u32>,
}

impl FuncList {
    /// The number of `handle` in the list, appending it if it is new.
    pub fn intern(&mut self, handle: &FuncHandle) -> u32 {
        if let Some(&j) = self.index.get(&handle.addr) {
            return j;
        }
        let j = self.list.len() as u32;
        self.list.push(handle.clone());
        self.index.insert(handle.addr, j);
        j
    }

    pub fn get(&self, j: u32) -> Option<&FuncHandle> {
        self.list.get(j as usize)
    }

    pub fn len(&self) -> u32 {
        self.list.len() as u32
    }
}

/// Locks `m`; a panic of another holder leaves plain data behind, which
/// stays usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The contents of a shared table. Elements of a funcref table are 0 (null)
/// or `k + 1` for function `k` of `funcs`; externref elements are slots.
#[derive(Debug)]
pub(crate) struct TableData {
    pub ty: TableType,
    pub elems: Vec<u64>,
    pub funcs: FuncList,
}

/// A table shared between instances: a handle to the exporter's table.
#[derive(Clone, Debug)]
pub struct SharedTable(pub(crate) Arc<Mutex<TableData>>);

impl SharedTable {
    pub(crate) fn lock(&self) -> MutexGuard<'_, TableData> {
        lock(&self.0)
    }

    /// The table's type, with its current size as minimum.
    pub fn table_type(&self) -> TableType {
        let t = self.lock();
        TableType {
            min: t.elems.len() as u32,
            ..t.ty
        }
    }
}

/// Handles are equal when they are handles to the same table.
impl PartialEq for SharedTable {
    fn eq(&self, other: &SharedTable) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The value of a shared global: a slot, or a function in absolute terms.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CellValue {
    Slot(u64),
    Func(Option<FuncHandle>),
}

#[derive(Debug)]
pub(crate) struct GlobalData {
    pub ty: GlobalType,
    pub value: CellValue,
}

/// A mutable global shared between instances: a handle to the exporter's
/// global.
#[derive(Clone, Debug)]
pub struct SharedGlobal(pub(crate) Arc<Mutex<GlobalData>>);

impl SharedGlobal {
    pub(crate) fn lock(&self) -> MutexGuard<'_, GlobalData> {
        lock(&self.0)
    }

    /// The global's type.
    pub fn global_type(&self) -> GlobalType {
        self.lock().ty
    }
}

/// Handles are equal when they are handles to the same global.
impl PartialEq for SharedGlobal {
    fn eq(&self, other: &SharedGlobal) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Sharing an instance's tables and globals, and naming foreign functions.
impl Instance {
    /// Shares table `index` with other instances: the handle to give an
    /// instance that imports it ([`Extern::Table`](super::Extern::Table)). An own table moves into
    /// the shared object (and is used through it from then on); an imported
    /// one is already shared. `None` if there is no such table or this
    /// instance is [`InstanceId::UNLINKED`].
    pub fn share_table(&mut self, index: u32) -> Option<SharedTable> {
        if self.id == InstanceId::UNLINKED {
            return None;
        }
        let slots = match self.tables.get(index as usize)? {
            TableCell::Shared(t) => return Some(t.clone()),
            TableCell::Own(t) => t.elems.clone(),
        };
        let ty = self.module.tables.get(index as usize).copied()?;
        let mut data = TableData {
            ty,
            elems: Vec::with_capacity(slots.len()),
            funcs: FuncList::default(),
        };
        for s in slots {
            let e = self.shared_slot_of(&mut data, s);
            data.elems.push(e);
        }
        let shared = SharedTable(Arc::new(Mutex::new(data)));
        self.tables[index as usize] = TableCell::Shared(shared.clone());
        Some(shared)
    }

    /// Shares mutable global `index` with other instances: the handle to
    /// give an instance that imports it ([`Extern::MutableGlobal`](super::Extern::MutableGlobal)). Until
    /// shared, every thread has its own copy of an own global; `current` is
    /// the value the shared global starts with (the embedder says which
    /// thread's copy counts). From then on every thread of this instance
    /// uses the shared global. An imported mutable global is already shared
    /// (`current` is ignored). `None` if there is no such mutable global,
    /// `current` has the wrong type, or this instance is
    /// [`InstanceId::UNLINKED`].
    pub fn share_global(&mut self, index: u32, current: Value) -> Option<SharedGlobal> {
        if self.id == InstanceId::UNLINKED {
            return None;
        }
        if let Some(cell) = self.global_cells.get(index as usize)? {
            return Some(cell.clone());
        }
        let (ty, _) = *self.module.globals.get(index as usize)?;
        if !ty.mutable || !self.module.global_is_shareable(index) {
            return None;
        }
        let slot = self.slot_of(current, ty.content)?;
        let value = if ty.content == ValType::FuncRef {
            CellValue::Func(self.handle_of(slot))
        } else {
            CellValue::Slot(slot)
        };
        let cell = SharedGlobal(Arc::new(Mutex::new(GlobalData { ty, value })));
        self.global_cells[index as usize] = Some(cell.clone());
        Some(cell)
    }

    /// The function that extended function index `index` names: an own
    /// function (below the module's function count) or a foreign one (see
    /// `shared.rs`). A host call whose import is at least the module's
    /// function count is a call of a foreign function.
    pub fn foreign_function(&self, index: u32) -> Option<FuncAddr> {
        let n = self.module.num_funcs();
        if index < n {
            return Some(FuncAddr {
                instance: self.id,
                func: index,
            });
        }
        lock(&self.foreign).get(index - n).map(|h| h.addr)
    }

    /// The extended function index of function `addr` in this instance
    /// (registering it as a foreign function if it is another instance's),
    /// so an embedder can hand a reference from one instance to another.
    /// `ty` is the function's type.
    pub fn function_index(&self, addr: FuncAddr, ty: &FuncType) -> u32 {
        let slot = self.slot_of_handle(Some(&FuncHandle {
            addr,
            ty: ty.clone(),
        }));
        (slot - 1) as u32
    }

    /// The type of the function that extended index `index` names.
    pub fn function_type(&self, index: u32) -> Option<FuncType> {
        match self.module.func_type(index) {
            Some(t) => Some(t.clone()),
            None => lock(&self.foreign)
                .get(index.checked_sub(self.module.num_funcs())?)
                .map(|h| h.ty.clone()),
        }
    }

    /// One more than the largest extended function index: what reference
    /// values handed to this instance are checked against.
    pub(crate) fn func_bound(&self) -> u32 {
        self.module.num_funcs() + lock(&self.foreign).len()
    }

    /// The slot of `value` of type `ty` in this instance, whose function
    /// references may name foreign functions it has met. Values that are not
    /// such references (every value of a task that shares nothing) take no
    /// lock.
    pub(crate) fn slot_of(&self, value: Value, ty: ValType) -> Option<u64> {
        slot_of(value, ty, self.module.num_funcs())
            .or_else(|| slot_of(value, ty, self.func_bound()))
    }
}
