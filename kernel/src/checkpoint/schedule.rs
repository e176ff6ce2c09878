//! The set's place in its kernel's schedule (format 1.3): the round-robin
//! position, the order in which the set's threads went to sleep, and the
//! thread id counter the set's new threads are shown ids from. A task's
//! own state cannot say these: they are about the set among the kernel's
//! threads. They are entries of the manifest's `options.extra`
//! (`snapfmt/FORMAT.md` section 4, "Kernel entries"), in decimal:
//!
//! - `kernel.sched.cursor`: the thread the round robin continues after
//!   (absent: none);
//! - `kernel.wait_order`: the set's threads that were asleep, in the order
//!   they went to sleep, separated by single spaces (empty: none);
//! - `kernel.next_thread_id`: the id the set's next new thread is shown.
//!
//! Images before 1.3 have none of them: a restore then orders sleepers by
//! thread id, starts the round robin at the lowest thread and shows new
//! threads their real ids.

use std::collections::{BTreeMap, BTreeSet};

use crate::task::ThreadId;

/// Key of the round-robin position.
pub const CURSOR_KEY: &str = "kernel.sched.cursor";
/// Key of the sleepers' order.
pub const WAIT_ORDER_KEY: &str = "kernel.wait_order";
/// Key of the thread id counter.
pub const NEXT_THREAD_KEY: &str = "kernel.next_thread_id";

/// The set's place in the schedule of its kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetSchedule {
    /// The thread the round robin continues after (any thread of the
    /// kernel; a restore continues after the last thread of the set at or
    /// before it).
    pub cursor: Option<ThreadId>,
    /// The set's threads that were asleep, in the order they went to
    /// sleep (their order in every wait queue).
    pub wait_order: Vec<ThreadId>,
    /// The id the set's next new thread would have been shown.
    pub next_thread_id: u64,
}

impl SetSchedule {
    /// Writes the entries into `extra`.
    pub fn put(&self, extra: &mut BTreeMap<String, String>) {
        if let Some(c) = self.cursor {
            extra.insert(CURSOR_KEY.into(), c.0.to_string());
        }
        let order: Vec<String> = self.wait_order.iter().map(|t| t.0.to_string()).collect();
        extra.insert(WAIT_ORDER_KEY.into(), order.join(" "));
        extra.insert(NEXT_THREAD_KEY.into(), self.next_thread_id.to_string());
    }

    /// Reads the entries of `extra`: `Ok(None)` for an image without them
    /// (before 1.3), an error naming the entry for a malformed one.
    /// `threads` are the set's thread ids: the wait order may name only
    /// them, each once.
    pub fn from_extra(
        extra: &BTreeMap<String, String>,
        threads: &BTreeSet<ThreadId>,
    ) -> Result<Option<SetSchedule>, String> {
        let Some(next) = extra.get(NEXT_THREAD_KEY) else {
            return Ok(None);
        };
        let number = |key: &str, v: &str| {
            v.parse::<u64>()
                .ok()
                .filter(|_| !v.starts_with('+') && (v == "0" || !v.starts_with('0')))
                .ok_or_else(|| format!("options.extra {key:?}: {v:?} is not a decimal number"))
        };
        let next_thread_id = number(NEXT_THREAD_KEY, next)?;
        let cursor = extra
            .get(CURSOR_KEY)
            .map(|v| number(CURSOR_KEY, v).map(ThreadId))
            .transpose()?;
        let mut wait_order = Vec::new();
        let mut seen = BTreeSet::new();
        let order = extra.get(WAIT_ORDER_KEY).map_or("", String::as_str);
        for w in order.split(' ').filter(|w| !w.is_empty()) {
            let t = ThreadId(number(WAIT_ORDER_KEY, w)?);
            if !threads.contains(&t) {
                return Err(format!(
                    "options.extra {WAIT_ORDER_KEY:?}: thread {} is not a thread of the set",
                    t.0
                ));
            }
            if !seen.insert(t) {
                return Err(format!(
                    "options.extra {WAIT_ORDER_KEY:?}: thread {} is listed twice",
                    t.0
                ));
            }
            wait_order.push(t);
        }
        Ok(Some(SetSchedule {
            cursor,
            wait_order,
            next_thread_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_malformed() {
        let s = SetSchedule {
            cursor: Some(ThreadId(7)),
            wait_order: vec![ThreadId(3), ThreadId(1)],
            next_thread_id: 12,
        };
        let mut extra = BTreeMap::new();
        s.put(&mut extra);
        let threads: BTreeSet<ThreadId> = [1, 3, 5].into_iter().map(ThreadId).collect();
        assert_eq!(SetSchedule::from_extra(&extra, &threads), Ok(Some(s)));
        assert_eq!(
            SetSchedule::from_extra(&BTreeMap::new(), &threads),
            Ok(None)
        );
        for (key, bad) in [
            (WAIT_ORDER_KEY, "3 3"),
            (WAIT_ORDER_KEY, "4"),
            (WAIT_ORDER_KEY, "x"),
            (CURSOR_KEY, "-1"),
            (NEXT_THREAD_KEY, "012"),
        ] {
            let mut e = extra.clone();
            e.insert(key.into(), bad.into());
            let err = SetSchedule::from_extra(&e, &threads).unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
