//! Memory cost of many live instances of `../shared/workloads/idle.wat`
//! (one page of memory, one imported host function, one export), as an
//! `idle` run holds them while they are parked in their host call: the
//! store, the instance (VMContext, runtime state) and its linear memory,
//! not the green thread's stack (the scheduler's).
//!
//! ```text
//! cargo run --release -p shoal-instance --example idle_rss -- [checked|guarded] [N]
//! ```
//!
//! Prints the resident memory (VmRSS) and the number of mappings before and
//! after creating N stores, each with one instance, and the bytes per
//! instance; then drops them all and prints what remains.

use shoal_instance::{Config, Engine, Linker, MemoryStrategy, Module, OsCalls, Store};
use std::time::Instant;

const IDLE_WAT: &str = include_str!("../../../shared/workloads/idle.wat");

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let strategy: MemoryStrategy = args
        .next()
        .unwrap_or_else(|| "checked".into())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let engine = Engine::new(Config {
        memory_strategy: strategy,
        ..Config::default()
    })
    .expect("engine");
    let module = Module::new(&engine, IDLE_WAT).expect("compile idle.wat");
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("env", "wait", || 1i32)
        .expect("define env.wait");
    let pre = linker.instantiate_pre(&module).expect("instantiate_pre");

    // Warm up (code pages, thread caches), and check the module works.
    {
        let mut store = Store::new(&engine, ());
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let run = instance
            .get_typed_func::<(), i32>(&store, "run")
            .expect("export run");
        assert_eq!(run.call(&mut store, ()).expect("run"), 2);
    }
    let mut stores: Vec<Store<()>> = Vec::with_capacity(n);
    let (rss0, maps0, calls0) = (rss_bytes(), mappings(), OsCalls::process());
    let start = Instant::now();
    for _ in 0..n {
        let mut store = Store::new(&engine, ());
        pre.instantiate(&mut store).expect("instantiate");
        stores.push(store);
    }
    let elapsed = start.elapsed();
    let (rss1, maps1, calls1) = (rss_bytes(), mappings(), OsCalls::process());
    println!(
        "{strategy:?}: {n} live instances in {elapsed:.2?} ({:.0} ns each): \
         RSS +{:.1} MiB = {} bytes per instance; mappings {maps0} -> {maps1}; \
         memory syscalls {:?}",
        elapsed.as_nanos() as f64 / n as f64,
        (rss1 - rss0) as f64 / (1 << 20) as f64,
        (rss1 - rss0) / n as u64,
        calls1.since(&calls0),
    );
    let start = Instant::now();
    drop(stores);
    println!(
        "dropped them all in {:.2?}: RSS {:.1} MiB above the start (was +{:.1} MiB)",
        start.elapsed(),
        rss_bytes().saturating_sub(rss0) as f64 / (1 << 20) as f64,
        (rss1 - rss0) as f64 / (1 << 20) as f64,
    );
}
