//! An instance's timeslice, shared by its epoch deadline callback and the
//! switch hook: every resume of a green thread that gave up its worker
//! (parked in a host call, or yielded) starts a fresh timeslice, without a
//! callback.
//!
//! A timeslice bounds how long one green thread keeps its worker while
//! others wait. One that parks has given the worker up, so it comes back
//! with a whole slice, as in any round-robin scheduler. Charging it instead
//! for the CPU it used across its parks (the first design) preempted
//! I/O-bound instances at random: the CPU clock counts whole ticks (a run
//! that spans a tick boundary counts one, `cpu_clock.rs`), so an echo
//! instance running a few microseconds per request was charged a whole
//! slice every few dozen requests, preempted at its next check and sent
//! to the back of the run queue. At 1,000 connections the echo
//! benchmark's p99 latency was 21–24 ms that way, against 16–17 ms with a
//! fresh slice at every resume.
//!
//! # Protocol
//!
//! 1. At birth the instance's [`SliceClock`] is allocated once (a stable
//!    address) and owned by its `Preemption`: the policy, the CPU clock at
//!    birth and at the start of the current slice. The deadline callback
//!    updates `slice_start` when it grants a new slice after a preemption.
//! 2. While the instance's store is alive and its wasm may run,
//!    [`ResumeRefresh`] installs the clock as the green thread's
//!    green-local value (the previous value is restored when it is dropped:
//!    runs nest), with the address of the store's epoch deadline.
//! 3. On every resume of the green thread, the switch hook calls
//!    [`on_resume`] with the green thread's CPU clock. Unless the green
//!    thread is cancelled or its budget is spent, a new slice starts:
//!    `slice_start` = now, and the deadline becomes `now + timeslice +
//!    grace` (capped by the budget left), never moving backwards. The grace
//!    tick is there because the slice starts mid-tick (see
//!    [`GRACE`](super::preemption::GRACE)). Otherwise it leaves the
//!    deadline alone, and the next check calls the callback, which traps
//!    with `Timeout` or `Cancelled`.
//!
//! A resume inside the callback itself (after a preemption) starts a slice
//! too; the callback then sets the deadline of the slice it grants, without
//! the grace tick (that slice starts right after a tick boundary).

use super::preemption::{Policy, GRACE};
use std::cell::Cell;
use std::ptr::NonNull;

/// One instance's timeslice state (see the module docs).
pub(crate) struct SliceClock {
    pub(crate) policy: Policy,
    /// CPU clock at birth.
    pub(crate) born: u64,
    /// CPU clock when the current slice was granted.
    pub(crate) slice_start: Cell<u64>,
    /// The store's epoch deadline, once [`ResumeRefresh`] is installed.
    deadline: Cell<*mut u64>,
}

impl SliceClock {
    /// A clock for an instance born at CPU time `now`, at a stable address.
    /// Free it with [`SliceClock::free`].
    pub(crate) fn allocate(policy: Policy, now: u64) -> NonNull<SliceClock> {
        NonNull::from(Box::leak(Box::new(SliceClock {
            policy,
            born: now,
            slice_start: Cell::new(now),
            deadline: Cell::new(std::ptr::null_mut()),
        })))
    }

    /// Frees a clock from [`SliceClock::allocate`].
    ///
    /// # Safety
    ///
    /// `clock` came from `allocate`, is not freed yet, and is not installed
    /// by a live [`ResumeRefresh`].
    pub(crate) unsafe fn free(clock: NonNull<SliceClock>) {
        // SAFETY: per the contract, `clock` is the leaked box of `allocate`
        // and nothing else will use it.
        drop(unsafe { Box::from_raw(clock.as_ptr()) });
    }

    /// The deadline (ticks from now) giving `slice` more ticks, capped by
    /// the budget left (`0` when none is left: the next check ends the
    /// call).
    pub(crate) fn next_deadline(&self, now: u64, slice: u64) -> u64 {
        match self.policy.budget_ticks {
            None => slice,
            Some(budget) => {
                let used = now.saturating_sub(self.born);
                slice.min(budget.saturating_sub(used))
            }
        }
    }

