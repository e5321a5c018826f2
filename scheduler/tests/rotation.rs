//! Worker rotation (`rotation.rs`): with one unpinned worker per CPU, each
//! worker is moved to another CPU every `ROTATION_PERIOD`; otherwise the
//! workers keep the process's CPU set.

use shoal_scheduler::{Executor, ShutdownMode, ROTATION_PERIOD};
use std::time::{Duration, Instant};

/// The CPUs in the calling thread's affinity mask.
fn affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads a bit of a valid set; `cpu < max`.
    (0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// The affinity masks each worker's thread had over `length`, sampled by a
/// green thread on it every 10 ms.
fn masks_seen(executor: &Executor, length: Duration) -> Vec<Vec<Vec<usize>>> {
    let handles: Vec<_> = (0..executor.workers())
        .map(|worker| {
            executor
                .spawn_on(worker, move || {
                    let start = Instant::now();
                    let mut seen: Vec<Vec<usize>> = Vec::new();
                    while start.elapsed() < length {
                        let mask = affinity();
                        if seen.last() != Some(&mask) {
                            seen.push(mask);
                        }
                        shoal_scheduler::sleep(Duration::from_millis(10));
                    }
                    seen
                })
                .expect("spawn")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect()
}

#[test]
fn one_worker_per_cpu_moves_through_the_cpus() {
    let cpus = affinity();
    let executor = Executor::builder()
        .workers(cpus.len())
        .build()
        .expect("executor");
    if cpus.len() < 2 {
        assert!(!executor.rotates_workers(), "nothing to rotate over");
        return;
    }
    assert!(executor.rotates_workers());
    let seen = masks_seen(&executor, ROTATION_PERIOD * 4);
    for (worker, masks) in seen.iter().enumerate() {
        let single: Vec<usize> = masks
            .iter()
            .filter(|m| m.len() == 1)
            .map(|m| m[0])
            .collect();
        let distinct: std::collections::HashSet<_> = single.iter().collect();
        assert!(
            distinct.len() >= 2,
            "worker {worker} should have been moved between single CPUs, saw {masks:?}"
        );
        assert!(single.iter().all(|cpu| cpus.contains(cpu)), "{masks:?}");
    }
    executor.shutdown(ShutdownMode::Wait).expect("shutdown");
}

#[test]
fn workers_stay_unrestricted_without_rotation() {
    let cpus = affinity();
    let configs = [
        Executor::builder()
            .workers(cpus.len())
            .rotate_workers(false),
        Executor::builder().workers(cpus.len() + 1),
    ];
    for builder in configs {
        let executor = builder.build().expect("executor");
        assert!(!executor.rotates_workers());
        for masks in masks_seen(&executor, ROTATION_PERIOD * 2) {
            assert_eq!(masks, vec![cpus.clone()]);
        }
    }
}

#[test]
fn pinned_workers_are_not_rotated() {
    let cpus = affinity();
    let executor = Executor::builder()
        .workers(cpus.len())
        .pin_workers(true)
        .build()
        .expect("executor");
    assert!(!executor.rotates_workers());
    for (worker, masks) in masks_seen(&executor, ROTATION_PERIOD * 2)
        .into_iter()
        .enumerate()
    {
        assert_eq!(masks, vec![vec![cpus[worker]]], "worker {worker}");
    }
}
