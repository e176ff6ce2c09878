//! The user's toolchain as the README shows it, with the real binaries:
//! tetris played in a real terminal through `spartan console` (tmux), and
//! the backup example (`examples/backup.sh`) backing up a running tetris,
//! pruning old backups, and restoring the newest valid one after a
//! reboot, skipping a damaged one.
//!
//! tmux is needed for the terminal test: `.ci/run` installs it; elsewhere
//! the test says SKIPPED when it is missing (and fails under `CI=true`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin_dir() -> PathBuf {
    let spartan = PathBuf::from(env!("CARGO_BIN_EXE_spartan"));
    let dir = spartan.parent().unwrap().to_path_buf();
    for b in ["chkpnt", "rstr", "snapinspect"] {
        assert!(
            dir.join(b).exists(),
            "{b} is missing beside spartan: build it first (cargo build --release --workspace; \
             cargo test --workspace builds it)"
        );
    }
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// A booted system on its own socket, shut down when dropped.
struct Booted {
    socket: PathBuf,
    path: String,
    _dir: tempfile::TempDir,
}

impl Booted {
    fn new(dir: tempfile::TempDir) -> Booted {
        let socket = dir.path().join("run/control.sock");
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let b = Booted {
            socket,
            path,
            _dir: dir,
        };
        b.boot();
        b
    }

    fn root(&self) -> PathBuf {
        self._dir.path().join("root")
    }

    fn boot(&self) {
        std::fs::create_dir_all(self.root()).unwrap();
        let out = self.cmd(
            "spartan",
            &["boot", "--detach", "--root"],
            Some(&self.root()),
        );
        assert!(out.status.success(), "boot: {}", text(&out));
    }

    fn cmd(&self, prog: &str, args: &[&str], extra: Option<&Path>) -> Output {
        let mut c = Command::new(prog);
        c.args(args);
        if let Some(p) = extra {
            c.arg(p);
        }
        c.env("PATH", &self.path)
            .env("SPARTAN_SOCKET", &self.socket)
            .current_dir(self._dir.path())
            .output()
            .unwrap()
    }

