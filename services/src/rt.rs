//! The guest runtime for programs that use the system's services: the
//! kernel's WAT runtime ([`spartan_kernel::guest::rt`]: every system call,
//! `$call_sync`, `$wait`, `$log_num`, ...) plus helpers for the service
//! protocols, so that a guest connects to a service, prints to a console
//! and reads keys in a few lines:
//!
//! - `$connect (service i64) -> i32`: a phone to the service with that
//!   number, through the naming service on phone 0 (`-errno` if refused).
//! - `$con_write (phone i32) (ptr i32) (len i32) -> i64`: writes the bytes
//!   (UTF-8) at the console's cursor; `$con_print` drops the result.
//! - `$con_num (phone i32) (v i64)`: writes `v` in decimal.
//! - `$con_goto (phone i32) (col i64) (row i64)`, `$con_clear (phone i32)`,
//!   `$con_style (phone i32) (style i64)` (foreground | background << 8 |
//!   attributes << 16).
//! - `$con_size (phone i32) -> i64`: columns in the low 32 bits, rows in
//!   the high ones.
//! - `$con_key (phone i32) -> i64`: waits for a key (a Unicode scalar
//!   value or a `console::key` code), `-errno` on failure.
//!
//! - `$vfs_open (phone i32) (path i32) (len i32) (flags i64) -> i64`: a
//!   file descriptor (`vfs::flags`), or `-errno`.
//! - `$vfs_write (phone i32) (fd i64) (ptr i32) (len i32) -> i64`, `$vfs_read`
//!   (same arguments): bytes written or read at the file's position, or
//!   `-errno`.
//! - `$vfs_seek (phone i32) (fd i64) (offset i64) (whence i64) -> i64`,
//!   `$vfs_close (phone i32) (fd i64) -> i64`.
//! - `$vfs_chdir (phone i32) (path i32) (len i32) -> i64`: 0 or `-errno`.
//! - `$vfs_getcwd (phone i32) (buf i32) (room i32) -> i64`: the length of
//!   the working directory written at `buf`, or `-errno`.
//! - `$vfs_readdir (phone i32) (path i32) (len i32) (skip i64) (buf i32)
//!   (room i32) -> i64`: the entries of the directory at the path (`len`
//!   0: the working directory) from entry `skip` on, `\n`-terminated,
//!   written at `buf`; their length (0 at the end) or `-errno`.
//!
//! - `$ns_time_map (dst i64) -> i64`: maps the naming service's time area
//!   (read only, 4096 bytes) at `dst` (0 or `-errno`); the clock in ns is
//!   then `(i64.load dst)`.
//!
//! - `$load (phone i32) (cmd i32) (len i32) -> i64`: starts the program of
//!   the command (a VFS path and integer arguments, separated by spaces)
//!   through the loader; the new task's id, or `-errno`.
//!
//! The helpers use the kernel runtime's per-thread buffers (`$tls`), so
//! threads may use them at the same time.

use crate::console::{
    CONSOLE_CLEAR, CONSOLE_GET_EVENT, CONSOLE_GET_SIZE, CONSOLE_GOTO, CONSOLE_SET_STYLE,
};
use crate::loader::LOADER_SPAWN;
use crate::vfs::{
    VFS_CHDIR, VFS_CLOSE, VFS_GETCWD, VFS_OPEN, VFS_READ, VFS_READDIR, VFS_SEEK, VFS_WRITE,
};
use spartan_kernel::ipc::method::{IPC_M_CONNECT_ME_TO, IPC_M_DATA_READ, IPC_M_DATA_WRITE};

