//! Stopping and resuming tasks at consistent points: blocked calls are
//! reissued, wakeups that already happened are kept (thesis 5.3.6), and a
//! synchronous call is never sent twice (thesis 5.4.8).

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{EOK, Errno, Event};
use spartan_kernel::kernel::KernelError;
use spartan_kernel::syscall::{FOREVER, Sysno};
use spartan_kernel::task::native::NativeError;
use spartan_kernel::task::stop::StopPoint;

const REQ: u64 = FIRST_USER_METHOD;
const WORD: u64 = 0x3000;

#[test]
fn stopped_threads_do_not_run_and_idle_ones_report_idle() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    let points = k.stop_task(t.id()).unwrap();
    assert_eq!(points, vec![(t.thread(), StopPoint::Idle)]);
    assert_eq!(
        t.sleep(&mut k, 5),
        Err(NativeError::Kernel(KernelError::Stopped(t.thread())))
    );
    let t2 = t.new_thread(&mut k).unwrap();
    assert!(
        !t2.is_runnable(&k),
        "a thread born in a stopped task is stopped"
    );
    k.resume_task(t.id()).unwrap();
    assert!(t.is_runnable(&k) && t2.is_runnable(&k));
}

#[test]
fn ipc_wait_is_restarted_and_the_call_that_arrived_meanwhile_is_kept() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = spawn(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(server.wait(&mut k, FOREVER).unwrap().is_pending());
    let points = k.stop_task(server.id()).unwrap();
    assert_eq!(
        points,
        vec![(
            server.thread(),
            StopPoint::Restart {
                number: Sysno::IpcWait as u32
            }
        )]
    );
    client.call_async(&mut k, p, REQ, [9, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        k.task(server.id()).unwrap().answerbox.calls.len(),
        1,
        "still undelivered"
    );
    k.resume_task(server.id()).unwrap();
    match ready(server.wait(&mut k, FOREVER).unwrap()) {
        Event::Call { args, .. } => assert_eq!(args[0], 9),
        other => panic!("{other:?}"),
    }
    check(&k);
}

#[test]
fn ipc_wait_deadline_survives_a_stop() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert!(t.wait(&mut k, 1_000).unwrap().is_pending());
    k.advance_time(400);
    k.stop_task(t.id()).unwrap();
    assert_eq!(k.next_deadline(), None, "a stopped thread has no timer");
    k.advance_time(400);
    k.resume_task(t.id()).unwrap();
    // Reissued with the original deadline (1000), not a fresh one.
    assert!(t.wait(&mut k, 1_000).unwrap().is_pending());
    assert_eq!(k.next_deadline(), Some(1_000));
    k.advance_time(200);
    assert_eq!(t.wait(&mut k, 1_000), Err(Errno::Timeout.into()));
}

#[test]
fn futex_wakeup_before_the_stop_is_not_lost() {
    let mut k = kernel();
    let waiter = spawn(&mut k, "t");
    let waker = waiter.new_thread(&mut k).unwrap();
    waiter.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
    assert!(
        waiter
            .futex_wait(&mut k, WORD, 1, FOREVER)
            .unwrap()
            .is_pending()
    );
    // The waker wakes it but leaves the word as it was (a semaphore-style
    // hand-off): only the kept completion can tell the waiter.
    assert_eq!(waker.futex_wake(&mut k, WORD, 1).unwrap(), 1);
    let points = k.stop_task(waiter.id()).unwrap();
    assert!(points.contains(&(
        waiter.thread(),
        StopPoint::Completed {
            number: Sysno::FutexWait as u32,
            result: 0
        }
    )));
    let st = k.thread(waiter.thread()).unwrap().sys.clone();
    assert_eq!(st.completed, Some(0));
    k.resume_task(waiter.id()).unwrap();
    assert_eq!(
        waiter.futex_wait(&mut k, WORD, 1, FOREVER).unwrap(),
        Poll::Ready(())
    );
}

#[test]
fn futex_wakeup_racing_the_stop_is_seen_by_the_reissue() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    // The waker is a second thread of the same task (same memory).
    let w = a.new_thread(&mut k).unwrap();
    a.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
    assert!(a.futex_wait(&mut k, WORD, 1, FOREVER).unwrap().is_pending());
    k.stop_task(a.id()).unwrap();
    // While stopped, the word changes (say, by a sharing task) and a wake
    // finds no sleeper: the stopped thread left the queue.
    a.mem_write(&mut k, WORD, &0u32.to_le_bytes()).unwrap();
    k.resume_task(a.id()).unwrap();
    assert_eq!(w.futex_wake(&mut k, WORD, 1).unwrap(), 0);
    // The reissue compares the word again and does not sleep.
    assert_eq!(
        a.futex_wait(&mut k, WORD, 1, FOREVER),
        Err(Errno::Again.into())
    );
}

#[test]
fn sleep_is_reissued_with_its_deadline() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert!(t.sleep(&mut k, 100).unwrap().is_pending());
    k.stop_task(t.id()).unwrap();
    k.advance_time(1_000);
    k.resume_task(t.id()).unwrap();
    assert_eq!(t.sleep(&mut k, 100).unwrap(), Poll::Ready(()));
}

