//! Export of stopped tasks and import into new ones: phones with holes and
//! connection ids, pending calls in the right queues, the three cases of a
//! synchronous call pending at checkpoint (thesis 5.4.8), and threads
//! blocked in each blocking call going on after restore.

mod ipc_common;

use std::collections::BTreeMap;
use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{CallId, ConnId, EOK, Event, Phone, PhoneId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::TaskId;
use spartan_kernel::task::image::{ImportError, Imported, TaskImage};
use spartan_kernel::task::native::NativeTask;

const REQ: u64 = FIRST_USER_METHOD;
const WORD: u64 = 0x4000;

/// Stops and exports `tasks`, kills them, and passes the images through
/// their serialized form.
fn checkpoint_and_kill(k: &mut Kernel, tasks: &[&NativeTask]) -> Vec<TaskImage> {
    for t in tasks {
        k.stop_task(t.id()).unwrap();
    }
    let images: Vec<TaskImage> = tasks
        .iter()
        .map(|t| k.export_task(t.id()).unwrap())
        .collect();
    for t in tasks {
        k.kill_task(t.id()).unwrap();
    }
    check(k);
    let bytes = postcard::to_allocvec(&images).unwrap();
    postcard::from_bytes(&bytes).unwrap()
}

fn restore(k: &mut Kernel, images: &[TaskImage], outside: &[&NativeTask]) -> Imported {
    let map: BTreeMap<TaskId, TaskId> = outside.iter().map(|t| (t.id(), t.id())).collect();
    let imported = k.import_tasks(images, &map).unwrap();
    check(k);
    for new in imported.tasks.values() {
        k.resume_task(*new).unwrap();
    }
    imported
}

fn handle(k: &Kernel, imp: &Imported, old: &NativeTask) -> NativeTask {
    NativeTask::attach(k, imp.threads[&old.thread()]).unwrap()
}

/// Fetches and answers everything `t` holds (what a cooperative service
/// does with the dead incarnation's calls).
fn drain(k: &mut Kernel, t: &NativeTask) -> usize {
    let mut n = 0;
    while let Ok(Poll::Ready(ev)) = t.wait(k, 0) {
        if let Event::Call { rx_id, .. } = ev {
            t.answer(k, rx_id, EOK, [0; 5]).unwrap();
        }
        n += 1;
    }
    n
}

#[test]
fn phones_keep_their_slots_and_holes_and_get_new_connection_ids_at_services() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let srv = service(&mut k, "srv");
    for _ in 0..3 {
        connect(&mut k, &client, &srv);
    }
    client.hangup(&mut k, PhoneId(1)).unwrap();
    client.call_async(&mut k, PhoneId(0), REQ, [0; 5]).unwrap();
    drain(&mut k, &srv);
    let before = k.task(client.id()).unwrap().phones.slots().to_vec();
    let imgs = checkpoint_and_kill(&mut k, &[&client]);
    drain(&mut k, &srv);
    let imp = restore(&mut k, &imgs, &[&srv]);
    let c = handle(&k, &imp, &client);
    assert_ne!(c.id(), client.id(), "a new task");
    let after = k.task(c.id()).unwrap().phones.slots().to_vec();
    assert_eq!(after.len(), before.len());
    let conn_of = |p: &Option<Phone>| match p {
        Some(Phone::Connected { callee, conn }) => Some((*callee, *conn)),
        _ => None,
    };
    // Same slots, same hole, same callee; a connection to a task outside
    // the set is a new one at that task, with a new id (so it cannot
    // collide with the connections it has now).
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.is_none(), a.is_none());
        if let (Some((cb, nb)), Some((ca, na))) = (conn_of(b), conn_of(a)) {
            assert_eq!(cb, ca);
            assert!(na > nb, "{na:?} is a new connection id (was {nb:?})");
        }
    }
    let (_, conn) = conn_of(&after[2]).expect("phone 2 connected");
    // A call through phone 2 arrives on the restored connection's id.
    let id = c.call_async(&mut k, PhoneId(2), REQ, [0; 5]).unwrap();
    assert_eq!(id, CallId(2), "the call id counter goes on");
    assert_eq!(expect_call(&mut k, &srv).conn, conn);
    // The hole is filled first by a new connection.
    assert_eq!(connect(&mut k, &c, &srv), PhoneId(1));
    check(&k);
}

