//! The real `rstr` binary keeps the exit-status and error-line contract
//! shared by every Spartan command, even with `RUST_BACKTRACE` set (here:
//! no system runs on the socket, a refusal). The commands against a
//! running system are tested end to end in `services/tests/e2e.rs`.

use std::process::Command;

fn rstr(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rstr"))
        .args(args)
        .env("SPARTAN_SOCKET", "/nonexistent/spartan.sock")
        .env("RUST_BACKTRACE", "full")
        .output()
        .expect("running rstr")
}

#[test]
fn a_refusal_is_one_line_and_exit_1_even_with_backtraces_on() {
    let out = rstr(&["img\u{7}", "--err-resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("rstr: error: cannot restore img\\x07: "),
        "{err}"
    );
    assert!(
        err.contains("no system is running on /nonexistent/spartan.sock"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(rstr(&[]).status.code(), Some(2));
    assert_eq!(rstr(&["img", "--no-such-flag"]).status.code(), Some(2));
}
