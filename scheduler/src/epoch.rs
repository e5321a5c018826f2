//! The process-wide epoch counter and the ticker threads that advance it.
//!
//! The epoch is one `AtomicU64` in a `static`, so its address never changes:
//! compiled code can embed [`epoch_counter`]'s address and check a deadline
//! with one load, one compare and one branch.
//!
//! # Ticker protocol
//!
//! 1. The first executor built starts the tickers (period = its
//!    `epoch_tick`); later executors share them (their tick must be equal,
//!    see [`crate::BuildError::EpochTickConflict`]). The last executor to
//!    shut down stops and joins them. Restarted tickers continue from the
//!    current value: the epoch never goes backwards.
//! 2. The tickers keep time rather than counting sleeps: when they start,
//!    the epoch is `base` and the monotonic clock reads `origin`; tick
//!    `e ≥ base` is due at `origin + (e − base) × period` on
//!    `CLOCK_MONOTONIC`. A ticker sleeps until an absolute due time
//!    (`clock_nanosleep(TIMER_ABSTIME)`) and then raises the epoch to
//!    `base + (now − origin) / period` with `fetch_max`. A late wake-up
//!    makes the epoch jump by the ticks missed, never drift. (Counting from
//!    `base` rather than from a zero placed `base` periods back keeps this
//!    right when a restart uses a longer period than the epoch was counted
//!    in: that zero would lie before the machine booted.)
//! 3. There is one ticker per CPU the process may use, up to
//!    [`MAX_TICKERS`], each pinned to its own CPU: with `n` of them, ticker
//!    `i` wakes for the ticks `e ≡ i (mod n)`. The wake-ups (each one
//!    preempts whatever runs on that CPU) are thus shared evenly: a single
//!    ticker took about 5% of one CPU at a 250 µs tick, so the worker on
//!    that CPU ran 5–9% slower than the other, which showed as unfairness
//!    between the instances of the two workers. And when one CPU stalls (a
//!    virtual CPU descheduled by the hypervisor: wake-ups 1–19 ms late were
//!    measured on the 2-vCPU development VM, a few times per second), the
//!    others still tick, so the running instances of the other CPUs are
//!    preempted at most one tick late.
//! 4. A ticker sleeps at most `MAX_SLEEP` at a time, so that the last
//!    executor's shutdown, which stops and joins the tickers, does not wait
//!    for the next own tick of a long period (up to `MAX_TICKERS` periods).
//! 5. Tickers ask for `SCHED_FIFO` priority 1 (falling back to a higher nice
//!    value) so that busy workers do not delay them; they only sleep and
//!    store.
//! 6. [`time_to_next_tick`] tells where within the current tick the caller
//!    is, from the same origin, so that a timeslice starting mid-tick can
//!    be sized in real time rather than in whole ticks.
//! 7. **Coarse ticks.** A wake-up is not free: it interrupts whatever runs
//!    on that CPU. On the development VM, tickers at 250 µs cost a native
//!    mio echo server in the same machine 5–15% of its throughput, at
//!    100 µs 20%. Fine ticks are needed only while some green thread runs
//!    through its timeslice; an I/O-bound server, whose green threads park
//!    after a few microseconds, needs none. So:
//!    - A green thread preempted because it really used its timeslice
//!      calls [`request_fine_ticks`]. The next ticker to wake sees the
//!      request and wakes at every tick from then on, until [`FINE_HOLD`]
//!      after the last request; each other ticker joins it when its own
//!      coarse sleep ends (at most `COARSE_STRIDE` × tickers ticks).
//!    - Otherwise they wake only at the ticks that are multiples of
//!      [`COARSE_STRIDE`] (in turn, as in step 3), and [`ticks_are_coarse`]
//!      says so. The epoch still keeps time: each wake-up raises it to the
//!      current tick, a jump of `COARSE_STRIDE`.
//!    - A jump can pass the deadline of a green thread that started a
//!      moment before: with coarse ticks a deadline passed proves nothing.
//!      [`ticker_wakes`] counts the wake-ups, so a preemption policy can
//!      tell: a run that saw two of them lasted at least one whole
//!      interval (or, when a late ticker catches up right before the next
//!      one, a little less: the policy then preempts a little early). The
//!      runtime's (`shoal::runtime`, `preemption.rs`) lets a run that saw
//!      fewer go on. Bumping the epoch by hand counts no wake-up, so with
//!      coarse ticks it preempts no runtime instance.
//!
//!    The cost: after a quiet spell, the first green thread to spin runs up
//!    to two coarse intervals (2 ms at the default 250 µs tick) before it
//!    is preempted; from then on the ticks are fine again. (The runtime's
//!    policy asks for fine ticks only at the second such preemption on a
//!    worker within a few coarse intervals, since one long run may be a
//!    stalled thread rather than a spin: up to two more intervals.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::BuildError;
use crate::sys;

