//! The hot paths, one criterion group each, so that a regression shows up
//! before a release (`cargo bench --bench hot_paths`):
//!
//! - `switch`: a green-thread switch. `scheduler_yield`: two green threads
//!   on one worker yielding to each other (`shoal_scheduler::yield_now`),
//!   time per switch; `wasm_host_yield`: two wasm instances whose loop
//!   calls a host import that yields (`shoal::runtime::host::yield_now`),
//!   so each switch also crosses the wasm-to-host trampoline.
//! - `spawn`: one instance of a tiny module (one page, one export).
//!   `instantiate_drop`: `Store::new`, instantiate from an `InstancePre`,
//!   call, drop, on the calling thread (no green thread);
//!   `green_thread`: the runtime's per-request path, a new green thread per
//!   instance (`TypedTemplate::spawn` + `join`, one at a time).
//! - `epoch_check`: a counting loop of 1,000 iterations (one check per
//!   iteration, on the branch back to the loop header) compiled with epoch
//!   checks `off`, `on` (deadline never reached: the fast path, one load,
//!   compare and branch), and `slow_path` (deadline always reached: every
//!   check calls the deadline callback, which lets the call go on).
//! - `memory_reset`: instantiate a module with 16 pages of memory, write
//!   one byte in each of `dirty` pages, drop the store (the pool resets the
//!   dirtied pages when the memory goes back): `dirty_pages/0`, `/1`, `/16`.
//! - `host_call`: a wasm loop calling an import 1,000 times, time per
//!   call. `empty`: a host function that does nothing (the trampoline and
//!   host-call shims alone); `wasi_fd_write`: WASI `fd_write` of one 64-byte
//!   iovec to a null stdout (argument checks, the guest's iovec table, the
//!   descriptor table: what every WASI read or write pays besides its I/O).

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use shoal::runtime::{host, Runtime};
use shoal::{Config, Engine, InstancePre, Linker, MemoryStrategy, Module, Store, UpdateDeadline};
use std::time::{Duration, Instant};

const TINY: &str = r#"(module
  (memory (export "memory") 1 1)
  (func (export "run") (param i32) (result i32)
    (i32.store (i32.const 0) (i32.mul (local.get 0) (i32.const 31)))
    (i32.add (i32.load (i32.const 0)) (i32.const 1))))"#;

const LOOP: &str = r#"(module
  (func (export "count") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (local.get $i)))"#;

const YIELDER: &str = r#"(module
  (import "env" "yield" (func $yield))
  (func (export "run") (param $k i32) (result i32)
    (local $i i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (call $yield)
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
    (local.get $i)))"#;

const CALLER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "empty" (func $empty))
  (memory (export "memory") 1 1)
  (func (export "writes") (param $n i32) (result i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 64))
    (loop $again
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
      (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (i32.load (i32.const 16)))
  (func (export "empties") (param $n i32) (result i32)
    (loop $again
      (call $empty)
      (br_if $again (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $n)))"#;

const DIRTY: &str = r#"(module
  (memory (export "memory") 16 16)
  (func (export "dirty") (param $pages i32)
    (local $p i32)
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $p) (local.get $pages)))
        (i32.store8 (i32.mul (local.get $p) (i32.const 65536)) (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $again)))))"#;

fn engine(epoch_interruption: bool) -> Engine {
    Engine::new(Config {
        epoch_interruption,
        memory_strategy: MemoryStrategy::Checked,
        ..Config::default()
    })
    .expect("engine")
}

fn pre(engine: &Engine, wat: &str) -> InstancePre<()> {
    let module = Module::new(engine, wat).expect("compile");
    Linker::new(engine).instantiate_pre(&module).expect("link")
}

