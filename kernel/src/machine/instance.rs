//! Instances: a module placed into an address space, with its tables,
//! evaluated segments and initial globals.
//!
//! Instantiation creates the primary area from memory 0 (unless memory is
//! imported, in which case the address space's existing primary area is the
//! memory), evaluates globals, fills tables from active element segments and
//! memory from active data segments, in that order. A trap during the
//! segment initialisation is an instantiation error; writes done before it
//! stay (WebAssembly 2.0 semantics). The start function is not run here: the
//! embedder runs it as a thread ([`Module::start_function`]).
//!
//! An embedder that links instances with each other instantiates in two
//! steps, [`Instance::link`] then [`Instance::apply_segments`], so that an
//! instance whose segments trap still exists (what it wrote into a shared
//! table stays, and its functions stay callable). Sharing tables and
//! mutable globals between instances is `shared.rs`'s subject; the table
//! operations are in `tables.rs`.

use std::sync::{Arc, Mutex};

use super::module::{ConstExpr, ElemMode, ImportKind, Module, TableType};
use super::shared::{FuncList, InstanceId, SharedGlobal, SharedTable};
use super::trap::TrapKind;
use super::value::{slot_of, value_of};
use super::{InstanceState, Limits, Value};
use crate::mm::{AddressSpace, MmError};

/// What the embedder supplies for one import, in import-section order.
#[derive(Clone, Debug, PartialEq)]
pub enum Extern {
    /// An imported function: calls to it are host calls answered by the embedder.
    Func,
    /// The value of an imported immutable global (each thread gets a copy).
    Global(Value),
    /// An imported mutable global: the exporter's global
    /// ([`Instance::share_global`]), which every thread reads and writes.
    MutableGlobal(SharedGlobal),
    /// An imported table: the exporter's table ([`Instance::share_table`]).
    Table(SharedTable),
    /// The imported memory is the address space's existing primary area.
    Memory,
}

/// Why instantiation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstantiateError {
    /// The number of supplied imports differs from the module's.
    #[error("module has {expected} imports, {given} supplied")]
    ImportCount { expected: usize, given: usize },
    /// A supplied import does not match what the module declares.
    #[error("incompatible import {index} ({module}.{name}): {reason}")]
    Incompatible {
        index: usize,
        module: String,
        name: String,
        reason: String,
    },
    /// The primary area could not be created.
    #[error("cannot create the memory: {0}")]
    Memory(#[from] MmError),
    /// A table is larger than the configured limit.
    #[error("table of {0} elements exceeds the limit")]
    TableLimit(u32),
    /// Restoring needs the module's memory in the address space.
    #[error("the address space has no (large enough) primary area for the module's memory")]
    NoMemory,
    /// The instance state to restore is inconsistent with the module.
    #[error("bad instance state: {0}")]
    State(#[from] InstanceStateError),
    /// Initialising a segment trapped.
    #[error("instantiation trapped: {0}")]
    Trap(TrapKind),
}

/// Why an instance state could not be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstanceStateError {
    #[error("state has {given} tables, module has {expected}")]
    TableCount { expected: usize, given: usize },
    #[error("table {0}: size outside the table's limits")]
    TableSize(u32),
    #[error("table {0}: element of the wrong type or referring to no function")]
    TableElement(u32),
    #[error("segment index {0} out of range")]
    Segment(u32),
    /// An imported table is its exporter's state; its list must be empty.
    #[error("table {0} is imported: its elements are its exporter's state")]
    ImportedTable(u32),
}

/// A table of references, as untyped slots relative to the instance (0 is
/// null, `f + 1` function `f`; see `shared.rs` for foreign functions).
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub ty: TableType,
    pub elems: Vec<u64>,
}

/// A table of an instance: its own, or one shared with other instances
/// (imported, or own and exported to another instance).
#[derive(Debug)]
pub(crate) enum TableCell {
    Own(Table),
    Shared(SharedTable),
}

