//! `spartan`: boot a system and drive it through its control socket
//! (`spartan --help`, `services/CONTROL.md`). Exit statuses and error
//! lines follow the contract shared by every Spartan command
//! ([`spartan_cli`]).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use spartan_cli::{Refused, Verdict, escape};
use spartan_services::cli::{self, BootArgs, Cli, Command, RunArgs, TasksArgs};
use spartan_services::control::{Client, Request, Response};
use spartan_services::demo;
use spartan_services::server::{self, ControlSocket};
use spartan_services::system::{Program, System, SystemConfig, TaskInfo};

fn main() -> ExitCode {
    let args = Cli::parse();
    spartan_cli::finish("spartan", run(args))
}

fn run(args: Cli) -> anyhow::Result<Verdict> {
    let socket = args.socket.as_deref();
    match args.command {
        Command::Boot(b) => boot(socket, &b),
        Command::Run(r) => start(socket, r),
        Command::Tasks(t) => tasks(socket, &t),
        Command::Kill(k) => {
            let mut c = cli::connect(socket)?;
            c.request(&Request::Kill { task: k.task })
                .map_err(cli::client_error)
                .with_context(|| format!("cannot kill task {}", k.task))?;
            println!("task {} killed", k.task);
            Ok(Verdict::Ok)
        }
        Command::Console(a) => console(socket, a.vc),
        Command::Demo(d) => demo(&d),
        Command::Shutdown => {
            let path = cli::socket(socket);
            let mut c = cli::connect(socket)?;
            c.request(&Request::Shutdown).map_err(cli::client_error)?;
            // Done when the socket is gone (the system removes it last).
            let until = Instant::now() + Duration::from_secs(10);
            while path.exists() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("system on {} stopped", escape(&path.display().to_string()));
            Ok(Verdict::Ok)
        }
    }
}

/// `spartan demo`.
fn demo(d: &cli::DemoArgs) -> anyhow::Result<Verdict> {
    if !(0.0..=1.0).contains(&d.cut) {
        anyhow::bail!("--cut {}: a share of the game between 0 and 1", d.cut);
    }
    if let Some(p) = &d.image
        && p.symlink_metadata().is_ok()
    {
        anyhow::bail!(
            "--image {}: exists (images are never overwritten)",
            p.display()
        );
    }
    let opts = demo::DemoOptions {
        seed: d.seed,
        cut: d.cut,
        image: d.image.clone(),
        screens: !d.no_screens,
    };
    let mut out = std::io::stdout().lock();
    match demo::run(&opts, &mut out) {
        Ok(()) => {
            writeln!(out, "\nspartan demo: ok")?;
            Ok(Verdict::Ok)
        }
        Err(e) => Err(anyhow::Error::new(Refused(e.to_string())).context("the demo failed")),
    }
}

/// `spartan console`: the terminal attached to virtual console `vc`
/// until the detach key.
fn console(socket: Option<&Path>, vc: u32) -> anyhow::Result<Verdict> {
    use crossterm::event::{self, Event};
    use spartan_services::term::{self, Input, RawTerminal, Renderer};

    let what = || format!("cannot attach to virtual console {vc}");
    let mut c = cli::connect(socket).with_context(what)?;
    // The first screen before the terminal changes, so a refusal (no such
    // console) is an ordinary error line.
    let first = match c
        .request(&Request::Screen { vc, unless: None })
        .map_err(cli::client_error)
        .with_context(what)?
    {
        Response::Screen(v) => v,
        other => {
            return Err(cli::client_error(c.unexpected("a screen", &other))).with_context(what);
        }
    };
    let status = format!("spartan console {vc} | detach: {}", term::DETACH_KEY);
    let raw = RawTerminal::enter().context("cannot put the terminal in raw mode")?;
    let mut out = std::io::stdout();
    let mut r = Renderer::new();
    let mut digest = first.digest;
    let mut screen = first.screen();
    let mut size = crossterm::terminal::size().unwrap_or((80, 24));
    r.draw(&mut out, &screen, None, &status, size)?;
    let result = loop {
        match event::poll(Duration::from_millis(15)) {
            Err(e) => break Err(anyhow::Error::new(e).context("reading the terminal")),
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) => match term::input(&k) {
                    Some(Input::Detach) => break Ok(()),
                    Some(Input::Key { code, modifiers }) => {
                        if let Err(e) = c.request(&Request::Key {
                            vc,
                            key: code,
                            modifiers,
                        }) {
                            break Err(cli::client_error(e));
                        }
                    }
                    None => {}
                },
                Ok(Event::Resize(cols, rows)) => {
                    size = (cols, rows);
                    r.invalidate();
                    r.draw(&mut out, &screen, None, &status, size)?;
                }
                Ok(_) => {}
                Err(e) => break Err(anyhow::Error::new(e).context("reading the terminal")),
            },
            Ok(false) => {}
        }
        match c.request(&Request::Screen {
            vc,
            unless: Some(digest),
        }) {
            Ok(Response::Screen(v)) => {
                digest = v.digest;
                screen = v.screen();
                if let Err(e) = r.draw(&mut out, &screen, None, &status, size) {
                    break Err(e.into());
                }
            }
            Ok(Response::Unchanged) => {}
            Ok(other) => break Err(cli::client_error(c.unexpected("a screen", &other))),
            Err(e) => break Err(cli::client_error(e)),
        }
    };
    drop(raw);
    result.with_context(|| format!("virtual console {vc}"))?;
    println!("detached from virtual console {vc}; its tasks keep running");
    Ok(Verdict::Ok)
}

