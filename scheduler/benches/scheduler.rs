//! Scheduler micro-benchmarks.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-sched cargo bench -p shoal-scheduler
//! ```
//!
//! - `yield/*`: cost of one `yield_now()` (suspend, run-queue push and pop,
//!   resume), with one or ten green threads yielding on one worker;
//! - `spawn_join/*`: spawn and completion of an empty green thread, in
//!   batches of 1,000 (amortized): from a green thread onto its own worker,
//!   and from an OS thread onto the least-loaded worker;
//! - `park_unpark/*`: a ping-pong between two green threads (one round trip
//!   = two unparks and two parks), on one worker and across two workers.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal_scheduler::{
    current, current_worker_index, park, yield_now, Executor, Handle, JoinHandle,
};

fn yields(c: &mut Criterion) {
    let exec = Executor::builder().workers(1).build().expect("build");
    let mut group = c.benchmark_group("yield");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 10] {
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads);
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        exec.spawn_on(0, move || {
                            let start = Instant::now();
                            for _ in 0..per_thread {
                                yield_now();
                            }
                            start.elapsed()
                        })
                        .expect("spawn")
                    })
                    .collect();
                // All threads interleave; the longest span covers all yields.
                let span = handles
                    .into_iter()
                    .map(|h| h.join().expect("join"))
                    .max()
                    .unwrap_or_default();
                span.mul_f64(iters as f64 / (per_thread * threads) as f64)
            })
        });
    }
    group.finish();
}

const BATCH: u64 = 1_000;

fn spawn_join(c: &mut Criterion) {
    let exec = Executor::builder().workers(2).build().expect("build");
    let mut group = c.benchmark_group("spawn_join");
    group.throughput(Throughput::Elements(1));
    group.bench_function("local_batch_1000", |b| {
        b.iter_custom(|iters| {
            exec.spawn_on(0, move || {
                let handle = Handle::current().expect("handle");
                let worker = current_worker_index().expect("worker");
                let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(BATCH as usize);
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let n = BATCH.min(iters - done);
                    for _ in 0..n {
                        handles.push(handle.spawn_on(worker, || black_box(())).expect("spawn"));
                    }
                    for h in handles.drain(..) {
                        h.join().expect("join");
                    }
                    done += n;
                }
                start.elapsed()
            })
            .expect("spawn")
            .join()
            .expect("join")
        })
    });
    // From an OS thread onto the least-loaded worker. Completion is counted
    // down and only the last green thread wakes the OS thread: joining each
    // handle in order would measure OS-thread wake-ups (futex) instead.
    group.bench_function("from_os_thread_batch_1000", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut done = 0;
            while done < iters {
                let n = BATCH.min(iters - done);
                let left = Arc::new(AtomicU64::new(n));
                let main = current();
                for _ in 0..n {
                    let (left, main) = (left.clone(), main.clone());
                    drop(exec.spawn(move || {
                        if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                            main.unpark();
                        }
                    }));
                }
                while left.load(Ordering::Acquire) != 0 {
                    park();
                }
                done += n;
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// Two green threads on `workers` (a, b) bounce a counter `rounds` times.
fn ping_pong(exec: &Executor, (wa, wb): (usize, usize), rounds: u64) -> Duration {
    let turn = Arc::new(AtomicU64::new(0));
    let (ta, tb) = (turn.clone(), turn.clone());
    let (a_tx, a_rx) = shoal_scheduler::channel::bounded(1);
    let b = exec
        .spawn_on(wb, move || {
            let a: shoal_scheduler::Thread = a_rx.recv().expect("peer");
            for round in 0..rounds {
                while tb.load(Ordering::Acquire) != 2 * round + 1 {
                    park();
                }
                tb.store(2 * round + 2, Ordering::Release);
                a.unpark();
            }
        })
        .expect("spawn");
    let b_thread = b.thread().clone();
    let a = exec
        .spawn_on(wa, move || {
            a_tx.send(current()).expect("send");
            let start = Instant::now();
            for round in 0..rounds {
                ta.store(2 * round + 1, Ordering::Release);
                b_thread.unpark();
                while ta.load(Ordering::Acquire) != 2 * round + 2 {
                    park();
                }
            }
            start.elapsed()
        })
        .expect("spawn");
    let elapsed = a.join().expect("a");
    b.join().expect("b");
    elapsed
}

fn park_unpark(c: &mut Criterion) {
    let exec = Executor::builder().workers(2).build().expect("build");
    let mut group = c.benchmark_group("park_unpark");
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip_same_worker", |b| {
        b.iter_custom(|iters| ping_pong(&exec, (0, 0), iters))
    });
    group.bench_function("round_trip_across_workers", |b| {
        b.iter_custom(|iters| ping_pong(&exec, (0, 1), iters))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = yields, spawn_join, park_unpark
}
criterion_main!(benches);
