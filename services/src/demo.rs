//! `spartan demo`: the whole story in one command, self-contained.
//!
//! 1. Plays the scripted tetris game from start to end in a simulated
//!    system: the reference (final screen, score).
//! 2. Boots a second simulated system, starts tetris and the scripted
//!    player, and stops at the cut: a checkpoint through the checkpointer
//!    (the killing kind), validated with the image reader.
//! 3. Boots a third system (another seed: nothing of the second is
//!    left), restores the image, lets the player type the rest of the
//!    script, and plays to the end.
//! 4. Compares the final screen, cell by cell with styles, and tetris's
//!    score line with the reference. The demo succeeds only when they are
//!    equal.
//!
//! Every system is real: the kernel, the interpreter running the C
//! tetris module, the console, VFS, loader and naming service, the
//! checkpointer writing a real image on disk. Simulation makes the
//! reference and the restored run comparable (the same virtual
//! timeline); wall-clock times are only printed.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use spartan_kernel::task::TaskId;

use crate::Shared;
use crate::checkpointer::{CheckpointOptions, RestoreOpts};
use crate::console::Screen;
use crate::player::{Keystroke, Player, tetris_script};
use crate::system::{Program, System, SystemConfig, SystemError};

/// What the demo does.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Seed of the first two systems (the third boots with seed + 1).
    pub seed: u64,
    /// Where in the game to checkpoint, as a share of the script's
    /// timeline (0 to 1).
    pub cut: f64,
    /// Where to write the image (default: a temporary directory removed
    /// at the end).
    pub image: Option<PathBuf>,
    /// Print the screens at the cut and at the end.
    pub screens: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 1,
            cut: 0.5,
            image: None,
            screens: true,
        }
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    System(#[from] SystemError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the image does not validate: {0}")]
    Invalid(String),
    #[error("tetris did not end by {0} ns of virtual time")]
    NoEnd(u64),
    #[error("the restored game differs from the uninterrupted one: {0}")]
    Differs(String),
}

/// A system with tetris and the player in it.
struct Game {
    sys: System,
    player: Shared<Player>,
}

/// The most slices a game may take (it needs about a tenth of this).
const SLICES: u64 = 20_000_000;

fn boot(seed: u64, root: &Path) -> Result<System, SystemError> {
    let mut cfg = SystemConfig::new(root);
    cfg.sim = Some(seed);
    System::boot(&cfg)
}

impl Game {
    fn start(seed: u64, root: &Path) -> Result<(Game, TaskId), SystemError> {
        let mut sys = boot(seed, root)?;
        let tetris = Program::Bytes {
            name: "tetris".into(),
            bytes: spartan_fixtures::tetris_wasm().to_vec(),
        };
        let task = sys.spawn(&tetris, &[], None)?;
        let now = sys.k.now();
        let player = add_player(&mut sys, now, 0);
        Ok((Game { sys, player }, task))
    }

    fn tetris_alive(&self) -> bool {
        self.sys.find("tetris").is_some()
    }

    fn run_until(&mut self, t: u64) {
        while self.sys.k.now() < t && self.tetris_alive() {
            self.sys.run(1);
        }
    }

    fn run_to_end(&mut self) -> Result<(), DemoError> {
        for _ in 0..SLICES {
            if !self.tetris_alive() {
                return Ok(());
            }
            self.sys.run(1);
        }
        Err(DemoError::NoEnd(self.sys.k.now()))
    }

    /// Tetris's own summary lines in the kernel log.
    fn score(&self) -> Vec<String> {
        self.sys
            .k
            .log()
            .iter()
            .map(|l| l.text.clone())
            .filter(|t| t.starts_with("tetris:"))
            .collect()
    }
}

fn add_player(sys: &mut System, start: u64, next: usize) -> Shared<Player> {
    let console = sys.console();
    let p = Shared::new(Player::spawn(
        &mut sys.k,
        console,
        0,
        tetris_script(),
        start,
        next,
    ));
    sys.s.add_native(Box::new(p.clone()));
    p
}

/// The screen framed, for printing.
fn framed(screen: &Screen) -> String {
    let w = screen.cols as usize;
    let mut out = format!("    +{}+\n", "-".repeat(w));
    for line in screen.text().lines() {
        out.push_str(&format!("    |{line:<w$}|\n"));
    }
    out.push_str(&format!("    +{}+\n", "-".repeat(w)));
    out
}

/// The differences between two screens, at most a few.
fn screen_diff(a: &Screen, b: &Screen) -> String {
    if (a.cols, a.rows) != (b.cols, b.rows) {
        return format!("{}x{} against {}x{}", a.cols, a.rows, b.cols, b.rows);
    }
    let mut diffs = Vec::new();
    for row in 0..a.rows {
        for col in 0..a.cols {
            if a.cell(col, row) != b.cell(col, row) {
                diffs.push(format!("({col},{row})"));
            }
        }
    }
    let n = diffs.len();
    diffs.truncate(8);
    format!("{n} cells differ: {}", diffs.join(" "))
}

