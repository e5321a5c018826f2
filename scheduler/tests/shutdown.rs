//! Shutdown in both modes: every green thread is accounted for and every
//! value on every stack is dropped exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_scheduler::{
    channel, park, sleep, try_yield_now, yield_now, Executor, JoinHandle, ShutdownMode,
};

/// Counts live instances.
#[derive(Clone)]
struct Counter(Arc<(AtomicUsize, AtomicUsize)>);

struct Tracked(Counter);

impl Counter {
    fn new() -> Self {
        Counter(Arc::new((AtomicUsize::new(0), AtomicUsize::new(0))))
    }
    fn track(&self) -> Tracked {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        Tracked(self.clone())
    }
    fn created(&self) -> usize {
        self.0 .0.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> usize {
        self.0 .1.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        (self.0).0 .1.fetch_add(1, Ordering::SeqCst);
    }
}

fn executor() -> Executor {
    Executor::builder().workers(2).build().expect("build")
}

/// Waits (bounded) until `counter` has created `n` values.
fn wait_created(counter: &Counter, n: usize) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while counter.created() < n {
        assert!(Instant::now() < give_up, "green threads never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Green threads in every state a shutdown can find them in; returns the
/// ones that never finish on their own, and the ones that do.
fn populate(exec: &Executor, counter: &Counter) -> (Vec<JoinHandle<u32>>, Vec<JoinHandle<u32>>) {
    let mut handles = Vec::new();
    let mut finishers = Vec::new();
    for i in 0..20u32 {
        let c = counter.clone();
        // Parked forever (nobody holds its Thread but the JoinHandle).
        handles.push(
            exec.spawn(move || {
                let _a = c.track();
                let _b = [c.track(), c.track()];
                loop {
                    park();
                }
            })
            .expect("spawn"),
        );
        let c = counter.clone();
        // Yielding forever.
        handles.push(
            exec.spawn(move || {
                let _a = c.track();
                loop {
                    yield_now();
                }
            })
            .expect("spawn"),
        );
        let c = counter.clone();
        // Sleeping for a long time, deep in nested frames.
        handles.push(
            exec.spawn(move || {
                fn nest(depth: u32, c: &Counter) {
                    let _t = c.track();
                    if depth == 0 {
                        sleep(Duration::from_secs(3600));
                    } else {
                        nest(depth - 1, c);
                    }
                }
                nest(10, &c);
                0
            })
            .expect("spawn"),
        );
        let c = counter.clone();
        // Blocked on a channel nobody will ever send on.
        let (tx, rx) = channel::bounded::<Tracked>(1);
        handles.push(
            exec.spawn(move || {
                let _t = c.track();
                let _keep_sender = tx;
                rx.recv().map(|_| 0).unwrap_or(0)
            })
            .expect("spawn"),
        );
        // Finishes on its own.
        let c = counter.clone();
        finishers.push(
            exec.spawn(move || {
                let _t = c.track();
                yield_now();
                i
            })
            .expect("spawn"),
        );
    }
    (handles, finishers)
}

#[test]
fn cancel_unwinds_every_green_thread_and_leaks_nothing() {
    let counter = Counter::new();
    let exec = executor();
    let (handles, finishers) = populate(&exec, &counter);
    for finisher in finishers {
        finisher.join().expect("finishes on its own");
    }
    // Some that never get to start: the closure (and what it owns) must be
    // dropped too.
    let unstarted: Vec<_> = (0..50)
        .map(|_| {
            let t = counter.track();
            exec.spawn(move || {
                let _t = t;
                loop {
                    yield_now();
                }
            })
            .expect("spawn")
        })
        .collect();
    exec.shutdown(ShutdownMode::Cancel).expect("shutdown");
    let mut finished = 0;
    let mut cancelled = 0;
    for handle in handles.into_iter().chain(unstarted) {
        match handle.join() {
            Ok(_) => finished += 1,
            Err(e) => {
                assert!(e.is_cancelled(), "{e:?}");
                cancelled += 1;
            }
        }
    }
    assert_eq!(finished, 0);
    assert_eq!(cancelled, 130);
    assert!(counter.created() > 0);
    assert_eq!(counter.created(), counter.dropped(), "leaked values");
}

#[test]
fn wait_lets_every_green_thread_finish() {
    let counter = Counter::new();
    let exec = executor();
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            let c = counter.clone();
            let done = done.clone();
            exec.spawn(move || {
                let _t = c.track();
                sleep(Duration::from_millis(i % 20));
                for _ in 0..10 {
                    yield_now();
                }
                done.fetch_add(1, Ordering::SeqCst);
                i
            })
            .expect("spawn")
        })
        .collect();
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
    assert_eq!(done.load(Ordering::SeqCst), 100);
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().expect("finished"), i as u64);
    }
    assert_eq!(counter.created(), 100);
    assert_eq!(counter.dropped(), 100);
}

