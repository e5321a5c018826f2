//! The `preempt` workload: N instances of `preempt.wat` spin for T seconds
//! (`loop { mem64[0] += 1 }`, never calling out); only the runtime's
//! preemption lets them share the workers. Total progress, fairness
//! (min, median, max, coefficient of variation of the counters) and the
//! worst gap between two timeslices of one instance.
//!
//! N green threads each wait (yielding) for a start signal, then run an
//! instance in place (`run_here_then`). After T seconds every green thread
//! is cancelled: each instance traps with `Cancelled` at its next deadline,
//! and its green thread reads the counter from linear memory.
//!
//! A timeslice is the time between two preemptions; the gap is the time an
//! instance waits in the run queue between being preempted and running
//! again (measured by the runtime's deadline callback, around the yield;
//! the peer measures the same interval around each poll of its future).
//! Beyond the peer's fields: `ideal_gap_ms` (strict round robin:
//! `N / workers × timeslice`) and `gap_vs_ideal` = `max_gap_ms /
//! ideal_gap_ms`; `counter_cv_within_worker_max`, the largest CV among the
//! instances of one worker (the scheduler's fairness, apart from how fast
//! each worker ran: instances never migrate between workers), and
//! `worker_mean_max_over_min`, the spread of the workers' mean counters
//! (how much of a slow CPU's toll the worker rotation of `shoal-scheduler`
//! left on one worker; `--no-rotation` shows it without, and
//! `workers_rotated` says whether the rotation applied);
//! `machine_noise_cv`, how much the work a CPU does in one tick varies on
//! this machine (measured for half a second before the run, see
//! `machine_noise.rs`), and `counter_cv_floor`, the CV that noise alone
//! gives instances that each ran the median number of ticks.

