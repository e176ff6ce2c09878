//! Loading a known sequence of chunks ahead of their consumer.
//!
//! [`in_order`] loads on `threads` threads: the caller's own and
//! `threads - 1` workers. Workers claim the next chunk of the sequence as
//! soon as they are free (no lock-step batches: a slow chunk holds up only
//! itself); the consumer takes the results strictly in sequence order, and
//! when the one it needs is not ready it claims and loads the next
//! unclaimed chunk itself instead of sleeping, so `threads` threads are
//! busy on `threads` cores and none is only waiting. At most `2 * threads`
//! chunks are claimed but not yet taken, so memory stays bounded whatever
//! the sequence's length. When the consumer returns (done or failed), the
//! workers stop claiming and are joined before `in_order` returns.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

struct State<T> {
    /// Next position a worker may claim.
    claim: usize,
    /// Next position the consumer takes.
    taken: usize,
    ready: BTreeMap<usize, Result<T>>,
    stop: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    window: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> Result<MutexGuard<'_, State<T>>> {
        self.state
            .lock()
            .map_err(|_| Error::Usage("a prefetch lock was poisoned".into()))
    }
}

/// The consumer's side: the results in sequence order.
pub(crate) struct Next<'a, T> {
    ids: &'a [u32],
    pos: usize,
    source: Source<'a, T>,
}

enum Source<'a, T> {
    /// One thread: load on demand.
    Inline(&'a (dyn Fn(u32) -> Result<T> + Sync)),
    /// Workers, and the consumer helping them.
    Workers(&'a Shared<T>, &'a (dyn Fn(u32) -> Result<T> + Sync)),
}

impl<T> Next<'_, T> {
    /// The id of the next result [`take`](Self::take) returns.
    pub(crate) fn upcoming(&self) -> Option<u32> {
        self.ids.get(self.pos).copied()
    }

    /// The next result in sequence order (waits for it).
    pub(crate) fn take(&mut self) -> Result<T> {
        let Some(&id) = self.ids.get(self.pos) else {
            return Err(Error::Usage("prefetch sequence exhausted".into()));
        };
        let pos = self.pos;
        self.pos += 1;
        match &self.source {
            Source::Inline(load) => load(id),
            Source::Workers(shared, load) => {
                let mut st = shared.lock()?;
                loop {
                    if let Some(r) = st.ready.remove(&pos) {
                        st.taken = pos + 1;
                        shared.changed.notify_all();
                        return r;
                    }
                    if pos == st.claim || st.claim < (st.taken + shared.window).min(self.ids.len())
                    {
                        // Nothing to wait for, or work to do meanwhile:
                        // load the first unclaimed chunk on this thread.
                        let mine = st.claim;
                        st.claim += 1;
                        drop(st);
                        let r = load_caught(*load, self.ids[mine]);
                        if mine == pos {
                            st = shared.lock()?;
                            st.taken = pos + 1;
                            shared.changed.notify_all();
                            return r;
                        }
                        st = shared.lock()?;
                        st.ready.insert(mine, r);
                        continue;
                    }
                    st = shared
                        .changed
                        .wait(st)
                        .map_err(|_| Error::Usage("a prefetch lock was poisoned".into()))?;
                }
            }
        }
    }
}

/// Loads `ids` with `load` on `threads` threads ahead of `consume`, which
/// takes the results in order through [`Next`].
pub(crate) fn in_order<T: Send, R>(
    ids: &[u32],
    threads: usize,
    load: impl Fn(u32) -> Result<T> + Sync,
    consume: impl FnOnce(&mut Next<'_, T>) -> Result<R>,
) -> Result<R> {
    if threads <= 1 || ids.len() <= 1 {
        let mut next = Next {
            ids,
            pos: 0,
            source: Source::Inline(&load),
        };
        return consume(&mut next);
    }
    let shared = Shared {
        state: Mutex::new(State {
            claim: 0,
            taken: 0,
            ready: BTreeMap::new(),
            stop: false,
        }),
        changed: Condvar::new(),
        window: 2 * threads,
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(ids.len()) {
            s.spawn(|| worker(ids, &shared, &load));
        }
        let mut next = Next {
            ids,
            pos: 0,
            source: Source::Workers(&shared, &load),
        };
        let r = consume(&mut next);
        if let Ok(mut st) = shared.state.lock() {
            st.stop = true;
        }
        shared.changed.notify_all();
        r
    })
}

fn worker<T>(ids: &[u32], shared: &Shared<T>, load: &(impl Fn(u32) -> Result<T> + Sync)) {
    loop {
        let pos = {
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            loop {
                if st.stop || st.claim >= ids.len() {
                    return;
                }
                if st.claim < st.taken + shared.window {
                    break;
                }
                st = match shared.changed.wait(st) {
                    Ok(st) => st,
                    Err(_) => return,
                };
            }
            st.claim += 1;
            st.claim - 1
        };
        let r = load_caught(load, ids[pos]);
        let Ok(mut st) = shared.state.lock() else {
            return;
        };
        st.ready.insert(pos, r);
        shared.changed.notify_all();
    }
}

/// `load(id)`, with a panic turned into an error: a worker's panic would
/// leave the consumer waiting for its result forever, and the consumer's
/// would leave the workers waiting for window space while the scope joins
/// them.
fn load_caught<T>(load: &(impl Fn(u32) -> Result<T> + Sync + ?Sized), id: u32) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(id)))
        .unwrap_or_else(|_| Err(Error::Usage("a chunk loading thread panicked".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_errors_stop_the_workers() {
        let ids: Vec<u32> = (0..100).collect();
        for threads in [1, 2, 5] {
            let got = in_order(
                &ids,
                threads,
                |id| Ok(id * 2),
                |next| {
                    let mut v = Vec::new();
                    while next.upcoming().is_some() {
                        v.push(next.take()?);
                    }
                    Ok(v)
                },
            )
            .unwrap();
            assert_eq!(got, ids.iter().map(|i| i * 2).collect::<Vec<_>>());
            let r: Result<()> = in_order(
                &ids,
                threads,
                |id| {
                    if id == 7 {
                        Err(Error::Usage("bad".into()))
                    } else {
                        Ok(id)
                    }
                },
                |next| loop {
                    next.take()?;
                },
            );
            assert!(r.is_err());
        }
    }

    #[test]
    fn a_panicking_load_is_an_error_on_any_thread() {
        let ids: Vec<u32> = (0..64).collect();
        for threads in [2, 3] {
            for bad in [0, 1, 5, 63] {
                let r: Result<u32> = in_order(
                    &ids,
                    threads,
                    |id| {
                        assert!(id != bad, "load {id} fails");
                        Ok(id)
                    },
                    |next| {
                        let mut sum = 0;
                        while next.upcoming().is_some() {
                            sum += next.take()?;
                        }
                        Ok(sum)
                    },
                );
                assert!(r.is_err(), "threads {threads}, bad {bad}");
            }
        }
    }
}
