//! `spartan_fixtures::hello_wasm` (written in C with `spartan.h`) with the
//! naming service, the console and the VFS: the header's system calls and
//! service helpers work (console size, styled writes, file write, seek,
//! read back, a thread and a futex, a blocking key read).

use spartan_kernel::guest::{SchedConfig, Scheduler};
use spartan_kernel::kernel::{Kernel, KernelConfig};
use spartan_kernel::sched::sim::RunEnd;
use spartan_kernel::task::TaskPolicy;
use spartan_services::Shared;
use spartan_services::console::{Console, style};
use spartan_services::ns::NamingService;
use spartan_services::vfs::Vfs;

#[test]
fn hello_in_c_uses_console_files_threads_and_keys() {
    let root = tempfile::tempdir().unwrap();
    let mut k = Kernel::new(KernelConfig::simulation(3));
    let ns = NamingService::spawn(&mut k);
    let console = Shared::new(Console::spawn(&mut k, &ns, 60, 6).unwrap());
    let vfs = Vfs::spawn(&mut k, &ns, root.path()).unwrap();
    let mut s = Scheduler::new(SchedConfig::default());
    let (task, _) = s
        .spawn_guest(
            &mut k,
            "hello",
            TaskPolicy::Checkpointable,
            spartan_fixtures::hello_wasm(),
            "main",
            &[],
        )
        .unwrap();
    ns.connect(&mut k, task).unwrap();
    s.add_native(Box::new(console.clone()));
    s.add_native(Box::new(vfs));
    s.add_native(Box::new(ns));
    let mut settled = false;
    for _ in 0..100_000 {
        if s.run(&mut k, 1) == RunEnd::Deadlock {
            settled = true;
            break;
        }
    }
    assert!(settled, "hello waits for a key");
    assert!(
        console
            .0
            .borrow_mut()
            .screen(0)
            .text()
            .contains("press a key")
    );
    console
        .0
        .borrow_mut()
        .push_key(&mut k, 0, u64::from('x'), 0);
    for _ in 0..100_000 {
        if k.task(task).is_none() {
            break;
        }
        s.run(&mut k, 1);
    }
    let screen = console.0.borrow_mut().screen(0).clone();
    let log: Vec<String> = k.log().iter().map(|l| l.text.clone()).collect();
    assert!(log.iter().any(|l| l == "hello: done"), "{log:?}");
    assert_eq!(
        screen.text(),
        "hello from C on a console of 60x6\n\
         read back from offset 11: hello.c\n\
         the thread said 42\n\
         press a key\n\
         key: x\n\
         \n"
    );
    let bold_cyan = style::word(style::CYAN, 0, style::BOLD);
    assert_eq!(screen.cell(0, 0).style, bold_cyan, "labels are styled");
    assert_eq!(screen.cell(29, 0).style, 0, "text after them is not");
    assert_eq!(
        std::fs::read_to_string(root.path().join("hello.txt")).unwrap(),
        "written by hello.c\n"
    );
}
