//! Helpers for host functions that wait.
//!
//! Host functions are plain Rust closures running on the instance's green
//! thread. Waiting in one (a sleep, a channel, a socket) parks that green
//! thread only; its worker runs the other instances meanwhile.
//!
//! A parked instance may be cancelled ([`JoinHandle::cancel`], a cancelling
//! shutdown). The way out is to return `Err(Trap)` with
//! [`TrapKind::Cancelled`] from the host function: the trap unwinds the
//! wasm frames through their catch point and the instance ends. The helpers
//! here do exactly that, so a host function can use `?`:
//!
//! ```no_run
//! # use shoal::{Linker, Trap};
//! # fn f(linker: &mut Linker<()>) -> shoal::Result<()> {
//! linker.func_wrap("env", "sleep_ms", |ms: i32| -> Result<(), Trap> {
//!     shoal::runtime::host::sleep(std::time::Duration::from_millis(ms.max(0) as u64))
//! })?;
//! # Ok(()) }
//! ```
//!
//! They use the scheduler's `try_` waits, which report cancellation instead
//! of unwinding. (The scheduler's plain waits — `sleep`, channel `recv`,
//! `JoinHandle::join` — unwind the green thread when it is cancelled; inside
//! a host function that unwind is caught by the host-call shim and carried
//! past the wasm frames safely, but it ends the instance as a panic-like
//! unwind rather than a trap. Wrap such calls in [`blocking`] to get the
//! trap instead.)
//!
//! [`JoinHandle::cancel`]: super::JoinHandle::cancel

use shoal_instance::{Trap, TrapKind};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

/// The trap a cancelled instance ends with.
pub fn cancelled() -> Trap {
    Trap::new(TrapKind::Cancelled)
}

/// `Err(cancelled())` if the instance's green thread has been cancelled.
pub fn check_cancelled() -> Result<(), Trap> {
    if shoal_scheduler::is_cancelled() {
        Err(cancelled())
    } else {
        Ok(())
    }
}

/// Sleeps for at least `duration`, parking only the instance's green
/// thread; `Err(cancelled())` if it is cancelled meanwhile.
pub fn sleep(duration: Duration) -> Result<(), Trap> {
    check_cancelled()?;
    shoal_scheduler::try_sleep(duration).map_err(|_| cancelled())
}

/// Lets the other green threads of the worker run, then continues;
/// `Err(cancelled())` if the instance is cancelled.
pub fn yield_now() -> Result<(), Trap> {
    shoal_scheduler::try_yield_now().map_err(|_| cancelled())
}

/// Parks until unparked (see `shoal_scheduler::park`; may return
/// spuriously: call it in a loop that re-checks a condition);
/// `Err(cancelled())` if the instance is cancelled.
pub fn park() -> Result<(), Trap> {
    check_cancelled()?;
    shoal_scheduler::try_park().map_err(|_| cancelled())
}

/// [`park`] with a time limit.
pub fn park_timeout(timeout: Duration) -> Result<(), Trap> {
    check_cancelled()?;
    shoal_scheduler::try_park_timeout(timeout).map_err(|_| cancelled())
}

/// Runs `f`, which may wait with the scheduler's plain (unwinding)
/// functions — channel `send`/`recv`, `JoinHandle::join`, `sleep` — and
/// turns the unwind of a cancellation into `Err(cancelled())`. Real panics
/// go on unwinding.
pub fn blocking<R>(f: impl FnOnce() -> R) -> Result<R, Trap> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) if shoal_scheduler::is_cancel_unwind(&*payload) => {
            drop(payload);
            Err(cancelled())
        }
        Err(payload) => resume_unwind(payload),
    }
}

/// The trap for an I/O error of a blocking-style socket
/// (`shoal_scheduler::net`): [`cancelled()`] if the wait was cancelled,
/// else a host trap carrying the error's message.
pub fn io_trap(error: &std::io::Error) -> Trap {
    if shoal_scheduler::io::is_cancelled(error) {
        cancelled()
    } else {
        Trap::host(error.to_string())
    }
}
