//! Tests of instances linked with each other: a shared table, a shared
//! mutable global, calls through references to another instance's
//! functions, and export/import of the state of an importing instance.

use std::sync::Arc;

use super::code::Op;
use super::*;
use crate::mm::{AddressSpace, MemLimits};

/// Exports a table holding its own function at 0 and a mutable global.
const A: &str = r#"(module
  (type $r (func (result i32)))
  (table (export "tab") 4 funcref)
  (global (export "g") (mut i32) (i32.const 7))
  (func $own (result i32) (i32.const 1))
  (elem (i32.const 0) $own)
  (func (export "call") (param i32) (result i32) (call_indirect (type $r) (local.get 0)))
  (func (export "get_g") (result i32) (global.get 0))
  (func (export "set_g") (param i32) (global.set 0 (local.get 0))))"#;

/// Imports A's table and global; writes its own functions into the table.
const B: &str = r#"(module
  (type $r (func (result i32)))
  (import "a" "tab" (table 4 funcref))
  (import "a" "g" (global (mut i32)))
  (func $mine (result i32) (i32.add (global.get 0) (i32.const 100)))
  (func $wrong (param i32))
  (elem (i32.const 1) $mine $wrong)
  (func (export "call") (param i32) (result i32) (call_indirect (type $r) (local.get 0)))
  (func (export "set_g") (param i32) (global.set 0 (local.get 0)))
  (func (export "spin") (param $n i32) (result i32)
    (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (call_indirect (type $r) (i32.const 1))))
      (global.set 0 (i32.add (global.get 0) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $acc))
  (func (export "hold") (result i32)
    (local $i i32)
    (table.get 0 (i32.const 0))
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
    (drop)
    (local.get $i)))"#;

const ID_A: InstanceId = InstanceId(1);
const ID_B: InstanceId = InstanceId(2);

fn space() -> AddressSpace {
    AddressSpace::new(MemLimits { max_bytes: 1 << 20 })
}

struct Linked {
    a: Instance,
    b: Instance,
    b_imports: Vec<Extern>,
    space: AddressSpace,
}

/// A, then B linked to A's table and global.
fn link_both() -> Linked {
    let mut space = space();
    let limits = Limits::default();
    let module_a = Module::new(A.as_bytes()).expect("A");
    let mut a = Instance::link(module_a, &mut space, &limits, &[], ID_A).expect("link A");
    a.apply_segments(&mut space).expect("segments A");
    let table = a.share_table(0).expect("share table");
    let global = a.share_global(0, Value::I32(7)).expect("share global");
    let b_imports = vec![Extern::Table(table), Extern::MutableGlobal(global)];
    let module_b = Module::new(B.as_bytes()).expect("B");
    let mut b = Instance::link(module_b, &mut space, &limits, &b_imports, ID_B).expect("link B");
    b.apply_segments(&mut space).expect("segments B");
    Linked {
        a,
        b,
        b_imports,
        space,
    }
}

/// Runs `entry` of `inst` to the end, answering calls of other instances'
/// functions from `other` (which must need no further host calls).
fn run(
    inst: &mut Instance,
    other: &mut Instance,
    space: &mut AddressSpace,
    entry: &str,
    args: &[Value],
) -> Outcome {
    let mut t = Thread::new(inst, entry, args).expect("thread");
    loop {
        match t.run(inst, space, u64::MAX) {
            Outcome::HostCall { import, args } => {
                let addr = inst.foreign_function(import).expect("foreign function");
                assert_eq!(addr.instance, other.id());
                let mut callee = Thread::new(other, addr.func, &args).expect("callee");
                let Outcome::Finished(results) = callee.run(other, space, u64::MAX) else {
                    panic!("callee did not finish");
                };
                t.complete_host_call(inst, &results).expect("complete");
            }
            other => return other,
        }
    }
}

