//! Asynchronous and synchronous calls, answers, forwarding and
//! notifications between native tasks.

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::method::FIRST_USER_METHOD;
use spartan_kernel::ipc::{CallId, EOK, Errno, Event, PhoneId};
use spartan_kernel::syscall::FOREVER;
use spartan_kernel::task::ThreadState;

const PING: u64 = FIRST_USER_METHOD;

#[test]
fn async_call_is_answered_and_tracked_on_out_calls() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert_eq!(p, PhoneId(0));

    let c1 = client.call_async(&mut k, p, PING, [1, 2, 3, 4, 5]).unwrap();
    let c2 = client
        .call_async(&mut k, p, PING + 1, [6, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(
        (c1, c2),
        (CallId(1), CallId(2)),
        "sender-side ids from a counter"
    );
    let out: Vec<CallId> = k
        .task(client.id())
        .unwrap()
        .out_calls
        .keys()
        .copied()
        .collect();
    assert_eq!(out, vec![c1, c2]);

    let g1 = expect_call(&mut k, &server);
    let g2 = expect_call(&mut k, &server);
    assert_eq!(
        (g1.rx.0, g2.rx.0),
        (1, 2),
        "receiver-side ids from a counter"
    );
    assert_eq!(g1.sender, client.id());
    assert_eq!(g1.args, [1, 2, 3, 4, 5]);
    assert_eq!(g2.method, PING + 1);
    assert_eq!(g1.conn, g2.conn);
    expect_nothing(&mut k, &server);

    // Answer out of order: answers arrive in answer order.
    server.answer(&mut k, g2.rx, EOK, [60, 0, 0, 0, 0]).unwrap();
    let a = expect_answer(&mut k, &client);
    assert_eq!((a.call_id, a.retval, a.args[0]), (c2, EOK, 60));
    let out: Vec<CallId> = k
        .task(client.id())
        .unwrap()
        .out_calls
        .keys()
        .copied()
        .collect();
    assert_eq!(out, vec![c1]);
    server.answer(&mut k, g1.rx, 7, [10, 0, 0, 0, 0]).unwrap();
    assert_eq!(expect_answer(&mut k, &client).call_id, c1);
    assert!(k.task(client.id()).unwrap().out_calls.is_empty());

    // A call is answered once: a second answer finds nothing.
    assert_eq!(
        server.answer(&mut k, g1.rx, EOK, [0; 5]),
        Err(Errno::NoEntry.into())
    );
    assert_eq!(k.live_calls(), 0);
    assert_eq!(k.calls_created(), 2);
    check(&k);
}

#[test]
fn sync_call_blocks_until_answered() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);

    assert_eq!(
        client.call_sync(&mut k, p, PING, [5, 0, 0, 0, 0]).unwrap(),
        Poll::Pending
    );
    assert!(matches!(
        k.thread(client.thread()).unwrap().state,
        ThreadState::Blocked(_)
    ));
    // Polling again while blocked neither resends nor finishes.
    assert_eq!(
        client.call_sync(&mut k, p, PING, [5, 0, 0, 0, 0]).unwrap(),
        Poll::Pending
    );
    let g = expect_call(&mut k, &server);
    expect_nothing(&mut k, &server);
    server
        .answer(&mut k, g.rx, EOK, [g.args[0] * 2, 1, 2, 3, 4])
        .unwrap();
    assert!(client.is_runnable(&k));
    let a = ready(client.call_sync(&mut k, p, PING, [5, 0, 0, 0, 0]).unwrap());
    assert_eq!(a.retval, EOK);
    assert_eq!(a.args, [10, 1, 2, 3, 4]);
    // The answer went to the thread, not to the answerbox.
    expect_nothing(&mut k, &client);
    assert!(k.thread(client.thread()).unwrap().sys == Default::default());
    check(&k);
}

