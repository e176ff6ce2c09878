//! Per-page dirty bits since the last checkpoint.
//!
//! A plain bitmap beside the page table (never inside the leaves a snapshot
//! shares). It grows lazily up to the highest page ever written, so an
//! untouched area costs nothing.

/// One bit per page: set when the page is written, cleared at checkpoint.
#[derive(Clone, Debug, Default)]
pub struct DirtyBits {
    words: Vec<u64>,
}

/// Where page `index`'s bit is: its word and the bit within it.
#[inline(always)]
const fn locate(index: u64) -> (usize, u64) {
    ((index >> 6) as usize, 1u64 << (index & 63))
}

impl DirtyBits {
    /// Marks page `index` dirty.
    #[inline(always)]
    pub fn set(&mut self, index: u64) {
        let (word, bit) = locate(index);
        match self.words.get_mut(word) {
            Some(w) => *w |= bit,
            None => self.set_slow(word, bit),
        }
    }

    #[cold]
    fn set_slow(&mut self, word: usize, bit: u64) {
        self.words.resize(word + 1, 0);
        self.words[word] |= bit;
    }

    /// Marks pages `range` dirty, a word at a time.
    pub fn set_range(&mut self, range: std::ops::Range<u64>) {
        if range.is_empty() {
            return;
        }
        let (last_word, _) = locate(range.end - 1);
        if self.words.len() <= last_word {
            self.words.resize(last_word + 1, 0);
        }
        let mut at = range.start;
        while at < range.end {
            let (word, _) = locate(at);
            let lo = at & 63;
            let n = (64 - lo).min(range.end - at);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << lo
            };
            self.words[word] |= mask;
            at += n;
        }
    }

    /// Number of pages marked.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Clears every bit (keeps the allocation for the next interval).
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// The dirty page indices in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some(((wi as u64) << 6) | u64::from(bit))
            })
        })
    }

    /// Sets every bit that is set in `other` (O(bitmap words)).
    pub fn union_with(&mut self, other: &DirtyBits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= *o;
        }
    }

    /// Clears page `index`'s bit; true if it was set.
    pub fn remove(&mut self, index: u64) -> bool {
        let (word, bit) = locate(index);
        match self.words.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                true
            }
            _ => false,
        }
    }

    /// Whether page `index` is dirty.
    pub fn contains(&self, index: u64) -> bool {
        let (word, bit) = locate(index);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Bytes of bookkeeping.
    pub fn metadata_bytes(&self) -> u64 {
        (self.words.capacity() * 8) as u64
    }
}
