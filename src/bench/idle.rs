//! The `idle` workload: N instances of `idle.wat` parked at once in a host
//! call; resident memory per parked instance.
//!
//! `idle.wat`'s `run()` calls the host import `env.wait`, which parks the
//! instance's green thread (a green-thread park: its worker goes on with
//! the others; no OS thread blocks) until one shared release signal, then
//! returns 1; `run()` returns 2. As in the Wasmtime peer's `idle`:
//!
//! 1. a warm-up round of `warmup` instances goes through the same path
//!    (spawn, park, release, finish);
//! 2. baseline: `VmRSS`, `VmSize`, mappings;
//! 3. N instances are spawned (each on its own green thread, the instance
//!    created on it), and the run waits until all N are parked:
//!    `spawn_all_ms`;
//! 4. `VmRSS` again: `bytes_per_parked_instance` = (parked − baseline) / N.
//!    It includes everything a parked instance costs: the green thread's
//!    touched stack pages and task, the store, the instance (VMContext,
//!    tables), its linear memory (untouched while parked: `idle.wat` writes
//!    it only after `wait` returns), and the harness's join handle. The
//!    kernel's page tables for those pages are not in `VmRSS`; they are
//!    reported beside it (`page_tables_*_bytes`, from `VmPTE`);
//! 5. the release signal is set and every parked green thread unparked;
//!    all N are joined (each result checked): `release_to_done_ms`.
//!
//! Pools are sized from N (`StressOptions::runtime`); the run is checked
//! against the machine first ([`preflight`]), and a limit hit on the way
//! stops spawning, releases those parked, and reports how far it got.
//!
//! Field names are the peer's; `async_stack_size` is the size of a green
//! thread's stack (address space; only touched pages are resident).

