//! Tetris (`spartan_fixtures::tetris_wasm`, written in C) on the console
//! service, played by the scripted player in simulation: the same seed
//! plays the same game; the game is transparent to checkpoints at 50
//! seeded cuts (killed, restored into the same system and into a freshly
//! booted one); a checkpoint taken while it waits for a key needs no key;
//! a key typed during a killing checkpoint reaches the restored game.

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::{TaskId, TaskPolicy};
use spartan_services::Shared;
use spartan_services::checkpointer::{CheckpointOptions, Checkpointer, RestoreOpts};
use spartan_services::console::{Console, Screen};
use spartan_services::ns::NamingService;
use spartan_services::player::{Keystroke, Player, tetris_script};

const SEED: i64 = spartan_fixtures::TETRIS_DEFAULT_SEED;

struct System {
    k: Kernel,
    s: Scheduler,
    console: Shared<Console>,
    player: Option<Shared<Player>>,
    ck: Checkpointer,
}

fn boot(seed: u64, filler: usize) -> System {
    let mut k = Kernel::new(KernelConfig::simulation(seed));
    for i in 0..filler {
        k.spawn_native(&format!("filler{i}"), TaskPolicy::Neither);
    }
    let ns = NamingService::spawn(&mut k);
    let console = Shared::new(Console::spawn(&mut k, &ns, 80, 24).unwrap());
    let ck = Checkpointer::spawn(&mut k);
    let mut s = Scheduler::new(SchedConfig::default());
    s.add_native(Box::new(console.clone()));
    s.add_native(Box::new(ns));
    System {
        k,
        s,
        console,
        player: None,
        ck,
    }
}

impl System {
    fn start_tetris(&mut self, seed: i64) -> TaskId {
        let (task, _) = self
            .s
            .spawn_guest(
                &mut self.k,
                "tetris",
                TaskPolicy::Checkpointable,
                spartan_fixtures::tetris_wasm(),
                "play",
                &[Value::I64(seed as u64)],
            )
            .unwrap();
        let ns = self.find("ns").unwrap();
        self.k.connect_phone(task, ns).unwrap();
        task
    }

    /// Starts the player on `script` from keystroke `next`, its times
    /// counted from `start` (now when `None`).
    fn start_player(&mut self, script: Vec<Keystroke>, start: Option<u64>, next: usize) {
        let start = start.unwrap_or(self.k.now());
        let p = Shared::new(Player::spawn(
            &mut self.k,
            self.console.clone(),
            0,
            script,
            start,
            next,
        ));
        self.s.add_native(Box::new(p.clone()));
        self.player = Some(p);
    }

    fn find(&self, name: &str) -> Option<TaskId> {
        self.k
            .task_ids()
            .into_iter()
            .find(|t| self.k.task(*t).is_some_and(|t| t.name == name))
    }

    fn tetris_log(&self) -> Vec<String> {
        self.k
            .log()
            .iter()
            .map(|l| l.text.clone())
            .filter(|t| t.starts_with("tetris:"))
            .collect()
    }

    fn screen(&self) -> Screen {
        self.console.0.borrow_mut().screen(0).clone()
    }

    /// Runs until tetris has ended (at most `slices`).
    fn run_to_end(&mut self, slices: u64) {
        for _ in 0..slices {
            if self.find("tetris").is_none() {
                return;
            }
            self.s.run(&mut self.k, 1);
        }
        panic!(
            "tetris did not end by {} ns:\n{}",
            self.k.now(),
            self.screen().text()
        );
    }
}

/// The uninterrupted scripted game: final screen, tetris's log lines,
/// the kernel time it ended.
fn whole_game() -> (Screen, Vec<String>, u64) {
    let mut sys = boot(1, 0);
    sys.start_tetris(SEED);
    sys.start_player(tetris_script(), None, 0);
    sys.run_to_end(2_000_000);
    (sys.screen(), sys.tetris_log(), sys.k.now())
}

#[test]
fn the_scripted_game_is_the_same_on_every_run() {
    let (screen, log, end) = whole_game();
    let text = screen.text();
    assert!(text.contains("G A M E   O V E R") || text.contains("thanks for playing"));
    // The planner's prediction (71 pieces, 23 lines) holds in the real game.
    assert_eq!(
        log,
        vec![
            "tetris: game over score 6216 lines 23 level 3 pieces 71".to_string(),
            "tetris: quit score 6216 lines 23 level 3 pieces 71".to_string(),
        ],
        "{text}"
    );
    assert!(text.contains("6216"), "the score is on the screen:\n{text}");
    let again = whole_game();
    assert_eq!(again, (screen, log, end), "a second run with the same seed");
}

