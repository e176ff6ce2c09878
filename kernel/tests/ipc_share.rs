//! Share-out and share-in of areas between native tasks: the same pages
//! seen through both mappings, futexes meeting across tasks, the sharing
//! query, and every refusal (bad base, overlap, no such area, flags, a
//! hangup during a share), each call answered exactly once.

mod ipc_common;

use std::task::Poll;

use ipc_common::*;
use spartan_kernel::ipc::method::{IPC_M_SHARE_IN, IPC_M_SHARE_OUT};
use spartan_kernel::ipc::{AreaMapping, EOK, Errno};
use spartan_kernel::mm::AreaFlags;
use spartan_kernel::task::native::NativeError;

const A_BASE: u64 = 0x1000_0000;
const B_BASE: u64 = 0x2000_0000;
const SIZE: u64 = 2 * 4096;

fn errno(r: Result<impl std::fmt::Debug, NativeError>) -> Errno {
    match r {
        Err(NativeError::Errno(e)) => e,
        other => panic!("expected an errno, got {other:?}"),
    }
}

#[test]
fn share_out_maps_the_same_pages_in_the_receiver() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    a.mem_write(&mut k, A_BASE + 4090, b"across pages").unwrap();
    let id = a
        .share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 77)
        .unwrap();
    let g = expect_call(&mut k, &b);
    assert_eq!(g.method, IPC_M_SHARE_OUT);
    assert_eq!(g.args[..4], [A_BASE, SIZE, 3, 77]);
    b.accept_share_out(&mut k, g.rx, B_BASE).unwrap();
    let ans = expect_answer(&mut k, &a);
    assert_eq!((ans.call_id, ans.retval, ans.args[0]), (id, EOK, B_BASE));
    // Same bytes, both ways.
    assert_eq!(b.mem_read(&k, B_BASE + 4090, 12).unwrap(), b"across pages");
    b.mem_write(&mut k, B_BASE + SIZE - 4, b"tail").unwrap();
    assert_eq!(a.mem_read(&k, A_BASE + SIZE - 4, 4).unwrap(), b"tail");
    // The sharing relation, as a checkpoint reads it.
    let areas_a = k.task_areas(a.id()).unwrap();
    assert_eq!(areas_a.len(), 1);
    let backing = areas_a[0].area.backing.expect("shared");
    assert_eq!(
        areas_a[0].others,
        vec![AreaMapping {
            task: b.id(),
            base: B_BASE,
            flags: AreaFlags::RW
        }]
    );
    let areas_b = k.task_areas(b.id()).unwrap();
    assert_eq!(areas_b[0].area.backing, Some(backing));
    assert_eq!(areas_b[0].others[0].task, a.id());
    assert_eq!(k.backing_mappings(backing).len(), 2);
    check(&k);
}

#[test]
fn share_in_maps_the_suppliers_area_and_grants_only_what_was_asked() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let srv = service(&mut k, "srv");
    let p = connect(&mut k, &client, &srv);
    srv.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW)
        .unwrap();
    srv.mem_write(&mut k, B_BASE, b"from the server").unwrap();
    assert_eq!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::READ, 5)
            .unwrap(),
        Poll::Pending
    );
    let g = expect_call(&mut k, &srv);
    assert_eq!(g.method, IPC_M_SHARE_IN);
    assert_eq!(g.args[..4], [A_BASE, SIZE, 1, 5]);
    srv.answer_share_in(&mut k, g.rx, B_BASE).unwrap();
    assert_eq!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::READ, 5)
            .unwrap(),
        Poll::Ready(())
    );
    assert_eq!(client.mem_read(&k, A_BASE, 15).unwrap(), b"from the server");
    srv.mem_write(&mut k, B_BASE + 5, b"THE").unwrap();
    assert_eq!(client.mem_read(&k, A_BASE, 8).unwrap(), b"from THE");
    // Read-only for the client.
    assert_eq!(errno(client.mem_write(&mut k, A_BASE, b"x")), Errno::Fault);
    let areas = k.task_areas(client.id()).unwrap();
    assert_eq!(areas[0].area.flags, AreaFlags::READ);
    assert_eq!(areas[0].others[0].base, B_BASE);
    check(&k);
}