use super::crowd::Crowd;
use super::error::StressError;
use super::limits::{preflight, Plan};
use super::options::{StressOptions, STACK_SIZE};
use super::progress::Progress;
use super::report::{ms, Column, Record, Report};
use super::sysinfo::{self, MemoryUse};
use crate::runtime::{host, Runtime, TypedTemplate};
use shoal_instance::{Linker, OsCalls, Trap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters of `idle` (the peer's defaults).
#[derive(Clone, Debug)]
pub struct IdleParams {
    /// Instances parked at once (`-n`, `--instances`).
    pub n: usize,
    /// Instances through the same path before the baseline.
    pub warmup: usize,
}

impl Default for IdleParams {
    fn default() -> Self {
        IdleParams {
            n: 10_000,
            warmup: 64,
        }
    }
}

/// Resident bytes a parked instance is expected to cost, for the preflight
/// check (measured: about 6 KiB; with room to spare).
const EXPECTED_BYTES: u64 = 10 << 10;

/// The table's columns.
pub const COLUMNS: &[Column] = &[
    ("n", "instances"),
    ("bytes_per_parked_instance", "bytes/parked"),
    ("spawn_all_ms", "spawn all ms"),
    ("release_to_done_ms", "release->done ms"),
    ("rss_parked_bytes", "RSS parked"),
    ("maps_parked", "mappings"),
];

/// The release signal every parked instance waits on.
#[derive(Default)]
struct Gate {
    released: AtomicBool,
    parked: AtomicUsize,
}

/// What one round measured.
struct Round {
    spawn: Duration,
    finish: Duration,
    parked: MemoryUse,
    maps_parked: usize,
    os_calls: OsCalls,
    after: MemoryUse,
}

/// Runs `idle` (see the module docs).
pub fn run(opts: &StressOptions, p: &IdleParams) -> Result<Report, StressError> {
    if p.n == 0 {
        return Err(StressError::Config("idle needs at least 1 instance".into()));
    }
    opts.check()?;
    preflight(&Plan {
        live: p.n.max(p.warmup),
        memory_strategy: opts.memory_strategy,
        stack_size: STACK_SIZE,
        resident_per_instance: EXPECTED_BYTES,
    })?;
    let runtime = opts.runtime(p.n.max(p.warmup))?;
    let module = runtime
        .compile(opts.read_workload("idle.wat")?)
        .map_err(|e| StressError::guest("idle.wat", e))?;
    let gate = Arc::new(Gate::default());
    let mut linker = Linker::<()>::new(runtime.engine());
    let g = gate.clone();
    linker
        .func_wrap("env", "wait", move || -> Result<i32, Trap> {
            g.parked.fetch_add(1, Ordering::AcqRel);
            while !g.released.load(Ordering::Acquire) {
                host::park()?;
            }
            Ok(1)
        })
        .map_err(|e| StressError::guest("env.wait", e))?;
    let run = runtime
        .template(&module, &linker, "run")
        .and_then(|t| t.typed::<(), i32>())
        .map_err(|e| StressError::guest("idle.wat's run", e))?;

    if p.warmup > 0 {
        round(&runtime, &run, &gate, p.warmup, Progress::hidden())?;
    }
    let base = sysinfo::memory_use();
    let maps0 = sysinfo::map_count();
    let epoch0 = shoal_scheduler::epoch_now();
    let progress = Progress::count(opts.progress, p.n as u64, "parking instances");
    let m = round(&runtime, &run, &gate, p.n, progress)?;
    let per = (m.parked.rss as f64 - base.rss as f64) / p.n as f64;

    let mut report = Report::new("idle", COLUMNS);
    let mut r = opts.header("idle", true);
    r.extend(
        Record::new()
            .with("n", p.n)
            .with("async_stack_size", STACK_SIZE)
            .with("spawn_all_ms", ms(m.spawn))
            .with("release_to_done_ms", ms(m.finish))
            .with("rss_baseline_bytes", base.rss)
            .with("rss_parked_bytes", m.parked.rss)
            .with("bytes_per_parked_instance", per.round())
            .with("vsz_baseline_bytes", base.vsz)
            .with("vsz_parked_bytes", m.parked.vsz)
            .with("page_tables_baseline_bytes", base.page_tables)
            .with("page_tables_parked_bytes", m.parked.page_tables)
            .with("maps_baseline", maps0)
            .with("maps_parked", m.maps_parked)
            .with("vm_max_map_count", sysinfo::max_map_count())
            .with("rss_after_release_bytes", m.after.rss)
            .with("epoch_ticks", shoal_scheduler::epoch_now() - epoch0)
            .with("warmup", p.warmup)
            .with(
                "memory_os_calls",
                Record::new()
                    .with("mmap", m.os_calls.mmap)
                    .with("munmap", m.os_calls.munmap)
                    .with("mprotect", m.os_calls.mprotect)
                    .with("madvise", m.os_calls.madvise),
            ),
    );
    report.records.push(r);
    report.notes.push(format!(
        "RSS {} baseline -> {} parked ({} per instance); VmSize {}; mappings {maps0} -> {}",
        sysinfo::human_bytes(base.rss),
        sysinfo::human_bytes(m.parked.rss),
        sysinfo::human_bytes(per.max(0.0) as u64),
        sysinfo::human_bytes(m.parked.vsz),
        m.maps_parked
    ));
    report
        .notes
        .push("target: at most 8 KiB per parked instance".into());
    Ok(report)
}

/// Spawns `n` instances, waits until all are parked, measures, releases
/// them and joins them all (steps 3 to 5 of the module docs).
fn round(
    runtime: &Runtime,
    run: &TypedTemplate<(), (), i32>,
    gate: &Arc<Gate>,
    n: usize,
    progress: Progress,
) -> Result<Round, StressError> {
    gate.released.store(false, Ordering::Release);
    gate.parked.store(0, Ordering::Release);
    let executor = runtime.executor();
    let mut crowd: Crowd<i32> = Crowd::with_capacity(n);
    let calls0 = OsCalls::process();
    let t0 = Instant::now();
    for i in 0..n {
        let run = run.clone();
        if !crowd.spawn(executor, move || run.run_here((), ())) {
            break;
        }
        if i % 1024 == 0 {
            progress.set(gate.parked.load(Ordering::Relaxed) as u64);
        }
    }
    crowd.wait_settled(&gate.parked, &progress);
    progress.finish();
    let spawn = t0.elapsed();
    let os_calls = OsCalls::process().since(&calls0);
    let parked = sysinfo::memory_use();
    let maps_parked = sysinfo::map_count();
    let parked_count = gate.parked.load(Ordering::Acquire);

    // Release: the flag first, then an unpark for every green thread (an
    // unpark is never lost: one that comes before the park makes it return).
    let t1 = Instant::now();
    gate.released.store(true, Ordering::Release);
    for h in crowd.handles() {
        h.thread().unpark();
    }
    let spawned = crowd.len();
    let (outcomes, failures) = crowd.join_all();
    let finish = t1.elapsed();
    if let Some(e) = failures.error(parked_count, n) {
        return Err(e);
    }
    if spawned < n {
        return Err(StressError::Instances {
            failed: n - spawned,
            first: "spawning stopped early".into(),
        });
    }
    if let Some(bad) = outcomes.iter().find(|o| !matches!(o, Ok(2))) {
        return Err(StressError::Instances {
            failed: outcomes.iter().filter(|o| !matches!(o, Ok(2))).count(),
            first: format!("run() returned {bad:?}, expected Ok(2)"),
        });
    }
    drop(outcomes);
    Ok(Round {
        spawn,
        finish,
        parked,
        maps_parked,
        os_calls,
        after: sysinfo::memory_use(),
    })
}
