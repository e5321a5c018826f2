//! The `spawn` workload of `../shared/workloads/spawn.wat`: per-request
//! `Store::new` + instantiate (through an `InstancePre`) + one call + drop,
//! on one thread, in both memory strategies.
//!
//! `cargo bench --bench spawn`. Target (issue 4, item 5): at most 5 µs per
//! instance on one thread, with no mmap, munmap or mprotect in steady state
//! (`instance/examples/spawn_loop.rs` counts them), and near-linear
//! scaling with threads: `spawn/<strategy>/threads=2` runs the same loop on
//! two threads at once and reports wall time per instance (half of the
//! one-thread figure is perfect scaling).

use criterion::{criterion_group, criterion_main, Criterion};
use shoal::{Config, Engine, InstancePre, Linker, MemoryStrategy, Module, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn spawn_wat() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/spawn.wat");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the shared spawn workload at {}: {e}",
            path.display()
        )
    })
}

fn pre(strategy: MemoryStrategy) -> (Engine, InstancePre<()>) {
    let engine = Engine::new(Config {
        memory_strategy: strategy,
        ..Config::default()
    })
    .expect("engine");
    let module = Module::new(&engine, spawn_wat()).expect("compile spawn.wat");
    let pre = Linker::new(&engine)
        .instantiate_pre(&module)
        .expect("instantiate_pre");
    (engine, pre)
}

/// One request: a fresh store, an instance, `run(12345)`, drop.
fn spawn_once(engine: &Engine, pre: &InstancePre<()>) -> i32 {
    let mut store = Store::new(engine, ());
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let run = instance
        .get_typed_func::<(i32,), i32>(&store, "run")
        .expect("export run");
    run.call(&mut store, (12345,)).expect("call run")
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, strategy) in [
        ("checked", MemoryStrategy::Checked),
        ("guarded", MemoryStrategy::Guarded),
    ] {
        let (engine, pre) = pre(strategy);
        assert_eq!(spawn_once(&engine, &pre), 381_162);
        group.bench_function(name, |b| b.iter(|| spawn_once(&engine, &pre)));
        group.bench_function(format!("{name}/threads=2"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| {
                            for _ in 0..iters.div_ceil(2) {
                                spawn_once(&engine, &pre);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