fn calls_received(
    k: &mut spartan_kernel::kernel::Kernel,
    t: &spartan_kernel::task::native::NativeTask,
) -> Vec<Got> {
    let mut v = Vec::new();
    while let Ok(Poll::Ready(Event::Call {
        rx_id,
        conn,
        sender,
        method,
        args,
    })) = t.wait(k, 0)
    {
        v.push(Got {
            rx: rx_id,
            conn,
            sender,
            method,
            args,
        });
    }
    v
}

#[test]
fn sync_call_undelivered_at_stop_is_not_sent_twice() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let active = k.thread(client.thread()).unwrap().sys.active_sync_call;
    assert!(active.is_some());
    for _ in 0..3 {
        let pts = k.stop_task(client.id()).unwrap();
        assert_eq!(
            pts[0].1,
            StopPoint::Restart {
                number: Sysno::IpcCallSync as u32
            }
        );
        k.resume_task(client.id()).unwrap();
        assert!(
            client
                .call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
                .unwrap()
                .is_pending()
        );
    }
    assert_eq!(
        k.thread(client.thread()).unwrap().sys.active_sync_call,
        active
    );
    let got = calls_received(&mut k, &server);
    assert_eq!(got.len(), 1, "sent exactly once");
    server
        .answer(&mut k, got[0].rx, EOK, [2, 0, 0, 0, 0])
        .unwrap();
    let a = ready(client.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap());
    assert_eq!(a.args[0], 2);
    assert_eq!(
        k.thread(client.thread()).unwrap().sys.active_sync_call,
        None
    );
    check(&k);
}

#[test]
fn sync_call_dispatched_at_stop_gets_its_answer_once() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let got = calls_received(&mut k, &server);
    assert_eq!(got.len(), 1);
    k.stop_task(client.id()).unwrap();
    // Answered while the caller is stopped: the answer is kept.
    server
        .answer(&mut k, got[0].rx, EOK, [3, 0, 0, 0, 0])
        .unwrap();
    let pts = k.stop_task(client.id()).unwrap();
    assert_eq!(
        pts[0].1,
        StopPoint::Completed {
            number: Sysno::IpcCallSync as u32,
            result: 0
        }
    );
    k.resume_task(client.id()).unwrap();
    let a = ready(client.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap());
    assert_eq!(a.args[0], 3);
    assert!(calls_received(&mut k, &server).is_empty());
    expect_nothing(&mut k, &client);
    check(&k);
}

#[test]
fn the_syscall_state_is_what_a_snapshot_carries() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [1, 2, 3, 4, 5])
            .unwrap()
            .is_pending()
    );
    k.stop_task(client.id()).unwrap();
    let st = k.thread(client.thread()).unwrap().sys.clone();
    let pending = st.in_progress.clone().unwrap();
    assert_eq!(pending.number, Sysno::IpcCallSync as u32);
    assert_eq!(&pending.args[..7], &[0, REQ, 1, 2, 3, 4, 5]);
    let bytes = postcard::to_allocvec(&st).unwrap();
    assert_eq!(
        postcard::from_bytes::<spartan_kernel::syscall::SyscallState>(&bytes).unwrap(),
        st
    );
}

#[test]
fn restarted_waits_keep_their_places_in_the_queues() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = spawn(&mut k, "server");
    let first = server.new_thread(&mut k).unwrap();
    let second = server.new_thread(&mut k).unwrap();
    let p = connect(&mut k, &client, &server);
    // `second` went to sleep before `first`.
    assert!(second.wait(&mut k, FOREVER).unwrap().is_pending());
    assert!(first.wait(&mut k, FOREVER).unwrap().is_pending());
    k.stop_task(server.id()).unwrap();
    k.resume_task(server.id()).unwrap();
    // Reissued in the other order: each goes back to its old place.
    assert!(first.wait(&mut k, FOREVER).unwrap().is_pending());
    assert!(second.wait(&mut k, FOREVER).unwrap().is_pending());
    client.call_async(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap();
    assert!(second.is_runnable(&k), "the longest waiter is woken");
    assert!(!first.is_runnable(&k));
    // Futex sleepers too: oldest first after a restart.
    server.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
    let (a, b) = (
        server.new_thread(&mut k).unwrap(),
        server.new_thread(&mut k).unwrap(),
    );
    assert!(b.futex_wait(&mut k, WORD, 1, FOREVER).unwrap().is_pending());
    assert!(a.futex_wait(&mut k, WORD, 1, FOREVER).unwrap().is_pending());
    k.stop_task(server.id()).unwrap();
    k.resume_task(server.id()).unwrap();
    assert!(a.futex_wait(&mut k, WORD, 1, FOREVER).unwrap().is_pending());
    assert!(b.futex_wait(&mut k, WORD, 1, FOREVER).unwrap().is_pending());
    assert_eq!(
        client.futex_wake(&mut k, WORD, 1).unwrap(),
        0,
        "other memory"
    );
    assert_eq!(server.futex_wake(&mut k, WORD, 1).unwrap(), 1);
    assert!(b.is_runnable(&k), "the oldest sleeper is woken");
    assert!(!a.is_runnable(&k));
    check(&k);
}