#[test]
fn refusals_when_sending() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::READ)
        .unwrap();
    let raw = |k: &mut _, m, args: [u64; 5]| errno(a.call_async(k, p, m, args));
    // No such area, wrong size, more flags than the area has, unknown bits.
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_OUT, [A_BASE + 4096, 4096, 1, 0, 0]),
        Errno::NoEntry
    );
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_OUT, [A_BASE, 4096, 1, 0, 0]),
        Errno::Invalid
    );
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_OUT, [A_BASE, SIZE, 3, 0, 0]),
        Errno::Invalid
    );
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_OUT, [A_BASE, SIZE, 8, 0, 0]),
        Errno::Invalid
    );
    // Share-in: the requested range overlaps an area, is unaligned, or
    // reaches into the native scratch regions.
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_IN, [A_BASE + 4096, SIZE, 3, 0, 0]),
        Errno::AddrInUse
    );
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_IN, [B_BASE + 1, SIZE, 3, 0, 0]),
        Errno::Invalid
    );
    assert_eq!(
        raw(&mut k, IPC_M_SHARE_IN, [0x8000_0000, SIZE, 3, 0, 0]),
        Errno::Invalid
    );
    // Area creation refusals.
    assert_eq!(
        errno(a.area_create(&mut k, A_BASE + 4096, SIZE, AreaFlags::RW)),
        Errno::AddrInUse
    );
    assert_eq!(
        errno(a.area_create(&mut k, 123, SIZE, AreaFlags::RW)),
        Errno::Invalid
    );
    assert_eq!(errno(a.area_destroy(&mut k, B_BASE)), Errno::NoEntry);
    // Nothing was sent.
    expect_nothing(&mut k, &b);
    assert!(k.task(a.id()).unwrap().out_calls.is_empty());
    check(&k);
}

#[test]
fn answerer_side_refusals_leave_the_call_dispatched() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    b.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW).unwrap();
    a.share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 0)
        .unwrap();
    let g = expect_call(&mut k, &b);
    // Unaligned, overlapping b's own area, outside the native range.
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE + SIZE + 1)),
        Errno::Invalid
    );
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE + 4096)),
        Errno::AddrInUse
    );
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, 0x9000_0000)),
        Errno::Invalid
    );
    expect_nothing(&mut k, &a);
    b.accept_share_out(&mut k, g.rx, B_BASE + SIZE).unwrap();
    assert_eq!(expect_answer(&mut k, &a).args[0], B_BASE + SIZE);
    // Answered once: a second answer finds no call.
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE + 2 * SIZE)),
        Errno::NoEntry
    );

    // Share-in: no area at the base, wrong size, too few flags.
    b.area_create(&mut k, 0x3000_0000, 4096, AreaFlags::READ)
        .unwrap();
    let dst = 0x4000_0000;
    assert_eq!(
        a.share_in(&mut k, p, dst, SIZE, AreaFlags::RW, 0).unwrap(),
        Poll::Pending
    );
    let g = expect_call(&mut k, &b);
    assert_eq!(
        errno(b.answer_share_in(&mut k, g.rx, 0x5000_0000)),
        Errno::NoEntry
    );
    assert_eq!(
        errno(b.answer_share_in(&mut k, g.rx, 0x3000_0000)),
        Errno::Invalid
    );
    b.area_create(&mut k, 0x3100_0000, SIZE, AreaFlags::READ)
        .unwrap();
    assert_eq!(
        errno(b.answer_share_in(&mut k, g.rx, 0x3100_0000)),
        Errno::Invalid
    );
    b.answer_share_in(&mut k, g.rx, B_BASE).unwrap();
    assert_eq!(
        a.share_in(&mut k, p, dst, SIZE, AreaFlags::RW, 0).unwrap(),
        Poll::Ready(())
    );
    // a's original area, b's mapping of it (B_BASE + SIZE), and now b's
    // own area mapped in a at dst.
    assert_eq!(k.task_areas(a.id()).unwrap().len(), 2);
    check(&k);
}