/// The epoch and the count of ticker wake-ups, alone on their cache line
/// so that frequent readers never share a line with anything else that is
/// written. Both are written at every wake-up, and a switch reads both.
///
/// The line sits at [`EPOCH_PAGE_OFFSET`] within its own page, not where
/// the linker happens to put it. Compiled code loads the epoch at every
/// loop back edge, right after the loop body's stores, and a load whose
/// address matches an earlier store's in the low 12 bits (4K aliasing) is
/// held back until that store's address is fully known. When the linker
/// placed the epoch at a page boundary (offset 0), `preempt.wat`'s loop,
/// which stores to guest address 0 (page-aligned in every memory), ran at a
/// quarter of its speed in part of the instances: the counter CV rose from
/// 0.02 to 0.19 with the same source, built in another directory.
#[repr(C, align(4096))]
struct EpochPage {
    _before: [u8; EPOCH_PAGE_OFFSET],
    epoch: AtomicU64,
    wakes: AtomicU64,
}

/// Where the epoch's line starts within its page: a line (64 bytes)
/// boundary that guests rarely use hot, unlike offset 0 (address 0, page-
/// and 64 KiB-aligned buffers), 1024 (where C programs' data starts) and
/// the top of the page (where a wasm shadow stack starts, below 64 KiB).
const EPOCH_PAGE_OFFSET: usize = 0x6c0;

static EPOCH: EpochPage = EpochPage {
    _before: [0; EPOCH_PAGE_OFFSET],
    epoch: AtomicU64::new(0),
    wakes: AtomicU64::new(0),
};

/// The global epoch counter: the number of ticks since the first ticker
/// started, kept by the ticker threads (one step per tick, or
/// [`COARSE_STRIDE`] steps at a time while the ticks are coarse).
///
/// The reference is `'static` and its address is stable for the life of the
/// process: JIT-compiled code may load it directly (a `Relaxed` load is
/// enough; the value is monotonic). It only advances while at least one
/// [`Executor`](crate::Executor) is running.
#[inline]
pub fn epoch_counter() -> &'static AtomicU64 {
    &EPOCH.epoch
}

/// The current epoch value (see [`epoch_counter`]).
#[inline]
pub fn epoch_now() -> u64 {
    EPOCH.epoch.load(Ordering::Relaxed)
}

/// How many times the tickers have woken up and raised the epoch so far
/// (module docs, step 7): a run of code that saw this count go up by two
/// lasted at least one whole interval between wake-ups.
#[inline]
pub fn ticker_wakes() -> u64 {
    EPOCH.wakes.load(Ordering::Relaxed)
}

/// Whether the tickers wake only every [`COARSE_STRIDE`] ticks now (module
/// docs, step 7): the epoch then advances in steps of that many ticks, and
/// a deadline it passes may not have been reached in real time.
#[inline]
pub fn ticks_are_coarse() -> bool {
    COARSE.load(Ordering::Relaxed)
}

