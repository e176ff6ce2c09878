//! Runs one `.wast` script of the WebAssembly core test suite on the machine.
//!
//! Each instance of the script gets an address space, except that a module
//! importing a memory is instantiated into the exporting instance's space
//! (memory sharing done the kernel's way). Calls to imported functions come
//! back from `run` as host calls, which the harness answers by running the
//! exporting instance's function on a thread of that instance; so do calls
//! through a reference to another instance's function (a host call of an
//! index beyond the module's functions, which the instance names). Function
//! references passed between instances are translated between their terms.
//! Imported tables and mutable globals are the exporter's, shared
//! ([`Instance::share_table`], [`Instance::share_global`]); every instance
//! has an [`InstanceId`] (its position plus one). An instance whose
//! segments trap stays (what it wrote into shared tables stays callable).
//! The `spectest` module is a real module instantiated like any other.
//! Globals: each invocation is a new thread; the harness carries every
//! instance's thread-local globals from one thread to the next. Every run is sliced
//! (fuel per slice), and in round-trip mode the thread's state is exported,
//! serialized with postcard, deserialized and imported at every slice end
//! (while the stack holds at most 64 frames and 256 values, to keep deep
//! recursions fast).

use std::collections::BTreeMap;

use spartan_kernel::machine::{
    ExecState, Export, Extern, ImportKind, Instance, InstanceId, Limits, Module, Outcome, Thread,
    Trap, Value,
};
use spartan_kernel::mm::{AddressSpace, MemLimits};
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

const SPECTEST: &str = r#"(module
  (global (export "global_i32") i32 (i32.const 666))
  (global (export "global_i64") i64 (i64.const 666))
  (global (export "global_f32") f32 (f32.const 666.6))
  (global (export "global_f64") f64 (f64.const 666.6))
  (table (export "table") 10 20 funcref)
  (memory (export "memory") 1 2)
  (func (export "print"))
  (func (export "print_i32") (param i32))
  (func (export "print_i64") (param i64))
  (func (export "print_f32") (param f32))
  (func (export "print_f64") (param f64))
  (func (export "print_i32_f32") (param i32 f32))
  (func (export "print_f64_f64") (param f64 f64)))"#;

/// How threads are run.
#[derive(Clone, Copy, Debug)]
pub struct RunMode {
    /// Fuel per `run` call.
    pub slice: u64,
    /// Export, serialize, deserialize and import the state at every slice end.
    pub roundtrip: bool,
}

struct Inst {
    instance: Instance,
    space: usize,
    /// Target of every imported function, by function index: (instance,
    /// defined function).
    links: Vec<(usize, u32)>,
    /// Current values of all globals (carried from thread to thread).
    globals: Vec<Value>,
}

/// Result counts of one script.
#[derive(Default, Debug)]
pub struct Report {
    pub passed: usize,
    pub failed: Vec<String>,
    pub excluded: Vec<String>,
}

enum Failure {
    Trap(Trap),
    Other(String),
}

pub struct Script<'t> {
    file: &'t str,
    text: &'t str,
    mode: RunMode,
    spaces: Vec<AddressSpace>,
    insts: Vec<Inst>,
    registered: BTreeMap<String, usize>,
    named: BTreeMap<String, usize>,
    current: Option<usize>,
    /// Lines whose assertions are excluded, with the reason.
    exclusions: &'t [(u32, &'t str)],
    limits: Limits,
}

fn space() -> AddressSpace {
    AddressSpace::new(MemLimits { max_bytes: 1 << 32 })
}

