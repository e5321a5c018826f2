//! Steady-state spawning of `../shared/workloads/spawn.wat` on one thread:
//! `Store::new` + instantiate (through an `InstancePre`) + `run(12345)` +
//! drop, N times, after a warm-up, on THREADS threads at once (default 1).
//! Prints the wall time per instance and the memory system calls Shoal made
//! in the timed part (expected: none).
//!
//! ```text
//! cargo run --release -p shoal-instance --example spawn_loop -- [checked|guarded] [N] [THREADS]
//! strace -f -c -e trace=memory target/release/examples/spawn_loop checked 1000000
//! ```

use shoal_instance::{Config, Engine, Linker, MemoryStrategy, Module, OsCalls, Store};
use std::time::Instant;

const SPAWN_WAT: &str = include_str!("../../../shared/workloads/spawn.wat");

fn main() {
    let mut args = std::env::args().skip(1);
    let strategy: MemoryStrategy = args
        .next()
        .unwrap_or_else(|| "checked".into())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let engine = Engine::new(Config {
        memory_strategy: strategy,
        ..Config::default()
    })
    .expect("engine");
    let module = Module::new(&engine, SPAWN_WAT).expect("compile spawn.wat");
    let pre = Linker::<()>::new(&engine)
        .instantiate_pre(&module)
        .expect("instantiate_pre");
    let barrier = std::sync::Barrier::new(threads as usize + 1);
    let spawn = || {
        let mut store = Store::new(&engine, ());
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let run = instance
            .get_typed_func::<(i32,), i32>(&store, "run")
            .expect("export run");
        let got = run.call(&mut store, (12345,)).expect("call run");
        assert_eq!(got, 381_162);
    };
    let mut before = OsCalls::process();
    let mut start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..1000 {
                    spawn();
                }
                barrier.wait(); // warmed up
                barrier.wait(); // go
                for _ in 0..n / threads {
                    spawn();
                }
            });
        }
        barrier.wait();
        before = OsCalls::process();
        start = Instant::now();
        barrier.wait();
    });
    let elapsed = start.elapsed();
    let calls = OsCalls::process().since(&before);
    println!(
        "{strategy:?}, {threads} thread(s): {n} spawns in {elapsed:.2?}: {:.0} ns per instance; \
         memory syscalls in steady state: {calls:?}",
        elapsed.as_nanos() as f64 / n as f64
    );
}
