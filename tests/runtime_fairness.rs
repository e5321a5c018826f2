//! Fairness: 10,000 instances spin forever, counting in their linear
//! memory, on 2 workers. None may starve. Then all are stopped by
//! cancellation, and each green thread reads its counter from memory after
//! the `Cancelled` trap.
//!
//! No timing assertion: the test runs the spinners for at least 2 s and
//! until every one has made progress (each reports, once, that its counter
//! reached 1,000), however loaded the machine is (up to a generous limit
//! that only a starving scheduler would reach). The spread of the counters
//! is measured by `shoal stress preempt` (`src/bench/preempt.rs`), not
//! asserted here.

use shoal::runtime::Runtime;
use shoal::{Linker, TrapKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPINNER: &str = r#"(module
  (import "env" "progress" (func $progress))
  (memory (export "memory") 1 1)
  (func (export "run")
    (loop $forever
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (if (i64.eq (i64.load (i32.const 0)) (i64.const 1000))
        (then (call $progress)))
      (br $forever))))"#;

const INSTANCES: usize = 10_000;

#[test]
fn ten_thousand_spinners_on_two_workers_all_progress() {
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let module = runtime.compile(SPINNER).expect("compile");
    let progressed = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(runtime.engine());
    let p = progressed.clone();
    linker
        .func_wrap("env", "progress", move || {
            p.fetch_add(1, Ordering::Relaxed);
        })
        .expect("define progress");
    let run = runtime
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<(), ()>()
        .expect("typed");

    let start = Instant::now();
    let handles: Vec<_> = (0..INSTANCES)
        .map(|_| {
            run.spawn_then((), (), |finished| {
                let memory = finished
                    .instance
                    .and_then(|i| i.get_memory(&*finished.store, "memory"));
                let counter = memory.map(|m| {
                    let mut bytes = [0u8; 8];
                    m.read(&*finished.store, 0, &mut bytes)
                        .map(|()| u64::from_le_bytes(bytes))
                });
                (
                    finished.result.map_err(|e| e.trap_kind()),
                    counter,
                    finished.stats,
                )
            })
            .expect("spawn")
        })
        .collect();

    // At least 2 s of spinning, and until every instance has progressed.
    // The limit is far beyond one round robin (10,000 × 250 µs / 2 workers
    // = 1.25 s): only starvation (or a machine stalled for minutes) hits it.
    let limit = Duration::from_secs(240);
    while start.elapsed() < Duration::from_secs(2) || progressed.load(Ordering::Relaxed) < INSTANCES
    {
        assert!(
            start.elapsed() < limit,
            "after {limit:?} only {} of {INSTANCES} instances had made progress: starvation",
            progressed.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let spun = start.elapsed();
    for h in &handles {
        h.cancel();
    }
    let mut min = u64::MAX;
    let mut total = 0u64;
    let mut slices = 0u64;
    for (i, h) in handles.into_iter().enumerate() {
        let (result, counter, stats) = h.join().expect("the inspect closure ran");
        assert_eq!(
            result,
            Err(Some(TrapKind::Cancelled)),
            "instance {i} should end with a Cancelled trap"
        );
        let counter = counter
            .expect("instance has its memory")
            .expect("memory readable");
        assert!(counter >= 1000, "instance {i} starved: counter {counter}");
        min = min.min(counter);
        total += counter;
        slices += stats.slices;
    }
    eprintln!(
        "{INSTANCES} spinners on 2 workers for {spun:?}: min counter {min}, mean {}, \
         {} slices per instance on average",
        total / INSTANCES as u64,
        slices / INSTANCES as u64
    );
    assert_eq!(runtime.live_instances(), 0);
}
