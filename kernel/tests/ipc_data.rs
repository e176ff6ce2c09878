//! Data write and data read: bytes copied between the tasks' memories.

mod ipc_common;

use ipc_common::*;
use spartan_kernel::ipc::method::{IPC_M_DATA_READ, IPC_M_DATA_WRITE};
use spartan_kernel::ipc::{EOK, Errno};

#[test]
fn data_write_copies_into_the_receiver_on_answer() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    let msg = b"hello, answerbox";
    let id = client.data_write_start(&mut k, p, msg).unwrap();
    // The sender's buffer may change after sending: the kernel copied it.
    client
        .mem_write(&mut k, 0x8000_0000 + 4096, b"XXXXX")
        .unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!((g.method, g.args[1]), (IPC_M_DATA_WRITE, msg.len() as u64));
    let got = server.accept_data_write(&mut k, g.rx, 1024).unwrap();
    assert_eq!(got, msg);
    let a = expect_answer(&mut k, &client);
    assert_eq!(
        (a.call_id, a.retval, a.args[1]),
        (id, EOK, msg.len() as u64)
    );

    // Truncated to the receiver's room.
    client.data_write_start(&mut k, p, msg).unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!(server.accept_data_write(&mut k, g.rx, 5).unwrap(), b"hello");
    assert_eq!(expect_answer(&mut k, &client).args[1], 5);
    check(&k);
}

#[test]
fn data_read_copies_into_the_caller_before_it_fetches_the_answer() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    let dst = 0x1_0000;
    client.data_read_start(&mut k, p, dst, 8).unwrap();
    let g = expect_call(&mut k, &server);
    assert_eq!((g.method, g.args[0], g.args[1]), (IPC_M_DATA_READ, dst, 8));
    server
        .answer_data_read(&mut k, g.rx, b"0123456789abcdef")
        .unwrap();
    // Copied on answer, truncated to the caller's room.
    assert_eq!(client.mem_read(&k, dst, 10).unwrap(), b"01234567\0\0");
    let a = expect_answer(&mut k, &client);
    assert_eq!((a.retval, a.args[1]), (EOK, 8));
    check(&k);
}

#[test]
fn sync_data_read_and_refusal() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    assert!(client.data_read(&mut k, p, 64).unwrap().is_pending());
    let g = expect_call(&mut k, &server);
    server.answer_data_read(&mut k, g.rx, b"state").unwrap();
    assert_eq!(ready(client.data_read(&mut k, p, 64).unwrap()), b"state");

    // An error answer copies nothing.
    assert!(client.data_read(&mut k, p, 64).unwrap().is_pending());
    let g = expect_call(&mut k, &server);
    server
        .answer(&mut k, g.rx, Errno::Refused.retval(), [0; 5])
        .unwrap();
    assert_eq!(client.data_read(&mut k, p, 64), Err(Errno::Refused.into()));
    check(&k);
}

#[test]
fn bad_addresses_fault_without_losing_the_call() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let server = service(&mut k, "server");
    let p = connect(&mut k, &client, &server);
    // A source beyond the 32-bit space faults at send.
    assert_eq!(
        client.call_async(&mut k, p, IPC_M_DATA_WRITE, [u64::MAX - 4, 8, 0, 0, 0]),
        Err(Errno::Fault.into())
    );
    client.data_write_start(&mut k, p, b"abc").unwrap();
    let g = expect_call(&mut k, &server);
    // A bad destination in the answer fails the answer, not the call.
    assert_eq!(
        server.answer(&mut k, g.rx, EOK, [1 << 33, 3, 0, 0, 0]),
        Err(Errno::Fault.into())
    );
    assert_eq!(server.accept_data_write(&mut k, g.rx, 3).unwrap(), b"abc");
    expect_answer(&mut k, &client);
    check(&k);
}
