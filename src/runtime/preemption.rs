//! Preemption: what an instance does when its epoch deadline passes.
//!
//! Compiled code checks, at every function entry and loop header, whether
//! the process-wide epoch (`shoal_scheduler::epoch_counter()`, advanced by
//! the ticker every tick) has reached its store's deadline. When it has, it
//! calls the store's epoch deadline callback, which the runtime sets to
//! [`Preemption::on_deadline`] for every instance it runs.
//!
//! # Protocol
//!
//! At birth (`Preemption::new`, before instantiation, since a start
//! function may spin) the instance notes its green thread's CPU clock
//! (`cpu_clock.rs`) and gets its first deadline: one timeslice plus a
//! grace tick ahead (see [`GRACE`]), or less if its CPU budget has less
//! left. At each deadline, in this order:
//!
//! 1. **Cancelled?** If its green thread was cancelled
//!    ([`JoinHandle::cancel`](super::JoinHandle::cancel), a cancelling
//!    shutdown), return `Err(Trap { kind: Cancelled })`: the call ends with
//!    that trap, unwinding the wasm frames through the catch point (never a
//!    panic through JIT frames), and the green thread returns normally.
//! 2. **Budget spent?** If the CPU ticks used since birth reach
//!    `Contract::cpu_budget_epochs`, return `Err(Trap { kind: Timeout })`.
//! 3. **Slice spent?** If the CPU ticks used since the slice started are
//!    fewer than a timeslice (the instance was parked in a host call for
//!    most of it), it keeps running: `Continue(rest of the slice + grace)`.
//! 4. **Yield.** Otherwise `shoal_scheduler::try_yield_now()`: the green
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
use shoal_instance::{Trap, TrapKind, UpdateDeadline};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra tick given to a slice that starts at an arbitrary point within a
/// tick (at birth, or when an instance comes back from a host call that
/// parked it): a deadline `now + slice` would give it anywhere from 0 to
/// `slice` ticks, so a request of a few microseconds that happens to
/// straddle a tick boundary would be preempted and wait behind the whole
/// run queue. With the grace tick such a slice lasts `slice` to `slice + 1`
/// ticks, and a request shorter than a tick never reaches a deadline.
/// Slices that start right after a preemption need no grace: they start
/// just after the tick that ended the previous slice.
const GRACE: u64 = 1;

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
}

/// Shared between an instance's deadline callback and whoever reads its
/// statistics; only allocated when they are asked for.
pub(crate) type StatsCell = Arc<Mutex<SliceStats>>;

/// One instance's preemption state, owned by its store's epoch callback.
pub(crate) struct Preemption {
    policy: Policy,
    /// CPU clock at birth.
    born: u64,
    /// CPU clock when the current slice was granted.
    slice_start: u64,
    stats: Option<(StatsCell, Instant)>,
}

impl Preemption {
    /// The state of an instance born now, on the calling green thread, and
    /// the first deadline to set (in ticks from now).
    pub(crate) fn new(policy: Policy, stats: Option<StatsCell>) -> (Preemption, u64) {
        let now = cpu_clock::now();
        let p = Preemption {
            policy,
            born: now,
            slice_start: now,
            stats: stats.map(|cell| {
                if let Ok(mut s) = cell.lock() {
                    s.slices = 1;
                }
                (cell, Instant::now())
            }),
        };
        let first = p.next_deadline(now, policy.timeslice_ticks.saturating_add(GRACE));
        (p, first)
    }

    /// The deadline (ticks from now) giving `slice` more ticks, capped by
    /// the budget left (at least 1 while any is left: `0` makes the next
    /// check end the call).
    fn next_deadline(&self, now: u64, slice: u64) -> u64 {
        match self.policy.budget_ticks {
            None => slice,
            Some(budget) => {
                let used = now.saturating_sub(self.born);
                slice.min(budget.saturating_sub(used))
            }
        }
    }

    /// The epoch deadline callback (see the module docs).
    pub(crate) fn on_deadline(&mut self) -> Result<UpdateDeadline, Trap> {
        if shoal_scheduler::is_cancelled() {
            return Err(self.finish(Trap::new(TrapKind::Cancelled)));
        }
        let now = cpu_clock::now();
        if let Some(budget) = self.policy.budget_ticks {
            if now.saturating_sub(self.born) >= budget {
                let mut trap = Trap::new(TrapKind::Timeout);
                trap.message = Some(format!(
                    "the instance used its CPU budget of {budget} epoch ticks \
                     (Contract::cpu_budget_epochs)"
                ));
                return Err(self.finish(trap));
            }
        }
        let used = now.saturating_sub(self.slice_start);
        if used < self.policy.timeslice_ticks {
            return Ok(UpdateDeadline::Continue(self.next_deadline(
                now,
                (self.policy.timeslice_ticks - used).saturating_add(GRACE),
            )));
        }
        let preempted_at = self.stats.as_ref().map(|_| Instant::now());
        if let (Some((cell, slice_began)), Some(preempted_at)) = (&self.stats, preempted_at) {
            if let Ok(mut s) = cell.lock() {
                s.max_slice = s
                    .max_slice
                    .max(preempted_at.saturating_duration_since(*slice_began));
            }
        }
        if shoal_scheduler::try_yield_now().is_err() {
            // Cancelled while it waited in the run queue: no new slice.
            return Err(Trap::new(TrapKind::Cancelled));
        }
        let now = cpu_clock::now();
        self.slice_start = now;
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
            self.next_deadline(now, self.policy.timeslice_ticks),
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
