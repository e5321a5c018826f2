//! A CPU clock per green thread, in epoch ticks.
//!
//! The CPU budget of an instance ([`Contract::cpu_budget_epochs`]) counts
//! the time its green thread actually ran, not the time it spent parked in
//! a host call (asleep, waiting for a socket) or waiting in the run queue.
//! The runtime's switch hook (`switch_hook.rs`) keeps that time:
//!
//! 1. `resume(saved)` (on every resume of a green thread): the green
//!    thread's CPU ticks so far become the clock's base, and the current
//!    epoch is noted as the start of this run.
//! 2. While it runs, [`now`] = base + (epoch now − start of the run).
//! 3. `suspend()` (on every suspension): returns the new total, which the
//!    hook saves in the green thread's switch slot.
//!
//! The epoch advances once per tick, so a run is counted in whole ticks: a
//! run that spans a tick boundary counts one tick, one that does not counts
//! none. Over many runs this is an unbiased estimate of the time run (a run
//! of length `d` crosses a boundary with probability `d / tick`), and for a
//! spinning instance it is exact: its slices end at tick boundaries. While
//! the ticks are coarse (`shoal_scheduler::ticks_are_coarse`: nothing is
//! being preempted) the epoch advances `COARSE_STRIDE` ticks at a time, so
//! a run spanning one of those steps counts that many: still unbiased,
//! four times coarser.
//!
//! Outside a green thread of a runtime (a plain OS thread, or a green thread
//! of an executor without the runtime's hook) there is no per-thread CPU
//! time to read: [`now`] is the epoch itself (wall time in ticks).
//!
//! [`Contract::cpu_budget_epochs`]: crate::Contract::cpu_budget_epochs

use std::cell::Cell;

struct Clock {
    /// CPU ticks of the running green thread before this run.
    base: Cell<u64>,
    /// Epoch when this run started.
    run_start: Cell<u64>,
    /// Ticker wake-ups counted when this run started.
    run_start_wakes: Cell<u64>,
    /// Whether a green thread of a runtime runs now (between `resume` and
    /// `suspend`).
    active: Cell<bool>,
}

thread_local! {
    static CLOCK: Clock = const {
        Clock {
            base: Cell::new(0),
            run_start: Cell::new(0),
            run_start_wakes: Cell::new(0),
            active: Cell::new(false),
        }
    };
}

/// Starts a run of a green thread that has used `saved` ticks so far;
/// returns the epoch it read (the start of the run).
#[inline]
pub(crate) fn resume(saved: u64) -> u64 {
    let now = shoal_scheduler::epoch_now();
    let wakes = shoal_scheduler::ticker_wakes();
    CLOCK.with(|c| {
        c.base.set(saved);
        c.run_start.set(now);
        c.run_start_wakes.set(wakes);
        c.active.set(true);
    });
    now
}

/// Ends the run; returns the green thread's CPU ticks so far.
#[inline]
pub(crate) fn suspend() -> u64 {
    let now = shoal_scheduler::epoch_now();
    CLOCK.with(|c| {
        c.active.set(false);
        c.base
            .get()
            .saturating_add(now.saturating_sub(c.run_start.get()))
    })
}

/// CPU ticks used by the running green thread so far; the epoch itself
/// outside a runtime's green thread. Only differences are meaningful.
#[inline]
pub fn now() -> u64 {
    let epoch = shoal_scheduler::epoch_now();
    CLOCK.with(|c| {
        if c.active.get() {
            c.base
                .get()
                .saturating_add(epoch.saturating_sub(c.run_start.get()))
        } else {
            epoch
        }
    })
}

/// How many ticker wake-ups the running green thread has seen since it was
/// last resumed; `None` outside a runtime's green thread. Two or more mean
/// that this run has lasted at least one whole interval between wake-ups
/// (see `shoal_scheduler::ticker_wakes`).
#[inline]
pub(crate) fn wakes_this_run() -> Option<u64> {
    let wakes = shoal_scheduler::ticker_wakes();
    CLOCK.with(|c| {
        c.active
            .get()
            .then(|| wakes.saturating_sub(c.run_start_wakes.get()))
    })
}

/// Whether the caller runs on a green thread whose switches the runtime's
/// hook follows (so its trap state is swapped correctly).
#[inline]
pub(crate) fn on_runtime_green_thread() -> bool {
    CLOCK.with(|c| c.active.get())
}
