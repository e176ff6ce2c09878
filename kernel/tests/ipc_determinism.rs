//! Determinism: a seeded simulation of native clients and a server gives
//! the same trace for the same seed.

mod ipc_common;

use std::task::Poll;

use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{EOK, Event, PhoneId};
use spartan_kernel::kernel::{Kernel, KernelConfig, TraceEvent};
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Simulation, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskPolicy, ThreadId};

const ADD: u64 = FIRST_USER_METHOD;

struct Server {
    t: NativeTask,
    served: u64,
    target: u64,
}

impl NativeProgram for Server {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        match self.t.wait(k, FOREVER).expect("wait") {
            Poll::Pending => Step::Continue,
            Poll::Ready(Event::Call { rx_id, args, .. }) => {
                self.t
                    .answer(k, rx_id, EOK, [args[0] + 1, 0, 0, 0, 0])
                    .expect("answer");
                self.served += 1;
                if self.served == self.target {
                    self.t.log(k, "server done").expect("log");
                    Step::Done
                } else {
                    Step::Continue
                }
            }
            Poll::Ready(other) => panic!("unexpected {other:?}"),
        }
    }
}

struct Client {
    t: NativeTask,
    phone: PhoneId,
    n: u64,
    done: u64,
    sleeping: bool,
    pause: u64,
}

impl NativeProgram for Client {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        if self.sleeping {
            match self.t.sleep(k, self.pause).expect("sleep") {
                Poll::Pending => return Step::Continue,
                Poll::Ready(()) => self.sleeping = false,
            }
        }
        match self
            .t
            .call_sync(k, self.phone, ADD, [self.done, 0, 0, 0, 0])
            .expect("call")
        {
            Poll::Pending => Step::Continue,
            Poll::Ready(a) => {
                assert_eq!(a.args[0], self.done + 1);
                self.done += 1;
                self.sleeping = true;
                if self.done == self.n {
                    Step::Done
                } else {
                    Step::Continue
                }
            }
        }
    }
}

fn run(seed: u64) -> (Vec<TraceEvent>, u64) {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    let server = k.spawn_native(
        "server",
        TaskPolicy::Cooperative {
            service_id: "s".into(),
        },
    );
    let mut sim = Simulation::new(10);
    let clients = 3;
    let n = 20;
    for i in 0..clients {
        let t = k.spawn_native(&format!("c{i}"), TaskPolicy::Checkpointable);
        let phone = k.connect_phone(t.id(), server.id()).unwrap();
        sim.add(Box::new(Client {
            t,
            phone,
            n,
            done: 0,
            sleeping: false,
            pause: 15 * (i + 1),
        }));
    }
    sim.add(Box::new(Server {
        t: server,
        served: 0,
        target: clients * n,
    }));
    assert_eq!(sim.run(&mut k, 100_000), RunEnd::AllDone);
    k.check_invariants().unwrap();
    assert_eq!(k.log().len(), 1);
    (k.trace().to_vec(), k.now())
}

#[test]
fn same_seed_same_trace() {
    let (a, ta) = run(7);
    let (b, tb) = run(7);
    assert!(a.len() > 200, "a real workload ran ({} syscalls)", a.len());
    assert_eq!(ta, tb);
    assert_eq!(a, b);
}

#[test]
fn another_seed_another_interleaving() {
    let (a, _) = run(7);
    let (c, _) = run(8);
    assert_ne!(a, c);
}
