//! The process-wide epoch counter and the ticker thread that advances it.
//!
//! The epoch is one `AtomicU64` in a `static`, so its address never changes:
//! compiled code can embed [`epoch_counter`]'s address and check a deadline
//! with one load, one compare and one branch.
//!
//! # Ticker protocol
//!
//! 1. The first executor built starts the ticker thread (period = its
//!    `epoch_tick`); later executors share it (their tick must be equal, see
//!    [`crate::BuildError::EpochTickConflict`]). The last executor to shut
//!    down stops and joins it. A restarted ticker continues from the current
//!    value: the epoch never goes backwards.
//! 2. The ticker keeps time rather than counting sleeps: it sleeps until an
//!    absolute `CLOCK_MONOTONIC` deadline (`clock_nanosleep(TIMER_ABSTIME)`)
//!    and then stores `base + elapsed / period`. A late wake-up (every core
//!    busy) makes the epoch jump by the ticks missed, never drift.
//! 3. It asks for `SCHED_FIFO` priority 1 (falling back to a higher nice
//!    value) so that busy workers do not delay it; it only sleeps and stores.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::BuildError;
use crate::sys;

/// The epoch, alone on its cache line so that frequent readers never share
/// a line with anything that is written.
#[repr(align(128))]
struct PaddedEpoch(AtomicU64);

static EPOCH: PaddedEpoch = PaddedEpoch(AtomicU64::new(0));

/// The global epoch counter, incremented once per tick by the ticker thread.
///
/// The reference is `'static` and its address is stable for the life of the
/// process: JIT-compiled code may load it directly (a `Relaxed` load is
/// enough; the value is monotonic). It only advances while at least one
/// [`Executor`](crate::Executor) is running.
#[inline]
pub fn epoch_counter() -> &'static AtomicU64 {
    &EPOCH.0
}

/// The current epoch value (see [`epoch_counter`]).
#[inline]
pub fn epoch_now() -> u64 {
    EPOCH.0.load(Ordering::Relaxed)
}

/// The tick period of the running ticker, if any executor is running.
pub fn epoch_tick() -> Option<Duration> {
    let state = TICKER.lock();
    (state.users > 0).then_some(state.period)
}

struct TickerState {
    users: usize,
    period: Duration,
    stop: Option<Arc<AtomicBool>>,
    thread: Option<JoinHandle<()>>,
}

static TICKER: Mutex<TickerState> = Mutex::new(TickerState {
    users: 0,
    period: Duration::from_millis(1),
    stop: None,
    thread: None,
});

/// One executor's claim on the ticker; dropping it releases the claim and
/// stops the ticker when it was the last one.
#[derive(Debug)]
pub(crate) struct EpochLease {
    _private: (),
}

impl EpochLease {
    /// Starts the ticker with `period`, or joins the running one.
    pub(crate) fn acquire(period: Duration, realtime: bool) -> Result<EpochLease, BuildError> {
        let mut state = TICKER.lock();
        if state.users > 0 {
            if state.period != period {
                return Err(BuildError::EpochTickConflict {
                    running: state.period,
                    requested: period,
                });
            }
            state.users += 1;
            return Ok(EpochLease { _private: () });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || tick_loop(period, realtime, &thread_stop))
            .map_err(BuildError::Thread)?;
        state.users = 1;
        state.period = period;
        state.stop = Some(stop);
        state.thread = Some(thread);
        Ok(EpochLease { _private: () })
    }
}

impl Drop for EpochLease {
    fn drop(&mut self) {
        let thread = {
            let mut state = TICKER.lock();
            state.users = state.users.saturating_sub(1);
            if state.users > 0 {
                return;
            }
            if let Some(stop) = state.stop.take() {
                stop.store(true, Ordering::Relaxed);
            }
            state.thread.take()
        };
        if let Some(thread) = thread {
            // The ticker checks `stop` every tick; a panic in it is not ours
            // to propagate from a destructor.
            let _ = thread.join();
        }
    }
}

fn tick_loop(period: Duration, realtime: bool, stop: &AtomicBool) {
    if realtime {
        sys::raise_thread_priority();
    }
    let period_ns = period.as_nanos().max(1);
    let start = sys::monotonic_now();
    let base = EPOCH.0.load(Ordering::Relaxed);
    let mut ticks: u128 = 0;
    while !stop.load(Ordering::Relaxed) {
        let next = start + Duration::from_nanos(((ticks + 1) * period_ns) as u64);
        sys::sleep_until_monotonic(next);
        let elapsed = sys::monotonic_now().saturating_sub(start).as_nanos();
        ticks = (elapsed / period_ns).max(ticks + 1);
        EPOCH
            .0
            .store(base.wrapping_add(ticks as u64), Ordering::Release);
    }
}
