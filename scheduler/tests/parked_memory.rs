//! Resident memory of parked green threads (its own test binary, so that no
//! other test shares the process while RSS is measured).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shoal_scheduler::{park, Executor, ShutdownMode};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn parked_green_threads_cost_at_most_8_kib_each() {
    const THREADS: usize = 20_000;
    let exec = Executor::builder().workers(2).build().expect("build");
    exec.spawn(|| ()).expect("spawn").join().expect("warm up");
    let parked = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(THREADS);
    let before = rss_bytes();
    for _ in 0..THREADS {
        let parked = parked.clone();
        handles.push(
            exec.spawn(move || {
                parked.fetch_add(1, Ordering::Relaxed);
                loop {
                    park();
                }
            })
            .expect("spawn"),
        );
    }
    while parked.load(Ordering::Relaxed) < THREADS {
        std::thread::sleep(Duration::from_millis(2));
    }
    let per_thread = (rss_bytes() - before) / THREADS as u64;
    println!("{per_thread} bytes of RSS per parked green thread");
    assert!(
        per_thread <= 8 * 1024,
        "{per_thread} bytes per parked green thread"
    );
    exec.shutdown(ShutdownMode::Cancel).expect("shutdown");
    assert!(handles.into_iter().all(|h| h.is_finished()));
}