/// Asks the tickers to wake at every tick for the next [`FINE_HOLD`]
/// (module docs, step 7): to be called when a green thread is preempted
/// because it really ran through its timeslice. Cheap: a load, and a store
/// only when no request is pending.
#[inline]
pub fn request_fine_ticks() {
    if !FINE_REQUESTED.load(Ordering::Relaxed) {
        FINE_REQUESTED.store(true, Ordering::Relaxed);
    }
}

/// The tick period of the running ticker, if any executor is running.
pub fn epoch_tick() -> Option<Duration> {
    let state = TICKER.lock();
    (state.users > 0).then_some(state.period)
}

/// At most this many ticker threads (one per CPU; see the module docs).
pub const MAX_TICKERS: usize = 4;

/// The running tickers' clock (see [`TickClock`]); `PERIOD_NS == 0` while
/// no ticker runs. Written before the tickers start, read by
/// [`time_to_next_tick`].
static BASE_EPOCH: AtomicU64 = AtomicU64::new(0);
static ORIGIN_NS: AtomicU64 = AtomicU64::new(0);
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);

/// The longest a ticker sleeps at once (module docs, step 4).
const MAX_SLEEP_NS: u64 = 10_000_000;

/// While no green thread has been preempted for [`FINE_HOLD`], the
/// tickers wake only at every `COARSE_STRIDE`-th tick (module docs, step 7).
pub const COARSE_STRIDE: u64 = 4;

/// How long the tickers wake at every tick after the last
/// [`request_fine_ticks`].
pub const FINE_HOLD: Duration = Duration::from_millis(250);

/// A [`request_fine_ticks`] not yet seen by a ticker.
static FINE_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Monotonic nanoseconds until which the tickers wake at every tick.
static FINE_UNTIL_NS: AtomicU64 = AtomicU64::new(0);
/// Whether the tickers wake at coarse ticks now (published for
/// [`ticks_are_coarse`]).
static COARSE: AtomicBool = AtomicBool::new(true);

/// Whether the tickers should wake at every tick at monotonic time `now`,
/// taking in a pending request (module docs, step 7).
fn fine_ticks_wanted(now: u64) -> bool {
    if FINE_REQUESTED.load(Ordering::Relaxed) && FINE_REQUESTED.swap(false, Ordering::Relaxed) {
        let hold = u64::try_from(FINE_HOLD.as_nanos()).unwrap_or(u64::MAX);
        FINE_UNTIL_NS.fetch_max(now.saturating_add(hold), Ordering::Relaxed);
    }
    now < FINE_UNTIL_NS.load(Ordering::Relaxed)
}

/// When ticks are due (module docs, step 2): the epoch was `base` at
/// `origin` (monotonic nanoseconds), and advances once per `period`.
#[derive(Clone, Copy, Debug)]
struct TickClock {
    base: u64,
    origin: u64,
    period: u64,
}

impl TickClock {
    /// The clock the running tickers use, if any.
    fn current() -> Option<TickClock> {
        let period = PERIOD_NS.load(Ordering::Acquire);
        (period != 0).then(|| TickClock {
            base: BASE_EPOCH.load(Ordering::Relaxed),
            origin: ORIGIN_NS.load(Ordering::Relaxed),
            period,
        })
    }

    /// When tick `epoch` is due (monotonic nanoseconds).
    fn due(&self, epoch: u64) -> u64 {
        self.origin
            .saturating_add(epoch.saturating_sub(self.base).saturating_mul(self.period))
    }

    /// The epoch at monotonic time `now`.
    fn epoch_at(&self, now: u64) -> u64 {
        self.base
            .saturating_add(now.saturating_sub(self.origin) / self.period)
    }
}

/// How long until the next tick is due, and the tick period; `None` while
/// no executor runs (no ticker). A tick that is overdue (its ticker is
/// late) gives `Duration::ZERO`.
///
/// One `clock_gettime` (vDSO): cheap, but not free; meant for the start of
/// a timeslice, not for every switch.
pub fn time_to_next_tick() -> Option<(Duration, Duration)> {
    let clock = TickClock::current()?;
    let due = clock.due(epoch_now().saturating_add(1));
    let now = sys::monotonic_now().as_nanos() as u64;
    Some((
        Duration::from_nanos(due.saturating_sub(now)),
        Duration::from_nanos(clock.period),
    ))
}

