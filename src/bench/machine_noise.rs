//! How steady the machine's CPU speed is from one epoch tick to the next:
//! the floor under `preempt`'s fairness figure.
//!
//! A spinning instance's counter is the sum of the work done in its
//! timeslices. Even when every slice lasts exactly as long, the work a CPU
//! gets done in one varies: other tenants of a shared host, a busy sibling
//! hyperthread, interrupts. If the work per tick varies with coefficient of
//! variation `c`, independently from tick to tick, the counters of
//! instances that each ran `k` ticks spread with a CV of about `c / √k`,
//! however fair the scheduler: the floor [`cv_floor`] reports.
//!
//! [`measure`] spins one plain OS thread per worker (no wasm, no
//! scheduler) and counts the loop turns between consecutive ticks of the
//! running epoch ticker, keeping the windows of exactly one tick. On the
//! 2-vCPU development VM, `c` was 0.12-0.17, so 1,000 instances for 5 s on
//! 2 workers (40 ticks each at 250 µs) cannot spread less than about 0.02.

use super::report::mean_and_cv;
use shoal_scheduler::{epoch_now, request_fine_ticks, ticks_are_coarse};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// CV of the work one thread does per epoch tick, over `threads` spinning
/// threads for `length`; `None` without a running ticker, or when no tick
/// was seen (a thread that cannot be started is left out).
///
/// The windows of all threads are pooled, so a steady speed difference
/// between CPUs counts as noise too (it does not shrink with more ticks:
/// the floor then understates it), as does a tick cut short by a late
/// ticker's catch-up.
pub fn measure(threads: usize, length: Duration) -> Option<f64> {
    shoal_scheduler::epoch_tick()?;
    let windows: Vec<u64> = std::thread::scope(|scope| {
        let spinners: Vec<_> = (0..threads.max(1))
            .filter_map(|i| {
                std::thread::Builder::new()
                    .name(format!("noise-probe-{i}"))
                    .spawn_scoped(scope, move || work_per_tick(length))
                    .ok()
            })
            .collect();
        spinners
            .into_iter()
            .flat_map(|s| s.join().unwrap_or_default())
            .collect()
    });
    if windows.len() < 2 {
        return None;
    }
    let (mean, cv) = mean_and_cv(windows.iter().map(|&w| w as f64));
    (mean > 0.0).then_some(cv)
}

/// Loop turns in each window between two consecutive ticks, for about
/// `length` (returns even if the epoch stops advancing).
fn work_per_tick(length: Duration) -> Vec<u64> {
    let start = Instant::now();
    let past_end = || start.elapsed() >= length;
    let mut windows = Vec::new();
    // Single ticks need the tickers to wake at every tick, which they only
    // do while something asks for it (`request_fine_ticks`): ask, and go
    // on asking at every tick.
    request_fine_ticks();
    while ticks_are_coarse() {
        if past_end() {
            return windows;
        }
        std::hint::spin_loop();
    }
    // Start at a tick boundary (a window that started mid-tick is not one).
    let first = epoch_now();
    while epoch_now() == first {
        if past_end() {
            return windows;
        }
        std::hint::spin_loop();
    }
    let mut last = epoch_now();
    let mut turns = 0u64;
    let mut rounds = 0u32;
    loop {
        for _ in 0..64 {
            turns = black_box(turns.wrapping_add(1));
        }
        let now = epoch_now();
        rounds = rounds.wrapping_add(1);
        let ticked = now != last;
        if ticked {
            request_fine_ticks();
            // A late ticker skips ticks: keep single-tick windows only.
            if now == last.wrapping_add(1) {
                windows.push(turns);
            }
            turns = 0;
            last = now;
        }
        // At every tick, and now and then between (a stopped ticker must
        // not keep it spinning).
        if (ticked || rounds.is_multiple_of(4096)) && past_end() {
            return windows;
        }
    }
}

/// The CV a perfectly fair scheduler would still show: `noise / √ticks`
/// for instances that each ran `ticks` ticks.
pub fn cv_floor(noise: f64, ticks: f64) -> f64 {
    if ticks > 0.0 {
        noise / ticks.sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::cv_floor;

    #[test]
    fn the_floor_falls_with_the_square_root_of_the_ticks() {
        assert!((cv_floor(0.12, 36.0) - 0.02).abs() < 1e-12);
        assert!((cv_floor(0.12, 4.0) - 0.06).abs() < 1e-12);
        assert_eq!(cv_floor(0.12, 0.0), 0.0);
    }
}
