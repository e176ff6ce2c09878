//! A scripted player: a native task that types a fixed sequence of keys
//! into a virtual console, each at its time in kernel time (virtual in a
//! simulation), so a game runs the same way every time.
//!
//! The player sleeps in the kernel until its next key is due (a timed
//! `ipc_wait`, so an idle system jumps straight to it), then pushes every
//! key that is due through [`Console::push_key`], exactly as the host
//! terminal would. Times are offsets from a start time given at spawn, so
//! a player created after a restore into a freshly booted system goes on
//! with the rest of the same script on the same timeline
//! ([`Player::spawn`] with the first key still to type).
//!
//! [`tetris_script`] is the fixed game the tests and the demo play with
//! `spartan_fixtures::tetris_wasm` and its default seed.

use std::task::Poll;

use spartan_kernel::ipc::Errno;
use spartan_kernel::kernel::Kernel;
use spartan_kernel::sched::sim::{NativeProgram, Step};
use spartan_kernel::task::native::{NativeError, NativeTask};
use spartan_kernel::task::{TaskPolicy, ThreadId};

use crate::Shared;
use crate::console::{Console, key};

/// A key and the time to type it: nanoseconds after the player's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keystroke {
    pub at_ns: u64,
    pub key: u64,
}

/// The scripted player, a native program.
pub struct Player {
    me: NativeTask,
    console: Shared<Console>,
    vc: u32,
    start: u64,
    script: Vec<Keystroke>,
    next: usize,
    /// The timeout of the wait in progress (a blocked wait is reissued
    /// with the same arguments).
    waiting: Option<u64>,
}

impl Player {
    /// A player typing `script` into virtual console `vc`, its times
    /// counted from kernel time `start`, beginning with keystroke `next`
    /// (0 for a new game; keys before it count as typed).
    pub fn spawn(
        k: &mut Kernel,
        console: Shared<Console>,
        vc: u32,
        script: Vec<Keystroke>,
        start: u64,
        next: usize,
    ) -> Player {
        let me = k.spawn_native("player", TaskPolicy::Neither);
        Player {
            me,
            console,
            vc,
            start,
            next: next.min(script.len()),
            script,
            waiting: None,
        }
    }

    /// How many keys of the script have been typed (the index of the next).
    pub fn typed(&self) -> usize {
        self.next
    }

    /// Whether every key has been typed.
    pub fn finished(&self) -> bool {
        self.next >= self.script.len()
    }

    /// Kernel time the script's times count from.
    pub fn start(&self) -> u64 {
        self.start
    }

    fn type_due(&mut self, k: &mut Kernel) {
        let now = k.now();
        while let Some(s) = self.script.get(self.next) {
            if self.start.saturating_add(s.at_ns) > now {
                break;
            }
            self.console.0.borrow_mut().push_key(k, self.vc, s.key, 0);
            self.next += 1;
        }
    }
}

impl NativeProgram for Player {
    fn thread(&self) -> ThreadId {
        self.me.thread()
    }

    fn step(&mut self, k: &mut Kernel) -> Step {
        loop {
            if let Some(timeout) = self.waiting {
                match self.me.wait(k, timeout) {
                    Ok(Poll::Pending) => return Step::Continue,
                    Ok(Poll::Ready(_)) | Err(NativeError::Errno(Errno::Timeout)) => {
                        self.waiting = None
                    }
                    Err(_) => return Step::Done,
                }
            }
            self.type_due(k);
            let timeout = match self.script.get(self.next) {
                None => return Step::Done,
                Some(s) => self.start.saturating_add(s.at_ns).saturating_sub(k.now()),
            };
            self.waiting = Some(timeout);
        }
    }
}

/// Milliseconds to nanoseconds.
const MS: u64 = 1_000_000;

/// Parses a script: whitespace-separated moves, each typed `gap_ms` after
/// the one before. A move is a key letter (`h` left, `l` right, `k`
/// rotate, `z` rotate back, `j` soft drop, `_` space (hard drop), `q`,
/// `r`, `p`, or any other printable character for itself), `<` `>` `^`
/// `v` for the arrow keys, or `.N` for a pause of N milliseconds.
pub fn parse_script(text: &str, gap_ms: u64) -> Result<Vec<Keystroke>, String> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for word in text.split_whitespace() {
        if let Some(ms) = word.strip_prefix('.') {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("{word:?}: a pause is . and milliseconds"))?;
            at = at.saturating_add(ms.saturating_mul(MS));
            continue;
        }
        for c in word.chars() {
            let key = match c {
                '_' => u64::from(' '),
                '<' => key::LEFT,
                '>' => key::RIGHT,
                '^' => key::UP,
                'v' => key::DOWN,
                c if c.is_control() => return Err(format!("{c:?}: a control character")),
                c => u64::from(c),
            };
            at = at.saturating_add(gap_ms.saturating_mul(MS));
            out.push(Keystroke { at_ns: at, key });
        }
    }
    Ok(out)
}

/// The tetris game of the tests and the demo (seed
/// `spartan_fixtures::TETRIS_DEFAULT_SEED`): a placement per piece
/// (rotations, moves, hard drop), chosen ahead by a simple planner so
/// that it clears lines, then pieces dropped in the middle until the
/// stack reaches the top (game over), and `q`.
pub fn tetris_script() -> Vec<Keystroke> {
    parse_script(TETRIS_GAME, 40).expect("the built-in script parses")
}

/// The moves of [`tetris_script`]: one word per piece.
/// Planned by `fixtures/guest/tools/plan_tetris.py 2026 60` (71 pieces,
/// 23 lines: the game reaches level 3).
const TETRIS_GAME: &str = "\
hhh_ _ kll_ _ kkhhh_ kkkllll_ hhhh_ khh_ kl_ kkllll_ kk_ lll_ kkklllll_ _ \
hhh_ h_ kkhhh_ lll_ _ _ hhh_ kllll_ kklll_ khhhh_ l_ llll_ hh_ lll_ \
kkklllll_ khhhh_ _ hhhh_ khhh_ kl_ kklll_ ll_ h_ kkklllll_ kkkhhh_ h_ lll_ \
kl_ lll_ kkhhh_ kllll_ kh_ _ kkll_ hhh_ _ hhh_ kkllll_ hhhh_ llll_ kkh_ kll_ \
kkkl_ hh_ kkllll_ _ _ _ _ _ _ _ _ _ _ _ q";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_with_their_gaps_and_pauses() {
        let s = parse_script("hl .100 _ <", 10).unwrap();
        let keys: Vec<u64> = s.iter().map(|k| k.key).collect();
        assert_eq!(keys, vec![u64::from('h'), u64::from('l'), 32, key::LEFT]);
        let times: Vec<u64> = s.iter().map(|k| k.at_ns / MS).collect();
        assert_eq!(times, vec![10, 20, 130, 140]);
        assert!(parse_script(".x", 10).unwrap_err().contains(".x"));
    }
}