    fn tetris_ids(&self) -> Vec<String> {
        let out = self.cmd("spartan", &["tasks", "--name", "tetris", "--id"], None);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start_tetris(&self) {
        let wasm = repo().join("fixtures/guest/tetris.wasm");
        let out = self.cmd("spartan", &["run"], Some(&wasm));
        assert!(out.status.success(), "run: {}", text(&out));
    }

    fn shutdown(&self) {
        let _ = self.cmd("spartan", &["shutdown"], None);
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_backup_example_backs_up_tetris_and_restores_the_newest_valid_backup() {
    let sys = Booted::new(tempfile::tempdir().unwrap());
    sys.start_tetris();
    let script = repo().join("examples/backup.sh");
    let script = script.to_str().unwrap();
    // Four backups, a fifth of a second apart, every second one full (the
    // others incremental on the one before), keeping the newest two: the
    // oldest chain (a full one and its incremental one) goes.
    let out = sys.cmd(
        "sh",
        &[
            script, "-i", "0.2", "-k", "2", "-f", "2", "-c", "4", "backups",
        ],
        None,
    );
    assert!(out.status.success(), "backup loop: {}", text(&out));
    let backups = sys._dir.path().join("backups");
    let mut names: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| {
        let (a, b) = n.split_once('-').unwrap_or((n, "0"));
        (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap())
    });
    assert_eq!(names.len(), 2, "pruned to the newest chain: {names:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.matches("backed up task").count(), 4, "{stdout}");
    assert_eq!(stdout.matches("(incremental on").count(), 2, "{stdout}");
    for n in &names {
        let v = sys.cmd("snapinspect", &["validate"], Some(&backups.join(n)));
        assert!(v.status.success(), "{n}: {}", text(&v));
    }
    let show = |n: &str| {
        let o = sys.cmd("snapinspect", &["show"], Some(&backups.join(n)));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(show(&names[0]).contains("parent chain none"));
    let second = show(&names[1]);
    assert!(second.contains("parent chain (nearest first"), "{second}");
    assert!(second.contains(&names[0]), "{second}");
    // Two backups of a running game compare with snapinspect diff (they
    // differ at least in time).
    let d = sys.cmd(
        "snapinspect",
        &[
            "diff",
            backups.join(&names[0]).to_str().unwrap(),
            backups.join(&names[1]).to_str().unwrap(),
        ],
        None,
    );
    assert!(matches!(d.status.code(), Some(0 | 1)), "diff: {}", text(&d));

    // A crash: the system goes away with tetris in it; a new one boots.
    sys.shutdown();
    sys.boot();
    assert!(sys.tetris_ids().is_empty(), "a fresh system has no tetris");
    // The newest backup is damaged: the restore skips it for the next.
    let newest = backups.join(names.last().unwrap());
    std::fs::write(newest.join("manifest.spm"), b"garbage").unwrap();
    let out = sys.cmd("sh", &[script, "-r", "backups"], None);
    assert!(out.status.success(), "restore: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("skipping backups/{}", names[1])),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("restoring backups/{}", names[0])),
        "{}",
        text(&out)
    );
    assert_eq!(sys.tetris_ids().len(), 1, "tetris is back");

    // No valid backup at all: a clear failure.
    let empty = sys.cmd("sh", &[script, "-r", "nothing-here"], None);
    assert_eq!(empty.status.code(), Some(1), "{}", text(&empty));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no valid backup"));
    // Usage errors exit 2.
    let bad = sys.cmd("sh", &[script, "-x"], None);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

fn tmux_present() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// tmux on a private server (`-L`), so tests never touch the user's.
struct Tmux {
    server: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits until the pane shows `what`.
    fn wait_for(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < until,
                "waited for {what:?}; the pane:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn tetris_is_played_in_a_real_terminal_through_spartan_console() {
    if !tmux_present() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is missing under CI (.ci/run installs it)"
        );
        println!("SKIPPED tetris_is_played_in_a_real_terminal: tmux is not installed");
        return;
    }
    let sys = Booted::new(tempfile::tempdir().unwrap());
    sys.start_tetris();
    let tmux = Tmux {
        server: format!("spartan-test-{}", std::process::id()),
    };
    let attach = format!(
        "env PATH='{}' SPARTAN_SOCKET='{}' spartan console; echo \"console exited $?\"; sleep 60",
        sys.path,
        sys.socket.display()
    );
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "90",
        "-y",
        "30",
        &attach,
    ]);
    assert!(out.status.success(), "tmux: {}", text(&out));
    // (A capture may catch a frame half drawn: wait for each part.)
    tmux.wait_for("T E T R I S");
    tmux.wait_for("Score");
    tmux.wait_for("detach: Ctrl-]");
    // Keys typed in the terminal reach the game: pause shows a banner,
    // and pressing p again takes it away.
    tmux.run(&["send-keys", "-t", "t", "p"]);
    tmux.wait_for("P A U S E D");
    tmux.run(&["send-keys", "-t", "t", "p"]);
    let until = Instant::now() + Duration::from_secs(20);
    while tmux.screen().contains("P A U S E D") {
        assert!(Instant::now() < until, "still paused:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Hard drops change the board and the score.
    for _ in 0..3 {
        tmux.run(&["send-keys", "-t", "t", "Space"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let s = tmux.screen();
        let score = s
            .lines()
            .skip_while(|l| !l.contains("Score"))
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if score.parse::<u64>().is_ok_and(|n| n > 0) {
            break;
        }
        assert!(Instant::now() < until, "no score after hard drops:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A resize redraws the whole game at the new size.
    tmux.run(&["resize-window", "-t", "t", "-x", "100", "-y", "32"]);
    tmux.wait_for("T E T R I S");
    tmux.wait_for("detach: Ctrl-]");
    // Ctrl-] detaches; the terminal is given back, tetris runs on.
    tmux.run(&["send-keys", "-t", "t", "C-]"]);
    let s = tmux.wait_for("console exited 0");
    assert!(
        s.contains("detached from virtual console 0"),
        "the message after detaching:\n{s}"
    );
    assert_eq!(sys.tetris_ids().len(), 1, "tetris keeps running");
}
