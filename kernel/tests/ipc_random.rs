//! Random IPC workloads: tasks send, fetch, answer, forward, hang up,
//! connect and die in a seeded random order; the invariant checker runs
//! after every operation, and at the end every call ever made has been
//! answered exactly once.

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use spartan_kernel::ipc::method::{FIRST_USER_METHOD, IPC_M_CONNECT_ME_TO, IPC_M_DATA_WRITE};
use spartan_kernel::ipc::{EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::task::native::NativeTask;

struct World {
    tasks: Vec<NativeTask>,
    /// Calls each task fetched and still holds.
    held: Vec<Vec<(RxCallId, u64)>>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, v: &[T]) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[(rng.next_u64() % v.len() as u64) as usize])
    }
}

fn alive(k: &Kernel, t: &NativeTask) -> bool {
    k.task(t.id()).is_some()
}

fn phones(k: &Kernel, t: &NativeTask) -> Vec<PhoneId> {
    k.task(t.id())
        .map(|x| x.phones.iter().map(|(i, _)| i).collect())
        .unwrap_or_default()
}

fn step(k: &mut Kernel, w: &mut World, rng: &mut ChaCha8Rng) {
    let i = (rng.next_u64() % w.tasks.len() as u64) as usize;
    let t = w.tasks[i];
    if !alive(k, &t) {
        return;
    }
    match rng.next_u64() % 100 {
        0..=29 => {
            if let Some(p) = pick(rng, &phones(k, &t)) {
                let m = match rng.next_u64() % 10 {
                    0 => IPC_M_CONNECT_ME_TO,
                    1 => IPC_M_DATA_WRITE,
                    _ => FIRST_USER_METHOD,
                };
                let r = if m == IPC_M_DATA_WRITE {
                    t.data_write_start(k, p, b"bytes").map(|_| ())
                } else {
                    t.call_async(k, p, m, [rng.next_u64() % 9, 0, 0, 0, 0])
                        .map(|_| ())
                };
                if let Err(e) = r {
                    assert!(
                        matches!(
                            e,
                            spartan_kernel::task::native::NativeError::Errno(
                                Errno::Hangup | Errno::Limit | Errno::Invalid
                            )
                        ),
                        "{e}"
                    );
                }
            }
        }
        30..=59 => {
            if let Ok(Poll::Ready(Event::Call { rx_id, method, .. })) = t.wait(k, 0) {
                w.held[i].push((rx_id, method));
            }
        }
        60..=79 => {
            if !w.held[i].is_empty() {
                let j = (rng.next_u64() % w.held[i].len() as u64) as usize;
                let (rx, m) = w.held[i].swap_remove(j);
                let retval = match rng.next_u64() % 6 {
                    0 => Errno::Hangup.retval(),
                    1 => Errno::Refused.retval(),
                    _ => EOK,
                };
                let r = if m == IPC_M_DATA_WRITE && retval == EOK {
                    t.accept_data_write(k, rx, 3).map(|_| ())
                } else {
                    t.answer(k, rx, retval, [0; 5])
                };
                r.expect("answering a held call");
            }
        }
        80..=89 => {
            if !w.held[i].is_empty() {
                let (rx, _) = w.held[i].swap_remove(0);
                if let Some(p) = pick(rng, &phones(k, &t)) {
                    // Errors answer the call, which is then no longer held.
                    let _ = t.forward(
                        k,
                        rx,
                        p,
                        FIRST_USER_METHOD,
                        1,
                        2,
                        rng.next_u64().is_multiple_of(2),
                    );
                } else {
                    t.answer(k, rx, EOK, [0; 5]).expect("answer");
                }
            }
        }
        90..=94 => {
            if let Some(p) = pick(rng, &phones(k, &t)) {
                let _ = t.hangup(k, p);
            }
        }
        95..=97 => {
            let j = (rng.next_u64() % w.tasks.len() as u64) as usize;
            let to = w.tasks[j];
            if alive(k, &to) {
                let _ = k.connect_phone(t.id(), to.id());
            }
        }
        _ => {
            if rng.next_u64().is_multiple_of(4) {
                k.kill_task(t.id()).expect("kill");
                w.held[i].clear();
            }
        }
    }
    check(k);
}

#[test]
fn random_workloads_answer_every_call_exactly_once() {
    for seed in 0..60u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut k = kernel();
        let tasks: Vec<NativeTask> = (0..5).map(|i| spawn(&mut k, &format!("t{i}"))).collect();
        for a in &tasks {
            for b in &tasks {
                if rng.next_u64().is_multiple_of(2) {
                    k.connect_phone(a.id(), b.id()).unwrap();
                }
            }
        }
        let mut w = World {
            held: vec![Vec::new(); tasks.len()],
            tasks,
        };
        for _ in 0..400 {
            step(&mut k, &mut w, &mut rng);
        }
        for t in w.tasks.clone() {
            if alive(&k, &t) {
                k.kill_task(t.id()).unwrap();
            }
        }
        check(&k);
        assert_eq!(k.live_calls(), 0, "seed {seed}");
        assert!(k.calls_created() > 20, "seed {seed}: a real workload");
    }
}