struct TickerState {
    users: usize,
    period: Duration,
    stop: Option<Arc<AtomicBool>>,
    threads: Vec<JoinHandle<()>>,
}

static TICKER: Mutex<TickerState> = Mutex::new(TickerState {
    users: 0,
    period: Duration::from_millis(1),
    stop: None,
    threads: Vec::new(),
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
        let clock = TickClock {
            base: EPOCH.epoch.load(Ordering::Relaxed),
            origin: sys::monotonic_now().as_nanos() as u64,
            period: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        BASE_EPOCH.store(clock.base, Ordering::Relaxed);
        ORIGIN_NS.store(clock.origin, Ordering::Relaxed);
        PERIOD_NS.store(clock.period, Ordering::Release);
        let stop = Arc::new(AtomicBool::new(false));
        let tickers = sys::allowed_cpus().clamp(1, MAX_TICKERS);
        let mut threads = Vec::with_capacity(tickers);
        for index in 0..tickers {
            let thread_stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("shoal-epoch-{index}"))
                .spawn(move || tick_loop(index, tickers, clock, realtime, &thread_stop));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // Stop the ones already started before reporting.
                    stop.store(true, Ordering::Relaxed);
                    PERIOD_NS.store(0, Ordering::Release);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(BuildError::Thread(e));
                }
            }
        }
        state.users = 1;
        state.period = period;
        state.stop = Some(stop);
        state.threads = threads;
        Ok(EpochLease { _private: () })
    }
}

impl Drop for EpochLease {
    fn drop(&mut self) {
        let threads = {
            let mut state = TICKER.lock();
            state.users = state.users.saturating_sub(1);
            if state.users > 0 {
                return;
            }
            if let Some(stop) = state.stop.take() {
                stop.store(true, Ordering::Relaxed);
            }
            PERIOD_NS.store(0, Ordering::Release);
            std::mem::take(&mut state.threads)
        };
        for thread in threads {
            // A ticker checks `stop` at each wake-up; a panic in it is not
            // ours to propagate from a destructor.
            let _ = thread.join();
        }
    }
}

/// The first tick after `tick` that is ticker `mine`'s, of `every`
/// tickers: the least `next > tick` with `next ≡ mine (mod every)`.
fn next_own_tick(tick: u64, mine: u64, every: u64) -> u64 {
    tick + 1 + (mine + every - (tick + 1) % every) % every
}

/// The first tick after `tick` at which ticker `mine` of `every` wakes when
/// the tickers wake every `stride` ticks, taking those wake-ups in turn:
/// the least multiple `m × stride > tick` with `m ≡ mine (mod every)`.
fn next_own_wake(tick: u64, mine: u64, every: u64, stride: u64) -> u64 {
    next_own_tick(tick / stride, mine, every).saturating_mul(stride)
}