#[test]
fn wait_timeout_cancels_what_is_left() {
    let counter = Counter::new();
    let exec = executor();
    let c = counter.clone();
    let (go_tx, go_rx) = channel::bounded::<()>(1);
    let quick = exec
        .spawn(move || {
            let _t = c.track();
            // Still running when shutdown starts; finishes well within it.
            go_rx.recv().expect("go");
            1
        })
        .expect("spawn");
    let c = counter.clone();
    let stuck = exec
        .spawn(move || {
            let _t = c.track();
            loop {
                park();
            }
        })
        .expect("spawn");
    let start = Instant::now();
    let limit = Duration::from_millis(500);
    exec.handle().shutdown(ShutdownMode::WaitTimeout(limit));
    go_tx.send(()).expect("quick alive");
    exec.shutdown(ShutdownMode::WaitTimeout(limit))
        .expect("shutdown");
    assert!(start.elapsed() >= limit);
    assert_eq!(quick.join().expect("quick"), 1);
    assert!(stuck.join().expect_err("cancelled").is_cancelled());
    assert_eq!(counter.created(), counter.dropped());
}

#[test]
fn cleanup_may_still_suspend_while_unwinding() {
    // A destructor that yields during a cancellation unwind: the suspension
    // point must not start a second unwind (that would abort).
    struct YieldOnDrop(Counter);
    impl Drop for YieldOnDrop {
        fn drop(&mut self) {
            yield_now();
            let _ = try_yield_now();
            self.0 .0 .1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counter = Counter::new();
    let exec = executor();
    let c = counter.clone();
    let handle = exec
        .spawn(move || {
            c.0 .0.fetch_add(1, Ordering::SeqCst);
            let _guard = YieldOnDrop(c);
            loop {
                park();
            }
        })
        .expect("spawn");
    wait_created(&counter, 1);
    exec.shutdown(ShutdownMode::Cancel).expect("shutdown");
    assert!(handle.join().expect_err("cancelled").is_cancelled());
    assert_eq!(counter.created(), 1);
    assert_eq!(counter.dropped(), 1);
}

#[test]
fn dropping_the_executor_cancels() {
    let counter = Counter::new();
    let exec = executor();
    let c = counter.clone();
    let handle = exec
        .spawn(move || {
            let _t = c.track();
            loop {
                park();
            }
        })
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(5));
    drop(exec);
    assert!(handle.join().expect_err("cancelled").is_cancelled());
    assert_eq!(counter.created(), counter.dropped());
}

#[test]
fn shutdown_from_inside_does_not_deadlock() {
    let exec = executor();
    let handle = exec.handle().clone();
    let inner = exec
        .spawn(move || {
            handle.shutdown(ShutdownMode::Wait);
            handle.is_shut_down()
        })
        .expect("spawn");
    assert!(inner.join().expect("inner"));
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
}

#[test]
fn a_thread_ignoring_cancellation_is_abandoned() {
    // It keeps yielding through `try_yield_now` errors. A cancelling
    // shutdown gives up on it after a bounded number of resumes: its stack
    // is leaked (never unwound through possibly foreign frames) and its
    // joiner is told it was cancelled. Other threads are unaffected.
    let counter = Counter::new();
    let exec = executor();
    let c = counter.clone();
    let stubborn = exec
        .spawn_on(0, move || {
            let _t = c.track();
            loop {
                let _ = try_yield_now();
            }
        })
        .expect("spawn");
    let c = counter.clone();
    let polite = exec
        .spawn_on(0, move || {
            let _t = c.track();
            loop {
                park();
            }
        })
        .expect("spawn");
    wait_created(&counter, 2);
    exec.shutdown(ShutdownMode::Cancel).expect("shutdown");
    assert!(stubborn.join().expect_err("abandoned").is_cancelled());
    assert!(polite.join().expect_err("cancelled").is_cancelled());
    assert_eq!(counter.created(), 2);
    assert_eq!(
        counter.dropped(),
        1,
        "only the abandoned thread's value leaks"
    );
}