#[test]
fn sync_answers_reach_the_right_thread() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let t2 = client.new_thread(&mut k).unwrap();
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(
        client
            .call_sync(&mut k, p, PING, [1, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    assert!(
        t2.call_sync(&mut k, p, PING, [2, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let g1 = expect_call(&mut k, &server);
    let g2 = expect_call(&mut k, &server);
    server
        .answer(&mut k, g2.rx, EOK, [g2.args[0] + 100, 0, 0, 0, 0])
        .unwrap();
    assert!(!client.is_runnable(&k));
    assert_eq!(
        ready(t2.call_sync(&mut k, p, PING, [2, 0, 0, 0, 0]).unwrap()).args[0],
        102
    );
    server
        .answer(&mut k, g1.rx, EOK, [g1.args[0] + 100, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(
        ready(client.call_sync(&mut k, p, PING, [1, 0, 0, 0, 0]).unwrap()).args[0],
        101
    );
    check(&k);
}

#[test]
fn forwarded_call_is_answered_to_the_original_caller() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = service(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let bc = connect(&mut k, &b, &c);

    let id = a.call_async(&mut k, ab, PING, [1, 2, 3, 4, 5]).unwrap();
    let at_b = expect_call(&mut k, &b);
    b.forward(&mut k, at_b.rx, bc, PING + 9, 11, 22, false)
        .unwrap();
    // Still on a's out_calls while it travels (thesis 5.4.8).
    let key = k.task(a.id()).unwrap().out_calls[&id];
    let call = k.task(a.id()).map(|_| ()).and(Some(key));
    assert!(call.is_some());
    expect_nothing(&mut k, &b);
    let at_c = expect_call(&mut k, &c);
    assert_eq!(at_c.method, PING + 9);
    assert_eq!(at_c.args, [11, 22, 3, 4, 5]);
    assert_eq!(at_c.sender, a.id(), "the original sender is named");
    let fwd = k.ipc_dispatched(c.id(), at_c.rx).unwrap();
    assert_eq!(fwd.forwarded_by, vec![b.id()]);
    assert_eq!(k.task(a.id()).unwrap().out_calls.len(), 1);

    c.answer(&mut k, at_c.rx, EOK, [99, 0, 0, 0, 0]).unwrap();
    let ans = expect_answer(&mut k, &a);
    assert_eq!((ans.call_id, ans.args[0]), (id, 99));
    expect_nothing(&mut k, &b);
    assert!(k.task(a.id()).unwrap().out_calls.is_empty());
    check(&k);
}

#[test]
fn forward_keep_and_forward_through_dead_phone() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = service(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let bc = connect(&mut k, &b, &c);
    a.call_async(&mut k, ab, PING, [1, 2, 3, 4, 5]).unwrap();
    let g = expect_call(&mut k, &b);
    b.forward(&mut k, g.rx, bc, 0, 0, 0, true).unwrap();
    let g = expect_call(&mut k, &c);
    assert_eq!((g.method, g.args), (PING, [1, 2, 3, 4, 5]));
    c.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    expect_answer(&mut k, &a);

    // Forwarding through a phone that does not exist answers the call.
    let id = a.call_async(&mut k, ab, PING, [0; 5]).unwrap();
    let g = expect_call(&mut k, &b);
    assert_eq!(
        b.forward(&mut k, g.rx, PhoneId(9), PING, 0, 0, false),
        Err(Errno::NoEntry.into())
    );
    let ans = expect_answer(&mut k, &a);
    assert_eq!(
        (ans.call_id, Errno::from_result(ans.retval as i64)),
        (id, Some(Errno::NoEntry))
    );
    check(&k);
}

#[test]
fn notifications_come_first_and_need_no_answer() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    client.call_async(&mut k, p, PING, [0; 5]).unwrap();
    k.notify(server.id(), 77, [1, 0, 0, 0, 0]).unwrap();
    match ready(server.wait(&mut k, 0).unwrap()) {
        Event::Notification(n) => assert_eq!((n.method, n.args[0]), (77, 1)),
        other => panic!("{other:?}"),
    }
    let g = expect_call(&mut k, &server);
    assert_eq!(g.method, PING);
    assert_eq!(k.live_calls(), 1, "a notification is not a call");
    server.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    check(&k);
}

#[test]
fn ipc_wait_blocks_wakes_and_times_out_on_virtual_time() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);

    // Times out at exactly its deadline.
    assert_eq!(server.wait(&mut k, 1_000).unwrap(), Poll::Pending);
    assert_eq!(k.next_deadline(), Some(1_000));
    k.advance_time(999);
    assert!(!server.is_runnable(&k));
    k.advance_time(1);
    assert_eq!(server.wait(&mut k, 1_000), Err(Errno::Timeout.into()));

    // Woken by a call; the reissue fetches it.
    assert_eq!(server.wait(&mut k, FOREVER).unwrap(), Poll::Pending);
    client.call_async(&mut k, p, PING, [3, 0, 0, 0, 0]).unwrap();
    assert!(server.is_runnable(&k));
    match ready(server.wait(&mut k, FOREVER).unwrap()) {
        Event::Call { args, .. } => assert_eq!(args[0], 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(k.next_deadline(), None);
    check(&k);
}

#[test]
fn a_thread_must_reissue_its_pending_call() {
    let mut k = kernel();
    let t = spawn(&mut k, "t");
    assert!(t.wait(&mut k, FOREVER).unwrap().is_pending());
    let err = t.sleep(&mut k, 5).unwrap_err();
    assert!(err.to_string().contains("must reissue"), "{err}");
}