#[test]
fn caller_side_failures_answer_the_call_with_the_error() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    // The offered area is destroyed before the answer.
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    let id = a
        .share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 0)
        .unwrap();
    a.area_destroy(&mut k, A_BASE).unwrap();
    let g = expect_call(&mut k, &b);
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE)),
        Errno::Refused
    );
    let ans = expect_answer(&mut k, &a);
    assert_eq!(
        (ans.call_id, Errno::from_result(ans.retval as i64)),
        (id, Some(Errno::NoEntry))
    );
    assert!(k.task_areas(b.id()).unwrap().is_empty());

    // The requested range is taken before the answer.
    b.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW).unwrap();
    assert_eq!(
        a.share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap(),
        Poll::Pending
    );
    // (another thread of a: the first one waits in the call)
    let a2 = a.new_thread(&mut k).unwrap();
    a2.area_create(&mut k, A_BASE, 4096, AreaFlags::RW).unwrap();
    let g = expect_call(&mut k, &b);
    assert_eq!(
        errno(b.answer_share_in(&mut k, g.rx, B_BASE)),
        Errno::Refused
    );
    assert_eq!(
        errno(a.share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)),
        Errno::AddrInUse
    );
    // b's area was not shared with anyone.
    assert!(k.task_areas(b.id()).unwrap()[0].others.is_empty());
    check(&k);
}

#[test]
fn a_share_out_offer_is_bound_to_its_area_not_to_its_base() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    a.mem_write(&mut k, A_BASE, b"offered").unwrap();
    let old = a
        .share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 0)
        .unwrap();
    // The offered area is replaced by another of the same size at the same
    // base before the receiver answers.
    a.area_destroy(&mut k, A_BASE).unwrap();
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    a.mem_write(&mut k, A_BASE, b"private").unwrap();
    let g = expect_call(&mut k, &b);
    assert_eq!(g.args[..2], [A_BASE, SIZE]);
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE)),
        Errno::Refused
    );
    let ans = expect_answer(&mut k, &a);
    assert_eq!(
        (ans.call_id, Errno::from_result(ans.retval as i64)),
        (old, Some(Errno::NoEntry))
    );
    // Nothing was mapped and the new area is shared with no one.
    assert!(k.task_areas(b.id()).unwrap().is_empty());
    assert!(k.task_areas(a.id()).unwrap()[0].others.is_empty());
    assert_eq!(b.mem_read(&k, B_BASE, 7).unwrap(), [0; 7]);

    // An offer made after the replacement is the new area's own.
    let new = a
        .share_out_start(&mut k, p, A_BASE, AreaFlags::READ, 0)
        .unwrap();
    let g = expect_call(&mut k, &b);
    b.accept_share_out(&mut k, g.rx, B_BASE).unwrap();
    let ans = expect_answer(&mut k, &a);
    assert_eq!((ans.call_id, ans.retval), (new, EOK));
    assert_eq!(b.mem_read(&k, B_BASE, 7).unwrap(), b"private");

    // A revoked offer stays revoked across checkpoint and restore: the
    // flag travels with the pending call.
    a.area_create(&mut k, 0x3000_0000, 4096, AreaFlags::RW)
        .unwrap();
    a.share_out_start(&mut k, p, 0x3000_0000, AreaFlags::RW, 0)
        .unwrap();
    a.area_destroy(&mut k, 0x3000_0000).unwrap();
    k.stop_task(a.id()).unwrap();
    let image = k.export_task(a.id()).unwrap();
    assert_eq!(image.out_calls.len(), 1);
    assert!(image.out_calls[0].offer_revoked);
    k.resume_task(a.id()).unwrap();
    check(&k);
}

#[test]
fn hangup_during_a_share_answers_once_and_maps_nothing() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    // The offering caller dies before the answer.
    a.share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 0)
        .unwrap();
    let g = expect_call(&mut k, &b);
    k.kill_task(a.id()).unwrap();
    assert_eq!(
        errno(b.accept_share_out(&mut k, g.rx, B_BASE)),
        Errno::Hangup
    );
    assert!(k.task_areas(b.id()).unwrap().is_empty());
    check(&k);

    // The supplier dies holding a share-in: the caller gets EHANGUP.
    let c = spawn(&mut k, "c");
    let d = service(&mut k, "d");
    let p = connect(&mut k, &c, &d);
    d.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW).unwrap();
    assert_eq!(
        c.share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap(),
        Poll::Pending
    );
    let _ = expect_call(&mut k, &d);
    k.kill_task(d.id()).unwrap();
    assert_eq!(
        errno(c.share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)),
        Errno::Hangup
    );
    assert!(k.task_areas(c.id()).unwrap().is_empty());
    check(&k);
}

