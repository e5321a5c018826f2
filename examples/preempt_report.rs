//! The `preempt` workload of `../shared/workloads/preempt.wat` on Shoal,
//! printed as one JSON line with the field names of the Wasmtime peer's
//! `preempt` subcommand (`../shared/peers/wasmtime-peer`), so the two can be
//! compared line by line.
//!
//! ```text
//! cargo run --release --example preempt_report -- [-n 1000] [-t 5] [--workers 2]
//!     [--tick-us 250] [--timeslice-us 250] [--memory-strategy checked|guarded]
//! ```
//!
//! N green threads each wait (yielding) for a start signal, then run an instance of
//! `preempt.wat` in place (`run_here_then`): `run()` spins forever,
//! incrementing an i64 at address 0. After T seconds every green thread is
//! cancelled: each instance traps with `Cancelled` at its next deadline,
//! and its green thread reads the counter from linear memory.
//!
//! A timeslice is the time between two preemptions; the gap is the time an
//! instance waits in the run queue between being preempted and running
//! again (measured in the deadline callback, around the yield). The ideal
//! gap of a strict round robin is `(N / workers - 1) × timeslice`;
//! `gap_vs_ideal` is `max_gap_ms / (N / workers × timeslice)`, the issue's
//! definition. `counter_cv_within_worker_max` is the largest CV among the
//! instances of one worker (the scheduler's fairness);
//! `worker_mean_max_over_min` compares the workers' mean counters (how fast
//! each core ran: instances never migrate, so a core slowed by other load,
//! interrupts or the host slows its instances).