/// A group with the timing every group here uses: 2 s measured after a
/// 0.5 s warm-up.
fn short_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn switch(c: &mut Criterion) {
    let mut group = short_group(c, "switch");
    group.sample_size(20);
    const K: u64 = 10_000;
    group.throughput(Throughput::Elements(2 * K));

    let executor = shoal::scheduler::Executor::builder()
        .workers(1)
        .build()
        .expect("executor");
    group.bench_function("scheduler_yield", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        executor
                            .spawn(|| {
                                for _ in 0..K {
                                    shoal::scheduler::yield_now();
                                }
                            })
                            .expect("spawn")
                    })
                    .collect();
                for t in threads {
                    t.join().expect("join");
                }
            }
            start.elapsed()
        })
    });
    drop(executor);

    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime.compile(YIELDER).expect("compile");
    let mut linker = Linker::<()>::new(runtime.engine());
    linker
        .func_wrap("env", "yield", host::yield_now)
        .expect("define env.yield");
    let run = runtime
        .template(&module, &linker, "run")
        .and_then(|t| t.typed::<i32, i32>())
        .expect("template");
    group.bench_function("wasm_host_yield", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let handles: Vec<_> = (0..2)
                    .map(|_| run.spawn(K as i32).expect("spawn"))
                    .collect();
                for h in handles {
                    assert_eq!(h.join().expect("run"), K as i32);
                }
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn spawn(c: &mut Criterion) {
    let mut group = short_group(c, "spawn");
    let engine = engine(false);
    let pre = pre(&engine, TINY);
    group.bench_function("instantiate_drop", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let run = instance
                .get_typed_func::<(i32,), i32>(&store, "run")
                .expect("run");
            run.call(&mut store, (7,)).expect("call")
        })
    });

    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime.compile(TINY).expect("compile");
    let run = runtime
        .template(&module, &Linker::<()>::new(runtime.engine()), "run")
        .and_then(|t| t.typed::<i32, i32>())
        .expect("template");
    group.bench_function("green_thread", |b| {
        b.iter(|| run.spawn(7).expect("spawn").join().expect("join"))
    });
    group.finish();
}

fn epoch_check(c: &mut Criterion) {
    const ITERATIONS: i32 = 1000;
    let mut group = short_group(c, "epoch_check");
    group.throughput(Throughput::Elements(ITERATIONS as u64));
    for (name, epoch, slow) in [
        ("off", false, false),
        ("on", true, false),
        ("slow_path", true, true),
    ] {
        let engine = engine(epoch);
        let module = Module::new(&engine, LOOP).expect("compile");
        let mut store = Store::new(&engine, ());
        if slow {
            store.set_epoch_deadline(0);
            store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(0)));
        } else {
            store.set_epoch_deadline(u64::MAX);
        }
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let count = instance
            .get_typed_func::<(i32,), i32>(&store, "count")
            .expect("count");
        group.bench_function(name, |b| {
            b.iter(|| count.call(&mut store, (ITERATIONS,)).expect("call"))
        });
    }
    group.finish();
}

fn memory_reset(c: &mut Criterion) {
    let mut group = short_group(c, "memory_reset");
    let engine = engine(false);
    let pre = pre(&engine, DIRTY);
    for pages in [0, 1, 16] {
        group.bench_with_input(
            BenchmarkId::new("dirty_pages", pages),
            &pages,
            |b, &pages| {
                b.iter(|| {
                    let mut store = Store::new(&engine, ());
                    let instance = pre.instantiate(&mut store).expect("instantiate");
                    let dirty = instance
                        .get_typed_func::<(i32,), ()>(&store, "dirty")
                        .expect("dirty");
                    dirty.call(&mut store, (pages,)).expect("call");
                    drop(store);
                })
            },
        );
    }
    group.finish();
}

fn host_call(c: &mut Criterion) {
    const CALLS: u64 = 1_000;
    let mut group = short_group(c, "host_call");
    group.throughput(Throughput::Elements(CALLS));
    let engine = engine(false);
    let module = Module::new(&engine, CALLER).expect("compile");
    let mut linker = Linker::<shoal::wasi::WasiCtx>::new(&engine);
    shoal::wasi::add_to_linker(&mut linker, |ctx| ctx).expect("WASI");
    linker
        .func_wrap("env", "empty", || {})
        .expect("define env.empty");
    let pre = linker.instantiate_pre(&module).expect("link");
    let ctx = shoal::wasi::WasiCtx::builder()
        .build()
        .expect("WASI context");
    let mut store = Store::new(&engine, ctx);
    let instance = pre.instantiate(&mut store).expect("instantiate");
    for (name, export) in [("empty", "empties"), ("wasi_fd_write", "writes")] {
        let run = instance
            .get_typed_func::<(i32,), i32>(&store, export)
            .expect("export");
        // `writes` returns the last call's byte count: a failing fd_write
        // (an errno) must not be timed as a success.
        let expected = if export == "writes" { 64 } else { 0 };
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = run.call(&mut store, (CALLS as i32,)).expect("call");
                assert_eq!(result, expected, "{export}");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, switch, spawn, epoch_check, memory_reset, host_call);
criterion_main!(benches);