#[test]
fn another_seed_deals_another_game() {
    let mut sys = boot(1, 0);
    sys.start_tetris(SEED + 1);
    sys.start_player(tetris_script(), None, 0);
    sys.run_to_end(2_000_000);
    let log = sys.tetris_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_ne!(log, whole_game().1);
}

const CUTS: u64 = 50;

#[test]
fn tetris_is_transparent_at_50_cuts() {
    let (screen, log, end) = whole_game();
    let mut seed = 14u64;
    for i in 0..CUTS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cut = 1 + (seed >> 33) % (end * 9 / 10);
        let reboot = i % 2 == 1;
        let what = format!("cut {i} at {cut} (reboot {reboot})");
        let images = tempfile::tempdir().unwrap();
        let mut sys = boot(1, 0);
        let task = sys.start_tetris(SEED);
        sys.start_player(tetris_script(), None, 0);
        while sys.k.now() < cut {
            sys.s.run(&mut sys.k, 1);
        }
        // The player types on while the checkpoint runs.
        let player = sys.player.clone().unwrap();
        let path = images.path().join("img");
        let opts = CheckpointOptions {
            kill: true,
            ..CheckpointOptions::default()
        };
        sys.ck
            .checkpoint(&mut sys.k, &mut sys.s, task, &path, &opts)
            .unwrap_or_else(|e| panic!("{what}: checkpoint: {e}"));
        assert_eq!(snapfmt::validate(&path), vec![], "{what}");
        let before = sys.tetris_log();
        let mut sys = if reboot {
            // Keys the old system had not handed to tetris yet are typed
            // again into the new one.
            let queued = sys.console.0.borrow_mut().pending_keys(0);
            let (start, typed) = {
                let p = player.0.borrow();
                (p.start(), p.typed())
            };
            let mut fresh = boot(2 + i, (i % 3) as usize);
            fresh.s.run(&mut fresh.k, 50);
            fresh
                .ck
                .restore(&mut fresh.k, &mut fresh.s, &path, &RestoreOpts::default())
                .unwrap_or_else(|e| panic!("{what}: restore: {e}"));
            fresh.start_player(tetris_script(), Some(start), typed - queued);
            fresh
        } else {
            sys.ck
                .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
                .unwrap_or_else(|e| panic!("{what}: restore: {e}"));
            sys
        };
        sys.k
            .check_invariants()
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        sys.run_to_end(2_000_000);
        let mut got_log = if reboot { before } else { Vec::new() };
        got_log.extend(sys.tetris_log());
        assert_eq!(got_log, log, "{what}: log");
        assert_eq!(
            sys.screen(),
            screen,
            "{what}: screen\n{}\nwanted\n{}",
            sys.screen().text(),
            screen.text()
        );
    }
}

/// Runs until nothing can happen without a key: every thread waits, no
/// deadline (tetris is paused).
fn settle(sys: &mut System) {
    for _ in 0..100_000 {
        if sys.s.run(&mut sys.k, 1) == RunEnd::Deadlock {
            return;
        }
    }
    panic!("the system does not settle");
}

#[test]
fn a_checkpoint_while_tetris_waits_for_a_key_needs_no_key() {
    let mut sys = boot(1, 0);
    let task = sys.start_tetris(SEED);
    // Paused, tetris has no deadline: it waits for a key and nothing else.
    let script = spartan_services::player::parse_script("p", 10).unwrap();
    sys.start_player(script, None, 0);
    for _ in 0..1000 {
        sys.s.run(&mut sys.k, 1);
    }
    settle(&mut sys);
    assert!(sys.screen().text().contains("P A U S E D"));
    let images = tempfile::tempdir().unwrap();
    let t0 = sys.k.now();
    let report = sys
        .ck
        .checkpoint(
            &mut sys.k,
            &mut sys.s,
            task,
            &images.path().join("a"),
            &CheckpointOptions::default(),
        )
        .expect("a checkpoint of a task waiting for a key");
    let took = sys.k.now() - t0;
    assert!(
        took < CheckpointOptions::default().timeout_ns / 100,
        "the checkpoint took {took} ns: it waited"
    );
    assert!(report.frozen_ns < took + 1);
    assert_eq!(sys.console.0.borrow_mut().pending_keys(0), 0);
    // It goes on: the same read gets the next key.
    settle(&mut sys);
    sys.console
        .0
        .borrow_mut()
        .push_key(&mut sys.k, 0, u64::from('q'), 0);
    sys.run_to_end(100_000);
    assert_eq!(
        sys.tetris_log(),
        vec!["tetris: quit score 0 lines 0 level 1 pieces 1".to_string()]
    );

    // Killed and restored, it waits for a key again, and gets it.
    let mut sys = boot(1, 0);
    let task = sys.start_tetris(SEED);
    sys.start_player(
        spartan_services::player::parse_script("p", 10).unwrap(),
        None,
        0,
    );
    for _ in 0..1000 {
        sys.s.run(&mut sys.k, 1);
    }
    settle(&mut sys);
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    let path = images.path().join("b");
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, task, &path, &opts)
        .expect("a killing checkpoint of a task waiting for a key");
    assert!(sys.find("tetris").is_none());
    let mut fresh = boot(7, 1);
    fresh
        .ck
        .restore(&mut fresh.k, &mut fresh.s, &path, &RestoreOpts::default())
        .unwrap();
    settle(&mut fresh);
    assert!(fresh.screen().text().contains("P A U S E D"));
    for key in ['p', ' ', 'q'] {
        fresh
            .console
            .0
            .borrow_mut()
            .push_key(&mut fresh.k, 0, u64::from(key), 0);
    }
    fresh.run_to_end(100_000);
    let log = fresh.tetris_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("tetris: quit score 36 "), "{log:?}");
}

