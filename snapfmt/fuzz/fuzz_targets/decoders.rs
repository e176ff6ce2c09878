//! Fuzzes every decoder on raw bytes: the header, and each object kind
//! through the full check -> unpack -> decode path, then the consistency
//! rules. The reader must return an error, never panic, loop or allocate
//! without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfmt::object::{open_bytes, open_record};
use snapfmt::{KernelTaskState, Manifest, ObjectHeader, ObjectKind, TaskRecord};

fuzz_target!(|data: &[u8]| {
    let _ = ObjectHeader::parse(data);
    if let Ok((_, m)) = open_record::<Manifest>(data, ObjectKind::Manifest) {
        let _ = postcard_round_trip(&m);
    }
    let _ = open_record::<TaskRecord>(data, ObjectKind::Task);
    let _ = open_record::<KernelTaskState>(data, ObjectKind::KernelState);
    for kind in [ObjectKind::Chunk, ObjectKind::Module, ObjectKind::FileBackup] {
        let _ = open_bytes(data, kind);
    }
    // Record bodies without a header (what a checksum-valid but hostile
    // file would carry).
    let _ = snapfmt::object::decode_record::<Manifest>(data);
    let _ = snapfmt::object::decode_record::<TaskRecord>(data);
    let _ = snapfmt::object::decode_record::<KernelTaskState>(data);
});

fn postcard_round_trip(m: &Manifest) -> Option<()> {
    let bytes = snapfmt::object::encode_record(ObjectKind::Manifest, m, None).ok()?;
    let (_, back) = open_record::<Manifest>(&bytes, ObjectKind::Manifest).ok()?;
    assert_eq!(&back, m);
    Some(())
}