/// A module instance. Memory lives in the address space passed to
/// [`Instance::new`] and to every run.
#[derive(Debug)]
pub struct Instance {
    pub(crate) module: Arc<Module>,
    pub(crate) id: InstanceId,
    pub(crate) tables: Vec<TableCell>,
    /// Evaluated items of every element segment (emptied when dropped).
    pub(crate) elem_items: Vec<Vec<u64>>,
    pub(crate) dropped_elems: Vec<bool>,
    pub(crate) dropped_data: Vec<bool>,
    /// Initial value of every global, copied into each new thread.
    pub(crate) globals: Vec<u64>,
    /// The shared object of every global that lives in one (an imported
    /// mutable global, or an own one shared with another instance); the
    /// others live in each thread.
    pub(crate) global_cells: Vec<Option<SharedGlobal>>,
    /// Functions of other instances met by this one; reference slots above
    /// the module's function count name them.
    pub(crate) foreign: Mutex<FuncList>,
    pub(crate) limits: Limits,
}

fn incompatible(module: &Module, index: usize, reason: String) -> InstantiateError {
    let import = &module.imports[index];
    InstantiateError::Incompatible {
        index,
        module: import.module.clone(),
        name: import.name.clone(),
        reason,
    }
}

impl Instance {
    /// Instantiates `module` into `space`. `imports` supplies every import,
    /// in import-section order.
    pub fn new(
        module: Arc<Module>,
        space: &mut AddressSpace,
        limits: &Limits,
        imports: &[Extern],
    ) -> Result<Instance, InstantiateError> {
        let mut inst = Self::link(module, space, limits, imports, InstanceId::UNLINKED)?;
        inst.apply_segments(space).map_err(InstantiateError::Trap)?;
        Ok(inst)
    }

    /// The first half of instantiation, for instances linked with others:
    /// checks the imports, creates the memory, evaluates globals and
    /// creates tables, but applies no segment ([`Instance::apply_segments`]).
    /// `id` names the instance among the instances it shares tables or
    /// globals with (and must differ from theirs).
    pub fn link(
        module: Arc<Module>,
        space: &mut AddressSpace,
        limits: &Limits,
        imports: &[Extern],
        id: InstanceId,
    ) -> Result<Instance, InstantiateError> {
        let inst = Self::link_imports(module.clone(), space, limits, imports, id)?;
        if let (Some(mem), false) = (module.memory, module.memory_imported) {
            space.create_primary(mem.min, mem.max)?;
        }
        Ok(inst)
    }

    /// The second half of instantiation: applies the active element
    /// segments, then the active data segments. On a trap, what was written
    /// before it stays.
    pub fn apply_segments(&mut self, space: &mut AddressSpace) -> Result<(), TrapKind> {
        let module = self.module.clone();
        for (i, seg) in module.elems.iter().enumerate() {
            match &seg.mode {
                ElemMode::Active { table, offset } => {
                    let offset = self.eval(offset) as u32;
                    self.table_init(*table, i as u32, offset, 0, seg.items.len() as u32)?;
                    self.drop_elem(i as u32);
                }
                ElemMode::Declared => self.drop_elem(i as u32),
                ElemMode::Passive => {}
            }
        }
        for (i, seg) in module.datas.iter().enumerate() {
            if let Some(offset) = &seg.active {
                let offset = self.eval(offset) as u32;
                self.memory_init(space, i as u32, offset, 0, seg.bytes.len() as u32)?;
                self.dropped_data[i] = true;
            }
        }
        Ok(())
    }

    /// Recreates an instance of `module` over an address space that already
    /// holds its memory (restored from a snapshot, or the one it ran in):
    /// links the imports, then takes tables and dropped segments from
    /// `state` instead of applying the segments again.
    pub fn restore(
        module: Arc<Module>,
        space: &mut AddressSpace,
        limits: &Limits,
        imports: &[Extern],
        state: &InstanceState,
    ) -> Result<Instance, InstantiateError> {
        Self::restore_linked(module, space, limits, imports, state, InstanceId::UNLINKED)
    }

    /// [`Instance::restore`] for an instance linked with others (see
    /// [`Instance::link`]): imported tables and globals are the shared
    /// objects in `imports`, whose contents are their exporters' state.
    pub fn restore_linked(
        module: Arc<Module>,
        space: &mut AddressSpace,
        limits: &Limits,
        imports: &[Extern],
        state: &InstanceState,
        id: InstanceId,
    ) -> Result<Instance, InstantiateError> {
        if let Some(mem) = module.memory
            && (!space.has_primary() || space.primary_wasm_pages() < mem.min)
        {
            return Err(InstantiateError::NoMemory);
        }
        let mut inst = Self::link_imports(module, space, limits, imports, id)?;
        inst.import_state(state)?;
        Ok(inst)
    }

