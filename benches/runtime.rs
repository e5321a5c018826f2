//! The runtime's hot paths, on the shared workloads of
//! `../shared/workloads/` (`cargo bench --bench runtime`):
//!
//! - `spawn/c1`, `spawn/c256`: per-request instances of `spawn.wat`: a new
//!   green thread per request (`TypedTemplate::spawn`), instantiate,
//!   `run(12345) == 381162`, drop; at most 1 or 256 in flight, driven by a
//!   green thread (as the Wasmtime peer drives from a tokio task). Time per
//!   instance.
//! - `spawn/in_place`: the same request run by `run_here` on the driving
//!   green thread (an embedder's connection handler running the instance
//!   itself): instantiate, call, drop, no new green thread.
//! - `yield/n1000_k100`: 1,000 instances of `yield.wat` each calling the
//!   host `env.yield` (`host::yield_now`) 100 times. Time per switch.
//!
//! Preemption and fairness are not a criterion-shaped measurement: see
//! `shoal stress preempt` (and `shoal stress spawn`, `shoal stress yield`
//! for latency percentiles and the peer's JSON format; `src/bench/`).

use criterion::{criterion_group, criterion_main, Criterion};
use shoal::runtime::{host, Runtime, TypedTemplate};
use shoal::Linker;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn workload(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/workloads")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read the shared workload {}: {e}", path.display()))
}

/// Runs `requests` spawns of `run(12345)` with at most `concurrency` in
/// flight, from a green thread; returns the wall time.
fn drive(
    rt: &Runtime,
    run: &TypedTemplate<(), i32, i32>,
    requests: u64,
    concurrency: usize,
) -> Duration {
    let run = run.clone();
    rt.executor()
        .spawn(move || {
            let start = Instant::now();
            let mut in_flight = VecDeque::with_capacity(concurrency);
            for _ in 0..requests {
                if in_flight.len() == concurrency {
                    let h: shoal::JoinHandle<i32> = in_flight.pop_front().expect("in flight");
                    assert_eq!(h.join().expect("run"), 381_162);
                }
                in_flight.push_back(run.spawn(12345).expect("spawn"));
            }
            for h in in_flight {
                assert_eq!(h.join().expect("run"), 381_162);
            }
            start.elapsed()
        })
        .expect("spawn driver")
        .join()
        .expect("driver")
}

fn spawn(c: &mut Criterion) {
    let rt = Runtime::builder().workers(2).build().expect("runtime");
    let module = rt
        .compile(workload("spawn.wat"))
        .expect("compile spawn.wat");
    let run = rt
        .template(&module, &Linker::<()>::new(rt.engine()), "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let mut group = c.benchmark_group("spawn");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for concurrency in [1usize, 256] {
        group.bench_function(format!("c{concurrency}"), |b| {
            b.iter_custom(|iters| drive(&rt, &run, iters, concurrency))
        });
    }
    group.bench_function("in_place", |b| {
        b.iter_custom(|iters| {
            let run = run.clone();
            rt.executor()
                .spawn(move || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        assert_eq!(run.run_here((), 12345).expect("run"), 381_162);
                    }
                    start.elapsed()
                })
                .expect("spawn")
                .join()
                .expect("driver")
        })
    });
    group.finish();
}

fn yield_(c: &mut Criterion) {
    const N: usize = 1000;
    const K: i32 = 100;
    let rt = Runtime::builder().workers(2).build().expect("runtime");
    let module = rt
        .compile(workload("yield.wat"))
        .expect("compile yield.wat");
    let mut linker = Linker::<()>::new(rt.engine());
    linker
        .func_wrap("env", "yield", host::yield_now)
        .expect("define env.yield");
    let run = rt
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let mut group = c.benchmark_group("yield");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // One iteration = N instances × K switches; reported per switch.
    group.throughput(criterion::Throughput::Elements((N as u64) * K as u64));
    group.bench_function(format!("n{N}_k{K}"), |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..N).map(|_| run.spawn(K).expect("spawn")).collect();
            for h in handles {
                assert_eq!(h.join().expect("run"), K);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, spawn, yield_);
criterion_main!(benches);
