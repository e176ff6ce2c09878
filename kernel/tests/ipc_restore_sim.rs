//! A seeded workload checkpointed and restored in the middle: clients
//! (checkpointable) make synchronous calls to a cooperative server and
//! sleep in between; at step t they are stopped, exported, killed and
//! imported as new tasks, and the workload still completes with every
//! answer right, whatever t is.

mod ipc_common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::task::Poll;

use spartan_kernel::ipc::method::{FIRST_USER_METHOD, IPC_M_PHONE_HUNGUP};
use spartan_kernel::ipc::{EOK, Event, PhoneId};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::sched::sim::{NativeProgram, RunEnd, Simulation, Step};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{NativeMemory, TaskId, TaskPolicy, ThreadId};

const ADD: u64 = FIRST_USER_METHOD;
const CALLS: u64 = 12;

struct Server(NativeTask);

impl NativeProgram for Server {
    fn thread(&self) -> ThreadId {
        self.0.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        if let Poll::Ready(Event::Call {
            rx_id,
            method,
            args,
            ..
        }) = self.0.wait(k, FOREVER).expect("wait")
        {
            let r = if method == IPC_M_PHONE_HUNGUP {
                0
            } else {
                args[0] + 1
            };
            self.0
                .answer(k, rx_id, EOK, [r, 0, 0, 0, 0])
                .expect("answer");
        }
        Step::Continue
    }
}

/// A client's own state (what its memory would hold).
#[derive(Debug, Clone, Copy, Default)]
struct ClientState {
    done: u64,
    sleeping: bool,
}

struct Client {
    t: NativeTask,
    phone: PhoneId,
    pause: u64,
    st: Rc<RefCell<ClientState>>,
}

impl NativeProgram for Client {
    fn thread(&self) -> ThreadId {
        self.t.thread()
    }
    fn step(&mut self, k: &mut Kernel) -> Step {
        let mut st = self.st.borrow_mut();
        if st.sleeping {
            match self.t.sleep(k, self.pause).expect("sleep") {
                Poll::Pending => return Step::Continue,
                Poll::Ready(()) => st.sleeping = false,
            }
        }
        let args = [st.done * 10, 0, 0, 0, 0];
        match self.t.call_sync(k, self.phone, ADD, args).expect("call") {
            Poll::Pending => Step::Continue,
            Poll::Ready(a) => {
                assert_eq!(a.args[0], st.done * 10 + 1, "the answer to this call");
                st.done += 1;
                st.sleeping = true;
                if st.done == CALLS {
                    Step::Done
                } else {
                    Step::Continue
                }
            }
        }
    }
}

struct Setup {
    server: NativeTask,
    clients: Vec<(NativeTask, PhoneId, u64, Rc<RefCell<ClientState>>)>,
}

fn sim_for(s: &Setup) -> Simulation {
    let mut sim = Simulation::new(10);
    for (t, phone, pause, st) in &s.clients {
        if st.borrow().done < CALLS {
            sim.add(Box::new(Client {
                t: *t,
                phone: *phone,
                pause: *pause,
                st: st.clone(),
            }));
        }
    }
    sim.add(Box::new(Server(s.server)));
    sim
}

fn run(seed: u64, checkpoint_at: Option<u64>) {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    let server = k.spawn_native(
        "server",
        TaskPolicy::Cooperative {
            service_id: "add".into(),
        },
    );
    let mut s = Setup {
        server,
        clients: Vec::new(),
    };
    for i in 0..3u64 {
        let t = k.spawn_native(&format!("c{i}"), TaskPolicy::Checkpointable);
        // A hole before the phone in use, to be kept across restore.
        k.connect_phone(t.id(), server.id()).unwrap();
        let phone = k.connect_phone(t.id(), server.id()).unwrap();
        t.hangup(&mut k, PhoneId(0)).unwrap();
        s.clients.push((
            t,
            phone,
            7 * (i + 1),
            Rc::new(RefCell::new(ClientState::default())),
        ));
    }
    if let Some(at) = checkpoint_at {
        let mut sim = sim_for(&s);
        assert_eq!(sim.run(&mut k, at), RunEnd::StepLimit);
        drop(sim);
        let olds: Vec<NativeTask> = s.clients.iter().map(|c| c.0).collect();
        for t in &olds {
            k.stop_task(t.id()).unwrap();
        }
        let images: Vec<_> = olds
            .iter()
            .map(|t| k.export_task(t.id()).unwrap())
            .collect();
        // The memory goes with the image (the address-space layer's job;
        // here the memory object itself moves to the new task).
        let mut memories = Vec::new();
        for t in &olds {
            let b = k.new_backing();
            memories.push(
                k.replace_memory(t.id(), Box::new(NativeMemory::new(b)))
                    .unwrap(),
            );
            k.kill_task(t.id()).unwrap();
        }
        let outside: BTreeMap<TaskId, TaskId> = [(server.id(), server.id())].into();
        let imp = k.import_tasks(&images, &outside).unwrap();
        for (c, mem) in s.clients.iter_mut().zip(memories) {
            c.0 = NativeTask::attach(&k, imp.threads[&c.0.thread()]).unwrap();
            k.replace_memory(c.0.id(), mem).unwrap();
            assert_eq!(
                k.task(c.0.id()).unwrap().phones.slots()[0],
                None,
                "hole kept"
            );
            k.resume_task(c.0.id()).unwrap();
        }
    }
    let mut sim = sim_for(&s);
    let end = sim.run(&mut k, 100_000);
    assert_eq!(end, RunEnd::Deadlock, "only the server is left, waiting");
    for (_, _, _, st) in &s.clients {
        assert_eq!(st.borrow().done, CALLS);
    }
    k.check_invariants().unwrap();
    assert_eq!(k.live_calls(), 0);
}

#[test]
fn workload_completes_without_checkpoint() {
    run(3, None);
}

#[test]
fn workload_completes_after_a_checkpoint_at_any_step() {
    for at in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144] {
        for seed in 0..4 {
            run(seed, Some(at));
        }
    }
}
