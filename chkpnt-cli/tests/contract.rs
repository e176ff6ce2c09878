//! The real `chkpnt` binary keeps the exit-status and error-line contract
//! shared by every Spartan command, even with `RUST_BACKTRACE` set (here:
//! no system runs on the socket, a refusal). The commands against a
//! running system are tested end to end in `services/tests/e2e.rs`.

use std::process::Command;

fn chkpnt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chkpnt"))
        .args(args)
        .env("SPARTAN_SOCKET", "/nonexistent/spartan.sock")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running chkpnt")
}

#[test]
fn a_refusal_is_one_line_and_exit_1_even_with_backtraces_on() {
    let out = chkpnt(&["-o", "out\u{1b}[2J", "7"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("chkpnt: error: cannot checkpoint task 7 into out\\x1b[2J: "),
        "{err}"
    );
    assert!(
        err.contains("no system is running on /nonexistent/spartan.sock"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let out = chkpnt(&["-o", "out", "not-a-task"]);
    assert_eq!(out.status.code(), Some(2));
    let out = chkpnt(&[]);
    assert_eq!(out.status.code(), Some(2));
}