#[test]
fn futexes_on_shared_pages_meet_across_tasks_and_pages_outlive_the_sharer() {
    let mut k = kernel();
    let a = spawn(&mut k, "a");
    let b = service(&mut k, "b");
    let c = spawn(&mut k, "c");
    let p = connect(&mut k, &a, &b);
    a.area_create(&mut k, A_BASE, SIZE, AreaFlags::RW).unwrap();
    a.share_out_start(&mut k, p, A_BASE, AreaFlags::RW, 0)
        .unwrap();
    let g = expect_call(&mut k, &b);
    b.accept_share_out(&mut k, g.rx, B_BASE).unwrap();
    expect_answer(&mut k, &a);
    // b passes it on to c (a third mapping of the same backing).
    let q = connect(&mut k, &b, &c);
    b.share_out_start(&mut k, q, B_BASE, AreaFlags::RW, 0)
        .unwrap();
    let g = expect_call(&mut k, &c);
    c.accept_share_out(&mut k, g.rx, 0x3000_0000).unwrap();
    expect_answer(&mut k, &b);
    let backing = k.task_areas(a.id()).unwrap()[0].area.backing.unwrap();
    assert_eq!(k.backing_mappings(backing).len(), 3);

    // a sleeps on the word at offset 8 of page 1; c wakes it through its
    // own mapping at another base.
    let off = 4096 + 8;
    assert_eq!(
        a.futex_wait(&mut k, A_BASE + off, 0, u64::MAX).unwrap(),
        Poll::Pending
    );
    c.mem_write(&mut k, 0x3000_0000 + off, &1u32.to_le_bytes())
        .unwrap();
    assert_eq!(c.futex_wake(&mut k, 0x3000_0000 + off, 1).unwrap(), 1);
    assert_eq!(
        a.futex_wait(&mut k, A_BASE + off, 0, u64::MAX).unwrap(),
        Poll::Ready(())
    );
    // A futex at the same offset of a private page is another futex.
    assert_eq!(b.futex_wake(&mut k, 0x5000_0000 + off, 1).unwrap(), 0);

    // a ends; b and c keep the pages.
    k.kill_task(a.id()).unwrap();
    b.mem_write(&mut k, B_BASE, b"still here").unwrap();
    assert_eq!(c.mem_read(&k, 0x3000_0000, 10).unwrap(), b"still here");
    let m = k.backing_mappings(backing);
    assert_eq!(
        m.iter().map(|x| x.task).collect::<Vec<_>>(),
        vec![b.id(), c.id()]
    );
    b.area_destroy(&mut k, B_BASE).unwrap();
    assert_eq!(k.backing_mappings(backing).len(), 1);
    assert_eq!(c.mem_read(&k, 0x3000_0000, 10).unwrap(), b"still here");
    check(&k);
}

#[test]
fn forwarded_share_in_is_supplied_by_the_final_receiver() {
    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let ns = service(&mut k, "ns");
    let srv = service(&mut k, "srv");
    let p = connect(&mut k, &client, &ns);
    let to_srv = connect(&mut k, &ns, &srv);
    srv.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW)
        .unwrap();
    srv.mem_write(&mut k, B_BASE, b"srv").unwrap();
    assert_eq!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap(),
        Poll::Pending
    );
    let g = expect_call(&mut k, &ns);
    // Kernel methods may only be forwarded unchanged.
    assert_eq!(
        errno(ns.forward(&mut k, g.rx, to_srv, 2000, 0, 0, false)),
        Errno::Invalid
    );
    ns.forward(&mut k, g.rx, to_srv, 0, 0, 0, true).unwrap();
    let g = expect_call(&mut k, &srv);
    assert_eq!(g.sender, client.id());
    srv.answer_share_in(&mut k, g.rx, B_BASE).unwrap();
    assert_eq!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap(),
        Poll::Ready(())
    );
    assert_eq!(client.mem_read(&k, A_BASE, 3).unwrap(), b"srv");
    assert!(k.task_areas(ns.id()).unwrap().is_empty());
    check(&k);
}

