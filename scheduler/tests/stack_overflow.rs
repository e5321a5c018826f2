//! A green thread that overflows its stack hits its guard area (it does not
//! silently run into a neighbouring stack), and `stack_guard_contains`
//! recognises the fault address from inside a signal handler.
//!
//! The overflow runs in a child process (this test binary re-executed with
//! an environment variable) since it ends that process.

use std::hint::black_box;
use std::process::Command;

use shoal_scheduler::{stack_guard_contains, Executor};

const CHILD_ENV: &str = "SHOAL_STACK_OVERFLOW_CHILD";
const GUARD_HIT: i32 = 42;
const OTHER_FAULT: i32 = 43;

extern "C" fn on_segv(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let code = if stack_guard_contains(addr) {
        GUARD_HIT
    } else {
        OTHER_FAULT
    };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(code) }
}

fn install_handler() {
    // SAFETY: a zeroed sigaction is valid; we fill in an SA_SIGINFO handler
    // that only calls async-signal-safe functions, on the alternate stack
    // std sets up for its threads.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_segv as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

#[inline(never)]
#[allow(unconditional_recursion)] // Recursing until the stack overflows is the point.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    black_box(recurse(depth + 1)) + u64::from(frame[(depth % 512) as usize])
}

fn child() {
    install_handler();
    let exec = Executor::builder()
        .workers(1)
        .stack_size(64 * 1024)
        .build()
        .expect("build");
    // A neighbour whose stack sits next to the overflowing one.
    let neighbour = exec.spawn(|| loop {
        shoal_scheduler::park();
    });
    let overflow = exec.spawn(|| recurse(0)).expect("spawn");
    let _ = overflow.join();
    drop(neighbour);
    // Not reached: the overflow ends the process in the handler.
    std::process::exit(0);
}

#[test]
fn overflow_faults_in_the_guard_area() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new(exe)
        .args([
            "overflow_faults_in_the_guard_area",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .status()
        .expect("run child");
    assert_eq!(
        status.code(),
        Some(GUARD_HIT),
        "child should fault in its guard area, got {status:?}"
    );
}
