//! Hostile record bodies: whatever a (checksum-valid) record claims, decoding
//! it takes a bounded amount of memory. A task record made of one-byte
//! elements that decode to 24-48 bytes each (free phone slots, empty
//! argument strings, empty tables) is refused once it would exceed its
//! budget, and a collection declaring more elements than bytes remain is
//! refused before anything is allocated.

use snapfmt::exec::*;
use snapfmt::limits::{MAX_DECODE_BUDGET, decode_budget};
use snapfmt::object::{decode_cost, decode_record};
use snapfmt::*;

/// A varint (postcard's unsigned LEB128).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A small real task record: one thread two frames deep.
fn small_record() -> TaskRecord {
    let frame = |f: u32| Frame {
        func_index: f,
        code_offset: 40 + f,
        locals: vec![Value::I32(7), Value::I64(1 << 40), Value::F64(0)],
        operands: vec![Value::I32(3), Value::FuncRef(Some(1))],
    };
    TaskRecord {
        meta: TaskMeta {
            task_id: 7,
            name: "counter".into(),
            args: vec!["counter".into(), "--start".into(), "5".into()],
            cwd: "/data".into(),
            module: ModuleRef::External {
                path: "/bin/counter.wasm".into(),
                sha256: Digest::of(b"module"),
            },
            id_view: vec![],
        },
        instance: Default::default(),
        threads: vec![ThreadContext {
            thread_id: 1,
            exec: ExecState {
                frames: vec![frame(0), frame(3)],
                globals: vec![Value::I32(65536)],
                suspension: Suspension::Ready,
                fuel_left: 100,
            },
            syscall: SyscallState::None,
            active_sync_call: None,
            kernel_build_hash: Digest::of(b"kernel"),
        }],
        areas: vec![],
        phones: vec![PhoneSlot::Free],
        calls: vec![],
        coop_blobs: vec![],
        file_backups: vec![],
    }
}

/// The encoding of a small real task record, cut after its `areas`, so
/// that a hostile phone table can follow.
fn record_with_phones(free_slots: u64) -> Vec<u8> {
    let mut rec = small_record();
    rec.phones.clear();
    rec.calls.clear();
    rec.coop_blobs.clear();
    rec.file_backups.clear();
    let full = postcard::to_allocvec(&rec).unwrap();
    // The last four fields are now empty vectors: four zero bytes.
    assert_eq!(&full[full.len() - 4..], &[0, 0, 0, 0]);
    let mut out = full[..full.len() - 4].to_vec();
    varint(free_slots, &mut out);
    out.extend(std::iter::repeat_n(0u8, free_slots as usize)); // PhoneSlot::Free
    out.extend_from_slice(&[0, 0, 0]);
    out
}

#[test]
fn a_free_phone_slot_costs_a_byte_of_input_and_is_charged_its_memory() {
    let body = record_with_phones(1000);
    let rec: TaskRecord = decode_record(&body).unwrap();
    assert_eq!(rec.phones.len(), 1000);
    let cost = decode_cost::<TaskRecord>(&body).unwrap();
    let slot = std::mem::size_of::<PhoneSlot>() as u64;
    assert!(slot >= 24, "{slot}");
    assert!(cost >= 1000 * slot, "{cost}");
}

#[test]
fn a_record_of_free_phone_slots_is_refused_within_its_budget() {
    // 8 MiB of free slots would decode into 8 Mi * size_of::<PhoneSlot>()
    // bytes (well over 16 per byte): refused.
    let body = record_with_phones(8 << 20);
    let err = decode_record::<TaskRecord>(&body).unwrap_err();
    assert!(
        matches!(err, ObjectError::DecodeBudget { budget, .. }
            if budget == decode_budget(body.len() as u64)),
        "{err}"
    );
    assert!(decode_budget(body.len() as u64) <= 16 * body.len() as u64 + (1 << 20));
}

#[test]
fn the_largest_hostile_record_is_capped_absolutely() {
    // A 64 MiB record of empty argument strings: 24 bytes of memory per
    // byte of input, 1.5 GiB unbounded. Refused; the budget never exceeds
    // 256 MiB.
    let mut rec = small_record();
    rec.meta.args.clear();
    let mut body = postcard::to_allocvec(&rec.meta.task_id).unwrap();
    varint(rec.meta.name.len() as u64, &mut body);
    body.extend_from_slice(rec.meta.name.as_bytes());
    let n = 64u64 << 20;
    varint(n, &mut body);
    body.extend(std::iter::repeat_n(0u8, n as usize));
    let err = decode_record::<TaskRecord>(&body).unwrap_err();
    assert!(
        matches!(err, ObjectError::DecodeBudget { budget, .. } if budget == MAX_DECODE_BUDGET),
        "{err}"
    );
}

#[test]
fn a_count_past_the_input_is_refused_before_allocation() {
    let mut body = record_with_phones(0);
    // Replace the phone count (0, followed by three empty vectors) with a
    // count far past the bytes that follow.
    body.truncate(body.len() - 4);
    varint(1 << 40, &mut body);
    body.extend_from_slice(&[0, 0, 0, 0]);
    let err = decode_record::<TaskRecord>(&body).unwrap_err();
    assert!(matches!(err, ObjectError::CountPastInput), "{err}");
}

#[test]
fn real_records_stay_far_below_their_budget() {
    let rec = small_record();
    let body = postcard::to_allocvec(&rec).unwrap();
    let cost = decode_cost::<TaskRecord>(&body).unwrap();
    assert!(cost <= 16 * body.len() as u64, "{cost} for {}", body.len());
    assert_eq!(decode_record::<TaskRecord>(&body).unwrap(), rec);
}

#[test]
fn a_kernel_state_of_one_byte_answers_is_refused_by_its_budget() {
    // task_id 7, counters 1 1 1, no phones, then n `CallDetail::Answer`
    // (one byte each, over a hundred bytes each once decoded).
    let n: u64 = 1 << 20;
    let mut content = vec![7, 1, 1, 1, 0];
    varint(n, &mut content);
    content.extend(std::iter::repeat_n(1u8, n as usize));
    content.extend([0, 0]); // no notifications, no threads
    assert!(std::mem::size_of::<CallDetail>() as u64 > 16);
    let e = decode_record::<KernelTaskState>(&content).unwrap_err();
    assert!(matches!(e, ObjectError::DecodeBudget { .. }), "{e}");
    // A real one stays well within.
    let real = postcard::to_allocvec(&snapfmt::sample::sample_kernel_state()).unwrap();
    let cost = decode_cost::<KernelTaskState>(&real).unwrap();
    assert!(cost <= decode_budget(real.len() as u64), "{cost}");
    assert!(decode_record::<KernelTaskState>(&real).is_ok());
}
