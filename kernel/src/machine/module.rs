//! A decoded, validated and translated WebAssembly module.
//!
//! [`Module::new`] accepts binary `.wasm` or `.wat` text, validates it with
//! `wasmparser` restricted to exactly the WebAssembly 2.0 feature set without
//! SIMD, and translates every function body once into the machine's internal
//! code (see [`super::translate`]). A module is immutable and shared between
//! instances through an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmparser::{
    DataKind, ElementItems, ElementKind, ExternalKind, FuncValidatorAllocations, Operator, Parser,
    Payload, TypeRef, ValidPayload, Validator, WasmFeatures,
};

use super::code::FuncCode;
use super::translate::translate_function;

/// A value type of WebAssembly 2.0 without SIMD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
    FuncRef,
    ExternRef,
}

impl std::fmt::Display for ValType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FuncType {
    pub params: Box<[ValType]>,
    pub results: Box<[ValType]>,
}

/// Size limits of a table, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableType {
    pub element: ValType,
    pub min: u32,
    pub max: Option<u32>,
}

/// Size limits of a memory, in wasm pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryType {
    pub min: u32,
    pub max: Option<u32>,
}

/// Type of a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalType {
    pub content: ValType,
    pub mutable: bool,
}

/// What an import brings in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// A function of the given type index: a system call of the task.
    Func(u32),
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
}

/// One import of the module, in import-section order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub kind: ImportKind,
}

/// The kind of an exported item, and its index in that index space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Func(u32),
    Table(u32),
    Memory(u32),
    Global(u32),
}

/// A constant expression (WebAssembly 2.0: a single instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConstExpr {
    /// A value as an untyped slot (references encoded as in the interpreter).
    Slot(u64),
    /// `global.get` of an (imported) global.
    Global(u32),
}

/// Where an element segment goes.
#[derive(Clone, Debug)]
pub(crate) enum ElemMode {
    Active { table: u32, offset: ConstExpr },
    Passive,
    Declared,
}

/// An element segment.
#[derive(Clone, Debug)]
pub(crate) struct ElemSegment {
    pub mode: ElemMode,
    pub items: Vec<ConstExpr>,
}

/// A data segment.
#[derive(Clone, Debug)]
pub(crate) struct DataSegment {
    /// Offset expression of an active segment (memory 0); `None` if passive.
    pub active: Option<ConstExpr>,
    pub bytes: Vec<u8>,
}

