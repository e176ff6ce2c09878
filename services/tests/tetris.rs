//! Tetris (`spartan_fixtures::tetris_wasm`, written in C) on the console
//! service, played by the scripted player in simulation: the same seed
//! plays the same game; the game is transparent to checkpoints at 50
//! seeded cuts (killed, restored into the same system and into a freshly
//! booted one); a checkpoint taken while it waits for a key needs no key.

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::machine::Value;
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

#[test]
fn smoke() {
    let mut sys = boot(1, 0);
    sys.start_tetris(SEED);
    sys.start_player(tetris_script(), None, 0);
    for _ in 0..2000 {
        sys.s.run(&mut sys.k, 1);
    }
    println!("{}", sys.screen().text());
    for l in sys.k.log() {
        println!("{:?}", l.text);
    }
    let _ = (CheckpointOptions::default(), RestoreOpts::default(), &sys.ck);
}
