//! Every call is answered exactly once, also when a party dies.

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::method::{FIRST_USER_METHOD, IPC_M_PHONE_HUNGUP};
use spartan_kernel::ipc::{EOK, Errno, Phone};

const REQ: u64 = FIRST_USER_METHOD;

fn errno_of(retval: u64) -> Option<Errno> {
    Errno::from_result(retval as i64)
}

#[test]
fn callee_death_answers_queued_and_dispatched_calls_with_ehangup() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let waiter = client.new_thread(&mut k).unwrap();
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    let c1 = client.call_async(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap();
    let c2 = client.call_async(&mut k, p, REQ, [2, 0, 0, 0, 0]).unwrap();
    assert!(
        waiter
            .call_sync(&mut k, p, REQ, [3, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let _dispatched = expect_call(&mut k, &server); // c1 dispatched, c2 + sync queued
    k.kill_task(server.id()).unwrap();

    let a = expect_answer(&mut k, &client);
    let b = expect_answer(&mut k, &client);
    assert_eq!(errno_of(a.retval), Some(Errno::Hangup));
    assert_eq!(errno_of(b.retval), Some(Errno::Hangup));
    let mut ids = vec![a.call_id, b.call_id];
    ids.sort();
    assert_eq!(ids, vec![c1, c2]);
    let s = ready(waiter.call_sync(&mut k, p, REQ, [3, 0, 0, 0, 0]).unwrap());
    assert_eq!(s.errno(), Some(Errno::Hangup));
    assert!(k.task(client.id()).unwrap().out_calls.is_empty());
    // The phone is slammed: further calls fail at once.
    assert!(matches!(
        k.task(client.id()).unwrap().phones.get(p),
        Some(Phone::Slammed { .. })
    ));
    assert_eq!(
        client.call_async(&mut k, p, REQ, [0; 5]),
        Err(Errno::Hangup.into())
    );
    assert_eq!(k.live_calls(), 0);
    check(&k);
}

#[test]
fn caller_death_drops_out_calls_and_discards_late_answers() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    client.call_async(&mut k, p, REQ, [1, 0, 0, 0, 0]).unwrap();
    client.call_async(&mut k, p, REQ, [2, 0, 0, 0, 0]).unwrap();
    let g1 = expect_call(&mut k, &server);
    k.kill_task(client.id()).unwrap();
    // The server still answers what it fetched, and still receives the
    // undelivered call, then the hangup of the dead client's phone.
    server.answer(&mut k, g1.rx, EOK, [0; 5]).unwrap();
    let g2 = expect_call(&mut k, &server);
    assert_eq!(g2.args[0], 2);
    server.answer(&mut k, g2.rx, EOK, [0; 5]).unwrap();
    let h = expect_call(&mut k, &server);
    assert_eq!((h.method, h.conn), (IPC_M_PHONE_HUNGUP, g1.conn));
    server.answer(&mut k, h.rx, EOK, [0; 5]).unwrap();
    expect_nothing(&mut k, &server);
    assert_eq!(k.live_calls(), 0);
    assert!(k.task(client.id()).is_none());
    check(&k);
}

#[test]
fn forwarded_call_in_flight_survives_the_forwarders_death() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = service(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let bc = connect(&mut k, &b, &c);
    let id = a.call_async(&mut k, ab, REQ, [5, 0, 0, 0, 0]).unwrap();
    let g = expect_call(&mut k, &b);
    b.forward(&mut k, g.rx, bc, REQ, 5, 0, false).unwrap();
    k.kill_task(b.id()).unwrap();
    // c still holds the forwarded call (and b's hangup); its answer
    // reaches a.
    let g = expect_call(&mut k, &c);
    assert_eq!(g.sender, a.id());
    c.answer(&mut k, g.rx, EOK, [55, 0, 0, 0, 0]).unwrap();
    let ans = expect_answer(&mut k, &a);
    assert_eq!((ans.call_id, ans.retval, ans.args[0]), (id, EOK, 55));
    let h = expect_call(&mut k, &c);
    assert_eq!(h.method, IPC_M_PHONE_HUNGUP);
    c.answer(&mut k, h.rx, EOK, [0; 5]).unwrap();
    check(&k);
}

#[test]
fn forwarded_call_is_answered_when_its_final_receiver_dies() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = service(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let bc = connect(&mut k, &b, &c);
    assert!(
        a.call_sync(&mut k, ab, REQ, [5, 0, 0, 0, 0])
            .unwrap()
            .is_pending()
    );
    let g = expect_call(&mut k, &b);
    b.forward(&mut k, g.rx, bc, REQ, 5, 0, false).unwrap();
    let _at_c = expect_call(&mut k, &c);
    k.kill_task(c.id()).unwrap();
    let s = ready(a.call_sync(&mut k, ab, REQ, [5, 0, 0, 0, 0]).unwrap());
    assert_eq!(s.errno(), Some(Errno::Hangup));
    // b's phone to c is slammed; b got nothing to answer.
    assert_eq!(
        b.call_async(&mut k, bc, REQ, [0; 5]),
        Err(Errno::Hangup.into())
    );
    expect_nothing(&mut k, &b);
    assert_eq!(k.live_calls(), 0);
    check(&k);
}

#[test]
fn many_parties_die_in_any_order_and_everything_is_answered_once() {
    for order in 0..6u64 {
        let mut k = kernel();
        let t: Vec<_> = (0..3).map(|i| spawn(&mut k, &format!("t{i}"))).collect();
        let mut phones = Vec::new();
        for x in &t {
            for y in &t {
                phones.push((x, connect(&mut k, x, y)));
            }
        }
        for (i, (x, p)) in phones.iter().enumerate() {
            x.call_async(&mut k, *p, REQ, [i as u64, 0, 0, 0, 0])
                .unwrap();
        }
        // Each fetches one call, forwards the next to its neighbour.
        for (i, x) in t.iter().enumerate() {
            let _ = expect_call(&mut k, x);
            let g = expect_call(&mut k, x);
            let fwd = phones[i * 3 + (i + 1) % 3].1;
            x.forward(&mut k, g.rx, fwd, REQ, 0, 0, true).unwrap();
        }
        let perm = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ][order as usize];
        for victim in perm {
            k.kill_task(t[victim].id()).unwrap();
            check(&k);
        }
        assert_eq!(k.live_calls(), 0, "order {perm:?}");
        assert!(k.calls_created() >= 9);
    }
}

#[test]
fn sync_caller_blocked_while_callee_dies_is_woken() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert_eq!(
        client.call_sync(&mut k, p, REQ, [0; 5]).unwrap(),
        Poll::Pending
    );
    k.kill_task(server.id()).unwrap();
    assert!(client.is_runnable(&k));
    let s = ready(client.call_sync(&mut k, p, REQ, [0; 5]).unwrap());
    assert_eq!(s.errno(), Some(Errno::Hangup));
    check(&k);
}
