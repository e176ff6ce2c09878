//! The naming service (thesis 3.4.3, 4.4.6): who provides which service,
//! and connections to them.
//!
//! Every task the system starts has phone 0 connected to the naming
//! service. A service registers by sending `IPC_M_CONNECT_TO_ME` to it
//! with ARG1 = its *service number*: the naming service gets a phone to the
//! service's answerbox. A client asks for a connection by sending
//! `IPC_M_CONNECT_ME_TO` with ARG1 = the number; the naming service
//! forwards the call unchanged to the service, whose answer gives the
//! client its new phone (`kernel/ABI.md`, "System services"). A request
//! for a service that has not registered yet waits until it does (a
//! service started after its clients is found).
//!
//! Service numbers are what guests name; *persistent service ids* are what
//! images name ([`TaskPolicy::Cooperative`]'s `service_id`: the same after
//! a reboot or on another machine, never a task id). Only a cooperative
//! task may register, under the number its persistent id has in
//! [`WELL_KNOWN`], or under a number from [`FIRST_USER_SERVICE`] on for
//! services outside that table. One number has one provider: a second
//! registration while the first provider lives is refused (`EREFUSED`;
//! the duplicate server issue of thesis 4.5 is the checkpointer's to
//! resolve, by killing or replacing). A provider that has ended is
//! replaced by the next registration.
//!
//! *The time area* (thesis 4.4.9, "Time variables"): the naming service
//! holds one read-only page, [`TIME_AREA_SIZE`] bytes at
//! [`TIME_AREA_BASE`] of its memory, whose first word (u64, little
//! endian) is the kernel's clock in nanoseconds as of the naming
//! service's last step; while any task maps it, the naming service steps
//! at least every [`TIME_TICK_NS`]. A task maps it with
//! `IPC_M_SHARE_IN` on its phone to the naming service (ARG1 where,
//! ARG2 = [`TIME_AREA_SIZE`], ARG3 = 1, read only). The area is shared
//! with a cooperative service, so a checkpoint set never grows through it
//! (only the naming service's connection is in the set's links, thesis
//! 4.4.9), and a restore reshares the running naming service's area with
//! the restored task instead of copying the image's page: the task reads
//! the clock of the system it runs in.
//!
//! The naming service is itself cooperative (persistent id
//! [`NS_SERVICE_ID`]), so a restored task's phone 0 reconnects to the
//! naming service of the system it is restored into; it keeps no state per
//! connection ([`NsConn`]), so it cooperates at once.

use std::collections::BTreeMap;
use std::task::Poll;

use spartan_kernel::ipc::method::{
    IPC_M_CONNECT_ME_TO, IPC_M_CONNECT_TO_ME, IPC_M_PHONE_HUNGUP, IPC_M_SHARE_IN,
};
use spartan_kernel::ipc::{EOK, Errno, Event, PhoneId, RxCallId};
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::syscall::{FOREVER, Sysno};
use spartan_kernel::task::native::{NativeError, NativeTask};
use spartan_kernel::task::{TaskId, TaskPolicy, ThreadId};

use crate::coop::{ConnState, Coop};

/// Persistent service id of the naming service.
pub const NS_SERVICE_ID: &str = "spartan.ns";

/// Service numbers of the system's services and their persistent ids.
pub const WELL_KNOWN: &[(u64, &str)] = &[
    (1, "spartan.vfs"),
    (2, "spartan.console"),
    (3, "spartan.loader"),
    (4, "spartan.checkpointer"),
];

/// Where the time area lies in the naming service's memory.
pub const TIME_AREA_BASE: u64 = 0x4000_0000;
/// Size of the time area.
pub const TIME_AREA_SIZE: u64 = 4096;
/// Longest time between two updates of the time area while it is mapped
/// (ns).
pub const TIME_TICK_NS: u64 = 1_000_000;

/// First number free for services outside [`WELL_KNOWN`].
pub const FIRST_USER_SERVICE: u64 = 1024;

/// Events the naming service handles in one step at most (then it lets
/// others run; the scheduler steps it again while it is runnable).
const EVENTS_PER_STEP: usize = 64;

/// One registered provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The provider's persistent service id.
    pub service_id: String,
    /// The provider (kernel id).
    pub task: TaskId,
    /// The naming service's phone to it.
    pub phone: PhoneId,
}

/// What the naming service keeps per client connection: nothing. A
/// connection request waiting for its service is a blocking call that has
/// changed nothing, so every connection is always checkpointable (the
/// request is sent again after a restore).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsConn;

