//! The `yield` workload of `../shared/workloads/yield.wat` on Shoal, as one
//! JSON line with the field names of the Wasmtime peer's `yield` subcommand.
//!
//! ```text
//! cargo run --release --example yield_report -- [-n 10000] [-k 100] [--workers 2]
//! ```
//!
//! N instances are spawned (one green thread each) and instantiated; each
//! one's first call of the host import `env.yield` waits (yielding) for the
//! start signal. Then every instance's `run(K)` calls `env.yield` K times;
//! the host function is `shoal::runtime::host::yield_now`: the instance's
//! green thread goes to the back of its worker's run queue. `wall_ms` runs
//! from the start signal until all N calls have returned and their stores
//! are dropped; a switch is one such yield.

use shoal::runtime::{host, Runtime};
use shoal::{Caller, Linker, Trap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: yield_report [-n N] [-k K] [--workers W] [--tick-us US]");
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut n, mut k, mut workers, mut tick_us) = (10_000usize, 100i32, 2usize, 250u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match flag.as_str() {
            "-n" => n = value as usize,
            "-k" => k = value as i32,
            "--workers" => workers = value as usize,
            "--tick-us" => tick_us = value,
            _ => usage(),
        }
    }
    let runtime = Runtime::builder()
        .workers(workers)
        .epoch_tick(Duration::from_micros(tick_us))
        .build()?;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/yield.wat");
    let module = runtime.compile(std::fs::read(&path)?)?;

    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    // The store's data says whether the instance has passed the start line.
    let mut linker = Linker::<bool>::new(runtime.engine());
    let (g, r) = (go.clone(), ready.clone());
    linker.func_wrap(
        "env",
        "yield",
        move |mut caller: Caller<'_, bool>| -> Result<(), Trap> {
            if !*caller.data() {
                *caller.data_mut() = true;
                r.fetch_add(1, Ordering::Release);
                while !g.load(Ordering::Acquire) {
                    host::yield_now()?;
                }
            }
            host::yield_now()
        },
    )?;
    let run = runtime
        .template(&module, &linker, "run")?
        .typed::<i32, i32>()?;

    let setup = Instant::now();
    let handles = (0..n)
        .map(|_| run.spawn(k))
        .collect::<Result<Vec<_>, _>>()?;
    while ready.load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_micros(200));
    }
    let setup = setup.elapsed();
    let epoch0 = shoal::scheduler::epoch_now();
    let start = Instant::now();
    go.store(true, Ordering::Release);
    for h in handles {
        let got = h.join()?;
        if got != k {
            return Err(format!("run({k}) returned {got}").into());
        }
    }
    let wall = start.elapsed();
    let ticks = shoal::scheduler::epoch_now() - epoch0;
    let switches = n as u64 * k as u64;
    println!(
        "{{\"workload\":\"yield\",\"runtime\":\"shoal\",\"version\":\"{}\",\"alloc\":\"checked\",\
         \"executor\":\"shoal\",\"workers\":{workers},\"epoch\":true,\"tick_us\":{tick_us},\
         \"n\":{n},\"k\":{k},\"switches\":{switches},\"wall_ms\":{:.3},\"switches_per_sec\":{},\
         \"ns_per_switch\":{:.1},\"setup_ms\":{:.3},\"total_ms\":{:.3},\"epoch_ticks\":{ticks}}}",
        env!("CARGO_PKG_VERSION"),
        wall.as_secs_f64() * 1e3,
        (switches as f64 / wall.as_secs_f64()).round(),
        wall.as_nanos() as f64 / switches as f64,
        setup.as_secs_f64() * 1e3,
        (setup + wall).as_secs_f64() * 1e3,
    );
    Ok(())
}