#[test]
fn a_function_stored_in_a_shared_table_is_called_in_its_own_instance() {
    let Linked {
        mut a,
        mut b,
        mut space,
        ..
    } = link_both();
    // A's own entry, B's function written by B's segment: A calls it as a
    // host call of a foreign function, which runs in B with B's view of
    // the shared global.
    let mut t = Thread::new(&a, "call", &[Value::I32(1)]).expect("thread");
    let Outcome::HostCall { import, args } = t.run(&mut a, &mut space, u64::MAX) else {
        panic!("expected a foreign call");
    };
    assert!(import >= a.module().num_funcs());
    assert!(args.is_empty());
    assert_eq!(
        a.foreign_function(import),
        Some(FuncAddr {
            instance: ID_B,
            func: 0
        })
    );
    assert!(matches!(
        t.export_state(&a),
        Err(StateError::ForeignFunction)
    ));
    assert_eq!(
        run(&mut a, &mut b, &mut space, "call", &[Value::I32(1)]),
        Outcome::Finished(vec![Value::I32(107)])
    );
    // B reaches its own function through the shared table directly, and
    // A's through a foreign call.
    assert_eq!(
        run(&mut b, &mut a, &mut space, "call", &[Value::I32(1)]),
        Outcome::Finished(vec![Value::I32(107)])
    );
    assert_eq!(
        run(&mut b, &mut a, &mut space, "call", &[Value::I32(0)]),
        Outcome::Finished(vec![Value::I32(1)])
    );
    let trap = |o: Outcome| match o {
        Outcome::Trap(t) => t.kind,
        other => panic!("expected a trap, got {other:?}"),
    };
    assert_eq!(
        trap(run(&mut a, &mut b, &mut space, "call", &[Value::I32(2)])),
        TrapKind::IndirectCallTypeMismatch
    );
    assert_eq!(
        trap(run(&mut a, &mut b, &mut space, "call", &[Value::I32(3)])),
        TrapKind::UninitializedElement
    );
    assert_eq!(
        trap(run(&mut a, &mut b, &mut space, "call", &[Value::I32(4)])),
        TrapKind::UndefinedElement
    );
    // Both see the same elements, each in its own terms.
    let (ta, tb) = (a.table(0).expect("A"), b.table(0).expect("B"));
    assert_eq!(ta[0], Value::FuncRef(Some(0)));
    assert_eq!(tb[1], Value::FuncRef(Some(0)));
    assert!(matches!(ta[1], Value::FuncRef(Some(f)) if f >= a.module().num_funcs()));
    assert!(matches!(tb[0], Value::FuncRef(Some(f)) if f >= b.module().num_funcs()));
}

#[test]
fn a_shared_global_is_one_value_for_every_thread_of_both_instances() {
    let mut space = space();
    let limits = Limits::default();
    let module_a = Module::new(A.as_bytes()).expect("A");
    let mut a = Instance::link(module_a, &mut space, &limits, &[], ID_A).expect("link A");
    // Before sharing, each thread of A has its own copy.
    let mut t1 = Thread::new(&a, "set_g", &[Value::I32(5)]).expect("t1");
    assert!(matches!(
        t1.run(&mut a, &mut space, u64::MAX),
        Outcome::Finished(_)
    ));
    assert_eq!(t1.global(&a, 0), Some(Value::I32(5)));
    let mut t2 = Thread::new(&a, "get_g", &[]).expect("t2");
    assert_eq!(
        t2.run(&mut a, &mut space, u64::MAX),
        Outcome::Finished(vec![Value::I32(7)])
    );
    assert_eq!(a.shared_global(0), None);
    // Shared with the value of t1's copy: from now on one value.
    let cell = a.share_global(0, Value::I32(5)).expect("share");
    assert_eq!(a.shared_global(0), Some(Value::I32(5)));
    let module_b = Module::new(B.as_bytes()).expect("B");
    let table = a.share_table(0).expect("table");
    let mut b = Instance::link(
        module_b,
        &mut space,
        &limits,
        &[Extern::Table(table), Extern::MutableGlobal(cell)],
        ID_B,
    )
    .expect("link B");
    let mut tb = Thread::new(&b, "set_g", &[Value::I32(42)]).expect("tb");
    assert!(matches!(
        tb.run(&mut b, &mut space, u64::MAX),
        Outcome::Finished(_)
    ));
    let mut t3 = Thread::new(&a, "get_g", &[]).expect("t3");
    assert_eq!(
        t3.run(&mut a, &mut space, u64::MAX),
        Outcome::Finished(vec![Value::I32(42)])
    );
    // The thread API reads and writes the shared object too.
    assert_eq!(t1.global(&a, 0), Some(Value::I32(42)));
    assert!(t1.set_global(&a, 0, Value::I32(9)));
    assert_eq!(b.shared_global(0), Some(Value::I32(9)));
}

