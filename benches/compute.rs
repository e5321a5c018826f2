//! Compute kernels of `../shared/workloads/compute.wat` (fib(30),
//! sieve(10,000,000), matmul(200)), timed per guest call as the Wasmtime
//! peer's `compute` does, in two groups:
//!
//! - `compute/epoch_off`: no epoch checks compiled in (the figure compared
//!   with Wasmtime; target: at most 1.10x Wasmtime's time per kernel);
//! - `compute/epoch_on`: an epoch check at every function entry and loop
//!   back edge, with the deadline out of reach and no ticker, so the
//!   difference between the groups is the cost of the checks alone.
//!
//! `cargo bench --bench compute` (about a minute). For a side-by-side with
//! Wasmtime, run `benches/compare_wasmtime.sh`.

mod common;

use common::{ComputeInstance, Kernel};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn compute(c: &mut Criterion) {
    for (group_name, epoch) in [("compute/epoch_off", false), ("compute/epoch_on", true)] {
        let mut instance = ComputeInstance::new(epoch);
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for kernel in Kernel::ALL {
            let id = format!("{}({})", kernel.name(), kernel.arg());
            group.bench_function(id, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| instance.time_once(kernel).0).sum())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, compute);
criterion_main!(benches);