/// Why a module was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The text format could not be parsed.
    #[error("cannot parse WebAssembly text: {0}")]
    Text(#[from] wat::Error),
    /// The binary is malformed or invalid.
    #[error("invalid WebAssembly module: {0}")]
    Invalid(#[from] wasmparser::BinaryReaderError),
    /// The module uses something outside the machine's scope.
    #[error("unsupported WebAssembly module: {0}")]
    Unsupported(String),
}

/// A validated module with every function translated, ready to instantiate.
#[derive(Debug)]
pub struct Module {
    pub(crate) types: Vec<FuncType>,
    /// Type index of every function, imported functions first.
    pub(crate) funcs: Vec<u32>,
    pub(crate) num_imported_funcs: u32,
    pub(crate) imports: Vec<Import>,
    /// Every table, imported ones first.
    pub(crate) tables: Vec<TableType>,
    pub(crate) num_imported_tables: u32,
    pub(crate) memory: Option<MemoryType>,
    pub(crate) memory_imported: bool,
    /// Every global, imported first, with the initialiser of defined ones.
    pub(crate) globals: Vec<(GlobalType, Option<ConstExpr>)>,
    pub(crate) num_imported_globals: u32,
    pub(crate) exports: BTreeMap<String, Export>,
    pub(crate) start: Option<u32>,
    pub(crate) elems: Vec<ElemSegment>,
    pub(crate) datas: Vec<DataSegment>,
    /// Translated code of the defined functions.
    pub(crate) code: Vec<FuncCode>,
    /// Per global: mutable and imported or exported, so it may live in an
    /// object shared with other instances (known before the code section).
    pub(crate) shareable_globals: Vec<bool>,
}

/// The exact feature set of the machine: WebAssembly 2.0 without SIMD.
pub fn features() -> WasmFeatures {
    WasmFeatures::WASM2.difference(WasmFeatures::SIMD)
}

pub(crate) fn val_type(ty: wasmparser::ValType) -> Result<ValType, ModuleError> {
    use wasmparser::ValType as W;
    Ok(match ty {
        W::I32 => ValType::I32,
        W::I64 => ValType::I64,
        W::F32 => ValType::F32,
        W::F64 => ValType::F64,
        W::Ref(r) if r == wasmparser::RefType::FUNCREF => ValType::FuncRef,
        W::Ref(r) if r == wasmparser::RefType::EXTERNREF => ValType::ExternRef,
        other => return Err(ModuleError::Unsupported(format!("value type {other:?}"))),
    })
}

fn ref_type(ty: wasmparser::RefType) -> Result<ValType, ModuleError> {
    val_type(wasmparser::ValType::Ref(ty))
}

fn table_type(ty: &wasmparser::TableType) -> Result<TableType, ModuleError> {
    Ok(TableType {
        element: ref_type(ty.element_type)?,
        min: u32::try_from(ty.initial).map_err(|_| unsupported("table64"))?,
        max: ty
            .maximum
            .map(u32::try_from)
            .transpose()
            .map_err(|_| unsupported("table64"))?,
    })
}

fn memory_type(ty: &wasmparser::MemoryType) -> Result<MemoryType, ModuleError> {
    let pages = |p: u64| u32::try_from(p).map_err(|_| unsupported("memory64"));
    Ok(MemoryType {
        min: pages(ty.initial)?,
        max: ty.maximum.map(pages).transpose()?,
    })
}

fn global_type(ty: &wasmparser::GlobalType) -> Result<GlobalType, ModuleError> {
    Ok(GlobalType {
        content: val_type(ty.content_type)?,
        mutable: ty.mutable,
    })
}

fn unsupported(what: &str) -> ModuleError {
    ModuleError::Unsupported(what.to_string())
}

/// Memory limits are `u32` in WebAssembly 2.0, and an over-long LEB128
/// encoding of them is malformed; wasmparser reads them as `u64` (for
/// memory64), so they are read again here as strict `u32`s.
fn check_memory_limits_leb(bytes: &[u8], range: std::ops::Range<u64>) -> Result<(), ModuleError> {
    let section = bytes
        .get(range.start as usize..range.end as usize)
        .ok_or_else(|| unsupported("memory section range"))?;
    let mut reader = wasmparser::BinaryReader::new(section, range.start);
    let count = reader.read_var_u32()?;
    for _ in 0..count {
        let flags = reader.read_u8()?;
        reader.read_var_u32()?;
        if flags & 1 != 0 {
            reader.read_var_u32()?;
        }
    }
    Ok(())
}

/// Reads a validated constant expression.
fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, ModuleError> {
    let mut reader = expr.get_operators_reader();
    let op = reader.read()?;
    let value = match op {
        Operator::I32Const { value } => ConstExpr::Slot(value as u32 as u64),
        Operator::I64Const { value } => ConstExpr::Slot(value as u64),
        Operator::F32Const { value } => ConstExpr::Slot(value.bits() as u64),
        Operator::F64Const { value } => ConstExpr::Slot(value.bits()),
        Operator::RefNull { .. } => ConstExpr::Slot(0),
        Operator::RefFunc { function_index } => ConstExpr::Slot(function_index as u64 + 1),
        Operator::GlobalGet { global_index } => ConstExpr::Global(global_index),
        other => return Err(ModuleError::Unsupported(format!("constant {other:?}"))),
    };
    match reader.read()? {
        Operator::End => Ok(value),
        _ => Err(unsupported("extended constant expression")),
    }
}

impl Module {
    /// Decodes (`.wat` text or `.wasm` binary), validates and translates a module.
    pub fn new(bytes: &[u8]) -> Result<Arc<Module>, ModuleError> {
        let binary = wat::parse_bytes(bytes)?;
        Self::from_binary(&binary).map(Arc::new)
    }

    fn from_binary(bytes: &[u8]) -> Result<Module, ModuleError> {
        let mut validator = Validator::new_with_features(features());
        let mut m = Module {
            types: Vec::new(),
            funcs: Vec::new(),
            num_imported_funcs: 0,
            imports: Vec::new(),
            tables: Vec::new(),
            num_imported_tables: 0,
            memory: None,
            memory_imported: false,
            globals: Vec::new(),
            num_imported_globals: 0,
            exports: BTreeMap::new(),
            start: None,
            elems: Vec::new(),
            datas: Vec::new(),
            code: Vec::new(),
            shareable_globals: Vec::new(),
        };
        let mut allocs = FuncValidatorAllocations::default();
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            if let Payload::MemorySection(reader) = &payload {
                check_memory_limits_leb(bytes, reader.range())?;
            }
            if let ValidPayload::Func(to_validate, body) = validator.payload(&payload)? {
                let func_validator = to_validate.into_validator(allocs);
                let func_index = func_validator.index();
                let (code, returned) = translate_function(&m, func_index, &body, func_validator)?;
                allocs = returned;
                m.code.push(code);
                continue;
            }
            if let Payload::CodeSectionStart { .. } = &payload {
                m.mark_shareable_globals();
            }
            m.read_section(payload)?;
        }
        m.mark_shareable_globals();
        Ok(m)
    }

    fn read_section(&mut self, payload: Payload<'_>) -> Result<(), ModuleError> {
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => self.types.push(FuncType {
                                params: f
                                    .params()
                                    .iter()
                                    .map(|t| val_type(*t))
                                    .collect::<Result<_, _>>()?,
                                results: f
                                    .results()
                                    .iter()
                                    .map(|t| val_type(*t))
                                    .collect::<Result<_, _>>()?,
                            }),
                            _ => return Err(unsupported("non-function type")),
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let kind = match import.ty {
                        TypeRef::Func(t) => {
                            self.funcs.push(t);
                            self.num_imported_funcs += 1;
                            ImportKind::Func(t)
                        }
                        TypeRef::Table(t) => {
                            let t = table_type(&t)?;
                            self.tables.push(t);
                            self.num_imported_tables += 1;
                            ImportKind::Table(t)
                        }
                        TypeRef::Memory(t) => {
                            let t = memory_type(&t)?;
                            self.memory = Some(t);
                            self.memory_imported = true;
                            ImportKind::Memory(t)
                        }
                        TypeRef::Global(t) => {
                            let t = global_type(&t)?;
                            self.globals.push((t, None));
                            self.num_imported_globals += 1;
                            ImportKind::Global(t)
                        }
                        _ => return Err(unsupported("import kind")),
                    };
                    self.imports.push(Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    self.funcs.push(t?);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table?;
                    if !matches!(table.init, wasmparser::TableInit::RefNull) {
                        return Err(unsupported("table initialiser expression"));
                    }
                    self.tables.push(table_type(&table.ty)?);
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    self.memory = Some(memory_type(&memory?)?);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global?;
                    self.globals.push((
                        global_type(&global.ty)?,
                        Some(const_expr(&global.init_expr)?),
                    ));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let e = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => Export::Func(export.index),
                        ExternalKind::Table => Export::Table(export.index),
                        ExternalKind::Memory => Export::Memory(export.index),
                        ExternalKind::Global => Export::Global(export.index),
                        ExternalKind::Tag => return Err(unsupported("tag export")),
                    };
                    self.exports.insert(export.name.to_string(), e);
                }
            }
            Payload::StartSection { func, .. } => self.start = Some(func),
            Payload::ElementSection(reader) => {
                for elem in reader {
                    let elem = elem?;
                    let mode = match elem.kind {
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElemMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: const_expr(&offset_expr)?,
                        },
                        ElementKind::Passive => ElemMode::Passive,
                        ElementKind::Declared => ElemMode::Declared,
                    };
                    let mut items = Vec::new();
                    match elem.items {
                        ElementItems::Functions(funcs) => {
                            for f in funcs {
                                items.push(ConstExpr::Slot(f? as u64 + 1));
                            }
                        }
                        ElementItems::Expressions(_, exprs) => {
                            for e in exprs {
                                items.push(const_expr(&e?)?);
                            }
                        }
                    }
                    self.elems.push(ElemSegment { mode, items });
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data?;
                    let active = match data.kind {
                        DataKind::Passive => None,
                        DataKind::Active { offset_expr, .. } => Some(const_expr(&offset_expr)?),
                    };
                    self.datas.push(DataSegment {
                        active,
                        bytes: data.data.to_vec(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Marks the globals that may be shared with other instances: mutable
    /// and imported or exported.
    fn mark_shareable_globals(&mut self) {
        let mut shareable: Vec<bool> = self
            .globals
            .iter()
            .enumerate()
            .map(|(i, (ty, _))| ty.mutable && (i as u32) < self.num_imported_globals)
            .collect();
        for export in self.exports.values() {
            if let Export::Global(g) = *export
                && let Some(s) = shareable.get_mut(g as usize)
            {
                *s = self.globals[g as usize].0.mutable;
            }
        }
        self.shareable_globals = shareable;
    }

    /// Whether global `index` may live in an object shared with other
    /// instances (it is mutable and imported or exported); the others are
    /// always each thread's own.
    pub(crate) fn global_is_shareable(&self, index: u32) -> bool {
        self.shareable_globals
            .get(index as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The imports, in import-section order.
    pub fn imports(&self) -> &[Import] {
        &self.imports
    }

    /// The exports by name (sorted).
    pub fn exports(&self) -> &BTreeMap<String, Export> {
        &self.exports
    }

    /// Looks up an export by name.
    pub fn export(&self, name: &str) -> Option<Export> {
        self.exports.get(name).copied()
    }

    /// The start function, which the embedder runs as a thread after instantiation.
    pub fn start_function(&self) -> Option<u32> {
        self.start
    }

    /// Number of functions (imported ones first).
    pub fn num_funcs(&self) -> u32 {
        self.funcs.len() as u32
    }

    /// Number of imported functions: indices below it are system calls.
    pub fn num_imported_funcs(&self) -> u32 {
        self.num_imported_funcs
    }

    /// The signature of function `index`, if it exists.
    pub fn func_type(&self, index: u32) -> Option<&FuncType> {
        let t = *self.funcs.get(index as usize)?;
        self.types.get(t as usize)
    }

    /// The function types of the type section, by type index.
    pub fn types(&self) -> &[FuncType] {
        &self.types
    }

    /// Number of globals (imported ones first).
    pub fn num_globals(&self) -> u32 {
        self.globals.len() as u32
    }

    /// The type of global `index`, if it exists.
    pub fn global_type(&self, index: u32) -> Option<GlobalType> {
        self.globals.get(index as usize).map(|g| g.0)
    }

    /// The type of table `index`, if it exists.
    pub fn table_type(&self, index: u32) -> Option<TableType> {
        self.tables.get(index as usize).copied()
    }

    /// The memory of the module (memory 0), if any.
    pub fn memory_type(&self) -> Option<MemoryType> {
        self.memory
    }

    /// The translated code of a defined (not imported) function.
    pub(crate) fn code_of(&self, func: u32) -> Option<&FuncCode> {
        self.code
            .get(func.checked_sub(self.num_imported_funcs)? as usize)
    }
}
