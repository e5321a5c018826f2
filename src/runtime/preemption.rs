//! Preemption: what an instance does when its epoch deadline passes.
//!
//! Compiled code checks, at every function entry and on every branch back to
//! a loop header, whether
//! the process-wide epoch (`shoal_scheduler::epoch_counter()`, advanced by
//! the ticker every tick) has reached its store's deadline. When it has, it
//! calls the store's epoch deadline callback, which the runtime sets to
//! [`Preemption::on_deadline`] for every instance it runs.
//!
//! # Protocol
//!
//! At birth (`Preemption::new`, before instantiation, since a start
//! function may spin) the instance notes its green thread's CPU clock
//! (`cpu_clock.rs`) and gets its first deadline: one timeslice ahead, plus
//! a grace tick when less than half of the current tick is left (see
//! [`birth_grace`]), or less if its CPU budget has less left. At each
//! deadline, in this order:
//!
//! 1. **Cancelled?** If its green thread was cancelled
//!    ([`JoinHandle::cancel`](super::JoinHandle::cancel), a cancelling
//!    shutdown), return `Err(Trap { kind: Cancelled })`: the call ends with
//!    that trap, unwinding the wasm frames through the catch point (never a
//!    panic through JIT frames), and the green thread returns normally.
//! 2. **Budget spent?** If the CPU ticks used since birth reach
//!    `Contract::cpu_budget_epochs`, return `Err(Trap { kind: Timeout })`.
//! 3. **Slice spent?** If the CPU ticks used since the slice started are
//!    fewer than a timeslice, it keeps running: `Continue(rest of the slice
//!    + grace)`. On a runtime's green threads the switch hook starts a new
//!    slice at every resume (`slice_clock.rs`), so this is for instances
//!    without one (`run_here` on a plain thread, where time parked counts).
//! 4. **Coarse tick?** While no instance is being preempted the tickers
//!    wake only every few ticks, and each wake-up makes the epoch jump
//!    (`shoal_scheduler`'s epoch docs, step 7): a deadline passed by a
//!    jump proves nothing. If the ticks are coarse and the instance's
//!    green thread has seen fewer than two wake-ups since it was resumed
//!    (so it may have run for only a moment), it keeps running:
//!    `Continue(timeslice + grace)`. An instance that really spins sees
//!    the second wake-up at most two coarse intervals after it started.
//! 5. **Yield.** Otherwise it asks for fine ticks
//!    (`shoal_scheduler::request_fine_ticks`), so that this instance and
//!    the next ones are preempted on time, unless the ticks are coarse and
//!    nothing (this instance or another) was preempted on this worker
//!    thread in the last [`CONFIRM_TICKS`]: a single long run under coarse
//!    ticks is as likely a stall of the whole thread (a virtual CPU
//!    descheduled by the hypervisor, a system call that took long) as a
//!    spin, while spinning instances are preempted every coarse interval
//!    or two. (Asking at every such stall, about ten a second on the
//!    development VM, kept the ticks fine all the time, and their wake-ups
//!    cost the echo benchmark 5–6% of its throughput.) Then
//!    `shoal_scheduler::try_yield_now()`: the green
//!    thread goes to the back of its worker's run queue, and the worker
//!    runs the others (the switch hook swaps the trap state out and in).
//!    That never unwinds; if it reports `Cancelled`, step 1 applies. Back
//!    from the queue, a new slice starts: `Continue(timeslice)` (capped by
//!    the budget left).
//!
//! The budget is only checked at deadlines, so an instance overruns it by
//! at most one timeslice.
//!
//! Without a green thread (an instance run by `run_here` on a plain OS
//! thread) the same steps apply: the yield is `std::thread::yield_now` and
//! CPU time is wall time.