#[test]
fn a_thread_of_an_importing_instance_round_trips_into_a_fresh_linked_instance() {
    let n = 40;
    // Reference: one run without interruption.
    let Linked {
        mut a,
        mut b,
        mut space,
        ..
    } = link_both();
    let expected = run(&mut b, &mut a, &mut space, "spin", &[Value::I32(n)]);
    assert_eq!(
        expected,
        Outcome::Finished(vec![Value::I32(n * 107 + n * (n - 1) / 2)])
    );
    let expected_global = a.shared_global(0);
    assert_eq!(expected_global, Some(Value::I32(7 + n)));

    // The same in slices of 5 fuel, with both states serialized and
    // imported into a fresh instance of B linked to the same shared table
    // and global at every slice end.
    let Linked {
        a,
        mut b,
        b_imports,
        mut space,
    } = link_both();
    let mut t = Thread::new(&b, "spin", &[Value::I32(n)]).expect("thread");
    let mut slices = 0;
    let outcome = loop {
        slices += 1;
        match t.run(&mut b, &mut space, 5) {
            Outcome::OutOfFuel => {}
            other => break other,
        }
        let exec = t.export_state(&b).expect("export thread");
        let inst = b.export_state();
        assert_eq!(inst.tables, vec![Vec::<Value>::new()], "imported table");
        assert_eq!(Some(exec.globals[0]), a.shared_global(0));
        let exec: ExecState =
            postcard::from_bytes(&postcard::to_allocvec(&exec).expect("ser")).expect("de");
        let inst: InstanceState =
            postcard::from_bytes(&postcard::to_allocvec(&inst).expect("ser")).expect("de");
        b = Instance::restore_linked(
            b.module().clone(),
            &mut space,
            &Limits::default(),
            &b_imports,
            &inst,
            ID_B,
        )
        .expect("restore");
        t = Thread::import_state(&b, &exec).expect("import thread");
    };
    assert!(slices > 10, "{slices} slices");
    assert_eq!(outcome, expected);
    assert_eq!(a.shared_global(0), expected_global);
}

#[test]
fn a_state_of_a_shared_global_keeps_the_shared_value_on_import() {
    let Linked {
        a,
        mut b,
        mut space,
        ..
    } = link_both();
    let mut t = Thread::new(&b, "set_g", &[Value::I32(3)]).expect("thread");
    let mut exec = t.export_state(&b).expect("export");
    exec.globals[0] = Value::I32(1234);
    let t2 = Thread::import_state(&b, &exec).expect("import");
    assert_eq!(a.shared_global(0), Some(Value::I32(7)));
    assert_eq!(t2.global(&b, 0), Some(Value::I32(7)));
    assert!(matches!(
        t.run(&mut b, &mut space, u64::MAX),
        Outcome::Finished(_)
    ));
    assert_eq!(a.shared_global(0), Some(Value::I32(3)));
    // Into an instance where the global is the thread's own, the value
    // becomes the thread's copy.
    let mut space2 = self::space();
    let fresh = Instance::new(
        Module::new(A.as_bytes()).expect("A"),
        &mut space2,
        &Limits::default(),
        &[],
    )
    .expect("A");
    let mut ta = Thread::new(&fresh, "get_g", &[]).expect("thread");
    let mut state = ta.export_state(&fresh).expect("export");
    state.globals[0] = Value::I32(55);
    ta = Thread::import_state(&fresh, &state).expect("import");
    assert_eq!(ta.global(&fresh, 0), Some(Value::I32(55)));
}

