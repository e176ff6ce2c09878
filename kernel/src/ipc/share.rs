//! Share-in and share-out of areas (thesis 3.3 and 3.4), and the query that
//! tells a checkpoint who shares what.
//!
//! - IPC_M_SHARE_OUT: the sender offers its area at ARG1 (ARG2 = size,
//!   ARG3 = granted flags). The receiver answers `EOK` with ARG1 = the base
//!   where it maps it.
//! - IPC_M_SHARE_IN: the sender asks for ARG2 bytes at its ARG1 with flags
//!   ARG3. The receiver answers `EOK` with ARG1 = the base of its area of
//!   that size; the answer's ARG1 becomes the caller's base.
//!
//! Both are checked when sent (the offered area exists with that size and
//! grants no more than its own flags, and is not a guest's primary area,
//! which is never shared; the requested range is free) and
//! carried out when answered. A share-out offer is bound to the area it
//! was checked against, not to its base: destroying that area revokes the
//! offer ([`Kernel::revoke_share_offers`], from `as_area_destroy`), so an
//! area created later at the same base is never shared by it. When
//! answered, the offer is carried out: the supplying side's area becomes a shared
//! backing in place (its pages move, nothing is copied) and the other side
//! maps that backing, so both see the same pages and futexes on them meet
//! (they are keyed by backing page; threads already asleep on a word of an
//! area that becomes shared are moved to its new key). Whole areas are
//! shared.
//!
//! Answering with `EOK` can fail in two ways:
//! - on the answerer's side (its base is unaligned or taken, it has no area
//!   there, or that area does not fit the request): the answer is refused
//!   with that error and the call *stays dispatched*, to be answered again;
//! - on the caller's side (the caller died, its offered area is gone, even
//!   if replaced by another at the same base, its requested range was taken
//!   meanwhile): the call is answered with that
//!   error, and the answerer's `ipc_answer` returns `EHANGUP` (caller gone)
//!   or `EREFUSED` (anything else). Nothing is mapped.
//!
//! The sharing relation is not stored twice: [`Kernel::task_areas`] and
//! [`Kernel::backing_mappings`] read it from the memories themselves (each
//! area names its backing), so it cannot drift from what tasks really map.

use serde::{Deserialize, Serialize};

use super::call::Call;
use super::errno::Errno;
use super::method::{IPC_M_SHARE_IN, IPC_M_SHARE_OUT};
use crate::kernel::{Kernel, KernelError};
use crate::mm::{AreaFlags, BackingId};
use crate::syscall::WaitReason;
use crate::task::memory::AreaInfo;
use crate::task::{TaskId, ThreadState};

/// One mapping of a shared backing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaMapping {
    pub task: TaskId,
    pub base: u64,
    pub flags: AreaFlags,
}

/// An area of a task with the other mappings of its backing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaSharing {
    pub area: AreaInfo,
    /// Every other mapping of the same backing (other tasks, or other
    /// bases of this task), by task id then base; empty for private areas.
    pub others: Vec<AreaMapping>,
}

/// Result of carrying out a share on an `EOK` answer: `Err` on the
/// answerer's side (the call stays dispatched), `Ok(Err)` on the caller's
/// side (the call is answered with that error).
pub(crate) type ShareResult = Result<Result<(), Errno>, Errno>;

fn flags_arg(v: u64) -> Result<AreaFlags, Errno> {
    u32::try_from(v)
        .ok()
        .and_then(AreaFlags::from_bits)
        .ok_or(Errno::Invalid)
}

/// Whether `m` names a method of this module.
pub(crate) fn is_share(m: u64) -> bool {
    m == IPC_M_SHARE_OUT || m == IPC_M_SHARE_IN
}

impl Kernel {
    /// The area of `task` starting at `base`.
    fn area_at(&self, task: TaskId, base: u64) -> Option<AreaInfo> {
        let t = self.tasks.get(&task)?;
        t.memory.areas().into_iter().find(|a| a.base == base)
    }