/// Ticker `index` of `tickers` (see the module docs, step 3).
fn tick_loop(index: usize, tickers: usize, clock: TickClock, realtime: bool, stop: &AtomicBool) {
    if tickers > 1 {
        // Best effort: unpinned, tickers may share a CPU and stall together,
        // which is only what a single ticker does anyway.
        let _ = sys::pin_current_thread(index);
    }
    if realtime {
        sys::raise_thread_priority();
    }
    let (every, mine) = (tickers as u64, index as u64);
    let mut tick = EPOCH.epoch.load(Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        let now = sys::monotonic_now().as_nanos() as u64;
        let fine = fine_ticks_wanted(now);
        COARSE.store(!fine, Ordering::Relaxed);
        let stride = if fine { 1 } else { COARSE_STRIDE };
        let next = next_own_wake(tick, mine, every, stride);
        let due = clock.due(next);
        if due.saturating_sub(now) > MAX_SLEEP_NS {
            // Not due yet: look at `stop` again first (step 4).
            sys::sleep_until_monotonic(Duration::from_nanos(now + MAX_SLEEP_NS));
            continue;
        }
        sys::sleep_until_monotonic(Duration::from_nanos(due));
        let now = sys::monotonic_now().as_nanos() as u64;
        tick = clock.epoch_at(now).max(next);
        EPOCH.epoch.fetch_max(tick, Ordering::Release);
        EPOCH.wakes.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::{next_own_tick, next_own_wake, TickClock};

    #[test]
    fn the_epoch_sits_at_its_chosen_offset_in_its_page() {
        let at = super::epoch_counter() as *const _ as usize;
        assert_eq!(at % 4096, super::EPOCH_PAGE_OFFSET);
        assert_eq!(at % 64, 0, "the epoch starts a cache line");
    }

    #[test]
    fn coarse_wakes_are_the_multiples_of_the_stride_in_turn() {
        // Stride 1 is the fine schedule.
        for tick in 0..20 {
            assert_eq!(next_own_wake(tick, 1, 2, 1), next_own_tick(tick, 1, 2));
        }
        // Two tickers, stride 4: ticker 0 wakes at 0, 8, 16..., ticker 1
        // at 4, 12, 20..., always strictly after the current tick.
        assert_eq!(next_own_wake(0, 0, 2, 4), 8);
        assert_eq!(next_own_wake(0, 1, 2, 4), 4);
        assert_eq!(next_own_wake(3, 1, 2, 4), 4);
        assert_eq!(next_own_wake(4, 1, 2, 4), 12);
        assert_eq!(next_own_wake(7, 0, 2, 4), 8);
        assert_eq!(next_own_wake(8, 0, 2, 4), 16);
        // Together they wake once per stride.
        for tick in 0..40 {
            let a = next_own_wake(tick, 0, 2, 4);
            let b = next_own_wake(tick, 1, 2, 4);
            assert_eq!(a.min(b), (tick / 4 + 1) * 4, "{tick}");
            assert_eq!(a.abs_diff(b), 4, "{tick}");
        }
    }

    #[test]
    fn ticks_count_from_the_epoch_at_start() {
        // A restart at epoch 100,000 (counted before at a 10 µs tick) with
        // a 60 s tick, 5 s after boot: the next tick is one period away,
        // not at a zero placed 100,000 long periods before boot.
        let period = 60_000_000_000;
        let clock = TickClock {
            base: 100_000,
            origin: 5_000_000_000,
            period,
        };
        assert_eq!(clock.due(100_001), 5_000_000_000 + period);
        assert_eq!(clock.epoch_at(5_000_000_000), 100_000);
        assert_eq!(clock.epoch_at(5_000_000_000 + 5 * period / 2), 100_002);
        // Before the origin, or for a tick already past: no underflow.
        assert_eq!(clock.epoch_at(0), 100_000);
        assert_eq!(clock.due(7), 5_000_000_000);
    }

    #[test]
    fn tickers_share_the_ticks_in_turn() {
        // One ticker takes every tick.
        assert_eq!(next_own_tick(7, 0, 1), 8);
        // Two: ticker 0 the even ticks, ticker 1 the odd ones, always
        // strictly after the current tick.
        assert_eq!(next_own_tick(7, 0, 2), 8);
        assert_eq!(next_own_tick(7, 1, 2), 9);
        assert_eq!(next_own_tick(8, 0, 2), 10);
        assert_eq!(next_own_tick(0, 1, 2), 1);
        // Four, from a late wake-up that jumped past several ticks.
        for tick in 0..40 {
            let owned: Vec<u64> = (0..4).map(|i| next_own_tick(tick, i, 4)).collect();
            let mut sorted = owned.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (tick + 1..tick + 5).collect::<Vec<_>>(), "{tick}");
            for (i, next) in owned.iter().enumerate() {
                assert_eq!(next % 4, i as u64);
            }
        }
    }
}
