//! Random sharing workloads: native tasks offer and request areas, accept
//! and supply them at good and bad bases, destroy areas, connect and die
//! in a seeded random order. After every operation the kernel invariants
//! hold, every error is one the ABI documents for that step, and every
//! mapping of a backing sees a write made through another; at the end
//! every call ever made was answered exactly once.

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;
use spartan_kernel::ipc::method::{FIRST_USER_METHOD, IPC_M_SHARE_IN, IPC_M_SHARE_OUT};
use spartan_kernel::ipc::{EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::mm::AreaFlags;
use spartan_kernel::task::native::{NativeError, NativeTask};

const PAGE: u64 = 4096;

struct World {
    tasks: Vec<NativeTask>,
    /// Calls each task fetched and still holds: (id, method).
    held: Vec<Vec<(RxCallId, u64)>>,
    /// Successful share-out and share-in answers.
    mapped: [u32; 2],
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, v: &[T]) -> Option<T> {
    (!v.is_empty()).then(|| v[below(rng, v.len() as u64) as usize])
}

fn alive(k: &Kernel, t: &NativeTask) -> bool {
    k.task(t.id()).is_some()
}

fn phones(k: &Kernel, t: &NativeTask) -> Vec<PhoneId> {
    k.task(t.id())
        .map(|x| x.phones.iter().map(|(i, _)| i).collect())
        .unwrap_or_default()
}

/// Bases of `t`'s areas with their size and flags.
fn areas(k: &Kernel, t: &NativeTask) -> Vec<(u64, u64, AreaFlags)> {
    k.task_areas(t.id())
        .map(|v| {
            v.iter()
                .map(|a| (a.area.base, a.area.size, a.area.flags))
                .collect()
        })
        .unwrap_or_default()
}

/// A base from a small set, so collisions happen; sometimes a bad one.
fn some_base(rng: &mut ChaCha8Rng) -> u64 {
    match below(rng, 10) {
        0 => 0x4000_0000 + 1,
        1 => 0x8000_0000,
        _ => 0x4000_0000 + below(rng, 8) * 4 * PAGE,
    }
}

fn flags(rng: &mut ChaCha8Rng) -> AreaFlags {
    if rng.next_u64().is_multiple_of(2) {
        AreaFlags::READ
    } else {
        AreaFlags::RW
    }
}

fn allowed(r: Result<(), NativeError>, ok: &[Errno]) {
    if let Err(e) = r {
        assert!(
            matches!(e, NativeError::Errno(x) if ok.contains(&x)),
            "{e} not in {ok:?}"
        );
    }
}

/// Writes through one writable mapping of a random shared area of `t` and
/// reads it back through every other readable mapping.
fn check_coherence(k: &mut Kernel, w: &World, t: &NativeTask, rng: &mut ChaCha8Rng) {
    let Ok(list) = k.task_areas(t.id()) else {
        return;
    };
    let Some(a) = pick(rng, &list.iter().collect::<Vec<_>>()).cloned() else {
        return;
    };
    if !a.area.flags.writable() {
        return;
    }
    let stamp = rng.next_u64().to_le_bytes();
    t.mem_write(k, a.area.base, &stamp).expect("writable area");
    for m in &a.others {
        let other = w.tasks.iter().find(|x| x.id() == m.task).expect("a task");
        if m.flags.readable() {
            assert_eq!(other.mem_read(k, m.base, 8).expect("mapped"), stamp);
        }
    }
}

fn step(k: &mut Kernel, w: &mut World, rng: &mut ChaCha8Rng) {
    let i = below(rng, w.tasks.len() as u64) as usize;
    let t = w.tasks[i];
    if !alive(k, &t) {
        return;
    }
    match below(rng, 100) {
        0..=19 => {
            let (Some(p), Some((base, _, _))) =
                (pick(rng, &phones(k, &t)), pick(rng, &areas(k, &t)))
            else {
                return;
            };
            let r = t.share_out_start(k, p, base, flags(rng), 0).map(|_| ());
            allowed(r, &[Errno::Hangup, Errno::Invalid]);
        }
        20..=34 => {
            let Some(p) = pick(rng, &phones(k, &t)) else {
                return;
            };
            let size = (1 + below(rng, 3)) * PAGE;
            let args = [some_base(rng), size, u64::from(flags(rng).bits()), 0, 0];
            let r = t.call_async(k, p, IPC_M_SHARE_IN, args).map(|_| ());
            allowed(r, &[Errno::Hangup, Errno::Invalid, Errno::AddrInUse]);
        }
        35..=39 => {
            if let Some(p) = pick(rng, &phones(k, &t)) {
                let r = t.call_async(k, p, FIRST_USER_METHOD, [0; 5]).map(|_| ());
                allowed(r, &[Errno::Hangup]);
            }
        }
        40..=59 => {
            if let Ok(Poll::Ready(Event::Call { rx_id, method, .. })) = t.wait(k, 0) {
                w.held[i].push((rx_id, method));
            }
        }
        60..=84 => {
            if w.held[i].is_empty() {
                return;
            }
            let j = below(rng, w.held[i].len() as u64) as usize;
            let (rx, m) = w.held[i].swap_remove(j);
            if below(rng, 5) == 0 {
                t.answer(k, rx, Errno::Refused.retval(), [0; 5])
                    .expect("an error answer always goes through");
                return;
            }
            let r = match m {
                IPC_M_SHARE_OUT => t.accept_share_out(k, rx, some_base(rng)),
                IPC_M_SHARE_IN => {
                    let src = pick(rng, &areas(k, &t)).map_or(0x7000_0000, |a| a.0);
                    t.answer_share_in(k, rx, src)
                }
                _ => t.answer(k, rx, EOK, [0; 5]),
            };
            match r {
                Ok(()) if m == IPC_M_SHARE_OUT => w.mapped[0] += 1,
                Ok(()) if m == IPC_M_SHARE_IN => w.mapped[1] += 1,
                // Answered (mapped, or failed on the caller's side).
                Ok(()) | Err(NativeError::Errno(Errno::Hangup | Errno::Refused)) => {}
                // Refused on this side: still dispatched, held again.
                Err(NativeError::Errno(
                    Errno::Invalid | Errno::AddrInUse | Errno::NoEntry | Errno::Limit,
                )) => w.held[i].push((rx, m)),
                Err(e) => panic!("answer of method {m}: {e}"),
            }
        }
        85..=91 => {
            if let Some((base, _, _)) = pick(rng, &areas(k, &t)) {
                t.area_destroy(k, base).expect("own area");
            }
        }
        92..=94 => {
            let base = 0x1000_0000 + below(rng, 4) * 4 * PAGE;
            let r = t.area_create(k, base, (1 + below(rng, 3)) * PAGE, flags(rng));
            allowed(r, &[Errno::AddrInUse]);
        }
        95..=97 => {
            let to = w.tasks[below(rng, w.tasks.len() as u64) as usize];
            if alive(k, &to) {
                let _ = k.connect_phone(t.id(), to.id());
            }
        }
        _ => {
            if below(rng, 3) == 0 {
                k.kill_task(t.id()).expect("kill");
                w.held[i].clear();
            }
        }
    }
    check(k);
    check_coherence(k, w, &t, rng);
}

#[test]
fn random_sharing_keeps_mappings_coherent_and_answers_every_call_once() {
    let mut shares = 0;
    let mut mapped = [0u32; 2];
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut k = kernel();
        let tasks: Vec<NativeTask> = (0..5).map(|i| spawn(&mut k, &format!("t{i}"))).collect();
        for a in &tasks {
            for j in 0..3 {
                let f = if j == 2 {
                    AreaFlags::READ
                } else {
                    AreaFlags::RW
                };
                a.area_create(&mut k, 0x1000_0000 + j * 4 * PAGE, (j + 1) * PAGE, f)
                    .expect("fresh area");
            }
            for b in &tasks {
                if rng.next_u64().is_multiple_of(2) {
                    k.connect_phone(a.id(), b.id()).expect("phone");
                }
            }
        }
        let mut w = World {
            held: vec![Vec::new(); tasks.len()],
            tasks,
            mapped: [0; 2],
        };
        for _ in 0..400 {
            step(&mut k, &mut w, &mut rng);
        }
        mapped[0] += w.mapped[0];
        mapped[1] += w.mapped[1];
        shares += w
            .tasks
            .iter()
            .filter_map(|t| k.task_areas(t.id()).ok())
            .flatten()
            .filter(|a| !a.others.is_empty())
            .count();
        for t in w.tasks.clone() {
            if alive(&k, &t) {
                k.kill_task(t.id()).expect("kill");
            }
        }
        check(&k);
        assert_eq!(k.live_calls(), 0, "seed {seed}");
        assert!(k.calls_created() > 20, "seed {seed}: a real workload");
    }
    // The workload really shares (counted just before the final kills).
    assert!(shares > 40, "only {shares} shared areas");
    assert!(
        mapped[0] > 40 && mapped[1] > 40,
        "shares answered: {mapped:?}"
    );
}