    /// Send-time check of IPC_M_SHARE_OUT: the area at ARG1 exists, has
    /// ARG2 bytes and has every flag of ARG3.
    pub(crate) fn check_share_out(&self, caller: TaskId, args: &[u64; 5]) -> Result<(), Errno> {
        let flags = flags_arg(args[2])?;
        let area = self.area_at(caller, args[0]).ok_or(Errno::NoEntry)?;
        if area.primary {
            return Err(Errno::NotSupported);
        }
        if area.size != args[1] || !area.flags.contains(flags) {
            return Err(Errno::Invalid);
        }
        Ok(())
    }

    /// Send-time check of IPC_M_SHARE_IN: valid flags and ARG2 bytes free
    /// at ARG1 of the caller.
    pub(crate) fn check_share_in(&self, caller: TaskId, args: &[u64; 5]) -> Result<(), Errno> {
        flags_arg(args[2])?;
        let t = self.tasks.get(&caller).ok_or(Errno::NoEntry)?;
        t.memory
            .check_new_area(args[0], args[1])
            .map_err(|e| e.errno())
    }

    /// Carries out the share of an `EOK` answer of `task` to `call` with
    /// answer arguments `args` (ARG1 may be rewritten).
    pub(crate) fn share_on_answer(
        &mut self,
        task: TaskId,
        call: &Call,
        args: &mut [u64; 5],
    ) -> ShareResult {
        let (base, size) = (call.args[0], call.args[1]);
        let flags = flags_arg(call.args[2]).map_err(|_| Errno::Invalid)?;
        let caller_alive = !call.discard_answer && self.tasks.contains_key(&call.caller);
        // (supplier, its base, mapper, its base)
        let (supplier, src, mapper, dst) = if call.method == IPC_M_SHARE_OUT {
            let dst = args[0];
            let t = self.tasks.get(&task).ok_or(Errno::NoEntry)?;
            t.memory.check_new_area(dst, size).map_err(|e| e.errno())?;
            if !caller_alive {
                return Ok(Err(Errno::Hangup));
            }
            if call.offer_revoked {
                return Ok(Err(Errno::NoEntry));
            }
            match self.area_at(call.caller, base) {
                Some(a) if a.size == size && a.flags.contains(flags) => {}
                Some(_) => return Ok(Err(Errno::Invalid)),
                None => return Ok(Err(Errno::NoEntry)),
            }
            (call.caller, base, task, dst)
        } else {
            let src = args[0];
            let a = self.area_at(task, src).ok_or(Errno::NoEntry)?;
            if a.primary {
                return Err(Errno::NotSupported);
            }
            if a.size != size || !a.flags.contains(flags) {
                return Err(Errno::Invalid);
            }
            if !caller_alive {
                return Ok(Err(Errno::Hangup));
            }
            let ct = self.tasks.get(&call.caller).ok_or(Errno::NoEntry)?;
            if let Err(e) = ct.memory.check_new_area(base, size) {
                return Ok(Err(e.errno()));
            }
            args[0] = base;
            (task, src, call.caller, base)
        };
        let id = self.new_shared_backing_id();
        let s = self.tasks.get_mut(&supplier).ok_or(Errno::NoEntry)?;
        let (backing, _) = s.memory.share_area(src, id).map_err(|e| e.errno())?;
        if backing.id() == id {
            self.rekey_futex_sleepers(supplier, src, size);
        }
        let m = self.tasks.get_mut(&mapper).ok_or(Errno::NoEntry)?;
        m.memory
            .map_shared(dst, &backing, flags)
            .map_err(|e| e.errno())?;
        Ok(Ok(()))
    }

    /// `task` destroyed its area at `base`: its unanswered offers of that
    /// area (IPC_M_SHARE_OUT calls with ARG1 = `base`, forwarded ones
    /// included) are revoked, so that answering one never shares an area
    /// created at that base afterwards. The calls stay where they are and
    /// are answered as usual; an `EOK` answer gives the caller `ENOENT`.
    pub(crate) fn revoke_share_offers(&mut self, task: TaskId, base: u64) {
        let Some(t) = self.tasks.get(&task) else {
            return;
        };
        for key in t.out_calls.values() {
            if let Some(c) = self.calls.get_mut(key)
                && c.method == IPC_M_SHARE_OUT
                && c.args[0] == base
            {
                c.offer_revoked = true;
            }
        }
    }

