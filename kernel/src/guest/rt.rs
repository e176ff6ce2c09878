//! A small WAT runtime for guest test programs: [`program`] wraps a module
//! body with an import of every system call (named `$<call>`, signatures
//! generated from [`Sysno::params`]), one page of memory and helpers, so
//! tests read as programs.
//!
//! The runtime's buffers are per thread (threads of a task share memory
//! and may be preempted inside a helper): thread `t` uses the 256 bytes at
//! [`RT_BASE`]` + (t mod 64) * 256` (answer buffer of `$call_sync` at +0,
//! event record of `$wait` at +64, digits of `$log_num` below +256).
//! Programs keep their data below [`RT_BASE`], from [`USER_BASE`] on.
//! Helpers:
//!
//! - `$print (ptr i32) (len i32)`: a line in the kernel log.
//! - `$log_num (v i64)`: the decimal value as a line in the kernel log;
//!   `$num_text (v i64) -> i32` writes the digits into the thread's buffer
//!   and returns where they start (they end at `$num_end`).
//! - `$call_sync (phone i32) (method i64) (a1 i64) -> i64`: the answer's
//!   return value; `$answer_word (i i32) -> i64` reads its words.
//! - `$call_async (phone i32) (method i64) (a1 i64) -> i64`: the call id.
//! - `$wait (timeout i64) -> i64`: the event kind (or `-errno`);
//!   `$ev (i i32) -> i64` reads word `i` of the event record.
//! - `$answer (call i64) (retval i64) (a1 i64) -> i64`.
//! - `$call_sync3 (phone i32) (method i64) (a1 i64) (a2 i64) (a3 i64) -> i64`:
//!   `$call_sync` with three arguments.
//! - `$share_out (phone i32) (base i64) (size i64) (flags i64) -> i64`:
//!   offers the area at `base` (IPC_M_SHARE_OUT), the answer's return
//!   value; `$answer_word 1` is then the receiver's base. The receiver
//!   accepts with `$answer call 0 its_base`.
//! - `$share_in (phone i32) (dst i64) (size i64) (flags i64) -> i64`: asks
//!   for an area at `dst` (IPC_M_SHARE_IN); the supplier answers with
//!   `$answer call 0 its_area_base`.
//!
//! Area flags: 1 read, 2 write, 3 both. Threads: `thread_create` takes a
//! table 0 index, so a program that starts threads declares
//! `(table 1 funcref)` and `(elem (i32.const 0) $worker)`.

use crate::syscall::{Sysno, WasmTy};

/// Start of memory free for the program (data segments, variables).
pub const USER_BASE: u32 = 0x400;
/// Start of the runtime's per-thread buffers (64 threads of 256 bytes).
pub const RT_BASE: u32 = 0x8000;

