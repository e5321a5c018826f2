//! The idle hook: a runtime's deferred clean-up runs on a worker once it
//! has gone quiet after running green threads, in bounded steps until the
//! hook reports nothing left, and not while the worker is busy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shoal_scheduler::{yield_now, Executor, ShutdownMode};

/// Work the hook has left, in steps.
static LEFT: AtomicUsize = AtomicUsize::new(0);
/// Calls of the hook, and whether one came while green threads ran.
static CALLS: AtomicUsize = AtomicUsize::new(0);
static BUSY: AtomicBool = AtomicBool::new(false);
static CALLED_WHILE_BUSY: AtomicBool = AtomicBool::new(false);

fn hook(budget: usize) -> bool {
    assert!(budget > 0);
    CALLS.fetch_add(1, Ordering::SeqCst);
    if BUSY.load(Ordering::SeqCst) {
        CALLED_WHILE_BUSY.store(true, Ordering::SeqCst);
    }
    // One step per call, whatever the budget, to see it called again.
    let left = LEFT.load(Ordering::SeqCst).saturating_sub(1);
    LEFT.store(left, Ordering::SeqCst);
    left > 0
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_idle_hook_runs_after_a_busy_spell_until_it_is_done() {
    let executor = Executor::builder()
        .workers(1)
        .idle_hook(hook)
        .build()
        .expect("executor");
    // Never called before anything ran.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(CALLS.load(Ordering::SeqCst), 0, "called before any work");

    // A busy spell of 200 ms: the hook must wait for its end.
    LEFT.store(3, Ordering::SeqCst);
    BUSY.store(true, Ordering::SeqCst);
    let busy = executor
        .spawn(|| {
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                yield_now();
            }
            BUSY.store(false, Ordering::SeqCst);
        })
        .expect("spawn");
    busy.join().expect("busy green thread");
    wait_until("the hook finishing its three steps", || {
        LEFT.load(Ordering::SeqCst) == 0
    });
    assert!(
        !CALLED_WHILE_BUSY.load(Ordering::SeqCst),
        "called while busy"
    );
    let calls = CALLS.load(Ordering::SeqCst);
    assert_eq!(calls, 3, "one call per step until it reported none left");

    // Done: not called again while nothing runs.
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls,
        "called with nothing to do"
    );
    executor.shutdown(ShutdownMode::Wait).expect("shutdown");
}