impl<'t> Script<'t> {
    pub fn new(
        file: &'t str,
        text: &'t str,
        mode: RunMode,
        exclusions: &'t [(u32, &'t str)],
    ) -> Self {
        let mut s = Script {
            file,
            text,
            mode,
            spaces: Vec::new(),
            insts: Vec::new(),
            registered: BTreeMap::new(),
            named: BTreeMap::new(),
            current: None,
            exclusions,
            limits: Limits {
                max_call_depth: 2000,
                ..Limits::default()
            },
        };
        match s.instantiate(SPECTEST.as_bytes()) {
            Ok(id) => {
                s.registered.insert("spectest".into(), id);
            }
            Err(_) => panic!("the spectest module must instantiate"),
        }
        s
    }

    pub fn run(mut self) -> Report {
        let mut report = Report::default();
        let mut lexer = wast::lexer::Lexer::new(self.text);
        lexer.allow_confusing_unicode(true);
        let buf = match ParseBuffer::new_with_lexer(lexer) {
            Ok(b) => b,
            Err(e) => {
                report.failed.push(format!("{}: lexing: {e}", self.file));
                return report;
            }
        };
        let wast: Wast<'_> = match parser::parse(&buf) {
            Ok(w) => w,
            Err(e) => {
                report.failed.push(format!("{}: parsing: {e}", self.file));
                return report;
            }
        };
        for directive in wast.directives {
            let (line, _) = directive.span().linecol_in(self.text);
            let line = line as u32 + 1;
            if let Some((_, why)) = self.exclusions.iter().find(|(l, _)| *l == line) {
                report.excluded.push(format!("{}:{line}: {why}", self.file));
                // Module definitions must still happen for later directives.
                if let WastDirective::Module(m) = directive {
                    let _ = self.module_directive(m);
                }
                continue;
            }
            match self.directive(directive) {
                Ok(()) => report.passed += 1,
                Err(e) => report.failed.push(format!("{}:{line}: {e}", self.file)),
            }
        }
        report
    }

    fn directive(&mut self, d: WastDirective<'_>) -> Result<(), String> {
        match d {
            WastDirective::Module(m) => self.module_directive(m),
            WastDirective::Register { name, module, .. } => {
                let id = self.instance_id(module.map(|m| m.name()))?;
                self.registered.insert(name.to_string(), id);
                Ok(())
            }
            WastDirective::Invoke(invoke) => self.invoke(&invoke).map(|_| ()).map_err(describe),
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = self.execute(exec).map_err(describe)?;
                check_results(&got, &results)
            }
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec) {
                Ok(v) => Err(format!("expected trap {message:?}, got {v:?}")),
                Err(Failure::Trap(t)) => check_trap(&t, message),
                Err(Failure::Other(e)) => Err(format!("expected trap {message:?}, got error {e}")),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(v) => Err(format!("expected exhaustion, got {v:?}")),
                Err(Failure::Trap(t)) => check_trap(&t, message),
                Err(Failure::Other(e)) => Err(format!("expected exhaustion, got error {e}")),
            },
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            }
            | WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => {
                let bytes = match module.encode() {
                    Ok(b) => b,
                    Err(_) => return Ok(()), // rejected by the text parser
                };
                match Module::new(&bytes) {
                    Ok(_) => Err(format!("module accepted, expected {message:?}")),
                    Err(_) => Ok(()),
                }
            }
            WastDirective::AssertUnlinkable {
                module, message, ..
            } => {
                let mut wat = module;
                let bytes = wat.encode().map_err(|e| e.to_string())?;
                match self.instantiate(&bytes) {
                    Ok(_) => Err(format!("module linked, expected {message:?}")),
                    Err(Failure::Other(_)) => Ok(()),
                    Err(Failure::Trap(t)) => Err(format!("expected link error, got trap {t}")),
                }
            }
            other => Err(format!("unsupported directive {other:?}")),
        }
    }

    fn module_directive(&mut self, mut m: QuoteWat<'_>) -> Result<(), String> {
        let name = m.name().map(|n| n.name().to_string());
        let bytes = m.encode().map_err(|e| e.to_string())?;
        let id = self.instantiate(&bytes).map_err(describe)?;
        self.current = Some(id);
        if let Some(name) = name {
            self.named.insert(name, id);
        }
        Ok(())
    }

    fn instance_id(&self, name: Option<&str>) -> Result<usize, String> {
        match name {
            Some(n) => self
                .named
                .get(n)
                .copied()
                .ok_or_else(|| format!("no module named {n}")),
            None => self.current.ok_or_else(|| "no current module".to_string()),
        }
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> Result<Vec<Value>, Failure> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Wat(mut wat) => {
                let bytes = wat.encode().map_err(|e| Failure::Other(e.to_string()))?;
                self.instantiate(&bytes).map(|_| Vec::new())
            }
            WastExecute::Get { module, global, .. } => {
                let id = self
                    .instance_id(module.map(|m| m.name()))
                    .map_err(Failure::Other)?;
                let inst = &self.insts[id];
                match inst.instance.module().export(global) {
                    Some(Export::Global(g)) => Ok(vec![
                        inst.instance
                            .shared_global(g)
                            .unwrap_or(inst.globals[g as usize]),
                    ]),
                    _ => Err(Failure::Other(format!("no global {global}"))),
                }
            }
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Vec<Value>, Failure> {
        let id = self
            .instance_id(invoke.module.map(|m| m.name()))
            .map_err(Failure::Other)?;
        let args = invoke
            .args
            .iter()
            .map(arg)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Other)?;
        let func = match self.insts[id].instance.module().export(invoke.name) {
            Some(Export::Func(f)) => f,
            _ => return Err(Failure::Other(format!("no function {}", invoke.name))),
        };
        self.call(id, func, &args)
    }

    /// The function that function index `func` of instance `id` names:
    /// the target of an import link, a function of another instance met
    /// through a reference, or its own.
    fn resolve(&self, id: usize, func: u32) -> Result<(usize, u32), Failure> {
        let inst = &self.insts[id].instance;
        if func < inst.module().num_imported_funcs() {
            return Ok(self.insts[id].links[func as usize]);
        }
        let addr = inst
            .foreign_function(func)
            .ok_or_else(|| Failure::Other(format!("no function {func}")))?;
        let target = (addr.instance.0 as usize)
            .checked_sub(1)
            .filter(|t| *t < self.insts.len())
            .ok_or_else(|| Failure::Other(format!("no instance {:?}", addr.instance)))?;
        Ok((target, addr.func))
    }

    /// `values` of instance `from` in the terms of instance `to` (function
    /// references name the same functions).
    fn carry(&self, from: usize, to: usize, values: &[Value]) -> Result<Vec<Value>, Failure> {
        let (src, dst) = (&self.insts[from].instance, &self.insts[to].instance);
        values
            .iter()
            .map(|v| match *v {
                Value::FuncRef(Some(f)) => {
                    let (Some(addr), Some(ty)) = (src.foreign_function(f), src.function_type(f))
                    else {
                        return Err(Failure::Other(format!("no function {f}")));
                    };
                    Ok(Value::FuncRef(Some(dst.function_index(addr, &ty))))
                }
                v => Ok(v),
            })
            .collect()
    }

    /// Calls function `func` of instance `id` (following import links and
    /// references to other instances' functions).
    fn call(&mut self, id: usize, func: u32, args: &[Value]) -> Result<Vec<Value>, Failure> {
        let (target, f) = self.resolve(id, func)?;
        if (target, f) != (id, func) {
            let args = self.carry(id, target, args)?;
            let results = self.call(target, f, &args)?;
            return self.carry(target, id, &results);
        }
        let mut thread = Thread::new(&self.insts[id].instance, func, args)
            .map_err(|e| Failure::Other(e.to_string()))?;
        let inst = &self.insts[id];
        for (g, v) in inst.globals.iter().enumerate() {
            // A shared global is not the thread's: it has its own value.
            if inst.instance.shared_global(g as u32).is_none() {
                thread.set_global(&inst.instance, g as u32, *v);
            }
        }
        let result = loop {
            let inst = &mut self.insts[id];
            let outcome = thread.run(
                &mut inst.instance,
                &mut self.spaces[inst.space],
                self.mode.slice,
            );
            match outcome {
                Outcome::Finished(values) => break Ok(values),
                Outcome::Trap(t) => break Err(Failure::Trap(t)),
                Outcome::OutOfFuel => {}
                Outcome::HostCall { import, args } => {
                    let results = match self.call(id, import, &args) {
                        Ok(r) => r,
                        Err(e) => break Err(e),
                    };
                    if let Err(e) = thread.complete_host_call(&self.insts[id].instance, &results) {
                        break Err(Failure::Other(format!("completing host call: {e}")));
                    }
                }
            }
            // Round trips cost time linear in the stack; deep recursions
            // (exhaustion tests) are round-tripped only while shallow.
            if self.mode.roundtrip && thread.depth() <= 64 && thread.stack_slots() <= 256 {
                let inst = &self.insts[id].instance;
                let state = thread
                    .export_state(inst)
                    .map_err(|e| Failure::Other(format!("export: {e}")))?;
                let bytes =
                    postcard::to_allocvec(&state).map_err(|e| Failure::Other(e.to_string()))?;
                let state: ExecState =
                    postcard::from_bytes(&bytes).map_err(|e| Failure::Other(e.to_string()))?;
                thread = Thread::import_state(inst, &state)
                    .map_err(|e| Failure::Other(format!("import: {e}")))?;
            }
        };
        let inst = &mut self.insts[id];
        for g in 0..inst.globals.len() {
            if let Some(v) = thread.global(&inst.instance, g as u32) {
                inst.globals[g] = v;
            }
        }
        result
    }

    /// Links, instantiates and runs the start function of a module.
    fn instantiate(&mut self, bytes: &[u8]) -> Result<usize, Failure> {
        let module = Module::new(bytes).map_err(|e| Failure::Other(e.to_string()))?;
        let mut externs = Vec::new();
        let mut links = Vec::new();
        let mut space = None;
        for import in module.imports() {
            let link_err = |why: &str| {
                Failure::Other(format!(
                    "unknown import {}.{}: {why}",
                    import.module, import.name
                ))
            };
            let &from = self
                .registered
                .get(&import.module)
                .ok_or_else(|| link_err("no such module"))?;
            let exporter = &mut self.insts[from];
            let emodule = exporter.instance.module().clone();
            let export = emodule
                .export(&import.name)
                .ok_or_else(|| link_err("no such export"))?;
            match (&import.kind, export) {
                (ImportKind::Func(t), Export::Func(f)) => {
                    if emodule.func_type(f) != module.types().get(*t as usize) {
                        return Err(link_err("function type mismatch"));
                    }
                    let target = if f < emodule.num_imported_funcs() {
                        exporter.links[f as usize]
                    } else {
                        (from, f)
                    };
                    links.push(target);
                    externs.push(Extern::Func);
                }
                (ImportKind::Global(t), Export::Global(g)) => {
                    if emodule.global_type(g) != Some(*t) {
                        return Err(link_err("global type mismatch"));
                    }
                    if t.mutable {
                        let current = exporter.globals[g as usize];
                        let cell = exporter
                            .instance
                            .share_global(g, current)
                            .ok_or_else(|| link_err("global cannot be shared"))?;
                        externs.push(Extern::MutableGlobal(cell));
                    } else {
                        // The value is supplied in the importer's terms, and
                        // the importer does not exist yet to name another
                        // instance's function: refuse rather than misname.
                        let v = exporter.globals[g as usize];
                        if matches!(v, Value::FuncRef(Some(_))) {
                            return Err(link_err("immutable funcref global of another instance"));
                        }
                        externs.push(Extern::Global(v));
                    }
                }
                (ImportKind::Table(t), Export::Table(i)) => {
                    let Some(et) = emodule.table_type(i) else {
                        return Err(link_err("no table"));
                    };
                    if et.element != t.element {
                        return Err(link_err("table type mismatch"));
                    }
                    let table = exporter
                        .instance
                        .share_table(i)
                        .ok_or_else(|| link_err("table cannot be shared"))?;
                    externs.push(Extern::Table(table));
                }
                (ImportKind::Memory(t), Export::Memory(_)) => {
                    let Some(mt) = emodule.memory_type() else {
                        return Err(link_err("no memory"));
                    };
                    let size = self.spaces[exporter.space].primary_wasm_pages();
                    let max_ok = match (t.max, mt.max) {
                        (None, _) => true,
                        (Some(want), Some(have)) => have <= want,
                        (Some(_), None) => false,
                    };
                    if size < t.min || !max_ok {
                        return Err(link_err("memory limits mismatch"));
                    }
                    space = Some(exporter.space);
                    externs.push(Extern::Memory);
                }
                _ => return Err(link_err("kind mismatch")),
            }
        }
        let space = match space {
            Some(s) => s,
            None => {
                self.spaces.push(self::space());
                self.spaces.len() - 1
            }
        };
        let id = self.insts.len();
        let instance = Instance::link(
            module.clone(),
            &mut self.spaces[space],
            &self.limits,
            &externs,
            InstanceId(id as u32 + 1),
        )
        .map_err(|e| Failure::Other(e.to_string()))?;
        let globals = (0..module.num_globals())
            .filter_map(|g| instance.initial_global(g))
            .collect();
        self.insts.push(Inst {
            instance,
            space,
            links,
            globals,
        });
        // A trap leaves the instance in place: what its segments wrote into
        // shared tables refers to its functions.
        if let Err(kind) = self.insts[id]
            .instance
            .apply_segments(&mut self.spaces[space])
        {
            return Err(Failure::Trap(Trap {
                kind,
                func: 0,
                offset: 0,
            }));
        }
        if let Some(start) = module.start_function() {
            self.call(id, start, &[])?;
        }
        Ok(id)
    }
}