use super::cpu_clock;
use super::slice_clock::SliceClock;
use shoal_instance::{Trap, TrapKind, UpdateDeadline};
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra tick given to a slice that starts at an arbitrary point within a
/// tick (when an instance comes back from a host call that parked it;
/// births are sized more finely by [`birth_grace`]): a deadline
/// `now + slice` would give it anywhere from 0 to `slice` ticks, so a
/// request of a few microseconds that happens to straddle a tick boundary
/// would be preempted and wait behind the whole run queue. With the grace
/// tick such a slice lasts `slice` to `slice + 1` ticks, and a request
/// shorter than a tick never reaches a deadline. Slices that start right
/// after a preemption need no grace: they start just after the tick that
/// ended the previous slice.
pub(crate) const GRACE: u64 = 1;

/// The grace for a slice that starts now, at birth: none when at least
/// half of the current tick is left, else one tick. The first slice then
/// lasts from half a timeslice to one and a half, one timeslice on
/// average, so that a crowd born together gets a first round as long as
/// the later ones (with a whole grace tick it took twice as long, and the
/// first instances born waited two rounds' time for their second slice).
/// A request shorter than half a tick still never reaches a deadline.
/// Without a ticker to read the phase from, a whole [`GRACE`] tick.
fn birth_grace() -> u64 {
    match shoal_scheduler::time_to_next_tick() {
        Some((left, tick)) if left * 2 >= tick => 0,
        _ => GRACE,
    }
}

/// How recent the last preemption under coarse ticks on a worker thread
/// must be for the next one to ask for fine ticks (step 5): four coarse
/// intervals. Spinning instances are preempted every one or two.
const CONFIRM_TICKS: u64 = 4 * shoal_scheduler::COARSE_STRIDE;

thread_local! {
    /// The epoch at the last preemption under coarse ticks on this thread.
    static LAST_COARSE_PREEMPTION: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Whether an instance was preempted under coarse ticks on this thread in
/// the last [`CONFIRM_TICKS`]; notes this preemption for the next call.
fn spinning_confirmed() -> bool {
    let now = shoal_scheduler::epoch_now();
    let last = LAST_COARSE_PREEMPTION.with(|last| last.replace(Some(now)));
    last.is_some_and(|last| now.saturating_sub(last) <= CONFIRM_TICKS)
}

/// How the instances of one template are preempted and limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Ticks of CPU per timeslice (at least 1).
    pub(crate) timeslice_ticks: u64,
    /// Ticks of CPU an instance may use in all (`None`: unlimited).
    pub(crate) budget_ticks: Option<u64>,
}

/// What one instance's timeslices looked like; see
/// [`Finished::stats`](super::Finished::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceStats {
    /// Timeslices the instance got (the first one starts at birth).
    pub slices: u64,
    /// Times it was preempted at the end of a timeslice and went to the
    /// back of the run queue.
    pub preemptions: u64,
    /// Longest time between being preempted and running again (the time
    /// the other instances of its worker ran).
    pub max_gap: Duration,
    /// Total time spent waiting in the run queue after preemptions.
    pub total_gap: Duration,
    /// Longest timeslice, as wall time from its start to its deadline.
    pub max_slice: Duration,
    /// CPU time used, in epoch ticks (see `cpu_clock`): instantiation,
    /// wasm and host functions, not time parked or queued.
    pub cpu_ticks: u64,
    /// Deadline callbacks that found timeslice left and only moved the
    /// deadline forward. On a green thread every resume starts a new slice
    /// itself (`slice_clock.rs`), so this stays 0 there.
    pub continues: u64,
}

/// Shared between an instance's deadline callback and whoever reads its
/// statistics; only allocated when they are asked for.
pub(crate) type StatsCell = Arc<Mutex<SliceStats>>;

/// One instance's preemption state, owned by its store's epoch callback.
pub(crate) struct Preemption {
    /// The timeslice, shared with the switch hook (`slice_clock.rs`).
    clock: NonNull<SliceClock>,
    stats: Option<(StatsCell, Instant)>,
}

// SAFETY: `clock` is owned (freed in `Drop`); the switch hook only reaches
// it while a `ResumeRefresh` is installed on the thread that runs the
// instance, and a store (with its callback) is only used by one thread at
// a time.
unsafe impl Send for Preemption {}

impl Drop for Preemption {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once here; the `ResumeRefresh`
        // installing it is dropped before the store that owns `self`
        // (`spawn.rs`).
        unsafe { SliceClock::free(self.clock) }
    }
}

