//! Method numbers the kernel interprets (the HelenOS IPC vocabulary).
//!
//! Only the first word of a call (the method) is interpreted, and only for
//! the methods below; methods from [`FIRST_USER_METHOD`] on are the
//! protocol's business.

/// Sent by the kernel on behalf of a phone's owner when it hangs up (or
/// dies): the receiver learns that connection `conn` is closed. Its answer
/// is discarded.
pub const IPC_M_PHONE_HUNGUP: u64 = 1;
/// ARG1 = a phone of the sender; the receiver gets a copy of that phone
/// (its new phone id in ARG5 of the delivered call). An error answer
/// closes the copy again.
pub const IPC_M_CONNECTION_CLONE: u64 = 2;
/// The sender offers a callback connection to itself: the receiver gets a
/// new phone to the sender's answerbox (its id in ARG5 of the delivered
/// call). An error answer closes it again.
pub const IPC_M_CONNECT_TO_ME: u64 = 3;
/// The sender asks for a new phone to whoever finally answers (the call is
/// usually forwarded by the naming service). The slot is reserved at send
/// time and its id is in ARG5 of the answer; the receiver sees the new
/// connection's receiver-side id in ARG5 of the delivered call. The phone
/// becomes connected when answered with `EOK` and is freed otherwise.
pub const IPC_M_CONNECT_ME_TO: u64 = 4;
/// The sender offers its area at ARG1 (ARG2 = its size, ARG3 = the flags
/// it grants, ARG4 free for the protocol). The receiver accepts by
/// answering `EOK` with ARG1 = the base where it maps the area; from then
/// on both see the same pages (`ipc::share`).
pub const IPC_M_SHARE_OUT: u64 = 5;
/// The sender asks for an area of ARG2 bytes to be mapped at its ARG1 with
/// flags ARG3 (ARG4 free for the protocol). The receiver supplies one by
/// answering `EOK` with ARG1 = the base of its area of that size; the
/// answer's ARG1 becomes the caller's base (`ipc::share`).
pub const IPC_M_SHARE_IN: u64 = 6;
/// ARG1 = source address, ARG2 = length in the sender; the bytes are copied
/// into a kernel buffer at send time and into the receiver's memory when
/// it answers `EOK` with ARG1 = destination, ARG2 = room.
pub const IPC_M_DATA_WRITE: u64 = 7;
/// ARG1 = destination address, ARG2 = room in the sender; when the receiver
/// answers `EOK` with ARG1 = source, ARG2 = length, the bytes are copied
/// into the sender's memory before the answer is queued.
pub const IPC_M_DATA_READ: u64 = 8;
/// First method number free for protocols.
pub const FIRST_USER_METHOD: u64 = 1024;

/// ARG index (0-based into the five arguments) of the phone id the kernel
/// fills in for connection methods.
pub const ARG5: usize = 4;
