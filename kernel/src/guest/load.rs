//! Loading a guest: decoding the module, resolving its imports from module
//! `"spartan"` to system call numbers by name and checking their
//! signatures, and instantiating it into a fresh address space.

use std::sync::Arc;

use crate::machine::{
    Extern, ImportKind, Instance, InstantiateError, Limits, Module, ModuleError, ValType,
};
use crate::mm::{AddressSpace, MemLimits};
use crate::syscall::{IMPORT_MODULE, Sysno, WasmTy};

/// Why a module cannot become a guest task.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid module: {0}")]
    Module(#[from] ModuleError),
    #[error("import {module}.{name}: only functions of module \"spartan\" can be imported")]
    ForeignImport { module: String, name: String },
    #[error("import spartan.{0}: no such system call")]
    UnknownSyscall(String),
    #[error("import spartan.{name}: signature {found}, the ABI says {expected}")]
    Signature {
        name: String,
        found: String,
        expected: String,
    },
    #[error("instantiation: {0}")]
    Instantiate(#[from] InstantiateError),
    #[error("no exported function {0:?} to start a thread at")]
    NoEntry(String),
}

/// A loaded guest program: its instance, its memory and the system call
/// behind each of its function imports (by import index).
pub struct Loaded {
    pub instance: Instance,
    pub space: AddressSpace,
    pub sysnos: Vec<Sysno>,
}

fn wasm_ty(t: WasmTy) -> ValType {
    match t {
        WasmTy::I32 => ValType::I32,
        WasmTy::I64 => ValType::I64,
    }
}

fn show(params: &[ValType], results: &[ValType]) -> String {
    let p: Vec<String> = params.iter().map(ToString::to_string).collect();
    let r: Vec<String> = results.iter().map(ToString::to_string).collect();
    format!("({}) -> ({})", p.join(" "), r.join(" "))
}

/// Resolves every import of `module` to a system call.
pub fn resolve_imports(module: &Module) -> Result<Vec<Sysno>, LoadError> {
    let mut out = Vec::new();
    for import in module.imports() {
        let ImportKind::Func(ty) = import.kind else {
            return Err(LoadError::ForeignImport {
                module: import.module.clone(),
                name: import.name.clone(),
            });
        };
        if import.module != IMPORT_MODULE {
            return Err(LoadError::ForeignImport {
                module: import.module.clone(),
                name: import.name.clone(),
            });
        }
        let nr = Sysno::from_name(&import.name)
            .ok_or_else(|| LoadError::UnknownSyscall(import.name.clone()))?;
        let want: Vec<ValType> = nr.params().iter().map(|t| wasm_ty(*t)).collect();
        let found = module.types().get(ty as usize);
        let ok = found.is_some_and(|f| *f.params == *want && *f.results == [ValType::I64]);
        if !ok {
            return Err(LoadError::Signature {
                name: import.name.clone(),
                found: found
                    .map(|f| show(&f.params, &f.results))
                    .unwrap_or_else(|| "?".to_string()),
                expected: show(&want, &[ValType::I64]),
            });
        }
        out.push(nr);
    }
    Ok(out)
}

/// Decodes (`.wasm` or `.wat`), resolves and instantiates a guest program.
pub fn load(bytes: &[u8], limits: &Limits, mem_limits: MemLimits) -> Result<Loaded, LoadError> {
    let module: Arc<Module> = Module::new(bytes)?;
    let sysnos = resolve_imports(&module)?;
    let mut space = AddressSpace::new(mem_limits);
    let imports = vec![Extern::Func; sysnos.len()];
    let instance = Instance::new(module, &mut space, limits, &imports)?;
    Ok(Loaded {
        instance,
        space,
        sysnos,
    })
}
