//! Phones: lowest-free-first allocation and holes, connect-to-me and
//! connect-me-to through a naming service, connection cloning and hangup
//! in both directions.

mod ipc_common;

use ipc_common::*;
use spartan_kernel::ipc::method::*;
use spartan_kernel::ipc::{EOK, Errno, Phone, PhoneId};

const HELLO: u64 = FIRST_USER_METHOD;

#[test]
fn phone_ids_are_lowest_free_first_with_holes() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let s: Vec<_> = (0..4).map(|i| service(&mut k, &format!("s{i}"))).collect();
    let p: Vec<PhoneId> = s.iter().map(|x| connect(&mut k, &a, x)).collect();
    assert_eq!(p, vec![PhoneId(0), PhoneId(1), PhoneId(2), PhoneId(3)]);
    a.hangup(&mut k, PhoneId(1)).unwrap();
    a.hangup(&mut k, PhoneId(2)).unwrap();
    let slots = k.task(a.id()).unwrap().phones.slots().to_vec();
    assert_eq!(slots.len(), 4);
    assert!(slots[1].is_none() && slots[2].is_none(), "holes stay");
    assert_eq!(connect(&mut k, &a, &s[0]), PhoneId(1));
    assert_eq!(connect(&mut k, &a, &s[0]), PhoneId(2));
    assert_eq!(connect(&mut k, &a, &s[0]), PhoneId(4));
    // Calls on a hole fail.
    a.hangup(&mut k, PhoneId(2)).unwrap();
    assert_eq!(
        a.call_async(&mut k, PhoneId(2), HELLO, [0; 5]),
        Err(Errno::NoEntry.into())
    );
    // Receiver-side connection ids come from the callee's counter.
    let conns: Vec<u64> = k
        .task(a.id())
        .unwrap()
        .phones
        .iter()
        .filter_map(|(_, p)| match p {
            Phone::Connected { callee, conn } if *callee == s[0].id() => Some(conn.0),
            _ => None,
        })
        .collect();
    assert_eq!(conns, vec![1, 2, 4]);
    check(&k);
}

/// A naming service that accepts one server registration and forwards
/// connection requests to it.
#[test]
fn connect_to_me_and_connect_me_to_through_the_naming_service() {
    let mut k = kernel();
    let ns = service(&mut k, "ns");
    let server = service(&mut k, "fs");
    let client = spawn(&mut k, "client");
    let srv_ns = connect(&mut k, &server, &ns);
    let cli_ns = connect(&mut k, &client, &ns);

    // The server registers: CONNECT_TO_ME gives the naming service a phone.
    let reg = server
        .call_async(&mut k, srv_ns, IPC_M_CONNECT_TO_ME, [42, 0, 0, 0, 0])
        .unwrap();
    let g = expect_call(&mut k, &ns);
    assert_eq!(g.method, IPC_M_CONNECT_TO_ME);
    let ns_to_server = PhoneId(g.args[ARG5] as u32);
    assert!(matches!(
        k.task(ns.id()).unwrap().phones.get(ns_to_server),
        Some(Phone::Connected { callee, .. }) if *callee == server.id()
    ));
    ns.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    assert_eq!(expect_answer(&mut k, &server).call_id, reg);

    // The client asks for a connection; NS forwards it to the server.
    let req = [42, 7, 0, 0, 0];
    assert!(
        client
            .call_sync(&mut k, cli_ns, IPC_M_CONNECT_ME_TO, req)
            .unwrap()
            .is_pending()
    );
    assert!(matches!(
        k.task(client.id()).unwrap().phones.get(PhoneId(1)),
        Some(Phone::Connecting)
    ));
    let g = expect_call(&mut k, &ns);
    assert_eq!((g.method, g.args[0]), (IPC_M_CONNECT_ME_TO, 42));
    ns.forward(&mut k, g.rx, ns_to_server, 0, 42, 7, false)
        .unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!((g.method, g.sender), (IPC_M_CONNECT_ME_TO, client.id()));
    let new_conn = g.args[ARG5];
    server.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    let a = ready(
        client
            .call_sync(&mut k, cli_ns, IPC_M_CONNECT_ME_TO, req)
            .unwrap(),
    );
    assert_eq!(a.retval, EOK);
    let phone = PhoneId(a.args[ARG5] as u32);
    assert_eq!(phone, PhoneId(1));

    // The new phone reaches the server, on the announced connection id.
    client
        .call_async(&mut k, phone, HELLO, [1, 0, 0, 0, 0])
        .unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!((g.method, g.conn.0), (HELLO, new_conn));
    server.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    expect_answer(&mut k, &client);
    check(&k);
}