#[test]
fn sync_call_to_a_cooperative_service_is_sent_again_once() {
    // Case 1: the receiver is outside the set.
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let srv = service(&mut k, "srv");
    let p = connect(&mut k, &client, &srv);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [7, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let imgs = checkpoint_and_kill(&mut k, &[&client]);
    assert!(imgs[0].threads[0].sys.active_sync_call.is_some());
    assert_eq!(
        drain(&mut k, &srv),
        2,
        "the dead incarnation's call and hangup"
    );
    let imp = restore(&mut k, &imgs, &[&srv]);
    let c = handle(&k, &imp, &client);
    assert_eq!(k.thread(c.thread()).unwrap().sys.active_sync_call, None);
    expect_nothing(&mut k, &srv);
    assert!(
        c.call_sync(&mut k, p, REQ, [7, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let g = expect_call(&mut k, &srv);
    expect_nothing(&mut k, &srv);
    assert_eq!((g.sender, g.args[0]), (c.id(), 7));
    srv.answer(&mut k, g.rx, EOK, [8, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        ready(c.call_sync(&mut k, p, REQ, [7, 0, 0, 0, 0]).unwrap()).args[0],
        8
    );
    check(&k);
}

#[test]
fn undelivered_sync_call_inside_the_set_is_kept_and_not_sent_twice() {
    // Case 2: the receiver is checkpointable and had not fetched the call:
    // it is back in the receiver's queue with its ids, and the caller's
    // reissue waits for its answer instead of sending it again.
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = spawn(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let imgs = checkpoint_and_kill(&mut k, &[&client, &server]);
    let imp = restore(&mut k, &imgs, &[]);
    let (c, s) = (handle(&k, &imp, &client), handle(&k, &imp, &server));
    assert_eq!(k.task(s.id()).unwrap().answerbox.calls.len(), 1);
    assert!(
        c.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let g = expect_call(&mut k, &s);
    expect_nothing(&mut k, &s);
    s.answer(&mut k, g.rx, EOK, [2, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        ready(c.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap()).args[0],
        2
    );
    check(&k);
}

#[test]
fn delivered_sync_call_inside_the_set_is_not_sent_twice() {
    // Case 3: the receiver had fetched the call and not answered it.
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let other = client.new_thread(&mut k).unwrap();
    let server = spawn(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let g = expect_call(&mut k, &server);
    let imgs = checkpoint_and_kill(&mut k, &[&client, &server]);
    let imp = restore(&mut k, &imgs, &[]);
    let (c, o, s) = (
        handle(&k, &imp, &client),
        handle(&k, &imp, &other),
        handle(&k, &imp, &server),
    );
    assert!(k.thread(c.thread()).unwrap().sys.active_sync_call.is_some());
    // The reissue waits without sending.
    assert!(
        c.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    expect_nothing(&mut k, &s);
    // The server answers by the receiver-side id it had before.
    assert_eq!(k.ipc_dispatched(s.id(), g.rx).unwrap().args[0], 1);
    s.answer(&mut k, g.rx, EOK, [5, 0, 0, 0, 0]).unwrap();
    assert!(!o.is_runnable(&k) || k.thread(o.thread()).unwrap().sys.completed.is_none());
    assert_eq!(
        ready(c.call_sync(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap()).args[0],
        5
    );
    expect_nothing(&mut k, &c);
    check(&k);
}

#[test]
fn async_call_to_a_service_is_resent_with_its_id_and_answers_survive() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let peer = spawn(&mut k, "peer");
    let srv = service(&mut k, "srv");
    let ps = connect(&mut k, &client, &srv);
    let pp = connect(&mut k, &client, &peer);
    let to_srv = client.call_async(&mut k, ps, REQ, [3, 0, 0, 0, 0]).unwrap();
    let to_peer = client.call_async(&mut k, pp, REQ, [4, 0, 0, 0, 0]).unwrap();
    let g = expect_call(&mut k, &peer);
    peer.answer(&mut k, g.rx, EOK, [40, 0, 0, 0, 0]).unwrap(); // answer not fetched
    let imgs = checkpoint_and_kill(&mut k, &[&client, &peer]);
    drain(&mut k, &srv);
    let imp = restore(&mut k, &imgs, &[&srv]);
    let c = handle(&k, &imp, &client);
    let a = expect_answer(&mut k, &c);
    assert_eq!((a.call_id, a.args[0]), (to_peer, 40));
    let g = expect_call(&mut k, &srv);
    assert_eq!((g.sender, g.args[0]), (c.id(), 3));
    srv.answer(&mut k, g.rx, EOK, [30, 0, 0, 0, 0]).unwrap();
    let a = expect_answer(&mut k, &c);
    assert_eq!((a.call_id, a.args[0]), (to_srv, 30));
    check(&k);
}

#[test]
fn forwarded_call_inside_the_set_is_answered_to_the_original_caller() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = spawn(&mut k, "b");
    let c = spawn(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let bc = connect(&mut k, &b, &c);
    let id = a.call_async(&mut k, ab, REQ, [1, 0, 0, 0, 0]).unwrap();
    let g = expect_call(&mut k, &b);
    b.forward(&mut k, g.rx, bc, REQ, 9, 0, false).unwrap();
    let imgs = checkpoint_and_kill(&mut k, &[&a, &b, &c]);
    assert_eq!(imgs[0].out_calls.len(), 1, "forwarded, still on out_calls");
    assert_eq!(imgs[2].held.len(), 1);
    let imp = restore(&mut k, &imgs, &[]);
    let (na, nb, nc) = (
        handle(&k, &imp, &a),
        handle(&k, &imp, &b),
        handle(&k, &imp, &c),
    );
    let g = expect_call(&mut k, &nc);
    assert_eq!((g.sender, g.args[0]), (na.id(), 9));
    assert_eq!(
        k.ipc_dispatched(nc.id(), g.rx).unwrap().forwarded_by,
        vec![nb.id()]
    );
    nc.answer(&mut k, g.rx, EOK, [99, 0, 0, 0, 0]).unwrap();
    let ans = expect_answer(&mut k, &na);
    assert_eq!((ans.call_id, ans.args[0]), (id, 99));
    expect_nothing(&mut k, &nb);
    check(&k);
}

#[test]
fn threads_blocked_in_ipc_wait_futex_wait_and_sleep_go_on_after_restore() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    let fw = t.new_thread(&mut k).unwrap();
    let sl = t.new_thread(&mut k).unwrap();
    let woken = t.new_thread(&mut k).unwrap();
    let waker = t.new_thread(&mut k).unwrap();
    let client = spawn(&mut k, "client");
    let p = connect(&mut k, &client, &t);
    t.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
    assert!(t.wait(&mut k, FOREVER).unwrap().is_pending());
    assert!(
        fw.futex_wait(&mut k, WORD, 1, FOREVER)
            .unwrap()
            .is_pending()
    );
    assert!(sl.sleep(&mut k, 1_000).unwrap().is_pending());
    assert!(
        woken
            .futex_wait(&mut k, WORD + 4, 0, FOREVER)
            .unwrap()
            .is_pending()
    );
    assert_eq!(waker.futex_wake(&mut k, WORD + 4, 1).unwrap(), 1);
    let imgs = checkpoint_and_kill(&mut k, &[&t]);
    let imp = {
        let map: BTreeMap<TaskId, TaskId> = [(client.id(), client.id())].into();
        let imp = k.import_tasks(&imgs, &map).unwrap();
        let new = imp.tasks[&t.id()];
        // Memory is restored by the address-space layer; here, by hand.
        let h = NativeTask::attach(&k, imp.threads[&t.thread()]).unwrap();
        h.mem_write(&mut k, WORD, &1u32.to_le_bytes()).unwrap();
        k.resume_task(new).unwrap();
        imp
    };
    let (nt, nfw, nsl, nwoken, nwaker) = (
        handle(&k, &imp, &t),
        handle(&k, &imp, &fw),
        handle(&k, &imp, &sl),
        handle(&k, &imp, &woken),
        handle(&k, &imp, &waker),
    );
    // Every blocked thread reissues its call; the one already woken
    // finishes at once (thesis 5.3.6).
    assert_eq!(
        nwoken.futex_wait(&mut k, WORD + 4, 0, FOREVER).unwrap(),
        Poll::Ready(())
    );
    assert!(nt.wait(&mut k, FOREVER).unwrap().is_pending());
    assert!(
        nfw.futex_wait(&mut k, WORD, 1, FOREVER)
            .unwrap()
            .is_pending()
    );
    assert!(nsl.sleep(&mut k, 1_000).unwrap().is_pending());
    // The client's phone was to the old task (slammed); it reconnects.
    let p2 = connect(&mut k, &client, &nt);
    assert_ne!(p, p2);
    client.call_async(&mut k, p2, REQ, [1, 0, 0, 0, 0]).unwrap();
    assert!(matches!(
        ready(nt.wait(&mut k, FOREVER).unwrap()),
        Event::Call { .. }
    ));
    nwaker.mem_write(&mut k, WORD, &0u32.to_le_bytes()).unwrap();
    assert_eq!(nwaker.futex_wake(&mut k, WORD, 1).unwrap(), 1);
    assert_eq!(
        nfw.futex_wait(&mut k, WORD, 1, FOREVER).unwrap(),
        Poll::Ready(())
    );
    k.advance_time(1_000);
    assert_eq!(nsl.sleep(&mut k, 1_000).unwrap(), Poll::Ready(()));
    check(&k);
}

#[test]
fn a_missing_server_fails_the_import_and_leaves_nothing() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let srv = service(&mut k, "srv");
    connect(&mut k, &client, &srv);
    let imgs = checkpoint_and_kill(&mut k, &[&client]);
    let before = k.task_ids();
    assert_eq!(
        k.import_tasks(&imgs, &BTreeMap::new()),
        Err(ImportError::Missing(srv.id()))
    );
    assert_eq!(k.task_ids(), before);
    let _ = ConnId(0);
    check(&k);
}

#[test]
fn export_needs_a_stopped_task() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert!(k.export_task(t.id()).is_err());
    k.stop_task(t.id()).unwrap();
    let img = k.export_task(t.id()).unwrap();
    assert_eq!(img.threads.len(), 1);
    let s = service(&mut k, "svc");
    k.stop_task(s.id()).unwrap();
    assert!(
        k.export_task(s.id()).is_err(),
        "a cooperative task is not snapshotted"
    );
}
