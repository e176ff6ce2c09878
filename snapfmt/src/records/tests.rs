//! Property tests: every record type survives encoding and decoding
//! unchanged, both as a bare postcard body and as a whole object file.
//! Values are generated with `arbitrary` from proptest-chosen bytes.

use super::*;
use crate::exec::{ExecState, Frame, InstanceState, Suspension, Value};
use crate::header::ObjectKind;
use crate::object::{decode_record, encode_record, open_record};
use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

fn round_trip<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: for<'a> Arbitrary<'a> + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut u = Unstructured::new(bytes);
    let Ok(value) = T::arbitrary(&mut u) else {
        return Ok(());
    };
    let body = postcard::to_allocvec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = decode_record(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, &value);
    for compress in [None, Some(1)] {
        let file = encode_record(ObjectKind::Task, &value, compress)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (_, back): (_, T) =
            open_record(&file, ObjectKind::Task).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &value);
    }
    Ok(())
}

macro_rules! round_trips {
    ($($name:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            $(
                #[test]
                fn $name(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                    round_trip::<$ty>(&bytes)?;
                }
            )*
        }
    };
}

round_trips! {
    manifest: Manifest,
    checkpoint_options: CheckpointOptions,
    set_member: SetMember,
    parent_ref: ParentRef,
    chunk_entry: ChunkEntry,
    object_entry: ObjectEntry,
    task_record: TaskRecord,
    task_meta: TaskMeta,
    module_ref: ModuleRef,
    thread_context: ThreadContext,
    syscall_state: SyscallState,
    exec_state: ExecState,
    frame: Frame,
    suspension: Suspension,
    value: Value,
    instance_state: InstanceState,
    area_record: AreaRecord,
    page_map: PageMap,
    phone_slot: PhoneSlot,
    pending_call: PendingCall,
    coop_blob: CoopBlob,
    file_backup: FileBackup,
    peer: Peer,
    timestamp: Timestamp,
    kernel_task_state: KernelTaskState,
    id_counters: IdCounters,
    special_phone: SpecialPhone,
    call_detail: CallDetail,
    connect_detail: ConnectDetail,
    thread_detail: ThreadDetail,
}