    /// After `task`'s private area at `[base, base + size)` became shared
    /// in place, its futex words have new keys (backing pages): threads of
    /// `task` asleep on them move to the new queues, in their order, so no
    /// wakeup through any mapping is missed.
    fn rekey_futex_sleepers(&mut self, task: TaskId, base: u64, size: u64) {
        let Some(t) = self.tasks.get(&task) else {
            return;
        };
        let mut moves = Vec::new();
        let mut old_keys = std::collections::BTreeSet::new();
        for th in &t.threads {
            let Some(thread) = self.threads.get(th) else {
                continue;
            };
            let (ThreadState::Blocked(WaitReason::Futex(old)), Some(p)) =
                (&thread.state, &thread.sys.in_progress)
            else {
                continue;
            };
            let Some(&addr) = p.args.first() else {
                continue;
            };
            if addr >= base
                && addr - base < size
                && let Ok(new) = t.memory.futex_key(addr)
                && new != *old
            {
                moves.push((*th, *old, new));
                old_keys.insert(*old);
            }
        }
        for old in old_keys {
            for (seq, th) in self.futexes.sleepers(old) {
                let Some(&(_, _, new)) = moves.iter().find(|m| m.0 == th) else {
                    continue;
                };
                self.futexes.remove(old, seq, th);
                self.futexes.enqueue(new, seq, th);
                if let Some(x) = self.threads.get_mut(&th) {
                    x.state = ThreadState::Blocked(WaitReason::Futex(new));
                }
            }
        }
    }

    /// Maps into `task` at `base`, with `flags`, the shared backing that
    /// `from` maps at `from_base`: how a restore re-shares an area that
    /// [`Kernel::task_areas`] recorded with a task that lived on (a
    /// cooperative service). A private area of `from` becomes shared in
    /// place. The flags may not exceed those of `from`'s area.
    pub fn reshare_area(
        &mut self,
        task: TaskId,
        base: u64,
        flags: AreaFlags,
        from: TaskId,
        from_base: u64,
    ) -> Result<BackingId, Errno> {
        let src = self.area_at(from, from_base).ok_or(Errno::NoEntry)?;
        if src.primary {
            return Err(Errno::NotSupported);
        }
        if !src.flags.contains(flags) {
            return Err(Errno::Invalid);
        }
        let t = self.tasks.get(&task).ok_or(Errno::NoEntry)?;
        t.memory
            .check_new_area(base, src.size)
            .map_err(|e| e.errno())?;
        let id = self.new_shared_backing_id();
        let f = self.tasks.get_mut(&from).ok_or(Errno::NoEntry)?;
        let (backing, _) = f.memory.share_area(from_base, id).map_err(|e| e.errno())?;
        if backing.id() == id {
            self.rekey_futex_sleepers(from, from_base, src.size);
        }
        let t = self.tasks.get_mut(&task).ok_or(Errno::NoEntry)?;
        t.memory
            .map_shared(base, &backing, flags)
            .map_err(|e| e.errno())?;
        Ok(backing.id())
    }

    /// Every area of `task` with the other mappings of its backing: what a
    /// checkpoint records about sharing.
    pub fn task_areas(&self, task: TaskId) -> Result<Vec<AreaSharing>, KernelError> {
        let t = self.tasks.get(&task).ok_or(KernelError::NoTask(task))?;
        Ok(t.memory
            .areas()
            .into_iter()
            .map(|area| {
                let others = match area.backing {
                    None => Vec::new(),
                    Some(b) => self
                        .backing_mappings(b)
                        .into_iter()
                        .filter(|m| !(m.task == task && m.base == area.base))
                        .collect(),
                };
                AreaSharing { area, others }
            })
            .collect())
    }

    /// Every mapping of the shared backing `backing`, by task id then base.
    pub fn backing_mappings(&self, backing: BackingId) -> Vec<AreaMapping> {
        let mut out = Vec::new();
        for (id, t) in &self.tasks {
            for a in t.memory.areas() {
                if a.backing == Some(backing) {
                    out.push(AreaMapping {
                        task: *id,
                        base: a.base,
                        flags: a.flags,
                    });
                }
            }
        }
        out
    }
}