use shoal::runtime::{Runtime, SliceStats};
use shoal::{Linker, MemoryStrategy};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    n: usize,
    secs: f64,
    workers: usize,
    tick_us: u64,
    timeslice_us: Option<u64>,
    strategy: MemoryStrategy,
    dump: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: preempt_report [-n N] [-t SECS] [--workers W] [--tick-us US] \
         [--timeslice-us US] [--memory-strategy checked|guarded] [--dump]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        n: 1000,
        secs: 5.0,
        workers: 2,
        tick_us: 250,
        timeslice_us: None,
        strategy: MemoryStrategy::Checked,
        dump: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--dump" {
            a.dump = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "-n" => a.n = num(&value) as usize,
            "-t" => a.secs = value.parse().unwrap_or_else(|_| usage()),
            "--workers" => a.workers = num(&value) as usize,
            "--tick-us" => a.tick_us = num(&value),
            "--timeslice-us" => a.timeslice_us = Some(num(&value)),
            "--memory-strategy" => a.strategy = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if a.n == 0 || a.workers == 0 {
        usage()
    }
    a
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse_args();
    let mut builder = Runtime::builder()
        .workers(a.workers)
        .epoch_tick(Duration::from_micros(a.tick_us))
        .memory_strategy(a.strategy);
    if let Some(us) = a.timeslice_us {
        builder = builder.timeslice(Duration::from_micros(us));
    }
    let runtime = builder.build()?;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/preempt.wat");
    let module = runtime.compile(std::fs::read(&path)?)?;
    let run = runtime
        .template(&module, &Linker::<()>::new(runtime.engine()), "run")?
        .typed::<(), ()>()?;

    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(a.n);
    for _ in 0..a.n {
        let (run, go, ready) = (run.clone(), go.clone(), ready.clone());
        handles.push(runtime.executor().spawn(move || {
            ready.fetch_add(1, Ordering::Release);
            // Yield (rather than park) until the start signal: every
            // waiting green thread sees it within one pass of its worker's
            // run queue, so all start together, in queue order.
            while !go.load(Ordering::Acquire) {
                shoal::scheduler::yield_now();
            }
            let worker = shoal::scheduler::current_worker_index().unwrap_or(0);
            run.run_here_then((), (), move |f| {
                let memory = f.instance.and_then(|i| i.get_memory(&*f.store, "memory"));
                let mut bytes = [0u8; 8];
                let read = memory.map(|m| m.read(&*f.store, 0, &mut bytes));
                let counter = matches!(read, Some(Ok(()))).then(|| i64::from_le_bytes(bytes));
                (
                    counter,
                    f.stats,
                    worker,
                    f.result.err().map(|e| e.to_string()),
                )
            })
        })?);
    }
    while ready.load(Ordering::Acquire) < a.n {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the last ones park.
    std::thread::sleep(Duration::from_millis(20));

    let epoch0 = shoal::scheduler::epoch_now();
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_secs_f64(a.secs));
    for h in &handles {
        h.cancel();
    }
    let elapsed = t0.elapsed();
    let ticks = shoal::scheduler::epoch_now() - epoch0;
    let mut results: Vec<(i64, SliceStats)> = Vec::with_capacity(a.n);
    let mut per_worker: Vec<Vec<i64>> = vec![Vec::new(); a.workers];
    for h in handles {
        match h.join() {
            Ok(Ok((Some(counter), stats, worker, _))) => {
                results.push((counter, stats));
                if let Some(w) = per_worker.get_mut(worker) {
                    w.push(counter);
                }
            }
            Ok(Ok((None, _, _, err))) => return Err(format!("counter unreadable: {err:?}").into()),
            Ok(Err(e)) => return Err(format!("instance failed: {e}").into()),
            Err(e) => return Err(format!("green thread failed: {e}").into()),
        }
    }
    let stopped = t0.elapsed();

    if a.dump {
        // Per instance, in spawn order: counter, slices, CPU ticks, max gap.
        for (i, (c, s)) in results.iter().enumerate() {
            eprintln!(
                "{i} {c} {} {} {:.3}",
                s.slices,
                s.cpu_ticks,
                s.max_gap.as_secs_f64() * 1e3
            );
        }
    }
    // Fairness within each worker (the scheduler's doing), and the spread
    // of the workers' means (how fast each core was: other load, the
    // ticker's interrupts, the host).
    let cv = |v: &[i64]| -> (f64, f64) {
        let mean = v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64;
        (mean, if mean > 0.0 { var.sqrt() / mean } else { 0.0 })
    };
    let worker_stats: Vec<(f64, f64)> = per_worker.iter().map(|v| cv(v)).collect();
    let within_cv = worker_stats.iter().map(|w| w.1).fold(0.0, f64::max);
    let means: Vec<f64> = worker_stats.iter().map(|w| w.0).collect();
    let worker_spread = means.iter().cloned().fold(0.0, f64::max)
        / means.iter().cloned().fold(f64::INFINITY, f64::min);
    let n = results.len();
    let mut counts: Vec<i64> = results.iter().map(|r| r.0).collect();
    counts.sort_unstable();
    let total: i64 = counts.iter().sum();
    let mean = total as f64 / n as f64;
    let var = counts
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let mut gaps: Vec<Duration> = results.iter().map(|r| r.1.max_gap).collect();
    gaps.sort_unstable();
    let mut slices: Vec<u64> = results.iter().map(|r| r.1.slices).collect();
    slices.sort_unstable();
    let max_slice = results
        .iter()
        .map(|r| r.1.max_slice)
        .max()
        .unwrap_or_default();
    let starved = counts.iter().filter(|&&x| x == 0).count();
    let timeslice = runtime.timeslice();
    let ideal = timeslice.mul_f64(a.n as f64 / a.workers as f64);
    let max_gap = gaps.last().copied().unwrap_or_default();
    println!(
        "{{\"workload\":\"preempt\",\"runtime\":\"shoal\",\"version\":\"{}\",\
         \"alloc\":\"{}\",\"executor\":\"shoal\",\"workers\":{},\"epoch\":true,\"tick_us\":{},\
         \"timeslice_us\":{},\"n\":{n},\"t_s\":{},\"run_ms\":{},\"total_increments\":{total},\
         \"increments_per_sec\":{},\"counter_min\":{},\"counter_median\":{},\"counter_max\":{},\
         \"counter_cv\":{},\"starved_instances\":{starved},\"epoch_ticks\":{ticks},\
         \"slices_total\":{},\"slices_per_instance_median\":{},\"max_gap_ms\":{},\
         \"p50_instance_max_gap_ms\":{},\"max_slice_ms\":{},\"ideal_gap_ms\":{},\
         \"gap_vs_ideal\":{},\"stop_to_all_joined_ms\":{},\"counter_cv_within_worker_max\":{},\
         \"worker_mean_max_over_min\":{}}}",
        env!("CARGO_PKG_VERSION"),
        format!("{:?}", a.strategy).to_lowercase(),
        a.workers,
        a.tick_us,
        timeslice.as_micros(),
        a.secs,
        ms(elapsed),
        (total as f64 / elapsed.as_secs_f64()).round(),
        counts[0],
        counts[n / 2],
        counts[n - 1],
        ((var.sqrt() / mean) * 1e4).round() / 1e4,
        slices.iter().sum::<u64>(),
        slices[n / 2],
        ms(max_gap),
        ms(gaps[n / 2]),
        ms(max_slice),
        ms(ideal),
        ((max_gap.as_secs_f64() / ideal.as_secs_f64()) * 1e3).round() / 1e3,
        ms(stopped - elapsed),
        (within_cv * 1e4).round() / 1e4,
        (worker_spread * 1e3).round() / 1e3,
    );
    Ok(())
}
