//! Measures the resident memory of many parked green threads.
//!
//! ```text
//! cargo run --release -p shoal-scheduler --example parked_rss [-- THREADS]
//! ```
//!
//! Spawns THREADS (default 100,000) green threads that each park, waits
//! until all are parked, and reports the growth of the process's resident
//! set (VmRSS) per thread. Then cancels them all and checks that every one
//! unwound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shoal_scheduler::{park, Executor, ShutdownMode};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let exec = Executor::builder().build()?;
    // Warm up allocator and workers so that the baseline is fair.
    exec.spawn(|| ())?.join()?;
    let mut handles = Vec::with_capacity(threads);
    let parked = Arc::new(AtomicUsize::new(0));
    let before = rss_kib();
    let start = Instant::now();
    for _ in 0..threads {
        let parked = parked.clone();
        handles.push(exec.spawn(move || {
            parked.fetch_add(1, Ordering::Relaxed);
            loop {
                park();
            }
        })?);
    }
    while parked.load(Ordering::Relaxed) < threads {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let spawn_time = start.elapsed();
    let after = rss_kib();
    let per_thread = (after.saturating_sub(before) * 1024) as f64 / threads as f64;
    println!(
        "{threads} parked green threads on {} workers: RSS {before} KiB -> {after} KiB, \
         {per_thread:.0} bytes per thread (spawned and parked in {spawn_time:?})",
        exec.workers()
    );
    let start = Instant::now();
    exec.shutdown(ShutdownMode::Cancel)?;
    let cancelled = handles.into_iter().filter(|h| h.is_finished()).count();
    println!(
        "cancelled and unwound {cancelled} threads in {:?}",
        start.elapsed()
    );
    Ok(())
}
