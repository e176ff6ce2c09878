//! IPC round trips through the full system call path (auditing and tracing
//! off, as in a live system), side by side in one group:
//!
//! - `sync` / `async`: between two native tasks;
//! - `guest_guest_sync`: a guest client's `ipc_call_sync` answered by a
//!   guest server, both run by the fuel scheduler (two context switches of
//!   the scheduler per round trip, interpreter time included);
//! - `guest_native_sync`: a guest client answered by a native server that
//!   the same scheduler runs.
//!
//! Run: `cargo bench -p spartan-kernel --bench ipc`. Each guest iteration
//! batch is one client program making `iters` calls; only the scheduler's
//! run is timed (loading the modules is not).

use std::hint::black_box;
use std::task::Poll;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spartan_kernel::guest::{SchedConfig, Scheduler, rt};
use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{EOK, Event};
use spartan_kernel::kernel::{ClockMode, Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Step};
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};

/// Answers every call with `a1 + 1`, forever.
const GUEST_SERVER: &str = r#"
  (func (export "main")
    (loop $serve
      (if (i64.eq (call $wait (i64.const -1)) (i64.const 1))
        (then (drop (call $answer (call $ev (i32.const 1)) (i64.const 0)
          (i64.add (call $ev (i32.const 5)) (i64.const 1))))))
      (br $serve)))
"#;

/// Makes `n` synchronous calls through phone 0.
const GUEST_CLIENT: &str = r#"
  (func (export "main") (param $n i64) (local $i i64)
    (loop $calls
      (if (i64.ne (call $call_sync (i32.const 0) (i64.const 1024) (local.get $i)) (i64.const 0))
        (then unreachable))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $calls (i64.lt_u (local.get $i) (local.get $n)))))
"#;

/// A native server answering every call with `a1 + 1`, forever.
struct NativeServer(NativeTask);

impl NativeProgram for NativeServer {
    fn thread(&self) -> ThreadId {
        self.0.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        if let Ok(Poll::Ready(Event::Call { rx_id, args, .. })) = self.0.wait(k, u64::MAX) {
            self.0
                .answer(k, rx_id, EOK, [args[0] + 1, 0, 0, 0, 0])
                .expect("answer");
        }
        Step::Continue
    }
}

fn guest(s: &mut Scheduler, k: &mut Kernel, body: &str, args: &[Value]) -> TaskId {
    s.spawn_guest(
        k,
        "bench",
        TaskPolicy::Checkpointable,
        rt::program(body).as_bytes(),
        "main",
        args,
    )
    .expect("guest loads")
    .0
}

/// Times `iters` round trips of a guest client against a guest server
/// (`native_server` false) or a native one.
fn guest_round_trips(iters: u64, native_server: bool) -> Duration {
    let mut k = quiet();
    let mut s = Scheduler::new(SchedConfig::default());
    let server = if native_server {
        let t = k.spawn_native("server", TaskPolicy::Neither);
        s.add_native(Box::new(NativeServer(t)));
        t.id()
    } else {
        guest(&mut s, &mut k, GUEST_SERVER, &[])
    };
    let client = guest(&mut s, &mut k, GUEST_CLIENT, &[Value::I64(iters)]);
    k.connect_phone(client, server).expect("phone");
    let start = Instant::now();
    let end = s.run(&mut k, u64::MAX);
    let took = start.elapsed();
    // The client is done; the server waits forever.
    assert_eq!(end, RunEnd::Deadlock);
    assert!(k.task(client).is_none(), "the client did not finish");
    took
}

fn quiet() -> Kernel {
    Kernel::new(KernelConfig {
        seed: 1,
        clock: ClockMode::Simulation,
        audit: false,
        trace: false,
    })
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipc_round_trip");
    g.throughput(Throughput::Elements(1));

    g.bench_function("sync", |b| {
        let mut k = quiet();
        let client = k.spawn_native("client", TaskPolicy::Checkpointable);
        let server = k.spawn_native("server", TaskPolicy::Neither);
        let p = k.connect_phone(client.id(), server.id()).unwrap();
        b.iter(|| {
            let args = [black_box(1), 0, 0, 0, 0];
            assert!(
                client
                    .call_sync(&mut k, p, FIRST_USER_METHOD, args)
                    .unwrap()
                    .is_pending()
            );
            let Ok(Poll::Ready(Event::Call { rx_id, args, .. })) = server.wait(&mut k, 0) else {
                panic!("no call");
            };
            server
                .answer(&mut k, rx_id, EOK, [args[0] + 1, 0, 0, 0, 0])
                .unwrap();
            let a = client
                .call_sync(&mut k, p, FIRST_USER_METHOD, [1, 0, 0, 0, 0])
                .unwrap();
            black_box(a)
        });
    });

    g.bench_function("async", |b| {
        let mut k = quiet();
        let client = k.spawn_native("client", TaskPolicy::Checkpointable);
        let server = k.spawn_native("server", TaskPolicy::Neither);
        let p = k.connect_phone(client.id(), server.id()).unwrap();
        b.iter(|| {
            client
                .call_async(&mut k, p, FIRST_USER_METHOD, [black_box(1), 0, 0, 0, 0])
                .unwrap();
            let Ok(Poll::Ready(Event::Call { rx_id, .. })) = server.wait(&mut k, 0) else {
                panic!("no call");
            };
            server.answer(&mut k, rx_id, EOK, [0; 5]).unwrap();
            let Ok(Poll::Ready(Event::Answer(a))) = client.wait(&mut k, 0) else {
                panic!("no answer");
            };
            black_box(a)
        });
    });
    g.bench_function("guest_guest_sync", |b| {
        b.iter_custom(|iters| guest_round_trips(iters, false));
    });

    g.bench_function("guest_native_sync", |b| {
        b.iter_custom(|iters| guest_round_trips(iters, true));
    });
    g.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
