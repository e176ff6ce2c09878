//! Inter-process communication: phones, answerboxes and calls (thesis 3.4,
//! 5.4.6 to 5.4.8).
//!
//! A task sends a call through one of its phones into the callee's
//! answerbox (`calls`); the callee fetches it (`dispatched`), then answers
//! it (the answer goes to the original caller's `answers`, or straight to
//! the thread waiting in a synchronous call) or forwards it to another
//! answerbox (the answer still goes to the original caller). Every call a
//! task sends stays on its `out_calls` list until answered. Every call is
//! answered exactly once, also when a party dies ([`audit`] checks it).
//!
//! - [`call`], [`phone`], [`answerbox`]: the objects;
//! - [`send`]: sending, fetching, answering and forwarding;
//! - [`hangup`]: hanging up, notifications, kernel-made connections and the
//!   end of a task;
//! - [`share`]: share-in and share-out of areas, and the sharing query;
//! - [`errno`], [`method`]: the numbers tasks see.

pub mod answerbox;
pub mod audit;
pub mod call;
pub mod errno;
pub mod hangup;
pub mod method;
pub mod phone;
pub mod send;
pub mod share;

pub use answerbox::Answerbox;
pub use call::{
    Answer, Call, CallBuffer, CallId, CallKey, ConnId, ConnectInfo, EVENT_ANSWER, EVENT_BYTES,
    EVENT_CALL, EVENT_NOTIFICATION, Event, Notification, PhoneId, RxCallId, SyncWaiter,
};
pub use errno::{EOK, Errno};
pub use phone::{MAX_PHONES, Phone, PhoneTable};
pub use share::{AreaMapping, AreaSharing};