fn boot(socket: Option<&Path>, b: &BootArgs) -> anyhow::Result<Verdict> {
    let path = cli::socket(socket);
    if b.detach {
        return detach(&path);
    }
    // Before any thread exists: the signals are waited for by one thread.
    let stop = server::watch_signals().context("cannot watch for signals")?;
    let sock = ControlSocket::bind(&path)
        .map_err(|e| anyhow::Error::new(Refused(e.to_string())))
        .context("cannot boot")?;
    let mut cfg = SystemConfig::new(&b.root);
    cfg.sim = b.sim;
    cfg.cols = b.cols.clamp(1, 1000);
    cfg.rows = b.rows.clamp(1, 1000);
    let sys = System::boot(&cfg).context("cannot boot")?;
    let mode = match b.sim {
        Some(seed) => format!("simulation, seed {seed}"),
        None => "real time".into(),
    };
    println!(
        "spartan: system running on {} (pid {}, root {}, {mode})",
        escape(&path.display().to_string()),
        std::process::id(),
        escape(&sys.root().display().to_string()),
    );
    let _ = std::io::stdout().flush();
    server::serve(
        sys,
        sock,
        stop,
        server::ServeOptions {
            sim: b.sim,
            log: b.log,
        },
    );
    Ok(Verdict::Ok)
}

/// Starts `spartan boot` again without `--detach`, in its own process
/// group with no terminal, and returns once its socket accepts
/// connections (or reports why it ended).
fn detach(path: &Path) -> anyhow::Result<Verdict> {
    let exe = std::env::current_exe().context("cannot find the spartan binary")?;
    let args: Vec<_> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .env(spartan_services::control::SOCKET_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the system")?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let line = err.lines().next().unwrap_or("").trim();
            let line = line.strip_prefix("spartan: error: ").unwrap_or(line);
            return Err(anyhow::Error::new(Refused(format!(
                "the system exited ({status}): {line}"
            ))));
        }
        if Client::connect(path).is_ok() {
            println!(
                "spartan: system running on {} (pid {})",
                escape(&path.display().to_string()),
                child.id()
            );
            return Ok(Verdict::Ok);
        }
        if Instant::now() > until {
            return Err(anyhow::Error::new(Refused(
                "the system did not start serving within 30 s".into(),
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(socket: Option<&Path>, r: RunArgs) -> anyhow::Result<Verdict> {
    let shown = r.program.display().to_string();
    let text = r.program.to_str().map(str::to_string);
    let host = text
        .as_deref()
        .is_none_or(|t| t.starts_with('/') || t.starts_with("./") || t.starts_with("../"));
    let program = if host {
        let bytes = std::fs::read(&r.program).with_context(|| format!("cannot read {shown}"))?;
        let name = r
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into());
        Program::Bytes { name, bytes }
    } else {
        Program::Vfs(text.unwrap_or_default())
    };
    let mut c = cli::connect(socket)?;
    let resp = c
        .request(&Request::Run {
            program,
            args: r.args,
            name: r.name,
        })
        .map_err(cli::client_error)
        .with_context(|| format!("cannot run {shown}"))?;
    match resp {
        Response::Started { task, name } => {
            println!("task {task} ({}) started", escape(&name));
            Ok(Verdict::Ok)
        }
        other => Err(cli::client_error(c.unexpected("run", &other))),
    }
}

fn tasks(socket: Option<&Path>, t: &TasksArgs) -> anyhow::Result<Verdict> {
    let mut c = cli::connect(socket)?;
    let resp = c.request(&Request::Tasks).map_err(cli::client_error)?;
    let Response::Tasks { tasks } = resp else {
        return Err(cli::client_error(c.unexpected("tasks", &resp)));
    };
    let rows: Vec<&TaskInfo> = tasks
        .iter()
        .filter(|r| t.name.as_ref().is_none_or(|n| &r.name == n))
        .collect();
    if let Some(n) = &t.name
        && rows.is_empty()
    {
        return Err(anyhow::Error::new(Refused(format!("no task named {n}"))));
    }
    let mut out = String::new();
    if t.json {
        out = serde_json::to_string_pretty(&rows)?;
        out.push('\n');
    } else if t.id {
        for r in &rows {
            out.push_str(&format!("{}\n", r.id));
        }
    } else {
        out.push_str(&format!(
            "{:>5}  {:<16} {:<8} {:>7} {:>10}  {}\n",
            "ID", "NAME", "STATE", "THREADS", "MEMORY", "POLICY"
        ));
        for r in &rows {
            let mut policy = match (&r.service_id, r.checkpointable) {
                (Some(id), _) => format!("cooperative {}", escape(id)),
                (None, true) => "checkpointable".into(),
                (None, false) => "neither".into(),
            };
            if r.in_image > 0 {
                // A lazy restore still loading: its image must stay.
                policy.push_str(&format!(", {} bytes still in its image", r.in_image));
            }
            out.push_str(&format!(
                "{:>5}  {:<16} {:<8} {:>7} {:>10}  {}\n",
                r.id,
                escape(&r.name),
                r.state,
                r.threads,
                r.memory,
                policy
            ));
        }
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(Verdict::Ok)
}