impl ConnState for NsConn {
    const VERSION: u32 = 1;
    fn checkpointable(&self) -> bool {
        true
    }
    fn export(&self) -> Vec<u8> {
        Vec::new()
    }
    fn import(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match (version, bytes) {
            (1, []) => Ok(NsConn),
            (1, _) => Err(format!(
                "{} bytes of state, the naming service keeps none",
                bytes.len()
            )),
            _ => Err(format!("version {version}, the naming service reads 1")),
        }
    }
    fn unaccepted() -> Option<Self> {
        Some(NsConn)
    }
}

/// The naming service, a native program.
pub struct NamingService {
    me: NativeTask,
    coop: Coop<NsConn>,
    registered: BTreeMap<u64, Registration>,
    /// Connection requests for numbers nobody provides yet, oldest first.
    waiting: BTreeMap<u64, Vec<RxCallId>>,
    /// Whether the time area exists (it is created at the start).
    time_area: bool,
    /// Whether a task may have the time area mapped (then the naming
    /// service wakes every [`TIME_TICK_NS`] to update it).
    time_mapped: bool,
    /// The timeout of the wait the naming service is blocked in.
    waiting_with: Option<u64>,
}

/// Why a registration was refused.
fn refusal(
    k: &Kernel,
    number: u64,
    provider: TaskId,
    taken: Option<&Registration>,
) -> Option<Errno> {
    let service_id = match k.task(provider).map(|t| &t.policy) {
        Some(TaskPolicy::Cooperative { service_id }) => service_id,
        _ => return Some(Errno::Refused),
    };
    let allowed = match WELL_KNOWN.iter().find(|(n, _)| *n == number) {
        Some((_, id)) => id == service_id,
        None => number >= FIRST_USER_SERVICE,
    };
    if !allowed {
        return Some(Errno::Refused);
    }
    match taken {
        Some(r) if k.task(r.task).is_some() => Some(Errno::Refused),
        _ => None,
    }
}

impl NamingService {
    /// Starts the naming service: a new cooperative native task.
    pub fn spawn(k: &mut Kernel) -> NamingService {
        let me = k.spawn_native(
            "ns",
            TaskPolicy::Cooperative {
                service_id: NS_SERVICE_ID.into(),
            },
        );
        // The time area: read and write for the naming service, shared
        // read only.
        let time_area = matches!(
            me.syscall(k, Sysno::AsAreaCreate, &[TIME_AREA_BASE, TIME_AREA_SIZE, 3]),
            Ok(spartan_kernel::syscall::SyscallReturn::Done(0))
        );
        let ns = NamingService {
            me,
            coop: Coop::default(),
            registered: BTreeMap::new(),
            waiting: BTreeMap::new(),
            time_area,
            time_mapped: false,
            waiting_with: None,
        };
        ns.update_time(k);
        ns
    }

    /// Writes the clock into the time area.
    fn update_time(&self, k: &mut Kernel) {
        if self.time_area {
            let now = k.now();
            let _ = self.me.mem_write(k, TIME_AREA_BASE, &now.to_le_bytes());
        }
    }

    /// Whether any other task maps the time area.
    fn time_area_mapped(&self, k: &Kernel) -> bool {
        k.task_areas(self.me.id()).is_ok_and(|areas| {
            areas
                .iter()
                .any(|a| a.area.base == TIME_AREA_BASE && !a.others.is_empty())
        })
    }

    /// The naming service's task.
    pub fn task(&self) -> TaskId {
        self.me.id()
    }

    /// Who provides service `number`, if anyone registered it.
    pub fn provider(&self, number: u64) -> Option<&Registration> {
        self.registered.get(&number)
    }

    /// Connects a new phone of `task` to the naming service (what the
    /// system does for every task it starts: phone 0 when it is the
    /// task's first).
    pub fn connect(&self, k: &mut Kernel, task: TaskId) -> Result<PhoneId, NativeError> {
        Ok(k.connect_phone(task, self.me.id())?)
    }