fn helpers() -> String {
    format!(
        r#"
  (func $connect (param $svc i64) (result i32) (local $r i64)
    (local.set $r (call $call_sync (i32.const 0) (i64.const {connect}) (local.get $svc)))
    (if (result i32) (i64.ne (local.get $r) (i64.const 0))
      (then (i32.wrap_i64 (local.get $r)))
      (else (i32.wrap_i64 (call $answer_word (i32.const 5))))))
  (func $con_write (param $c i32) (param $ptr i32) (param $len i32) (result i64)
    (call $call_sync3 (local.get $c) (i64.const {write})
      (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $len)) (i64.const 0)))
  (func $con_print (param $c i32) (param $ptr i32) (param $len i32)
    (drop (call $con_write (local.get $c) (local.get $ptr) (local.get $len))))
  (func $con_num (param $c i32) (param $v i64) (local $p i32)
    (local.set $p (call $num_text (local.get $v)))
    (call $con_print (local.get $c) (local.get $p) (i32.sub (call $num_end) (local.get $p))))
  (func $con_goto (param $c i32) (param $col i64) (param $row i64)
    (drop (call $call_sync3 (local.get $c) (i64.const {goto}) (local.get $col) (local.get $row)
      (i64.const 0))))
  (func $con_clear (param $c i32)
    (drop (call $call_sync (local.get $c) (i64.const {clear}) (i64.const 0))))
  (func $con_style (param $c i32) (param $style i64)
    (drop (call $call_sync (local.get $c) (i64.const {style}) (local.get $style))))
  (func $con_size (param $c i32) (result i64)
    (drop (call $call_sync (local.get $c) (i64.const {size}) (i64.const 0)))
    (i64.or (call $answer_word (i32.const 1))
      (i64.shl (call $answer_word (i32.const 2)) (i64.const 32))))
  (func $con_key (param $c i32) (result i64) (local $r i64)
    (local.set $r (call $call_sync (local.get $c) (i64.const {key}) (i64.const 0)))
    (if (result i64) (i64.ne (local.get $r) (i64.const 0))
      (then (local.get $r))
      (else (call $answer_word (i32.const 1)))))
  (func $vfs_open (param $c i32) (param $p i32) (param $len i32) (param $flags i64) (result i64)
    (local $r i64)
    (local.set $r (call $call_sync3 (local.get $c) (i64.const {write})
      (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $len)) (i64.const {vopen})))
    (if (i64.ne (local.get $r) (i64.const 0)) (then (return (local.get $r))))
    (local.set $r (call $call_sync (local.get $c) (i64.const {vopen}) (local.get $flags)))
    (if (result i64) (i64.ne (local.get $r) (i64.const 0))
      (then (local.get $r))
      (else (call $answer_word (i32.const 1)))))
  (func $vfs_data (param $c i32) (param $m i64) (param $op i64) (param $fd i64) (param $p i32)
    (param $len i32) (result i64) (local $r i64)
    (local.set $r (call $ipc_call_sync (local.get $c) (local.get $m)
      (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $len)) (local.get $op)
      (local.get $fd) (i64.const 0) (call $tls)))
    (if (result i64) (i64.ne (local.get $r) (i64.const 0))
      (then (local.get $r))
      (else (call $answer_word (i32.const 2)))))
  (func $vfs_write (param $c i32) (param $fd i64) (param $p i32) (param $len i32) (result i64)
    (call $vfs_data (local.get $c) (i64.const {write}) (i64.const {vwrite}) (local.get $fd)
      (local.get $p) (local.get $len)))
  (func $vfs_read (param $c i32) (param $fd i64) (param $p i32) (param $len i32) (result i64)
    (call $vfs_data (local.get $c) (i64.const {read}) (i64.const {vread}) (local.get $fd)
      (local.get $p) (local.get $len)))
  (func $vfs_seek (param $c i32) (param $fd i64) (param $off i64) (param $whence i64) (result i64)
    (local $r i64)
    (local.set $r (call $call_sync3 (local.get $c) (i64.const {vseek}) (local.get $fd)
      (local.get $off) (local.get $whence)))
    (if (result i64) (i64.ne (local.get $r) (i64.const 0))
      (then (local.get $r))
      (else (call $answer_word (i32.const 1)))))
  (func $vfs_close (param $c i32) (param $fd i64) (result i64)
    (call $call_sync (local.get $c) (i64.const {vclose}) (local.get $fd)))
  (func $ns_time_map (param $dst i64) (result i64)
    (call $share_in (i32.const 0) (local.get $dst) (i64.const {tsize}) (i64.const 1)))
  (func $vfs_path (param $c i32) (param $op i64) (param $p i32) (param $len i32) (result i64)
    (call $call_sync3 (local.get $c) (i64.const {write})
      (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $len)) (local.get $op)))
  (func $vfs_chdir (param $c i32) (param $p i32) (param $len i32) (result i64) (local $r i64)
    (local.set $r (call $vfs_path (local.get $c) (i64.const {vchdir}) (local.get $p) (local.get $len)))
    (if (i64.ne (local.get $r) (i64.const 0)) (then (return (local.get $r))))
    (call $call_sync (local.get $c) (i64.const {vchdir}) (i64.const 0)))
  (func $vfs_getcwd (param $c i32) (param $buf i32) (param $room i32) (result i64)
    (call $vfs_data (local.get $c) (i64.const {read}) (i64.const {vgetcwd}) (i64.const 0)
      (local.get $buf) (local.get $room)))
  (func $vfs_readdir (param $c i32) (param $p i32) (param $len i32) (param $skip i64)
    (param $buf i32) (param $room i32) (result i64) (local $r i64)
    (if (i32.ne (local.get $len) (i32.const 0))
      (then
        (local.set $r (call $vfs_path (local.get $c) (i64.const {vreaddir}) (local.get $p)
          (local.get $len)))
        (if (i64.ne (local.get $r) (i64.const 0)) (then (return (local.get $r))))))
    (call $vfs_data (local.get $c) (i64.const {read}) (i64.const {vreaddir}) (local.get $skip)
      (local.get $buf) (local.get $room)))
  (func $load (param $c i32) (param $p i32) (param $len i32) (result i64) (local $r i64)
    (local.set $r (call $call_sync3 (local.get $c) (i64.const {write})
      (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $len)) (i64.const 0)))
    (if (i64.ne (local.get $r) (i64.const 0)) (then (return (local.get $r))))
    (local.set $r (call $call_sync (local.get $c) (i64.const {spawn}) (i64.const 0)))
    (if (result i64) (i64.ne (local.get $r) (i64.const 0))
      (then (local.get $r))
      (else (call $answer_word (i32.const 1)))))
"#,
        spawn = LOADER_SPAWN,
        read = IPC_M_DATA_READ,
        vopen = VFS_OPEN,
        vwrite = VFS_WRITE,
        vread = VFS_READ,
        vseek = VFS_SEEK,
        vclose = VFS_CLOSE,
        tsize = crate::ns::TIME_AREA_SIZE,
        vchdir = VFS_CHDIR,
        vgetcwd = VFS_GETCWD,
        vreaddir = VFS_READDIR,
        connect = IPC_M_CONNECT_ME_TO,
        write = IPC_M_DATA_WRITE,
        goto = CONSOLE_GOTO,
        clear = CONSOLE_CLEAR,
        style = CONSOLE_SET_STYLE,
        size = CONSOLE_GET_SIZE,
        key = CONSOLE_GET_EVENT,
    )
}

/// A complete module: the kernel runtime, the service helpers, `body`.
pub fn program(body: &str) -> String {
    spartan_kernel::guest::rt::program(&format!("{}\n{body}", helpers()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_is_a_valid_module() {
        let m = spartan_kernel::machine::Module::new(super::program("").as_bytes());
        assert!(m.is_ok(), "{:?}", m.err());
    }
}
