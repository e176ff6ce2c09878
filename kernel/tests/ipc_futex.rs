//! Futexes, sleeping and timeouts on the virtual clock.

mod ipc_common;

use std::sync::{Arc, Mutex};
use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::Errno;
use spartan_kernel::sched::futex::FutexKey;
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::{NativeMemory, TaskPolicy, UserFault, UserMemory};

const WORD: u64 = 0x2000;

#[test]
fn wait_and_wake_between_threads() {
    let mut k = kernel();
    let t1 = spawn(&mut k, "t");
    let t2 = t1.new_thread(&mut k).unwrap();
    t1.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
    assert_eq!(
        t1.futex_wait(&mut k, WORD, 1, FOREVER).unwrap(),
        Poll::Pending
    );
    t2.mem_write(&mut k, WORD, &0u32.to_le_bytes()).unwrap();
    assert_eq!(t2.futex_wake(&mut k, WORD, 1).unwrap(), 1);
    assert_eq!(
        t1.futex_wait(&mut k, WORD, 1, FOREVER).unwrap(),
        Poll::Ready(())
    );
    // No sleeper: nothing to wake, and nothing remembered either.
    assert_eq!(t2.futex_wake(&mut k, WORD, 1).unwrap(), 0);
    // The word no longer holds the expected value: no sleep at all.
    assert_eq!(
        t1.futex_wait(&mut k, WORD, 1, FOREVER),
        Err(Errno::Again.into())
    );
    check(&k);
}

#[test]
fn wake_count_is_fifo() {
    let mut k = kernel();
    let t0 = spawn(&mut k, "t");
    let ts: Vec<_> = (0..3).map(|_| t0.new_thread(&mut k).unwrap()).collect();
    for t in &ts {
        assert!(t.futex_wait(&mut k, WORD, 0, FOREVER).unwrap().is_pending());
    }
    assert_eq!(t0.futex_wake(&mut k, WORD, 2).unwrap(), 2);
    assert!(ts[0].is_runnable(&k) && ts[1].is_runnable(&k));
    assert!(!ts[2].is_runnable(&k));
    assert_eq!(t0.futex_wake(&mut k, WORD, u32::MAX).unwrap(), 1);
    check(&k);
}

#[test]
fn futex_timeout_on_virtual_time() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert_eq!(t.futex_wait(&mut k, WORD, 0, 0), Err(Errno::Timeout.into()));
    assert!(t.futex_wait(&mut k, WORD, 0, 500).unwrap().is_pending());
    k.advance_time(499);
    assert!(!t.is_runnable(&k));
    k.advance_time(1);
    assert_eq!(
        t.futex_wait(&mut k, WORD, 0, 500),
        Err(Errno::Timeout.into())
    );
    // Unaligned or out-of-space words fault.
    assert_eq!(
        t.futex_wait(&mut k, WORD + 1, 0, 5),
        Err(Errno::Fault.into())
    );
    assert_eq!(t.futex_wake(&mut k, 1 << 32, 1), Err(Errno::Fault.into()));
    check(&k);
}

#[test]
fn private_futexes_of_different_tasks_do_not_meet() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = spawn(&mut k, "b");
    assert!(a.futex_wait(&mut k, WORD, 0, FOREVER).unwrap().is_pending());
    assert_eq!(b.futex_wake(&mut k, WORD, 1).unwrap(), 0);
    assert!(!a.is_runnable(&k));
}

/// A memory two tasks share: the same backing, hence the same futex keys.
struct Shared(Arc<Mutex<NativeMemory>>);

impl UserMemory for Shared {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), UserFault> {
        self.0.lock().expect("lock").read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), UserFault> {
        self.0.lock().expect("lock").write(addr, data)
    }
    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), UserFault> {
        self.0.lock().expect("lock").check(addr, len, write)
    }
    fn futex_key(&self, addr: u64) -> Result<FutexKey, UserFault> {
        self.0.lock().expect("lock").futex_key(addr)
    }
}

#[test]
fn shared_futex_works_across_tasks() {
    let mut k = kernel();
    let backing = k.new_backing();
    let mem = Arc::new(Mutex::new(NativeMemory::new(backing)));
    let a = k.spawn_native_with_memory(
        "a",
        TaskPolicy::Checkpointable,
        Box::new(Shared(mem.clone())),
    );
    let b = k.spawn_native_with_memory("b", TaskPolicy::Checkpointable, Box::new(Shared(mem)));
    a.mem_write(&mut k, WORD, &7u32.to_le_bytes()).unwrap();
    assert!(a.futex_wait(&mut k, WORD, 7, FOREVER).unwrap().is_pending());
    b.mem_write(&mut k, WORD, &8u32.to_le_bytes()).unwrap();
    assert_eq!(b.futex_wake(&mut k, WORD, 1).unwrap(), 1);
    assert_eq!(
        a.futex_wait(&mut k, WORD, 7, FOREVER).unwrap(),
        Poll::Ready(())
    );
    check(&k);
}

#[test]
fn sleep_wakes_at_its_deadline_only() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert_eq!(t.sleep(&mut k, 0).unwrap(), Poll::Ready(()));
    assert!(t.sleep(&mut k, 1_000).unwrap().is_pending());
    k.advance_time(600);
    assert!(t.sleep(&mut k, 1_000).unwrap().is_pending());
    k.advance_time(400);
    assert_eq!(t.sleep(&mut k, 1_000).unwrap(), Poll::Ready(()));
    assert_eq!(k.now(), 1_000);
}