fn dir_size(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Runs the demo, printing each step to `out`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    let work = tempfile::Builder::new().prefix("spartan-demo").tempdir()?;
    let root = work.path().join("root");
    std::fs::create_dir(&root)?;
    let image = match &opts.image {
        Some(p) => std::path::absolute(p)?,
        None => work.path().join("tetris-image"),
    };
    let script: Vec<Keystroke> = tetris_script();
    let span = script.last().map_or(0, |k| k.at_ns);
    let cut_after = (span as f64 * opts.cut.clamp(0.0, 1.0)) as u64;

    writeln!(
        out,
        "spartan demo: tetris (C, compiled to WebAssembly) on a simulated Spartan system,\n\
         played by a scripted player ({} keys over {:.1} s of virtual time).",
        script.len(),
        span as f64 / 1e9
    )?;

    // 1. The reference game.
    writeln!(out, "\n[1/4] the uninterrupted game (seed {})", opts.seed)?;
    let t = Instant::now();
    let (mut reference, _) = Game::start(opts.seed, &root)?;
    reference.run_to_end()?;
    let ref_screen = reference.sys.screen(0);
    let ref_score = reference.score();
    writeln!(
        out,
        "      ended at {:.3} s virtual ({:.2} s here): {}",
        reference.sys.k.now() as f64 / 1e9,
        t.elapsed().as_secs_f64(),
        ref_score.last().map_or("no score line", String::as_str)
    )?;
    drop(reference);

    // 2. The game again, checkpointed at the cut and killed.
    writeln!(
        out,
        "\n[2/4] the same game in a new system, checkpointed at {:.0}% of the script",
        opts.cut * 100.0
    )?;
    let (mut game, task) = Game::start(opts.seed, &root)?;
    let start = game.player.0.borrow().start();
    game.run_until(start + cut_after);
    if !game.tetris_alive() {
        return Err(DemoError::Differs("tetris ended before the cut".into()));
    }
    writeln!(
        out,
        "      at {:.3} s virtual, {} keys typed; tasks:",
        game.sys.k.now() as f64 / 1e9,
        game.player.0.borrow().typed()
    )?;
    for t in game.sys.tasks() {
        writeln!(
            out,
            "        {:>3} {:<13} {:<8} {:>2} thread(s) {:>8} bytes{}",
            t.id,
            t.name,
            t.state,
            t.threads,
            t.memory,
            if t.checkpointable {
                "  checkpointable".to_string()
            } else {
                t.service_id
                    .map(|s| format!("  cooperative {s}"))
                    .unwrap_or_default()
            }
        )?;
    }
    if opts.screens {
        write!(out, "{}", framed(&game.sys.screen(0)))?;
    }
    let t = Instant::now();
    let report = game.sys.checkpoint(
        task.0,
        &image,
        &CheckpointOptions {
            kill: true,
            ..CheckpointOptions::default()
        },
    )?;
    let took = t.elapsed();
    let problems = snapfmt::validate(&image);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(DemoError::Invalid(list.join("; ")));
    }
    writeln!(
        out,
        "      chkpnt: {} task(s) frozen for {} ns of virtual time, image {} ({} KiB, {:.1} ms here); it validates",
        report.plan.members.len(),
        report.frozen_ns,
        image.display(),
        dir_size(&image) / 1024,
        took.as_secs_f64() * 1e3
    )?;
    writeln!(
        out,
        "      tetris killed: {}",
        if game.tetris_alive() { "no (!)" } else { "yes" }
    )?;
    // Keys the player typed that tetris had not read are lost with the
    // system (ABI.md: unread keys belong to the console): the player
    // types them again after the reboot, as a person would.
    let typed = game.player.0.borrow().typed();
    let unread = game.sys.console().0.borrow_mut().pending_keys(0);
    drop(game);

    // 3. A freshly booted system restores it.
    let seed2 = opts.seed.wrapping_add(1);
    writeln!(
        out,
        "\n[3/4] a freshly booted system (seed {seed2}) restores the image"
    )?;
    let mut sys = boot(seed2, &root)?;
    sys.run(50);
    let t = Instant::now();
    let restored = sys.restore(&image, &RestoreOpts::default())?;
    writeln!(
        out,
        "      rstr: {} task(s) restored in {:.1} ms here; tetris is task {}",
        restored.tasks.len(),
        t.elapsed().as_secs_f64() * 1e3,
        sys.find("tetris")
            .map_or("missing".into(), |t| t.0.to_string())
    )?;
    let player = add_player(&mut sys, start, typed - unread);
    let mut game = Game { sys, player };
    game.run_to_end()?;

    // 4. The verdict.
    writeln!(out, "\n[4/4] the restored game played on to its end")?;
    let screen = game.sys.screen(0);
    let score = game.score();
    if opts.screens {
        write!(out, "{}", framed(&screen))?;
    }
    writeln!(out, "      uninterrupted: {}", ref_score.join(" / "))?;
    writeln!(out, "      restored:      {}", score.join(" / "))?;
    if score != ref_score {
        return Err(DemoError::Differs(format!(
            "score lines {score:?} against {ref_score:?}"
        )));
    }
    if screen != ref_screen {
        return Err(DemoError::Differs(screen_diff(&screen, &ref_screen)));
    }
    writeln!(
        out,
        "      the final screens are identical, cell for cell and style for style: the game went on exactly where it stopped."
    )?;
    if opts.image.is_some() {
        writeln!(out, "      the image is kept at {}", image.display())?;
    }
    Ok(())
}