    /// Checks the imports and sets up globals and tables.
    fn link_imports(
        module: Arc<Module>,
        space: &mut AddressSpace,
        limits: &Limits,
        imports: &[Extern],
        id: InstanceId,
    ) -> Result<Instance, InstantiateError> {
        if imports.len() != module.imports.len() {
            return Err(InstantiateError::ImportCount {
                expected: module.imports.len(),
                given: imports.len(),
            });
        }
        let mut globals = Vec::with_capacity(module.globals.len());
        let mut global_cells = Vec::with_capacity(module.globals.len());
        let mut tables = Vec::with_capacity(module.tables.len());
        for (index, (import, ext)) in module.imports.iter().zip(imports).enumerate() {
            let shared = matches!(ext, Extern::MutableGlobal(_) | Extern::Table(_));
            if shared && id == InstanceId::UNLINKED {
                return Err(incompatible(
                    &module,
                    index,
                    "a shared import needs a linked instance (an id)".into(),
                ));
            }
            match (&import.kind, ext) {
                (ImportKind::Func(_), Extern::Func) => {}
                (ImportKind::Global(ty), Extern::Global(v)) if !ty.mutable => {
                    let slot = slot_of(*v, ty.content, module.num_funcs()).ok_or_else(|| {
                        incompatible(&module, index, format!("global is not {}", ty.content))
                    })?;
                    globals.push(slot);
                    global_cells.push(None);
                }
                (ImportKind::Global(ty), Extern::MutableGlobal(cell)) if ty.mutable => {
                    if cell.global_type() != *ty {
                        return Err(incompatible(&module, index, "global type".into()));
                    }
                    globals.push(0);
                    global_cells.push(Some(cell.clone()));
                }
                (ImportKind::Table(ty), Extern::Table(table)) => {
                    let have = table.table_type();
                    let max_ok = match (ty.max, have.max) {
                        (None, _) => true,
                        (Some(want), Some(have)) => have <= want,
                        (Some(_), None) => false,
                    };
                    if have.element != ty.element {
                        return Err(incompatible(&module, index, "table element type".into()));
                    }
                    if have.min < ty.min || !max_ok {
                        return Err(incompatible(&module, index, "table limits".into()));
                    }
                    tables.push(TableCell::Shared(table.clone()));
                }
                (ImportKind::Memory(ty), Extern::Memory) => {
                    if !space.has_primary() || space.primary_wasm_pages() < ty.min {
                        return Err(incompatible(
                            &module,
                            index,
                            "memory too small or missing".into(),
                        ));
                    }
                }
                _ => return Err(incompatible(&module, index, "kind of import".into())),
            }
        }
        for (_, init) in &module.globals[module.num_imported_globals as usize..] {
            let slot = match init {
                Some(ConstExpr::Slot(s)) => *s,
                Some(ConstExpr::Global(g)) => globals.get(*g as usize).copied().unwrap_or(0),
                None => 0,
            };
            globals.push(slot);
            global_cells.push(None);
        }
        for ty in &module.tables[module.num_imported_tables as usize..] {
            if ty.min > limits.max_table_elements {
                return Err(InstantiateError::TableLimit(ty.min));
            }
            tables.push(TableCell::Own(Table {
                ty: *ty,
                elems: vec![0; ty.min as usize],
            }));
        }
        let mut inst = Instance {
            dropped_elems: vec![false; module.elems.len()],
            dropped_data: vec![false; module.datas.len()],
            elem_items: Vec::new(),
            module,
            id,
            tables,
            globals,
            global_cells,
            foreign: Mutex::new(FuncList::default()),
            limits: *limits,
        };
        inst.elem_items = (0..inst.module.elems.len())
            .map(|i| inst.evaluate_elem(i))
            .collect();
        Ok(inst)
    }