const HELPERS: &str = r#"
  (memory (export "memory") 1)
  (func $tls (result i32)
    (i32.add (i32.const 0x8000)
      (i32.shl (i32.wrap_i64 (i64.and (call $thread_id) (i64.const 63))) (i32.const 8))))
  (func $print (param $ptr i32) (param $len i32)
    (drop (call $log (local.get $ptr) (local.get $len))))
  (func $num_text (param $v i64) (result i32) (local $p i32) (local $neg i32)
    (local.set $p (call $num_end))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then (local.set $neg (i32.const 1))
            (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p)
        (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $v) (i64.const 0))))
    (if (local.get $neg)
      (then (local.set $p (i32.sub (local.get $p) (i32.const 1)))
            (i32.store8 (local.get $p) (i32.const 45))))
    (local.get $p))
  (func $num_end (result i32) (i32.add (call $tls) (i32.const 0xf0)))
  (func $log_num (param $v i64) (local $p i32)
    (local.set $p (call $num_text (local.get $v)))
    (drop (call $log (local.get $p) (i32.sub (call $num_end) (local.get $p)))))
  (func $call_sync (param $phone i32) (param $m i64) (param $a1 i64) (result i64)
    (call $ipc_call_sync (local.get $phone) (local.get $m) (local.get $a1)
      (i64.const 0) (i64.const 0) (i64.const 0) (i64.const 0) (call $tls)))
  (func $answer_word (param $i i32) (result i64)
    (i64.load (i32.add (call $tls) (i32.shl (local.get $i) (i32.const 3)))))
  (func $call_async (param $phone i32) (param $m i64) (param $a1 i64) (result i64)
    (call $ipc_call_async (local.get $phone) (local.get $m) (local.get $a1)
      (i64.const 0) (i64.const 0) (i64.const 0) (i64.const 0)))
  (func $wait (param $timeout i64) (result i64)
    (call $ipc_wait (i32.add (call $tls) (i32.const 64)) (local.get $timeout)))
  (func $ev (param $i i32) (result i64)
    (i64.load (i32.add (i32.add (call $tls) (i32.const 64)) (i32.shl (local.get $i) (i32.const 3)))))
  (func $answer (param $call i64) (param $rv i64) (param $a1 i64) (result i64)
    (call $ipc_answer (local.get $call) (local.get $rv) (local.get $a1)
      (i64.const 0) (i64.const 0) (i64.const 0) (i64.const 0)))
  (func $call_sync3 (param $phone i32) (param $m i64) (param $a1 i64) (param $a2 i64)
    (param $a3 i64) (result i64)
    (call $ipc_call_sync (local.get $phone) (local.get $m) (local.get $a1) (local.get $a2)
      (local.get $a3) (i64.const 0) (i64.const 0) (call $tls)))
  (func $share_out (param $phone i32) (param $base i64) (param $size i64) (param $flags i64)
    (result i64)
    (call $call_sync3 (local.get $phone) (i64.const 5) (local.get $base) (local.get $size)
      (local.get $flags)))
  (func $share_in (param $phone i32) (param $dst i64) (param $size i64) (param $flags i64)
    (result i64)
    (call $call_sync3 (local.get $phone) (i64.const 6) (local.get $dst) (local.get $size)
      (local.get $flags)))
"#;

/// The import declaration of one system call.
pub fn import_decl(nr: Sysno) -> String {
    let params: Vec<&str> = nr
        .params()
        .iter()
        .map(|t| match t {
            WasmTy::I32 => "i32",
            WasmTy::I64 => "i64",
        })
        .collect();
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(" (param {})", params.join(" "))
    };
    format!(
        "  (import \"spartan\" \"{n}\" (func ${n}{params} (result i64)))\n",
        n = nr.name()
    )
}

/// A complete module: every system call import, the runtime, then `body`
/// (functions, exports and data segments at or above [`USER_BASE`]).
pub fn program(body: &str) -> String {
    let mut s = String::from("(module\n");
    for nr in Sysno::ALL {
        s.push_str(&import_decl(nr));
    }
    s.push_str(HELPERS);
    s.push_str(body);
    s.push_str("\n)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::load::{LoadError, resolve_imports};
    use crate::machine::Module;

    #[test]
    fn runtime_resolves_every_call_in_order() {
        let m = Module::new(program("").as_bytes()).expect("runtime module is valid");
        assert_eq!(resolve_imports(&m).expect("imports resolve"), Sysno::ALL);
    }

    #[test]
    fn bad_imports_are_refused_by_name() {
        let unknown = r#"(module (import "spartan" "fork" (func (result i64))))"#;
        let m = Module::new(unknown.as_bytes()).expect("valid");
        assert!(matches!(resolve_imports(&m), Err(LoadError::UnknownSyscall(n)) if n == "fork"));
        let sig = r#"(module (import "spartan" "log" (func (param i32) (result i64))))"#;
        let m = Module::new(sig.as_bytes()).expect("valid");
        let e = resolve_imports(&m).expect_err("wrong signature");
        assert!(e.to_string().contains("(i32 i32) -> (i64)"), "{e}");
        let res = r#"(module (import "spartan" "log" (func (param i32 i32) (result i32))))"#;
        let m = Module::new(res.as_bytes()).expect("valid");
        assert!(matches!(
            resolve_imports(&m),
            Err(LoadError::Signature { .. })
        ));
        let foreign = r#"(module (import "env" "log" (func (param i32 i32) (result i64))))"#;
        let m = Module::new(foreign.as_bytes()).expect("valid");
        assert!(matches!(
            resolve_imports(&m),
            Err(LoadError::ForeignImport { .. })
        ));
        let mem = r#"(module (import "spartan" "memory" (memory 1)))"#;
        let m = Module::new(mem.as_bytes()).expect("valid");
        assert!(matches!(
            resolve_imports(&m),
            Err(LoadError::ForeignImport { .. })
        ));
    }
}
