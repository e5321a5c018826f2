//! The `yield` workload: N instances of `yield.wat` each calling the host
//! import `env.yield` K times: switches per second.
//!
//! As in the Wasmtime peer's `yield`: N instances are spawned (each on its
//! own green thread, the instance created on it) and wait for a start
//! signal; then every `run(K)` calls `env.yield` K times and returns K
//! (checked). The host function is `shoal::runtime::host::yield_now`: the
//! instance's green thread goes to the back of its worker's run queue, so a
//! switch is one suspend and one resume of an instance around one host
//! yield.
//!
//! The start line is the instance's first `env.yield`: it counts itself
//! ready, then yields (to the back of the queue) until the signal, then
//! makes its first counted yield. `setup_ms` runs from the first spawn
//! until all N are ready; `wall_ms` from the signal until all N calls have
//! returned and their stores are dropped (joined from the driving thread).

use super::crowd::Crowd;
use super::error::StressError;
use super::limits::{preflight, Plan};
use super::options::{StressOptions, STACK_SIZE};
use super::progress::Progress;
use super::report::{ms, round, Column, Record, Report};
use crate::runtime::host;
use shoal_instance::{Caller, Linker, Trap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Parameters of `yield` (the peer's defaults).
#[derive(Clone, Debug)]
pub struct YieldParams {
    /// Instances (`-n`).
    pub n: usize,
    /// Yields per instance (`-k`).
    pub k: u32,
}

impl Default for YieldParams {
    fn default() -> Self {
        YieldParams { n: 10_000, k: 100 }
    }
}

/// The table's columns.
pub const COLUMNS: &[Column] = &[
    ("n", "instances"),
    ("k", "yields each"),
    ("switches_per_sec", "switches/s"),
    ("ns_per_switch", "ns/switch"),
    ("wall_ms", "wall ms"),
    ("setup_ms", "setup ms"),
];

/// Runs `yield` (see the module docs).
pub fn run(opts: &StressOptions, p: &YieldParams) -> Result<Report, StressError> {
    if p.n == 0 || p.k == 0 || p.k > i32::MAX as u32 {
        return Err(StressError::Config(
            "yield needs -n >= 1 and 1 <= -k <= 2^31-1".into(),
        ));
    }
    opts.check()?;
    preflight(&Plan {
        live: p.n,
        memory_strategy: opts.memory_strategy,
        stack_size: STACK_SIZE,
        resident_per_instance: 16 << 10,
    })?;
    let runtime = opts.runtime(p.n)?;
    let module = runtime
        .compile(opts.read_workload("yield.wat")?)
        .map_err(|e| StressError::guest("yield.wat", e))?;

    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    // The store's data says whether the instance has passed the start line.
    let mut linker = Linker::<bool>::new(runtime.engine());
    let (g, r) = (go.clone(), ready.clone());
    linker
        .func_wrap(
            "env",
            "yield",
            move |mut caller: Caller<'_, bool>| -> Result<(), Trap> {
                // After the signal, only the (shared, cached) flag is read,
                // as the peer's `env.yield` touches nothing of its own.
                if !g.load(Ordering::Acquire) && !*caller.data() {
                    *caller.data_mut() = true;
                    r.fetch_add(1, Ordering::AcqRel);
                    while !g.load(Ordering::Acquire) {
                        host::yield_now()?;
                    }
                }
                host::yield_now()
            },
        )
        .map_err(|e| StressError::guest("env.yield", e))?;
    let run = runtime
        .template(&module, &linker, "run")
        .and_then(|t| t.typed::<i32, i32>())
        .map_err(|e| StressError::guest("yield.wat's run", e))?;
    let k = p.k as i32;

    let progress = Progress::count(opts.progress, p.n as u64, "instances ready");
    let executor = runtime.executor();
    let mut crowd: Crowd<i32> = Crowd::with_capacity(p.n);
    let t_setup = Instant::now();
    for _ in 0..p.n {
        let run = run.clone();
        if !crowd.spawn(executor, move || run.run_here(false, k)) {
            break;
        }
    }
    crowd.wait_settled(&ready, &progress);
    let setup = t_setup.elapsed();
    let reached = ready.load(Ordering::Acquire);
    progress.finish();

    let epoch0 = shoal_scheduler::epoch_now();
    let t_run = Instant::now();
    go.store(true, Ordering::Release);
    let spawned = crowd.len();
    let (outcomes, failures) = crowd.join_all();
    let wall = t_run.elapsed();
    let ticks = shoal_scheduler::epoch_now() - epoch0;
    if let Some(e) = failures.error(reached, p.n) {
        return Err(e);
    }
    if spawned < p.n || outcomes.iter().any(|o| !matches!(o, Ok(v) if *v == k)) {
        return Err(StressError::Instances {
            failed: outcomes
                .iter()
                .filter(|o| !matches!(o, Ok(v) if *v == k))
                .count()
                + (p.n - spawned),
            first: format!("run({k}) did not return {k}"),
        });
    }

    let switches = p.n as u64 * u64::from(p.k);
    let mut report = Report::new("yield", COLUMNS);
    let mut r = opts.header("yield", true);
    r.extend(
        Record::new()
            .with("n", p.n)
            .with("k", p.k)
            .with("switches", switches)
            .with("wall_ms", ms(wall))
            .with(
                "switches_per_sec",
                (switches as f64 / wall.as_secs_f64()).round(),
            )
            .with(
                "ns_per_switch",
                round(wall.as_nanos() as f64 / switches as f64, 1),
            )
            .with("setup_ms", ms(setup))
            .with("total_ms", ms(setup + wall))
            .with("epoch_ticks", ticks)
            .with(
                "wall_covers",
                "start signal to N instantiated, waiting instances -> all N run(K) calls \
                 returned (store drops included)",
            ),
    );
    report.records.push(r);
    report.notes.push(format!(
        "a switch: host::yield_now from env.yield, back of the worker's run queue; {} workers",
        opts.worker_count()
    ));
    Ok(report)
}