#[test]
fn refused_connect_me_to_frees_the_reserved_slot() {
    let mut k = kernel();
    let server = service(&mut k, "srv");
    let client = spawn(&mut k, "client");
    let p = connect(&mut k, &client, &server);
    client
        .call_async(&mut k, p, IPC_M_CONNECT_ME_TO, [0; 5])
        .unwrap();
    assert_eq!(k.task(client.id()).unwrap().phones.slots().len(), 2);
    let g = expect_call(&mut k, &server);
    server
        .answer(&mut k, g.rx, Errno::Refused.retval(), [0; 5])
        .unwrap();
    let a = expect_answer(&mut k, &client);
    assert_eq!(Errno::from_result(a.retval as i64), Some(Errno::Refused));
    assert_eq!(k.task(client.id()).unwrap().phones.slots().len(), 1);
    check(&k);
}

#[test]
fn connection_clone_gives_the_receiver_a_copy() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = service(&mut k, "c");
    let ab = connect(&mut k, &a, &b);
    let ac = connect(&mut k, &a, &c);
    a.call_async(
        &mut k,
        ab,
        IPC_M_CONNECTION_CLONE,
        [u64::from(ac.0), 0, 0, 0, 0],
    )
    .unwrap();
    let g = expect_call(&mut k, &b);
    let copy = PhoneId(g.args[ARG5] as u32);
    b.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    expect_answer(&mut k, &a);
    b.call_async(&mut k, copy, HELLO, [5, 0, 0, 0, 0]).unwrap();
    let g = expect_call(&mut k, &c);
    assert_eq!((g.sender, g.args[0]), (b.id(), 5));
    c.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    expect_answer(&mut k, &b);

    // An error answer closes the copy again.
    a.call_async(
        &mut k,
        ab,
        IPC_M_CONNECTION_CLONE,
        [u64::from(ac.0), 0, 0, 0, 0],
    )
    .unwrap();
    let g = expect_call(&mut k, &b);
    let second = PhoneId(g.args[ARG5] as u32);
    assert!(k.task(b.id()).unwrap().phones.get(second).is_some());
    b.answer(&mut k, g.rx, Errno::Refused.retval(), [0; 5])
        .unwrap();
    assert!(k.task(b.id()).unwrap().phones.get(second).is_none());
    // Cloning a phone that does not exist fails at once.
    assert_eq!(
        a.call_async(&mut k, ab, IPC_M_CONNECTION_CLONE, [33, 0, 0, 0, 0]),
        Err(Errno::NoEntry.into())
    );
    check(&k);
}

#[test]
fn caller_hangup_sends_phone_hungup_to_the_callee() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    client.call_async(&mut k, p, HELLO, [0; 5]).unwrap();
    let first = expect_call(&mut k, &server);
    client.hangup(&mut k, p).unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!(
        (g.method, g.conn, g.sender),
        (IPC_M_PHONE_HUNGUP, first.conn, client.id())
    );
    server.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
    // The hangup's answer is discarded; the earlier call still gets its own.
    server.answer(&mut k, first.rx, EOK, [0; 5]).unwrap();
    expect_answer(&mut k, &client);
    expect_nothing(&mut k, &client);
    assert_eq!(
        client.call_async(&mut k, p, HELLO, [0; 5]),
        Err(Errno::NoEntry.into())
    );
    assert_eq!(k.live_calls(), 0);
    check(&k);
}

#[test]
fn callee_hangup_by_ehangup_answer_slams_the_phone() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let other = service(&mut k, "other");
    let p = connect(&mut k, &client, &server);
    client.call_async(&mut k, p, HELLO, [0; 5]).unwrap();
    let g = expect_call(&mut k, &server);
    server
        .answer(&mut k, g.rx, Errno::Hangup.retval(), [0; 5])
        .unwrap();
    let a = expect_answer(&mut k, &client);
    assert_eq!(Errno::from_result(a.retval as i64), Some(Errno::Hangup));
    assert_eq!(
        client.call_async(&mut k, p, HELLO, [0; 5]),
        Err(Errno::Hangup.into())
    );
    // The slot is not reused until the owner hangs up too; then no
    // IPC_M_PHONE_HUNGUP is sent (the callee closed it already).
    assert_eq!(connect(&mut k, &client, &other), PhoneId(1));
    client.hangup(&mut k, p).unwrap();
    expect_nothing(&mut k, &server);
    assert_eq!(connect(&mut k, &client, &other), PhoneId(0));
    check(&k);
}
