//! A thread imported from its exported state spends fuel exactly as the
//! original: at every stop of a run with varying budgets, the state is
//! exported and imported into a copy (instance and space recreated from a
//! snapshot); both run the same budget and must end in the same outcome,
//! fuel and state. Guards the choice among resume points that share a
//! wasm offset (an entry or loop header with a call or inner loop).

mod ckpt_common;

use ckpt_common::ASYNC_CLIENT;
use spartan_kernel::guest::rt;
use spartan_kernel::machine::{Extern, Instance, Limits, Module, Outcome, Thread, Value};
use spartan_kernel::mm::{AddressSpace, MemLimits};

#[test]
fn an_imported_thread_spends_fuel_like_the_original() {
    let m = Module::new(rt::program(ASYNC_CLIENT).as_bytes()).expect("module");
    let n = m.imports().len();
    let imports = vec![Extern::Func; n];
    let mut space = AddressSpace::new(MemLimits::default());
    let mut inst = Instance::new(m, &mut space, &Limits::default(), &imports).expect("instance");
    let mut t = Thread::new(&inst, "main", &[Value::I32(0)]).expect("thread");
    let mut host_calls = 0;
    for step in 0..20_000u64 {
        let state = t.export_state(&inst).expect("export");
        let mut space2 =
            AddressSpace::from_snapshot(MemLimits::default(), &space.snapshot(), |_| None)
                .expect("space copy");
        let mut inst2 = Instance::restore(
            inst.module().clone(),
            &mut space2,
            &Limits::default(),
            &imports,
            &inst.export_state(),
        )
        .expect("instance copy");
        let mut u = Thread::import_state(&inst2, &state).expect("import");
        let budget = 1 + (step * 7919) % 60;
        let o1 = t.run(&mut inst, &mut space, budget);
        let o2 = u.run(&mut inst2, &mut space2, budget);
        assert_eq!(o1, o2, "step {step}");
        assert_eq!(t.fuel_left(), u.fuel_left(), "step {step}");
        assert_eq!(
            t.export_state(&inst).expect("export"),
            u.export_state(&inst2).expect("export"),
            "step {step}"
        );
        if let Outcome::HostCall { import, .. } = o1 {
            host_calls += 1;
            // ipc_wait (import 8) reports an answer; everything else 1.
            let r = if import == 8 { 2 } else { 1 };
            t.complete_host_call(&inst, &[Value::I64(r)])
                .expect("complete");
        }
    }
    assert!(host_calls > 1000, "the program made host calls");
}
