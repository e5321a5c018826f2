//! `proc_exit`, `proc_raise` and `sched_yield`.

use super::errno::{CallError, CallResult, Errno};
use super::guest_memory::GuestMemory;
use super::host_io;
use super::WasiCtx;
use shoal_instance::{Trap, TrapKind};

/// `proc_exit(code)`: records the code and ends the instance (only the
/// instance: it unwinds as a `Trap { kind: Exit(code) }` to whoever called
/// into wasm; the process goes on).
pub fn proc_exit(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, code: u32) -> CallResult {
    let code = code as i32;
    ctx.exit_code = Some(code);
    Err(CallError::Trap(Trap::new(TrapKind::Exit(code))))
}

/// `proc_raise(sig)`: signals are not supported (`ENOTSUP`); wasi-libc
/// does not use it.
pub fn proc_raise(_ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, _signal: u32) -> CallResult {
    Err(Errno::NotSup.into())
}

/// `sched_yield()`: yields the green thread (the OS thread off one). A
/// cancelled instance ends here with `Trap { kind: Cancelled }`.
pub fn sched_yield(_ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>) -> CallResult {
    host_io::yield_now()
}