    /// The deadline (ticks from now) of a whole slice starting now, mid-tick
    /// (so with the grace tick), capped by the budget.
    pub(crate) fn fresh_slice(&self, now: u64) -> u64 {
        self.next_deadline(now, self.policy.timeslice_ticks.saturating_add(GRACE))
    }

    /// The deadline (ticks from now) for the rest of the current slice,
    /// plus the grace tick a slice resumed mid-tick gets, capped by the
    /// budget; `None` when the slice is used up (at CPU time `now`).
    pub(crate) fn rest_of_slice(&self, now: u64) -> Option<u64> {
        let used = now.saturating_sub(self.slice_start.get());
        let left = self
            .policy
            .timeslice_ticks
            .checked_sub(used)
            .filter(|&l| l > 0)?;
        Some(self.next_deadline(now, left.saturating_add(GRACE)))
    }

    /// Step 3 of the module docs, at CPU time `now` and epoch `epoch`.
    fn refresh(&self, now: u64, epoch: u64) {
        let deadline = self.deadline.get();
        if deadline.is_null() || shoal_scheduler::is_cancelled() {
            return;
        }
        let ticks = self.fresh_slice(now);
        if ticks == 0 {
            return;
        }
        self.slice_start.set(now);
        let at = epoch.saturating_add(ticks);
        // SAFETY: `deadline` is the store's epoch deadline, set by a live
        // `ResumeRefresh` whose contract keeps the store alive; the green
        // thread that owns the store is suspended (this runs in the switch
        // hook, before it resumes), so nothing else reads or writes it now.
        unsafe {
            if *deadline < at {
                *deadline = at;
            }
        }
    }
}

/// Called by the switch hook on every resume of a runtime green thread,
/// with its CPU clock and the current epoch (module docs, step 3).
#[inline]
pub(crate) fn on_resume(cpu_now: u64, epoch: u64) {
    let clock = shoal_scheduler::green_local().cast::<SliceClock>();
    if clock.is_null() {
        return;
    }
    // SAFETY: a non-null green-local value on a runtime green thread is
    // only ever installed by `ResumeRefresh` (`set_green_local` is unsafe,
    // and the slot is the runtime's), whose contract keeps the
    // clock alive while it is installed; it is only used on this thread.
    unsafe { (*clock).refresh(cpu_now, epoch) }
}

/// Installs a [`SliceClock`] for the running green thread's resumes
/// (module docs, step 2) until dropped.
pub(crate) struct ResumeRefresh {
    previous: *mut (),
}

impl ResumeRefresh {
    /// Installs `clock`, refreshing the deadline at `deadline`.
    ///
    /// # Safety
    ///
    /// `clock` and `deadline` (a store's
    /// [`epoch_deadline_ptr`](shoal_instance::Store::epoch_deadline_ptr))
    /// stay valid until the returned value is dropped, which happens on
    /// this same thread.
    pub(crate) unsafe fn install(clock: NonNull<SliceClock>, deadline: *mut u64) -> ResumeRefresh {
        // SAFETY: valid per the contract; only this thread uses it.
        unsafe { clock.as_ref() }.deadline.set(deadline);
        let previous = shoal_scheduler::green_local();
        // SAFETY: the runtime owns the green-local slot of its green
        // threads (nothing else may set it), and its switch hook reads it
        // as a `SliceClock`: this is one, valid per the contract.
        unsafe { shoal_scheduler::set_green_local(clock.as_ptr().cast()) };
        ResumeRefresh { previous }
    }
}

impl Drop for ResumeRefresh {
    fn drop(&mut self) {
        // SAFETY: puts back what `install` found: null, or the clock of a
        // run this one is nested in, which is still installed-valid.
        unsafe { shoal_scheduler::set_green_local(self.previous) };
    }
}
