//! Which pages changed since a given capture (incremental images, issue 15).
//!
//! Dirty bits are cleared per capture, so "not dirty now" only means
//! "unchanged since the LAST capture". To reference a page from a parent
//! image the kernel must know the page is unchanged since the capture the
//! parent was written from. Every capture of a task gets an [`Epoch`]
//! token (unique within the kernel run: a run id plus a counter), and
//! the task keeps a bounded [`DirtyHistory`]: per capture, the dirty bits
//! taken from each area (keyed by an area identity that a destroyed and
//! recreated area does not share).
//!
//! [`DirtyHistory::since`] answers, for a parent epoch, the union of the
//! bits of every later capture, per area. It proves nothing (returns
//! `None`) when the epoch is not in the history (another run, another
//! task, or older than [`HISTORY_LEN`] captures); an area that did not
//! exist at the parent's capture is absent from the answer, and its
//! pages must be written in full.
//!
//! The run id must not be drawn from the kernel's entropy stream: that
//! would shift every later scheduling choice, so a run with a checkpoint
//! would no longer replay like the same run without one (the transparency
//! oracle). In simulation it can be derived from the seed (two runs with
//! one seed are the same run, so a shared token is a true match); in a
//! real kernel it must be unique per boot (OS randomness), or a reboot
//! with the same seed would let an unrelated parent match.
//!
//! Used by [`super::epochs`]: every capture records into the history of
//! each task of its set, a restore resets it, and `chkpnt --parent` asks
//! it what changed since the parent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::mm::DirtyBits;

/// Captures remembered per task.
pub const HISTORY_LEN: usize = 64;

/// The token of one capture of a task: `run` identifies the kernel run,
/// `seq` counts captures within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch {
    pub run: u64,
    pub seq: u64,
}

impl Epoch {
    /// The text form recorded in a manifest's `options.extra`.
    pub fn to_text(self) -> String {
        format!("{:016x}.{}", self.run, self.seq)
    }

    /// Parses [`to_text`](Self::to_text); the error names what is wrong.
    pub fn parse(text: &str) -> Result<Epoch, String> {
        let (run, seq) = text
            .split_once('.')
            .ok_or_else(|| format!("epoch token {text:?}: expected RUN.SEQ"))?;
        let run = u64::from_str_radix(run, 16)
            .map_err(|e| format!("epoch token {text:?}: run id: {e}"))?;
        let seq = seq
            .parse::<u64>()
            .map_err(|e| format!("epoch token {text:?}: sequence: {e}"))?;
        Ok(Epoch { run, seq })
    }
}

#[derive(Clone, Debug)]
struct Entry<K> {
    epoch: Epoch,
    /// Pages dirtied between the previous entry and this capture, per
    /// area that existed at this capture.
    bits: BTreeMap<K, DirtyBits>,
}

/// A task's bounded history of captures and their dirty bits.
#[derive(Clone, Debug)]
pub struct DirtyHistory<K: Ord + Clone> {
    entries: VecDeque<Entry<K>>,
}

impl<K: Ord + Clone> Default for DirtyHistory<K> {
    fn default() -> Self {
        DirtyHistory {
            entries: VecDeque::new(),
        }
    }
}

