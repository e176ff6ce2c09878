//! IPC round trips between two native tasks through the full system call
//! path (auditing and tracing off, as in a live system).
//!
//! Guest-to-guest and guest-to-native round trips need the machine binding
//! and come later.

use std::hint::black_box;
use std::task::Poll;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{EOK, Event};
use spartan_kernel::kernel::{ClockMode, Kernel, KernelConfig};
use spartan_kernel::task::TaskPolicy;

fn quiet() -> Kernel {
    Kernel::new(KernelConfig {
        seed: 1,
        clock: ClockMode::Simulation,
        audit: false,
        trace: false,
    })
}

fn round_trips(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipc_round_trip_native");
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
    g.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