impl Preemption {
    /// The state of an instance born now, on the calling green thread, and
    /// the first deadline to set (in ticks from now).
    pub(crate) fn new(policy: Policy, stats: Option<StatsCell>) -> (Preemption, u64) {
        let now = cpu_clock::now();
        let p = Preemption {
            clock: SliceClock::allocate(policy, now),
            stats: stats.map(|cell| {
                if let Ok(mut s) = cell.lock() {
                    s.slices = 1;
                }
                (cell, Instant::now())
            }),
        };
        let first = p
            .clock()
            .next_deadline(now, policy.timeslice_ticks.saturating_add(birth_grace()));
        (p, first)
    }

    /// The timeslice clock, for `ResumeRefresh::install`.
    pub(crate) fn clock_ptr(&self) -> NonNull<SliceClock> {
        self.clock
    }

    fn clock(&self) -> &SliceClock {
        // SAFETY: allocated in `new`, freed only in `Drop`.
        unsafe { self.clock.as_ref() }
    }

    /// The epoch deadline callback (see the module docs).
    pub(crate) fn on_deadline(&mut self) -> Result<UpdateDeadline, Trap> {
        if shoal_scheduler::is_cancelled() {
            return Err(self.finish(Trap::new(TrapKind::Cancelled)));
        }
        let now = cpu_clock::now();
        let clock = self.clock();
        let policy = clock.policy;
        if let Some(budget) = policy.budget_ticks {
            if now.saturating_sub(clock.born) >= budget {
                let mut trap = Trap::new(TrapKind::Timeout);
                trap.message = Some(format!(
                    "the instance used its CPU budget of {budget} epoch ticks \
                     (Contract::cpu_budget_epochs)"
                ));
                return Err(self.finish(trap));
            }
        }
        if let Some(rest) = clock.rest_of_slice(now) {
            if let Some((cell, _)) = &self.stats {
                if let Ok(mut s) = cell.lock() {
                    s.continues += 1;
                }
            }
            return Ok(UpdateDeadline::Continue(rest));
        }
        if shoal_scheduler::ticks_are_coarse()
            && cpu_clock::wakes_this_run().is_some_and(|wakes| wakes < 2)
        {
            // Step 4: a coarse tick's jump, not a spent slice.
            return Ok(UpdateDeadline::Continue(clock.fresh_slice(now)));
        }
        if !shoal_scheduler::ticks_are_coarse() || spinning_confirmed() {
            shoal_scheduler::request_fine_ticks();
        }
        // With statistics: the slice's end, recorded now.
        let preempted_at = self.stats.as_ref().map(|(cell, slice_began)| {
            let at = Instant::now();
            if let Ok(mut s) = cell.lock() {
                s.max_slice = s.max_slice.max(at.saturating_duration_since(*slice_began));
            }
            at
        });
        if shoal_scheduler::try_yield_now().is_err() {
            // Cancelled while it waited in the run queue: no new slice.
            return Err(Trap::new(TrapKind::Cancelled));
        }
        let now = cpu_clock::now();
        self.clock().slice_start.set(now);
        if let (Some((cell, slice_began)), Some(preempted_at)) = (&mut self.stats, preempted_at) {
            let resumed = Instant::now();
            if let Ok(mut s) = cell.lock() {
                let gap = resumed.saturating_duration_since(preempted_at);
                s.slices += 1;
                s.preemptions += 1;
                s.max_gap = s.max_gap.max(gap);
                s.total_gap += gap;
            }
            *slice_began = resumed;
        }
        Ok(UpdateDeadline::Continue(
            self.clock().next_deadline(now, policy.timeslice_ticks),
        ))
    }

    /// Records the last slice before the call ends with `trap`.
    fn finish(&mut self, trap: Trap) -> Trap {
        if let Some((cell, slice_began)) = &self.stats {
            if let Ok(mut s) = cell.lock() {
                s.max_slice = s.max_slice.max(slice_began.elapsed());
            }
        }
        trap
    }
}