    fn handle(&mut self, k: &mut Kernel, ev: Event) -> Result<(), NativeError> {
        let Event::Call {
            rx_id,
            sender,
            method,
            args,
            ..
        } = ev
        else {
            // Answers and notifications: the naming service sends no calls.
            return Ok(());
        };
        let number = args[0];
        match method {
            IPC_M_CONNECT_TO_ME => {
                let provider = k.task_meant_by(self.me.id(), sender.0);
                if let Some(e) = refusal(k, number, provider, self.registered.get(&number)) {
                    return self.me.answer(k, rx_id, e.retval(), [0; 5]);
                }
                let Ok(slot) = u32::try_from(args[4]) else {
                    return self.me.answer(k, rx_id, Errno::Invalid.retval(), [0; 5]);
                };
                let service_id = match &k.task(provider).map(|t| t.policy.clone()) {
                    Some(TaskPolicy::Cooperative { service_id }) => service_id.clone(),
                    _ => unreachable!("refusal() checked the policy"),
                };
                // Answer first: an error answer would close the new phone.
                self.me.answer(k, rx_id, EOK, [0; 5])?;
                if let Some(old) = self.registered.insert(
                    number,
                    Registration {
                        service_id,
                        task: provider,
                        phone: PhoneId(slot),
                    },
                ) {
                    // The old provider has ended: its phone is slammed.
                    let _ = self.me.hangup(k, old.phone);
                }
                for call in self.waiting.remove(&number).unwrap_or_default() {
                    self.route(k, call, number)?;
                }
                Ok(())
            }
            IPC_M_CONNECT_ME_TO => {
                let known =
                    WELL_KNOWN.iter().any(|(n, _)| *n == number) || number >= FIRST_USER_SERVICE;
                if !known {
                    return self.me.answer(k, rx_id, Errno::NoEntry.retval(), [0; 5]);
                }
                if self.registered.contains_key(&number) {
                    self.route(k, rx_id, number)
                } else {
                    self.waiting.entry(number).or_default().push(rx_id);
                    Ok(())
                }
            }
            IPC_M_SHARE_IN => {
                // The time area, read only, and nothing else.
                if !self.time_area || args[1] != TIME_AREA_SIZE || args[2] != 1 {
                    return self.me.answer(k, rx_id, Errno::Invalid.retval(), [0; 5]);
                }
                self.update_time(k);
                self.time_mapped = true;
                self.me.answer(k, rx_id, EOK, [TIME_AREA_BASE, 0, 0, 0, 0])
            }
            // A client that hung up its phone to us: nothing to clean up
            // (connection requests are answered or forwarded at once, or
            // wait for their service, which answers them).
            IPC_M_PHONE_HUNGUP => Ok(()),
            _ => self
                .me
                .answer(k, rx_id, Errno::NotSupported.retval(), [0; 5]),
        }
    }

    /// Forwards a connection request to the provider of `number`; if the
    /// provider has ended, the registration goes and the request waits for
    /// the next provider.
    fn route(&mut self, k: &mut Kernel, call: RxCallId, number: u64) -> Result<(), NativeError> {
        let Some(r) = self.registered.get(&number) else {
            self.waiting.entry(number).or_default().push(call);
            return Ok(());
        };
        let phone = r.phone;
        match self.me.forward(k, call, phone, 0, 0, 0, true) {
            Ok(()) => Ok(()),
            // The kernel answered the request with the error (a slammed
            // phone: the provider ended).
            Err(NativeError::Errno(Errno::Hangup)) => {
                self.registered.remove(&number);
                let _ = self.me.hangup(k, phone);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl NativeProgram for NamingService {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        self.update_time(k);
        // A restored task maps the area without asking (the checkpointer's
        // restore of its connection to us wakes us).
        self.time_mapped = self.time_mapped || self.time_area_mapped(k);
        for _ in 0..EVENTS_PER_STEP {
            let timeout = if self.time_mapped {
                TIME_TICK_NS
            } else {
                FOREVER
            };
            // A blocked wait is reissued with its own timeout (the kernel
            // refuses another).
            let timeout = *self.waiting_with.get_or_insert(timeout);
            let w = self.me.wait(k, timeout);
            if !matches!(w, Ok(Poll::Pending)) {
                self.waiting_with = None;
            }
            match w {
                Ok(Poll::Pending) => return Step::Continue,
                Err(NativeError::Errno(Errno::Timeout)) => {
                    // A tick: the time is updated above; stop ticking
                    // once nobody maps the area.
                    self.time_mapped = self.time_area_mapped(k);
                    return Step::Continue;
                }
                Ok(Poll::Ready(ev)) => {
                    let mut next = self.coop.on_event(k, &self.me, ev);
                    while let Ok(Some(ev)) = next {
                        if let Err(e) = self.handle(k, ev) {
                            let _ = self.me.log(k, &format!("ns: {e}"));
                        }
                        next = Ok(self.coop.released());
                    }
                    if let Err(e) = next {
                        let _ = self.me.log(k, &format!("ns: {e}"));
                    }
                }
                // Our own task ended (killed): nothing more to serve.
                Err(_) if k.task(self.me.id()).is_none() => return Step::Done,
                Err(e) => {
                    let _ = self.me.log(k, &format!("ns: wait: {e}"));
                    return Step::Continue;
                }
            }
        }
        Step::Continue
    }
}