/// A key typed while a killing checkpoint runs reaches the restored game.
#[test]
fn a_key_typed_during_a_killing_checkpoint_reaches_the_restored_game() {
    let mut sys = boot(1, 0);
    let task = sys.start_tetris(SEED);
    sys.start_player(
        spartan_services::player::parse_script("p", 10).unwrap(),
        None,
        0,
    );
    for _ in 0..1000 {
        sys.s.run(&mut sys.k, 1);
    }
    settle(&mut sys);
    // 'p' (resume) falls due 500 ns from now: inside the checkpoint.
    let now = sys.k.now();
    let script = vec![Keystroke {
        at_ns: 500,
        key: u64::from('p'),
    }];
    sys.start_player(script, Some(now), 0);
    let images = tempfile::tempdir().unwrap();
    let path = images.path().join("img");
    let opts = CheckpointOptions {
        kill: true,
        ..CheckpointOptions::default()
    };
    sys.ck
        .checkpoint(&mut sys.k, &mut sys.s, task, &path, &opts)
        .unwrap();
    let typed = sys.player.as_ref().unwrap().0.borrow().typed();
    assert_eq!(typed, 1, "the key falls due during the checkpoint");
    assert_eq!(sys.console.0.borrow_mut().pending_keys(0), 1, "it waits");
    sys.ck
        .restore(&mut sys.k, &mut sys.s, &path, &RestoreOpts::default())
        .unwrap();
    for _ in 0..1000 {
        sys.s.run(&mut sys.k, 1);
    }
    assert!(
        !sys.screen().text().contains("P A U S E D"),
        "the key typed during the checkpoint was lost"
    );
}

/// Thousands of seeded random keys (every key tetris knows, and others:
/// control characters, letters, codes beyond Unicode), `r` restarting
/// after each game over: the game never traps and ends on `q`.
#[test]
fn random_keys_do_not_break_the_game() {
    use spartan_services::console::key;
    let keys = [
        key::LEFT,
        key::RIGHT,
        key::UP,
        key::DOWN,
        u64::from('h'),
        u64::from('l'),
        u64::from('k'),
        u64::from('j'),
        u64::from('z'),
        u64::from(' '),
        u64::from('r'),
        u64::from('p'),
        u64::from('x'),
        0,
        7,
        key::ENTER,
        0x10_ffff,
        0x11_0004,
        u64::MAX,
    ];
    let mut seed = 99u64;
    let mut script = Vec::new();
    for i in 0..3000u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = keys[(seed >> 33) as usize % keys.len()];
        script.push(Keystroke {
            at_ns: (i + 1) * 7_000_000,
            key,
        });
    }
    script.push(Keystroke {
        at_ns: 3001 * 7_000_000,
        key: u64::from('q'),
    });
    let mut sys = boot(1, 0);
    sys.start_tetris(SEED);
    sys.start_player(script, None, 0);
    sys.run_to_end(5_000_000);
    let all: Vec<String> = sys.k.log().iter().map(|l| l.text.clone()).collect();
    let log = sys.tetris_log();
    assert!(
        log.last().is_some_and(|l| l.starts_with("tetris: quit ")),
        "{all:?}"
    );
    assert!(
        log.iter().filter(|l| l.contains("game over")).count() >= 1,
        "{log:?}"
    );
    assert!(!all.iter().any(|l| l.contains("killed")), "{all:?}");
    assert!(all.iter().any(|l| l.ends_with(" exited")), "{all:?}");
}