impl<K: Ord + Clone> DirtyHistory<K> {
    /// Records capture `epoch` with the bits taken from each area at it
    /// (every area the task has then, clean ones with empty bits). The
    /// oldest entry goes beyond [`HISTORY_LEN`].
    pub fn record(&mut self, epoch: Epoch, bits: BTreeMap<K, DirtyBits>) {
        if self.entries.len() == HISTORY_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { epoch, bits });
    }

    /// After a restore: the task's state is the one captured at `epoch`
    /// (the image's token), with `areas`; nothing is dirty yet.
    pub fn reset_to(&mut self, epoch: Epoch, areas: impl IntoIterator<Item = K>) {
        self.entries.clear();
        let bits = areas
            .into_iter()
            .map(|k| (k, DirtyBits::default()))
            .collect();
        self.entries.push_back(Entry { epoch, bits });
    }

    /// The latest capture's epoch.
    pub fn latest(&self) -> Option<Epoch> {
        self.entries.back().map(|e| e.epoch)
    }

    /// Per area that existed at capture `parent` and at the latest one,
    /// the pages dirtied after `parent` up to the latest capture. `None`
    /// when `parent` is not in the history.
    pub fn since(&self, parent: Epoch) -> Option<BTreeMap<K, DirtyBits>> {
        let at = self.entries.iter().position(|e| e.epoch == parent)?;
        let existed: BTreeSet<&K> = self.entries[at].bits.keys().collect();
        let latest = self.entries.back()?;
        let mut out: BTreeMap<K, DirtyBits> = latest
            .bits
            .keys()
            .filter(|k| existed.contains(k))
            .map(|k| (k.clone(), DirtyBits::default()))
            .collect();
        for entry in self.entries.iter().skip(at + 1) {
            // An area missing from an intermediate capture was destroyed
            // then; callers give a recreated area a new key, so a key
            // present at both ends was present throughout.
            for (k, bits) in &entry.bits {
                if let Some(acc) = out.get_mut(k) {
                    acc.union_with(bits);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(pages: &[u64]) -> DirtyBits {
        let mut b = DirtyBits::default();
        for &p in pages {
            b.set(p);
        }
        b
    }

    fn ep(seq: u64) -> Epoch {
        Epoch { run: 0xabc, seq }
    }

    fn pages(b: &DirtyBits) -> Vec<u64> {
        b.iter().collect()
    }

    #[test]
    fn union_of_later_captures_only() {
        let mut h = DirtyHistory::<u32>::default();
        h.record(ep(1), BTreeMap::from([(1, bits(&[0, 1, 2]))]));
        h.record(ep(2), BTreeMap::from([(1, bits(&[5]))]));
        h.record(ep(3), BTreeMap::from([(1, bits(&[70, 5]))]));
        let s = h.since(ep(1)).unwrap();
        assert_eq!(pages(&s[&1]), vec![5, 70]);
        let s = h.since(ep(3)).unwrap();
        assert!(pages(&s[&1]).is_empty());
        assert!(h.since(ep(9)).is_none(), "unknown epoch proved something");
        assert!(h.since(Epoch { run: 1, seq: 1 }).is_none(), "other run");
    }

    #[test]
    fn new_area_is_absent_and_bounded_history_forgets() {
        let mut h = DirtyHistory::<u32>::default();
        h.record(ep(1), BTreeMap::from([(1, bits(&[]))]));
        h.record(ep(2), BTreeMap::from([(1, bits(&[3])), (2, bits(&[]))]));
        let s = h.since(ep(1)).unwrap();
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![1]);
        for seq in 3..3 + HISTORY_LEN as u64 {
            h.record(ep(seq), BTreeMap::from([(1, bits(&[]))]));
        }
        assert!(h.since(ep(1)).is_none(), "evicted epoch proved something");
        assert!(h.since(ep(3)).is_some());
    }

    #[test]
    fn restored_base_counts_from_the_restore() {
        let mut h = DirtyHistory::<u32>::default();
        h.record(ep(1), BTreeMap::from([(1, bits(&[1]))]));
        h.reset_to(Epoch { run: 7, seq: 4 }, [1, 2]);
        h.record(ep(2), BTreeMap::from([(1, bits(&[9])), (2, bits(&[0]))]));
        let s = h.since(Epoch { run: 7, seq: 4 }).unwrap();
        assert_eq!(pages(&s[&1]), vec![9]);
        assert_eq!(pages(&s[&2]), vec![0]);
        assert!(h.since(ep(1)).is_none(), "pre-restore epoch kept");
    }

    #[test]
    fn epoch_text_round_trip_and_errors() {
        let e = Epoch {
            run: 0xdead,
            seq: 12,
        };
        assert_eq!(Epoch::parse(&e.to_text()).unwrap(), e);
        assert!(Epoch::parse("x").unwrap_err().contains("RUN.SEQ"));
        assert!(Epoch::parse("zz.1").unwrap_err().contains("run id"));
        assert!(Epoch::parse("1.q").unwrap_err().contains("sequence"));
    }

    #[test]
    fn union_and_contains() {
        let mut a = bits(&[1]);
        a.union_with(&bits(&[200]));
        assert!(a.contains(1) && a.contains(200) && !a.contains(2));
        assert!(!a.contains(100_000));
    }
}
