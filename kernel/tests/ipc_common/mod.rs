//! Helpers shared by the IPC integration tests: a simulation kernel and
//! short ways to expect events.
#![allow(dead_code)]

use std::task::Poll;

use spartan_kernel::ipc::{Answer, ConnId, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::task::native::NativeTask;
use spartan_kernel::task::{TaskId, TaskPolicy};

pub fn kernel() -> Kernel {
    Kernel::new(KernelConfig::simulation(1))
}

pub fn spawn(k: &mut Kernel, name: &str) -> NativeTask {
    k.spawn_native(name, TaskPolicy::Checkpointable)
}

pub fn service(k: &mut Kernel, name: &str) -> NativeTask {
    k.spawn_native(
        name,
        TaskPolicy::Cooperative {
            service_id: name.to_string(),
        },
    )
}

pub fn ready<T: std::fmt::Debug>(p: Poll<T>) -> T {
    match p {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected the operation to finish, it blocked"),
    }
}

/// A received call.
#[derive(Debug, Clone, Copy)]
pub struct Got {
    pub rx: RxCallId,
    pub conn: ConnId,
    pub sender: TaskId,
    pub method: u64,
    pub args: [u64; 5],
}

pub fn expect_call(k: &mut Kernel, t: &NativeTask) -> Got {
    match ready(t.wait(k, 0).expect("wait")) {
        Event::Call {
            rx_id,
            conn,
            sender,
            method,
            args,
        } => Got {
            rx: rx_id,
            conn,
            sender,
            method,
            args,
        },
        other => panic!("expected a call, got {other:?}"),
    }
}

pub fn expect_answer(k: &mut Kernel, t: &NativeTask) -> Answer {
    match ready(t.wait(k, 0).expect("wait")) {
        Event::Answer(a) => a,
        other => panic!("expected an answer, got {other:?}"),
    }
}

pub fn expect_nothing(k: &mut Kernel, t: &NativeTask) {
    match t.wait(k, 0) {
        Err(spartan_kernel::task::native::NativeError::Errno(
            spartan_kernel::ipc::Errno::Timeout,
        )) => {}
        other => panic!("expected an empty answerbox, got {other:?}"),
    }
}

pub fn check(k: &Kernel) {
    k.check_invariants().expect("kernel invariants");
}

/// A phone from `from` to `to`, made by the kernel.
pub fn connect(k: &mut Kernel, from: &NativeTask, to: &NativeTask) -> PhoneId {
    k.connect_phone(from.id(), to.id()).expect("connect")
}
