//! The `spawn` workload of `../shared/workloads/spawn.wat` on Shoal: one
//! JSON line per concurrency level, with the field names of the Wasmtime
//! peer's `spawn` subcommand.
//!
//! ```text
//! cargo run --release --example spawn_report -- [-n 100000] [-c 1,256] [--warmup 2000]
//!     [--workers 2] [--memory-strategy checked|guarded]
//! ```
//!
//! A driver green thread keeps at most C requests in flight; each request
//! is `TypedTemplate::spawn_then`: a new green thread, `Store::new`,
//! instantiate, `run(i)` (checked against the expected value), drop. Its
//! latency is measured inside its green thread, from the start of the
//! instance's creation to the end of the call (the store's drop follows;
//! waiting in the run queue before starting is excluded, as the peer
//! excludes waiting for its semaphore). `requests_that_suspended` counts
//! requests preempted at least once.

use shoal::runtime::Runtime;
use shoal::{Linker, MemoryStrategy};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: spawn_report [-n N] [-c C1,C2,..] [--warmup N] [--workers W] \
         [--memory-strategy checked|guarded]"
    );
    std::process::exit(2)
}

fn expected(x: i32) -> i32 {
    (x.wrapping_mul(31).wrapping_add(7) ^ ((x as u32) >> 3) as i32).wrapping_add(1)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut n, mut levels, mut warmup, mut workers) = (100_000usize, vec![1usize, 256], 2000, 2);
    let mut strategy = MemoryStrategy::Checked;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "-n" => n = num(&value),
            "-c" => levels = value.split(',').map(num).collect(),
            "--warmup" => warmup = num(&value),
            "--workers" => workers = num(&value),
            "--memory-strategy" => strategy = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let runtime = Runtime::builder()
        .workers(workers)
        .memory_strategy(strategy)
        .build()?;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/spawn.wat");
    let module = runtime.compile(std::fs::read(&path)?)?;
    let run = runtime
        .template(&module, &Linker::<()>::new(runtime.engine()), "run")?
        .typed::<i32, i32>()?;

    for concurrency in levels.into_iter().filter(|&c| c >= 1) {
        let level = |count: usize| {
            let run = run.clone();
            runtime.executor().spawn(move || {
                // (latency ns, suspended, correct)
                let mut samples = Vec::with_capacity(count);
                let mut in_flight = VecDeque::with_capacity(concurrency);
                let start = Instant::now();
                for i in 0..count {
                    if in_flight.len() == concurrency {
                        let h: shoal::JoinHandle<(u64, bool, bool)> =
                            in_flight.pop_front().expect("in flight");
                        samples.push(h.join());
                    }
                    let x = i as i32;
                    in_flight.push_back(
                        run.spawn_then((), x, move |f| {
                            let latency = f.started.elapsed().as_nanos() as u64;
                            let ok = matches!(f.result, Ok(got) if got == expected(x));
                            (latency, f.stats.preemptions > 0, ok)
                        })
                        .expect("spawn a request"),
                    );
                }
                for h in in_flight {
                    samples.push(h.join());
                }
                (start.elapsed(), samples)
            })
        };
        level(warmup)?.join()?;
        let epoch0 = shoal::scheduler::epoch_now();
        let (wall, samples) = level(n)?.join()?;
        let ticks = shoal::scheduler::epoch_now() - epoch0;
        let mut lat = Vec::with_capacity(n);
        let mut suspended = 0usize;
        for s in samples {
            let (latency, was_suspended, ok) = s.map_err(|e| format!("request failed: {e}"))?;
            if !ok {
                return Err("run(x) returned a wrong value".into());
            }
            lat.push(latency);
            suspended += was_suspended as usize;
        }
        lat.sort_unstable();
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        let mean = lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64;
        println!(
            "{{\"workload\":\"spawn\",\"runtime\":\"shoal\",\"version\":\"{}\",\"alloc\":\"{}\",\
             \"executor\":\"shoal\",\"workers\":{workers},\"epoch\":true,\"tick_us\":{},\
             \"n\":{n},\"concurrency\":{concurrency},\"wall_ms\":{:.3},\"instances_per_sec\":{},\
             \"lat_p50_us\":{},\"lat_p99_us\":{},\"lat_p999_us\":{},\"lat_max_us\":{},\
             \"lat_mean_us\":{},\"epoch_ticks\":{ticks},\"requests_that_suspended\":{suspended},\
             \"latency_covers\":\"Store::new + instantiate + call, inside the request's green thread\"}}",
            env!("CARGO_PKG_VERSION"),
            format!("{strategy:?}").to_lowercase(),
            runtime.epoch_tick().as_micros(),
            wall.as_secs_f64() * 1e3,
            (n as f64 / wall.as_secs_f64()).round(),
            us(percentile(&lat, 50.0)),
            us(percentile(&lat, 99.0)),
            us(percentile(&lat, 99.9)),
            us(*lat.last().unwrap_or(&0)),
            us(mean as u64),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