/// A checkpoint of a client that maps a service's area and has a share-in
/// pending at that service: after restore (into a fresh memory) the
/// recorded sharing is re-established with `reshare_area`, and the
/// pending share-in, sent again by the import, is supplied into the
/// restored task under its old call id.
#[test]
fn sharing_survives_checkpoint_and_restore_through_the_query() {
    use spartan_kernel::task::TaskId;
    use spartan_kernel::task::image::TaskImage;
    use std::collections::BTreeMap;

    let mut k = kernel();
    let client = spawn(&mut k, "client");
    let srv = service(&mut k, "srv");
    let p = connect(&mut k, &client, &srv);
    srv.area_create(&mut k, B_BASE, SIZE, AreaFlags::RW)
        .unwrap();
    srv.area_create(&mut k, B_BASE + SIZE, 4096, AreaFlags::RW)
        .unwrap();
    srv.mem_write(&mut k, B_BASE + SIZE, b"second").unwrap();
    assert!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap()
            .is_pending()
    );
    let g = expect_call(&mut k, &srv);
    srv.answer_share_in(&mut k, g.rx, B_BASE).unwrap();
    assert_eq!(
        client
            .share_in(&mut k, p, A_BASE, SIZE, AreaFlags::RW, 0)
            .unwrap(),
        Poll::Ready(())
    );
    // A second share-in, pending (not yet fetched) at the checkpoint.
    let dst2 = A_BASE + 0x10_0000;
    let id = client
        .call_async(&mut k, p, IPC_M_SHARE_IN, [dst2, 4096, 3, 0, 0])
        .unwrap();

    // Checkpoint: stop, export, record the sharing, kill.
    k.stop_task(client.id()).unwrap();
    let recorded = k.task_areas(client.id()).unwrap();
    let image: TaskImage = k.export_task(client.id()).unwrap();
    k.kill_task(client.id()).unwrap();
    // The service keeps its pages and goes on writing.
    srv.mem_write(&mut k, B_BASE, b"after the kill").unwrap();
    // The dead incarnation's call was re-answered nowhere: drop it.
    match srv.wait(&mut k, 0).unwrap() {
        Poll::Ready(spartan_kernel::ipc::Event::Call { rx_id, .. }) => {
            assert_eq!(
                errno(srv.answer_share_in(&mut k, rx_id, B_BASE + SIZE)),
                Errno::Hangup
            );
        }
        other => panic!("{other:?}"),
    }
    check(&k);

    // Restore into a fresh native task and re-share what was recorded.
    let outside: BTreeMap<TaskId, TaskId> = [(srv.id(), srv.id())].into();
    let imported = k.import_tasks(&[image], &outside).unwrap();
    let new_id = imported.tasks[&client.id()];
    for a in &recorded {
        let other = a.others.iter().find(|m| m.task == srv.id()).unwrap();
        k.reshare_area(new_id, a.area.base, a.area.flags, other.task, other.base)
            .unwrap();
    }
    k.resume_task(new_id).unwrap();
    let restored =
        spartan_kernel::task::native::NativeTask::attach(&k, imported.threads[&client.thread()])
            .unwrap();
    assert_eq!(
        restored.mem_read(&k, A_BASE, 14).unwrap(),
        b"after the kill"
    );
    restored.mem_write(&mut k, A_BASE + 20, b"back").unwrap();
    assert_eq!(srv.mem_read(&k, B_BASE + 20, 4).unwrap(), b"back");
    // The pending share-in was sent again; the service supplies it now
    // (after the dead incarnation's hangup message).
    let mut g = expect_call(&mut k, &srv);
    while g.method == spartan_kernel::ipc::method::IPC_M_PHONE_HUNGUP {
        srv.answer(&mut k, g.rx, EOK, [0; 5]).unwrap();
        g = expect_call(&mut k, &srv);
    }
    assert_eq!((g.method, g.args[0]), (IPC_M_SHARE_IN, dst2));
    srv.answer_share_in(&mut k, g.rx, B_BASE + SIZE).unwrap();
    let ans = expect_answer(&mut k, &restored);
    assert_eq!((ans.call_id, ans.retval, ans.args[0]), (id, EOK, dst2));
    assert_eq!(restored.mem_read(&k, dst2, 6).unwrap(), b"second");
    // Refusals of reshare_area: no area there, flags beyond the source's.
    assert_eq!(
        k.reshare_area(new_id, 0x6000_0000, AreaFlags::RW, srv.id(), 0x7000_0000),
        Err(Errno::NoEntry)
    );
    srv.area_create(&mut k, 0x7000_0000, 4096, AreaFlags::READ)
        .unwrap();
    assert_eq!(
        k.reshare_area(new_id, 0x6000_0000, AreaFlags::RW, srv.id(), 0x7000_0000),
        Err(Errno::Invalid)
    );
    assert_eq!(
        k.reshare_area(new_id, A_BASE, AreaFlags::READ, srv.id(), 0x7000_0000),
        Err(Errno::AddrInUse)
    );
    check(&k);
}