    fn eval(&self, e: &ConstExpr) -> u64 {
        match e {
            ConstExpr::Slot(s) => *s,
            ConstExpr::Global(g) => self.globals.get(*g as usize).copied().unwrap_or(0),
        }
    }

    /// The module of this instance.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The start function, if any: the embedder runs it as a thread.
    pub fn start_function(&self) -> Option<u32> {
        self.module.start
    }

    /// The limits of this instance's threads.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The id of this instance among the instances it is linked with.
    pub fn id(&self) -> InstanceId {
        self.id
    }

    /// Initial value of global `index` (threads have their own copies, except
    /// of shared globals: see [`Instance::shared_global`]).
    pub fn initial_global(&self, index: u32) -> Option<Value> {
        let ty = self.module.globals.get(index as usize)?.0.content;
        Some(value_of(*self.globals.get(index as usize)?, ty))
    }

    /// The current value of global `index` if it lives in a shared object
    /// (an imported mutable global, or an own one shared), which every
    /// thread reads and writes; `None` for a global each thread has a copy of.
    pub fn shared_global(&self, index: u32) -> Option<Value> {
        let cell = self.global_cells.get(index as usize)?.as_ref()?;
        let ty = self.module.globals.get(index as usize)?.0.content;
        Some(value_of(self.cell_get(cell), ty))
    }

    /// Current elements of table `index`.
    pub fn table(&self, index: u32) -> Option<Vec<Value>> {
        let ty = self.module.tables.get(index as usize)?.element;
        let slots = self.table_slots(index)?;
        Some(slots.iter().map(|s| value_of(*s, ty)).collect())
    }

    /// Sets element `elem` of table `table`; false if out of range or of the wrong type.
    pub fn set_table_element(&mut self, table: u32, elem: u32, value: Value) -> bool {
        let Some(ty) = self.module.tables.get(table as usize) else {
            return false;
        };
        let Some(slot) = self.slot_of(value, ty.element) else {
            return false;
        };
        self.table_set(table, elem as usize, slot).is_ok()
    }

    /// The evaluated items of element segment `seg` (as at instantiation).
    pub(crate) fn evaluate_elem(&self, seg: usize) -> Vec<u64> {
        let Some(s) = self.module.elems.get(seg) else {
            return Vec::new();
        };
        s.items.iter().map(|e| self.eval(e)).collect()
    }

    pub(crate) fn drop_elem(&mut self, seg: u32) {
        if let Some(d) = self.dropped_elems.get_mut(seg as usize) {
            *d = true;
        }
        if let Some(items) = self.elem_items.get_mut(seg as usize) {
            items.clear();
        }
    }

    /// `memory.init`: copies `n` bytes of data segment `seg` from `src` to `dst`.
    pub(crate) fn memory_init(
        &mut self,
        space: &mut AddressSpace,
        seg: u32,
        dst: u32,
        src: u32,
        n: u32,
    ) -> Result<(), TrapKind> {
        let dropped = self.dropped_data.get(seg as usize).copied().unwrap_or(true);
        let bytes: &[u8] = match self.module.datas.get(seg as usize) {
            Some(d) if !dropped => &d.bytes,
            _ => &[],
        };
        let (s, len) = (src as usize, n as usize);
        if s + len > bytes.len() {
            return Err(TrapKind::DataOutOfBounds);
        }
        check_memory_range(space, dst as u64, n as u64)?;
        space
            .write(dst as u64, &bytes[s..s + len])
            .map_err(TrapKind::MemoryOutOfBounds)
    }
}

/// Checks that `[addr, addr + len)` is writable memory; an empty range must
/// not start beyond the end of the primary area (memory 0).
pub(crate) fn check_memory_range(
    space: &AddressSpace,
    addr: u64,
    len: u64,
) -> Result<(), TrapKind> {
    if len == 0 {
        let size = space.primary_wasm_pages() as u64 * crate::mm::WASM_PAGE_SIZE;
        if addr > size {
            return Err(TrapKind::MemoryOutOfBounds(crate::mm::Fault::Unmapped {
                addr,
            }));
        }
        return Ok(());
    }
    space
        .check_range(addr, len, true)
        .map_err(TrapKind::MemoryOutOfBounds)
}
