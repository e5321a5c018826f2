//! The `spawn` workload: per-request instances of `spawn.wat`
//! (instantiate, call `run(i)` once, drop), N per concurrency level C:
//! throughput and latency.
//!
//! As in the Wasmtime peer's `spawn`, per level: an unmeasured warm-up of
//! `warmup` requests, then N requests with at most C in flight. A driver
//! green thread spawns each request (`TypedTemplate::spawn_then`: a new
//! green thread; `Store::new`, instantiate, `run(i)` checked against the
//! expected value; store dropped) and, once C are in flight, joins the
//! oldest before spawning the next. `wall_ms` runs from the first spawn to
//! the last join.
//!
//! A request's latency is measured inside its green thread, from the start
//! of the instance's creation to the end of the call (waiting in the run
//! queue before it starts is excluded, as the peer excludes waiting for its
//! semaphore); latencies go into an HDR histogram (p50, p99, p99.9, max).
//! `requests_that_suspended` counts requests preempted at least once.
//! `memory_os_calls` counts the linear-memory system calls of the measured
//! requests (steady state: no mmap, munmap or mprotect).

use super::error::StressError;
use super::limits::{preflight, Limit, LimitHit, Plan};
use super::options::{StressOptions, STACK_SIZE};
use super::plot::latency_chart;
use super::progress::Progress;
use super::report::{ms, us, Column, Record, Report};
use crate::runtime::{Runtime, TypedTemplate};
use hdrhistogram::Histogram;
use shoal_instance::{Linker, OsCalls};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Parameters of `spawn` (the peer's defaults).
#[derive(Clone, Debug)]
pub struct SpawnParams {
    /// Requests per concurrency level (`-n`).
    pub n: usize,
    /// Concurrency levels (`-c`), one record each.
    pub concurrency: Vec<usize>,
    /// Unmeasured requests before each level.
    pub warmup: usize,
}

impl Default for SpawnParams {
    fn default() -> Self {
        SpawnParams {
            n: 100_000,
            concurrency: vec![1, 256],
            warmup: 2000,
        }
    }
}

/// The table's columns.
pub const COLUMNS: &[Column] = &[
    ("concurrency", "C"),
    ("n", "requests"),
    ("instances_per_sec", "instances/s"),
    ("lat_p50_us", "p50 us"),
    ("lat_p99_us", "p99 us"),
    ("lat_p999_us", "p99.9 us"),
    ("lat_max_us", "max us"),
    ("requests_that_suspended", "suspended"),
];

/// The figures of a `spawn` run: the report and each level's latency
/// histogram (nanoseconds), for [`SpawnRun::chart`].
#[derive(Debug)]
pub struct SpawnRun {
    /// One record per level.
    pub report: Report,
    /// (concurrency, latency histogram in ns).
    pub latency: Vec<(usize, Histogram<u64>)>,
}

impl SpawnRun {
    /// The latency distribution of every level, as an SVG chart.
    pub fn chart(&self) -> String {
        let levels: Vec<(String, &Histogram<u64>)> = self
            .latency
            .iter()
            .map(|(c, h)| (format!("C={c}"), h))
            .collect();
        latency_chart("spawn: latency per request (instantiate + call)", &levels).to_svg()
    }
}

/// `run(x)` of `spawn.wat`.
fn expected(x: i32) -> i32 {
    (x.wrapping_mul(31).wrapping_add(7) ^ ((x as u32) >> 3) as i32).wrapping_add(1)
}

/// A new latency histogram: 1 ns to 1 hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

/// What one level measured.
struct Level {
    wall: Duration,
    latency: Histogram<u64>,
    suspended: u64,
}

/// Runs `spawn` (see the module docs).
pub fn run(opts: &StressOptions, p: &SpawnParams) -> Result<SpawnRun, StressError> {
    if p.n == 0 || p.concurrency.is_empty() || p.concurrency.contains(&0) {
        return Err(StressError::Config(
            "spawn needs -n >= 1 and concurrency levels >= 1".into(),
        ));
    }
    opts.check()?;
    let max_c = p.concurrency.iter().copied().max().unwrap_or(1);
    preflight(&Plan {
        live: max_c + 1,
        memory_strategy: opts.memory_strategy,
        stack_size: STACK_SIZE,
        resident_per_instance: 80 << 10,
    })?;
    let runtime = opts.runtime(max_c + 64)?;
    let module = runtime
        .compile(opts.read_workload("spawn.wat")?)
        .map_err(|e| StressError::guest("spawn.wat", e))?;
    let run = runtime
        .template(&module, &Linker::<()>::new(runtime.engine()), "run")
        .and_then(|t| t.typed::<i32, i32>())
        .map_err(|e| StressError::guest("spawn.wat's run", e))?;

    let mut out = SpawnRun {
        report: Report::new("spawn", COLUMNS),
        latency: Vec::new(),
    };
    let total = (p.n + p.warmup) as u64 * p.concurrency.len() as u64;
    let progress = Progress::count(opts.progress, total, "spawning instances");
    for &c in &p.concurrency {
        level(&runtime, &run, p.warmup, c, &progress)?;
        let epoch0 = shoal_scheduler::epoch_now();
        let calls0 = OsCalls::process();
        let m = level(&runtime, &run, p.n, c, &progress)?;
        let calls = OsCalls::process().since(&calls0);
        let ticks = shoal_scheduler::epoch_now() - epoch0;
        let h = &m.latency;
        let mut r = opts.header("spawn", true);
        r.extend(
            Record::new()
                .with("n", p.n)
                .with("concurrency", c)
                .with("wall_ms", ms(m.wall))
                .with(
                    "instances_per_sec",
                    (p.n as f64 / m.wall.as_secs_f64()).round(),
                )
                .with("lat_p50_us", us(h.value_at_quantile(0.50)))
                .with("lat_p99_us", us(h.value_at_quantile(0.99)))
                .with("lat_p999_us", us(h.value_at_quantile(0.999)))
                .with("lat_max_us", us(h.max()))
                .with("lat_mean_us", us(h.mean() as u64))
                .with("epoch_ticks", ticks)
                .with("requests_that_suspended", m.suspended)
                .with(
                    "latency_covers",
                    "Store::new + instantiate + call, inside the request's green thread",
                )
                .with(
                    "memory_os_calls",
                    Record::new()
                        .with("mmap", calls.mmap)
                        .with("munmap", calls.munmap)
                        .with("mprotect", calls.mprotect)
                        .with("madvise", calls.madvise),
                ),
        );
        out.report.records.push(r);
        out.latency.push((c, m.latency));
        // Let the workers go idle between levels.
        std::thread::sleep(Duration::from_millis(50));
    }
    progress.finish();
    out.report.notes.push(format!(
        "workers {}, memory {}, tick {} us; latency from instance creation to the end of the call",
        opts.worker_count(),
        opts.strategy_name(),
        opts.tick.as_micros()
    ));
    Ok(out)
}

/// `count` requests with at most `c` in flight, driven from a green thread.
fn level(
    runtime: &Runtime,
    run: &TypedTemplate<(), i32, i32>,
    count: usize,
    c: usize,
    progress: &Progress,
) -> Result<Level, StressError> {
    type Sample = (u64, bool, bool);
    let run = run.clone();
    let counter = progress.counter();
    let driver = runtime
        .executor()
        .spawn(move || -> Result<Level, StressError> {
            let mut latency = histogram();
            let mut suspended = 0u64;
            let mut in_flight: VecDeque<crate::JoinHandle<Sample>> = VecDeque::with_capacity(c);
            let mut record = |h: crate::JoinHandle<Sample>| -> Result<(), StressError> {
                match h.join() {
                    Ok((ns, was_suspended, true)) => {
                        latency.saturating_record(ns.max(1));
                        suspended += u64::from(was_suspended);
                        Ok(())
                    }
                    Ok((_, _, false)) => Err(StressError::Instances {
                        failed: 1,
                        first: "run(x) returned a wrong value".into(),
                    }),
                    Err(e) => Err(match Limit::from_run_error(&e) {
                        Some(limit) => LimitHit {
                            limit,
                            reached: c,
                            wanted: c,
                            before_start: false,
                        }
                        .into(),
                        None => StressError::Instances {
                            failed: 1,
                            first: e.to_string(),
                        },
                    }),
                }
            };
            let start = Instant::now();
            for i in 0..count {
                if in_flight.len() == c {
                    if let Some(h) = in_flight.pop_front() {
                        record(h)?;
                    }
                }
                let x = i as i32;
                let h = run
                    .spawn_then((), x, move |f| {
                        let ns = f.started.elapsed().as_nanos() as u64;
                        let ok = matches!(f.result, Ok(got) if got == expected(x));
                        (ns, f.stats.preemptions > 0, ok)
                    })
                    .map_err(|e| match Limit::from_spawn_error(&e) {
                        Some(limit) => StressError::Limit(LimitHit {
                            limit,
                            reached: in_flight.len(),
                            wanted: c,
                            before_start: false,
                        }),
                        None => StressError::guest("a request", e),
                    })?;
                in_flight.push_back(h);
                if i % 1024 == 1023 {
                    counter.fetch_add(1024, std::sync::atomic::Ordering::Relaxed);
                }
            }
            for h in in_flight {
                record(h)?;
            }
            let wall = start.elapsed();
            counter.fetch_add((count % 1024) as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(Level {
                wall,
                latency,
                suspended,
            })
        })
        .map_err(|e| StressError::guest("the driver green thread", e))?;
    driver
        .join()
        .map_err(|e| StressError::guest("the driver green thread", e))?
}
