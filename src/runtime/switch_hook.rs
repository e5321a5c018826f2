//! The switch hook: what must follow a green thread across switches.
//!
//! Two pieces of per-OS-thread state belong to the green thread that runs,
//! not to the worker thread:
//!
//! - the trap-handling state of `shoal-instance`
//!   ([`ThreadState`]: the innermost catch point and the bounds of the stack
//!   wasm runs on). A trap jumps to the innermost catch point, so the state
//!   installed must always be that of the running green thread: a trap
//!   must never jump onto another (suspended) green thread's stack;
//! - the CPU clock (`cpu_clock.rs`), which counts the ticks a green thread
//!   runs, for CPU budgets.
//!
//! # Protocol
//!
//! The executor calls [`on_resume`] right before every run of a green
//! thread (its stack bounds already published) and [`on_suspend`] right
//! after it suspends or finishes, with the green thread's own
//! [`SwitchSlot`] (32 bytes, empty on its first run):
//!
//! 1. `on_resume`: take the green thread's [`GreenState`] from the slot, or
//!    on its first run make a fresh one (`ThreadState::for_stack` with the
//!    green thread's stack bounds, so that wasm's stack limit is computed
//!    inside the coroutine stack, and zero CPU ticks); install its trap
//!    state with `swap_thread_state`, start its CPU clock, and start a new
//!    timeslice for its instance (`slice_clock.rs`).
//! 2. The green thread runs: wasm, host functions, yields from the epoch
//!    callback, parks in host functions. Every `catch_traps` it enters
//!    pushes a catch point that lives on its own stack.
//! 3. `on_suspend`: stop the CPU clock, take the trap state back out
//!    (installing the worker's own, [`ThreadState::os_thread`]) and store
//!    both in the slot.
//!
//! A green thread suspended inside wasm keeps its catch points on its
//! stack, recorded in the slot; it is only ever resumed by the worker that
//! owns it (green threads do not migrate), which installs them again.
//!
//! The hook is installed on every executor a [`Runtime`](super::Runtime)
//! builds; it costs a few thread-local accesses and one epoch load per
//! switch and runs for every green thread of that executor, whether it runs
//! wasm or not.

use super::cpu_clock;
use super::slice_clock;
use shoal_instance::trap_handling::{swap_thread_state, ThreadState};
use shoal_scheduler::{current_stack_bounds, SwitchHook, SwitchSlot};

/// What the slot keeps for each green thread (32 bytes: fits a
/// [`SwitchSlot`]).
#[derive(Clone, Copy)]
struct GreenState {
    trap: ThreadState,
    cpu_ticks: u64,
}

/// The hook to install with `ExecutorBuilder::switch_hook`.
pub(crate) const HOOK: SwitchHook = SwitchHook {
    on_resume,
    on_suspend,
};

fn on_resume(slot: &mut SwitchSlot) {
    let state = slot.get::<GreenState>().unwrap_or_else(|| GreenState {
        // The executor publishes the stack bounds before calling the hook;
        // without them (never expected) the green thread gets the OS
        // thread's state, under which `catch_traps` uses the worker
        // thread's own stack bounds: conservative, never a wrong jump.
        trap: current_stack_bounds()
            .map(|b| ThreadState::for_stack(b.usable_start, b.top))
            .unwrap_or_else(ThreadState::os_thread),
        cpu_ticks: 0,
    });
    // SAFETY: `state.trap` is this green thread's own state: saved by
    // `on_suspend` the last time it ran on this worker (green threads never
    // migrate), or fresh from its real stack bounds. It is installed right
    // before the green thread runs. The value it replaces is the worker's
    // own state (`os_thread`, put back by the last `on_suspend`), which is
    // what `on_suspend` installs again.
    let _worker_state = unsafe { swap_thread_state(state.trap) };
    let epoch = cpu_clock::resume(state.cpu_ticks);
    slice_clock::on_resume(state.cpu_ticks, epoch);
}

fn on_suspend(slot: &mut SwitchSlot) {
    let cpu_ticks = cpu_clock::suspend();
    // SAFETY: the green thread has stopped running; the worker's own state
    // goes back in, and the green thread's state (returned) is kept in its
    // slot, to be installed by `on_resume` before it runs again.
    let trap = unsafe { swap_thread_state(ThreadState::os_thread()) };
    slot.put(GreenState { trap, cpu_ticks });
}