use super::error::StressError;
use super::limits::{preflight, Limit, LimitHit, Plan};
use super::machine_noise;
use super::options::{StressOptions, STACK_SIZE};
use super::plot::fairness_chart;
use super::progress::Progress;
use super::report::{mean_and_cv, ms, round, Column, Record, Report};
use crate::runtime::SliceStats;
use shoal_instance::Linker;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters of `preempt` (the peer's defaults).
#[derive(Clone, Debug)]
pub struct PreemptParams {
    /// Instances (`-n`).
    pub n: usize,
    /// Seconds to spin (`-t`).
    pub t: f64,
}

impl Default for PreemptParams {
    fn default() -> Self {
        PreemptParams { n: 1000, t: 5.0 }
    }
}

/// How long the machine's noise is measured before a run.
const NOISE_PROBE: Duration = Duration::from_millis(500);

/// The table's columns.
pub const COLUMNS: &[Column] = &[
    ("n", "instances"),
    ("t_s", "seconds"),
    ("increments_per_sec", "increments/s"),
    ("counter_cv", "CV"),
    ("counter_min", "min"),
    ("counter_median", "median"),
    ("counter_max", "max"),
    ("starved_instances", "starved"),
    ("max_gap_ms", "worst gap ms"),
    ("ideal_gap_ms", "ideal ms"),
    ("gap_vs_ideal", "gap/ideal"),
];

/// The figures of a `preempt` run: the report and every instance's counter,
/// sorted, for [`PreemptRun::chart`].
#[derive(Debug)]
pub struct PreemptRun {
    /// One record.
    pub report: Report,
    /// Every instance's final counter, ascending.
    pub counters: Vec<i64>,
}

impl PreemptRun {
    /// The fairness spread (counters sorted, against their mean) as SVG.
    pub fn chart(&self) -> String {
        fairness_chart(
            &format!(
                "preempt: progress of {} spinning instances",
                self.counters.len()
            ),
            &self.counters,
        )
        .to_svg()
    }
}

/// One instance's end: its counter, its timeslices, its worker.
type Spun = (Option<i64>, SliceStats, usize, Option<String>);

/// Mean and coefficient of variation of counters.
fn cv(v: &[i64]) -> (f64, f64) {
    mean_and_cv(v.iter().map(|&x| x as f64))
}

/// Runs `preempt` (see the module docs).
pub fn run(opts: &StressOptions, p: &PreemptParams) -> Result<PreemptRun, StressError> {
    if p.n == 0 || !(p.t > 0.0 && p.t < 1e6) {
        return Err(StressError::Config(
            "preempt needs -n >= 1 and 0 < -t < 1e6 seconds".into(),
        ));
    }
    opts.check()?;
    preflight(&Plan {
        live: p.n,
        memory_strategy: opts.memory_strategy,
        stack_size: STACK_SIZE,
        resident_per_instance: 24 << 10,
    })?;
    let runtime = opts.runtime(p.n)?;
    let workers = runtime.workers();
    let module = runtime
        .compile(opts.read_workload("preempt.wat")?)
        .map_err(|e| StressError::guest("preempt.wat", e))?;
    let run = runtime
        .template(&module, &Linker::<()>::new(runtime.engine()), "run")
        .and_then(|t| t.typed::<(), ()>())
        .map_err(|e| StressError::guest("preempt.wat's run", e))?;

    let noise = machine_noise::measure(workers, NOISE_PROBE);

    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(p.n);
    for _ in 0..p.n {
        let (run, start, ready) = (run.clone(), go.clone(), ready.clone());
        let spawned = runtime.executor().spawn(move || -> Spun {
            ready.fetch_add(1, Ordering::Release);
            // Yield (rather than park) until the start signal: every
            // waiting green thread sees it within one pass of its worker's
            // run queue, so all start together, in queue order.
            while !start.load(Ordering::Acquire) {
                shoal_scheduler::yield_now();
            }
            let worker = shoal_scheduler::current_worker_index().unwrap_or(0);
            let spun = run.run_here_then((), (), move |f| {
                let memory = f.instance.and_then(|i| i.get_memory(&*f.store, "memory"));
                let mut bytes = [0u8; 8];
                let read = memory.map(|m| m.read(&*f.store, 0, &mut bytes));
                let counter = matches!(read, Some(Ok(()))).then(|| i64::from_le_bytes(bytes));
                let error = match f.result {
                    Err(e) if !e.is_cancelled() => Some(e),
                    _ => None,
                };
                (counter, f.stats, error)
            });
            match spun {
                Ok((counter, stats, error)) => {
                    (counter, stats, worker, error.map(|e| e.to_string()))
                }
                // Cancelled before its instance was even created (N too
                // large for T to reach it): it starved, with no progress.
                Err(e) if e.is_cancelled() => (Some(0), SliceStats::default(), worker, None),
                Err(e) => (None, SliceStats::default(), worker, Some(e.to_string())),
            }
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                let e = crate::runtime::SpawnError::Executor(e);
                go.store(true, Ordering::Release);
                for h in &handles {
                    h.cancel();
                }
                let reached = handles.len();
                for h in handles {
                    let _ = h.join();
                }
                return Err(match Limit::from_spawn_error(&e) {
                    Some(limit) => LimitHit {
                        limit,
                        reached,
                        wanted: p.n,
                        before_start: false,
                    }
                    .into(),
                    None => StressError::guest("a spinner", e),
                });
            }
        }
    }
    while ready.load(Ordering::Acquire) < p.n && !handles.iter().any(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the last ones reach their yield loop.
    std::thread::sleep(Duration::from_millis(20));

    let secs = Duration::from_secs_f64(p.t);
    let progress = Progress::time(opts.progress, secs, "spinning");
    let epoch0 = shoal_scheduler::epoch_now();
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    std::thread::sleep(secs);
    for h in &handles {
        h.cancel();
    }
    let elapsed = t0.elapsed();
    let ticks = shoal_scheduler::epoch_now() - epoch0;
    progress.finish();

    let mut results: Vec<(i64, SliceStats)> = Vec::with_capacity(p.n);
    let mut per_worker: Vec<Vec<i64>> = vec![Vec::new(); workers];
    let mut failed: Vec<String> = Vec::new();
    let mut limit = None;
    for h in handles {
        match h.join() {
            Ok((Some(counter), stats, worker, None)) => {
                results.push((counter, stats));
                // Per worker: the instances that ran there. One cancelled
                // before its first slice (starved, as below) ran nowhere.
                if let Some(w) = per_worker.get_mut(worker).filter(|_| stats.slices > 0) {
                    w.push(counter);
                }
            }
            Ok((_, _, _, err)) => failed.push(err.unwrap_or_else(|| "no counter".into())),
            Err(e) => {
                let e = crate::runtime::RunError::from(e);
                if e.is_cancelled() {
                    // Stopped while still waiting for its first slice.
                    results.push((0, SliceStats::default()));
                    continue;
                }
                limit = limit.or_else(|| Limit::from_run_error(&e));
                failed.push(e.to_string());
            }
        }
    }
    let stopped = t0.elapsed();
    if !failed.is_empty() {
        return Err(match limit {
            Some(limit) => LimitHit {
                limit,
                reached: results.len(),
                wanted: p.n,
                before_start: false,
            }
            .into(),
            None => StressError::Instances {
                failed: failed.len(),
                first: failed.swap_remove(0),
            },
        });
    }

    let worker_stats: Vec<(f64, f64)> = per_worker
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| cv(v))
        .collect();
    let within_cv = worker_stats.iter().map(|w| w.1).fold(0.0, f64::max);
    let means: Vec<f64> = worker_stats.iter().map(|w| w.0).collect();
    let worker_spread = means.iter().copied().fold(0.0, f64::max)
        / means.iter().copied().fold(f64::INFINITY, f64::min);
    let n = results.len();
    let mut counts: Vec<i64> = results.iter().map(|r| r.0).collect();
    counts.sort_unstable();
    let total: i64 = counts.iter().sum();
    let (_, counter_cv) = cv(&counts);
    let mut gaps: Vec<Duration> = results.iter().map(|r| r.1.max_gap).collect();
    gaps.sort_unstable();
    let mut slices: Vec<u64> = results.iter().map(|r| r.1.slices).collect();
    slices.sort_unstable();
    let max_slice = results
        .iter()
        .map(|r| r.1.max_slice)
        .max()
        .unwrap_or_default();
    let starved = counts.iter().filter(|&&x| x == 0).count();
    let timeslice = runtime.timeslice();
    let ideal = timeslice.mul_f64(n as f64 / workers as f64);
    let max_gap = gaps.last().copied().unwrap_or_default();
    let median_ticks = slices.get(n / 2).copied().unwrap_or(0) as f64
        * (timeslice.as_secs_f64() / opts.tick.as_secs_f64().max(1e-9));
    let cv_floor = noise
        .filter(|_| median_ticks > 0.0)
        .map(|c| machine_noise::cv_floor(c, median_ticks));

    let mut report = Report::new("preempt", COLUMNS);
    let mut r = opts.header("preempt", true);
    r.extend(
        Record::new()
            .with("n", n)
            .with("t_s", p.t)
            .with("run_ms", ms(elapsed))
            .with("total_increments", total)
            .with(
                "increments_per_sec",
                (total as f64 / elapsed.as_secs_f64()).round(),
            )
            .with("counter_min", counts.first().copied())
            .with("counter_median", counts.get(n / 2).copied())
            .with("counter_max", counts.last().copied())
            .with("counter_cv", round(counter_cv, 4))
            .with("starved_instances", starved)
            .with("epoch_ticks", ticks)
            .with("slices_total", slices.iter().sum::<u64>())
            .with("slices_per_instance_median", slices.get(n / 2).copied())
            .with("max_gap_ms", ms(max_gap))
            .with("p50_instance_max_gap_ms", gaps.get(n / 2).map(|g| ms(*g)))
            .with("max_slice_ms", ms(max_slice))
            .with("stop_to_all_joined_ms", ms(stopped.saturating_sub(elapsed)))
            .with(
                "gap_covers",
                "per instance, longest time between being preempted and running again",
            )
            .with("ideal_gap_ms", ms(ideal))
            .with(
                "gap_vs_ideal",
                round(max_gap.as_secs_f64() / ideal.as_secs_f64().max(1e-9), 3),
            )
            .with("counter_cv_within_worker_max", round(within_cv, 4))
            .with("machine_noise_cv", noise.map(|c| round(c, 4)))
            .with("counter_cv_floor", cv_floor.map(|f| round(f, 4)))
            .with("worker_mean_max_over_min", round(worker_spread, 3))
            .with("workers_rotated", runtime.rotates_workers()),
    );
    report.records.push(r);
    if let (Some(noise), Some(floor)) = (noise, cv_floor) {
        report.notes.push(format!(
            "machine noise: work per {} us tick varies with CV {noise:.3}; at {median_ticks:.0} \
             ticks per instance that alone spreads the counters by CV ~{floor:.3}",
            opts.tick.as_micros()
        ));
    }
    report.notes.push(format!(
        "timeslice {} us on {workers} workers; targets: CV <= 0.02 at 10,000 instances, worst gap \
         <= 1.2x ideal",
        timeslice.as_micros()
    ));
    Ok(PreemptRun {
        report,
        counters: counts,
    })
}