#[test]
fn references_to_another_instances_functions_have_no_module_terms() {
    let Linked {
        a,
        mut b,
        mut space,
        ..
    } = link_both();
    // B holds A's function on its stack while it loops.
    let mut t = Thread::new(&b, "hold", &[]).expect("thread");
    assert_eq!(t.run(&mut b, &mut space, 10), Outcome::OutOfFuel);
    assert_eq!(t.export_state(&b), Err(StateError::ForeignFunction));
    assert_eq!(
        t.run(&mut b, &mut space, u64::MAX),
        Outcome::Finished(vec![Value::I32(1000)])
    );
    // A's own (shared) table holds B's function: exported as an index
    // beyond A's functions, which an import refuses.
    let state = a.export_state();
    let n = a.module().num_funcs();
    assert!(matches!(state.tables[0][1], Value::FuncRef(Some(f)) if f >= n));
    let mut space2 = self::space();
    let restored = Instance::restore(
        a.module().clone(),
        &mut space2,
        &Limits::default(),
        &[],
        &state,
    );
    assert!(matches!(
        restored,
        Err(InstantiateError::State(InstanceStateError::TableElement(0)))
    ));
    // An imported table's list must be empty.
    let mut bad = b.export_state();
    bad.tables[0] = vec![Value::FuncRef(None); 4];
    assert_eq!(
        b.import_state(&bad),
        Err(InstanceStateError::ImportedTable(0))
    );
}

#[test]
fn an_unlinked_instance_shares_nothing() {
    let mut space = space();
    let limits = Limits::default();
    let mut a = Instance::new(
        Module::new(A.as_bytes()).expect("A"),
        &mut space,
        &limits,
        &[],
    )
    .expect("A");
    assert_eq!(a.id(), InstanceId::UNLINKED);
    assert!(a.share_table(0).is_none());
    assert!(a.share_global(0, Value::I32(7)).is_none());
    let Linked { b_imports, .. } = link_both();
    let b = Instance::new(
        Module::new(B.as_bytes()).expect("B"),
        &mut space,
        &limits,
        &b_imports,
    );
    assert!(matches!(b, Err(InstantiateError::Incompatible { .. })));
    // A mutable global import needs the exporter's global, not a value.
    let linked = Instance::link(
        Module::new(B.as_bytes()).expect("B"),
        &mut space,
        &limits,
        &[b_imports[0].clone(), Extern::Global(Value::I32(1))],
        ID_B,
    );
    assert!(matches!(
        linked,
        Err(InstantiateError::Incompatible { index: 1, .. })
    ));
}

#[test]
fn only_imported_or_exported_mutable_globals_take_the_shared_path() {
    let module: Arc<Module> = Module::new(
        br#"(module
      (global $own (mut i32) (i32.const 0))
      (global $exp (export "e") (mut i32) (i32.const 0))
      (global $const (export "c") i32 (i32.const 0))
      (func (export "f") (result i32)
        (global.set $own (global.get $exp))
        (global.set $exp (global.get $own))
        (i32.add (global.get $own) (global.get $const))))"#,
    )
    .expect("module");
    let code = module.code_of(0).expect("code");
    let has = |op: Op| code.ops.contains(&op);
    assert!(has(Op::GlobalGet(0)) && has(Op::GlobalSet(0)) && has(Op::GlobalGet(2)));
    assert!(has(Op::GlobalGetShared(1)) && has(Op::GlobalSetShared(1)));
    assert!(!has(Op::GlobalGetShared(0)) && !has(Op::GlobalGetShared(2)));
}