fn describe(f: Failure) -> String {
    match f {
        Failure::Trap(t) => format!("trap: {t}"),
        Failure::Other(e) => e,
    }
}

fn check_trap(trap: &Trap, expected: &str) -> Result<(), String> {
    let got = trap.kind.to_string();
    if got.starts_with(expected) || expected.starts_with(got.as_str()) {
        Ok(())
    } else {
        Err(format!("expected trap {expected:?}, got {got:?}"))
    }
}

fn arg(a: &WastArg<'_>) -> Result<Value, String> {
    Ok(match a {
        WastArg::Core(WastArgCore::I32(x)) => Value::I32(*x as u32),
        WastArg::Core(WastArgCore::I64(x)) => Value::I64(*x as u64),
        WastArg::Core(WastArgCore::F32(x)) => Value::F32(x.bits),
        WastArg::Core(WastArgCore::F64(x)) => Value::F64(x.bits),
        WastArg::Core(WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Func,
            ..
        })) => Value::FuncRef(None),
        WastArg::Core(WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Extern,
            ..
        })) => Value::ExternRef(None),
        WastArg::Core(WastArgCore::RefExtern(x)) => Value::ExternRef(Some(*x)),
        other => return Err(format!("unsupported argument {other:?}")),
    })
}

fn check_results(got: &[Value], expected: &[WastRet<'_>]) -> Result<(), String> {
    if got.len() != expected.len() {
        return Err(format!("expected {} results, got {got:?}", expected.len()));
    }
    for (g, e) in got.iter().zip(expected) {
        let WastRet::Core(e) = e else {
            return Err("unsupported result".into());
        };
        if !matches_ret(g, e) {
            return Err(format!("expected {e:?}, got {got:?}"));
        }
    }
    Ok(())
}

fn matches_ret(got: &Value, expected: &WastRetCore<'_>) -> bool {
    match (expected, got) {
        (WastRetCore::I32(x), Value::I32(v)) => *x as u32 == *v,
        (WastRetCore::I64(x), Value::I64(v)) => *x as u64 == *v,
        (WastRetCore::F32(p), Value::F32(v)) => match p {
            NanPattern::CanonicalNan => v & 0x7fff_ffff == 0x7fc0_0000,
            NanPattern::ArithmeticNan => v & 0x7fc0_0000 == 0x7fc0_0000,
            NanPattern::Value(x) => x.bits == *v,
        },
        (WastRetCore::F64(p), Value::F64(v)) => match p {
            NanPattern::CanonicalNan => v & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
            NanPattern::ArithmeticNan => v & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
            NanPattern::Value(x) => x.bits == *v,
        },
        (WastRetCore::RefNull(_), Value::FuncRef(None) | Value::ExternRef(None)) => true,
        (WastRetCore::RefExtern(None), Value::ExternRef(Some(_))) => true,
        (WastRetCore::RefExtern(Some(x)), Value::ExternRef(Some(v))) => x == v,
        (WastRetCore::RefFunc(_), Value::FuncRef(Some(_))) => true,
        (WastRetCore::Either(alts), _) => alts.iter().any(|a| matches_ret(got, a)),
        _ => false,
    }
}
