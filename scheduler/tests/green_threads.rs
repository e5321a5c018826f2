//! Behaviour of green threads: scheduling order, sleeping, parking, panics,
//! cancellation, spawn errors and the runtime hooks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_scheduler::{
    current, current_stack_bounds, current_worker_index, epoch_counter, green_local, set_deadline,
    set_green_local, sleep, spawn, stack_guard_contains, try_park, try_yield_now,
    yield_if_deadline_passed, yield_now, Cancelled, Executor, JoinError, JoinHandle, ShutdownMode,
    SpawnError,
};

/// Waits (bounded) until a green thread has reached a point.
fn wait_for(flag: &AtomicBool) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < give_up, "green thread never got there");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn executor(workers: usize) -> Executor {
    Executor::builder()
        .workers(workers)
        .build()
        .expect("build executor")
}

#[test]
fn yielding_threads_run_round_robin() {
    let exec = executor(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    exec.spawn(move || {
        // Children spawned on our own worker go to the back of its run
        // queue in order; we then wait, so only they run.
        let worker = current_worker_index().expect("on a worker");
        let handle = shoal_scheduler::Handle::current().expect("handle");
        let children: Vec<_> = (0..5)
            .map(|id| {
                let log = log2.clone();
                handle
                    .spawn_on(worker, move || {
                        for _ in 0..4 {
                            log.lock().unwrap().push(id);
                            yield_now();
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        for child in children {
            child.join().expect("child");
        }
    })
    .expect("spawn")
    .join()
    .expect("parent");
    let log = log.lock().unwrap();
    let expected: Vec<i32> = (0..4).flat_map(|_| 0..5).collect();
    assert_eq!(*log, expected);
}

#[test]
fn sleep_is_never_early_and_not_absurdly_late() {
    let exec = executor(2);
    let handles: Vec<_> = [30u64, 10, 50, 20]
        .into_iter()
        .map(|ms| {
            exec.spawn(move || {
                let start = Instant::now();
                sleep(Duration::from_millis(ms));
                (ms, start.elapsed())
            })
            .expect("spawn")
        })
        .collect();
    for handle in handles {
        let (ms, elapsed) = handle.join().expect("sleeper");
        let asked = Duration::from_millis(ms);
        assert!(elapsed >= asked, "slept {elapsed:?} < {asked:?}");
        assert!(
            elapsed < asked + Duration::from_millis(200),
            "slept {elapsed:?} for {asked:?}"
        );
    }
}

#[test]
fn sleeping_does_not_block_the_worker() {
    let exec = executor(1);
    let asleep = Arc::new(AtomicBool::new(false));
    let a = asleep.clone();
    let sleeper = exec
        .spawn(move || {
            a.store(true, Ordering::SeqCst);
            sleep(Duration::from_secs(60));
        })
        .expect("spawn");
    wait_for(&asleep);
    // Its only worker keeps running other green threads meanwhile.
    exec.spawn(|| ()).expect("spawn").join().expect("quick");
    assert!(!sleeper.is_finished());
    sleeper.cancel();
    assert!(sleeper.join().expect_err("cancelled").is_cancelled());
}

/// Spawns a green thread that parks until the returned flag is set (and it
/// is unparked), then returns `value`.
fn parked_until_released(exec: &Executor, value: i32) -> (Arc<AtomicBool>, JoinHandle<i32>) {
    let ready = Arc::new(AtomicBool::new(false));
    let ready2 = ready.clone();
    let handle = exec
        .spawn(move || {
            while !ready2.load(Ordering::Acquire) {
                shoal_scheduler::park();
            }
            value
        })
        .expect("spawn");
    (ready, handle)
}

#[test]
fn park_and_unpark_from_an_os_thread() {
    let exec = executor(2);
    let (ready, handle) = parked_until_released(&exec, 42);
    std::thread::sleep(Duration::from_millis(20));
    ready.store(true, Ordering::Release);
    handle.thread().unpark();
    assert_eq!(handle.join().expect("parked"), 42);
}

/// Resume and park hints are only prefetched, never read: addresses that
/// are not mapped, or not even canonical, must not fault when a crowd of
/// parked green threads is woken at once (every woken one then goes
/// through the worker's prefetch steps for woken tasks).
#[test]
fn wild_resume_and_park_hints_are_harmless() {
    const THREADS: usize = 64;
    let exec = executor(1);
    let parked = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (parked, go) = (parked.clone(), go.clone());
            exec.spawn(move || {
                let wild = [1, usize::MAX - i, 0xdead_0000_0000 + i * 4096];
                shoal_scheduler::set_park_hints(wild);
                shoal_scheduler::set_resume_hints([usize::MAX, 8, 0x7fff_ffff_f000, i]);
                parked.fetch_add(1, Ordering::SeqCst);
                while !go.load(Ordering::Acquire) {
                    shoal_scheduler::park();
                }
                // And once more through the yield path's entry copies.
                yield_now();
                i
            })
            .expect("spawn")
        })
        .collect();
    let give_up = Instant::now() + Duration::from_secs(30);
    while parked.load(Ordering::SeqCst) < THREADS {
        assert!(Instant::now() < give_up, "green threads never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    go.store(true, Ordering::Release);
    for handle in &handles {
        handle.thread().unpark();
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().expect("woken"), i);
    }
}

/// `JoinHandle::prefetch` is only a hint: on a running thread's handle, a
/// finished one's, or a handle already prefetched, it neither waits nor
/// changes what `join` returns.
#[test]
fn join_prefetch_changes_nothing() {
    let exec = executor(1);
    let (go, waiting) = parked_until_released(&exec, 7);
    let done = exec.spawn(|| 8).expect("spawn");
    waiting.prefetch();
    assert!(!waiting.is_finished(), "prefetch waited for the thread");
    go.store(true, Ordering::Release);
    waiting.thread().unpark();
    while !done.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    done.prefetch();
    done.prefetch();
    assert_eq!(done.join().expect("done"), 8);
    waiting.prefetch();
    assert_eq!(waiting.join().expect("woken"), 7);
}

#[test]
fn unpark_before_park_is_not_lost() {
    let exec = executor(1);
    let handle = exec
        .spawn(|| {
            current().unpark();
            // The token is consumed without suspending.
            shoal_scheduler::park();
            true
        })
        .expect("spawn");
    assert!(handle.join().expect("no lost wakeup"));
}

#[test]
fn ping_pong_across_workers() {
    const ROUNDS: usize = 2_000;
    let exec = executor(2);
    let turn = Arc::new(AtomicUsize::new(0));
    let (t1, t2) = (turn.clone(), turn.clone());
    let peer: Arc<Mutex<Option<shoal_scheduler::Thread>>> = Arc::new(Mutex::new(None));
    let peer2 = peer.clone();
    let b = exec
        .spawn_on(1, move || {
            for round in 0..ROUNDS {
                while t2.load(Ordering::Acquire) != 2 * round + 1 {
                    shoal_scheduler::park();
                }
                t2.store(2 * round + 2, Ordering::Release);
                peer2.lock().unwrap().as_ref().expect("a").unpark();
            }
        })
        .expect("spawn b");
    let b_thread = b.thread().clone();
    let a = exec
        .spawn_on(0, move || {
            *peer.lock().unwrap() = Some(current());
            for round in 0..ROUNDS {
                t1.store(2 * round + 1, Ordering::Release);
                b_thread.unpark();
                while t1.load(Ordering::Acquire) != 2 * round + 2 {
                    shoal_scheduler::park();
                }
            }
            current_worker_index()
        })
        .expect("spawn a");
    assert_eq!(a.join().expect("a"), Some(0));
    b.join().expect("b");
    assert_eq!(turn.load(Ordering::Relaxed), 2 * ROUNDS);
}

#[test]
fn join_from_a_green_thread_parks_only_it() {
    let exec = executor(1);
    let outer = exec
        .spawn(|| {
            let inner = spawn(|| {
                sleep(Duration::from_millis(10));
                7
            })
            .expect("spawn inner");
            inner.join().expect("inner") * 6
        })
        .expect("spawn");
    assert_eq!(outer.join().expect("outer"), 42);
}

#[test]
fn a_panic_is_delivered_and_the_worker_survives() {
    let exec = executor(1);
    let bystander = exec
        .spawn(|| {
            for _ in 0..100 {
                yield_now();
            }
            "fine"
        })
        .expect("spawn");
    let panicker = exec
        .spawn(|| -> u32 {
            yield_now();
            panic!("boom {}", 7)
        })
        .expect("spawn");
    let err = panicker.join().expect_err("must panic");
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom 7"));
    assert_eq!(bystander.join().expect("bystander"), "fine");
    assert_eq!(exec.spawn(|| 1).expect("spawn").join().expect("after"), 1);
}

#[test]
fn cancel_unwinds_a_parked_thread_and_runs_destructors() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let exec = executor(2);
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (d, s) = (dropped.clone(), started.clone());
    let handle = exec
        .spawn(move || {
            let _flag = Flag(d);
            s.store(true, Ordering::SeqCst);
            loop {
                shoal_scheduler::park();
            }
        })
        .expect("spawn");
    wait_for(&started);
    handle.cancel();
    let err = handle.join().expect_err("cancelled");
    assert!(err.is_cancelled(), "{err:?}");
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn a_caught_cancellation_can_be_recognised_and_resumed() {
    let exec = executor(1);
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let handle = exec
        .spawn(move || {
            let caught = std::panic::catch_unwind(|| {
                s.store(true, Ordering::SeqCst);
                loop {
                    shoal_scheduler::park();
                }
            });
            let payload = caught.expect_err("unwound");
            assert!(shoal_scheduler::is_cancel_unwind(&*payload));
            std::panic::resume_unwind(payload);
        })
        .expect("spawn");
    wait_for(&started);
    handle.cancel();
    assert!(handle.join().expect_err("cancelled").is_cancelled());
}

#[test]
fn cancel_reaches_a_yielding_and_a_sleeping_thread() {
    let exec = executor(1);
    let spinner = exec
        .spawn(|| loop {
            yield_now();
        })
        .expect("spawn");
    let sleeper = exec
        .spawn(|| sleep(Duration::from_secs(3600)))
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(10));
    spinner.cancel();
    sleeper.cancel();
    assert!(spinner.join().expect_err("cancelled").is_cancelled());
    assert!(sleeper.join().expect_err("cancelled").is_cancelled());
}

#[test]
fn try_variants_report_cancellation_without_unwinding() {
    let exec = executor(1);
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let handle = exec
        .spawn(move || {
            s.store(true, Ordering::SeqCst);
            let park = loop {
                if let Err(c) = try_park() {
                    break c;
                }
            };
            // Still cancelled: the next try_ call says so at once.
            (park, try_yield_now(), shoal_scheduler::is_cancelled())
        })
        .expect("spawn");
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(5));
    handle.cancel();
    let (park, again, flag) = handle.join().expect("returned normally");
    assert_eq!(park, Cancelled);
    assert_eq!(again, Err(Cancelled));
    assert!(flag);
}

#[test]
fn cancel_before_start_never_runs_the_closure() {
    let exec = executor(1);
    let ran = Arc::new(AtomicBool::new(false));
    let holding = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (r, h, go) = (ran.clone(), holding.clone(), release.clone());
    let blocker = exec
        .spawn(move || {
            // Hold the only worker (without suspending) so that the next
            // spawn cannot start before it is cancelled.
            h.store(true, Ordering::SeqCst);
            while !go.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        })
        .expect("spawn");
    wait_for(&holding);
    let victim = exec
        .spawn(move || r.store(true, Ordering::SeqCst))
        .expect("spawn");
    victim.cancel();
    release.store(true, Ordering::SeqCst);
    blocker.join().expect("blocker");
    assert!(victim.join().expect_err("cancelled").is_cancelled());
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn spawn_after_shutdown_fails() {
    let exec = executor(2);
    let handle = exec.handle().clone();
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
    assert!(matches!(handle.spawn(|| ()), Err(SpawnError::ShutDown)));
    assert!(matches!(spawn(|| ()), Err(SpawnError::NoExecutor)));
}

#[test]
fn stack_pool_exhaustion_is_an_error() {
    let exec = Executor::builder()
        .workers(1)
        .max_stacks_per_worker(4)
        .build()
        .expect("build");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            exec.spawn(|| loop {
                shoal_scheduler::park();
            })
            .expect("within the limit")
        })
        .collect();
    match exec.spawn(|| ()) {
        Err(SpawnError::StackPoolExhausted {
            worker: 0,
            limit: 4,
        }) => {}
        other => panic!("expected StackPoolExhausted, got {other:?}"),
    }
    for handle in &handles {
        handle.cancel();
    }
    for handle in handles {
        assert!(handle.join().expect_err("cancelled").is_cancelled());
    }
    // Room again, right after the joins.
    exec.spawn(|| ()).expect("spawn").join().expect("ran");
}

#[test]
fn green_local_follows_its_green_thread() {
    let exec = executor(1);
    let handles: Vec<_> = (1..=8usize)
        .map(|i| {
            exec.spawn(move || {
                assert!(green_local().is_null());
                // SAFETY: this executor has no switch hook or handler that
                // reads the slot; the test owns it.
                unsafe { set_green_local(i as *mut ()) };
                for _ in 0..50 {
                    yield_now();
                    assert_eq!(green_local() as usize, i);
                }
                sleep(Duration::from_millis(1));
                green_local() as usize
            })
            .expect("spawn")
        })
        .collect();
    for (i, handle) in (1..=8usize).zip(handles) {
        assert_eq!(handle.join().expect("green local"), i);
    }
}

#[test]
fn stack_bounds_describe_the_running_stack() {
    assert!(current_stack_bounds().is_none());
    let exec = Executor::builder()
        .workers(1)
        .stack_size(64 * 1024)
        .guard_size(4096)
        .build()
        .expect("build");
    let (bounds, local_addr, in_guard, in_stack) = exec
        .spawn(|| {
            let local = 0u8;
            let addr = &local as *const u8 as usize;
            let b = current_stack_bounds().expect("inside a green thread");
            (
                b,
                addr,
                stack_guard_contains(b.guard_start),
                stack_guard_contains(addr),
            )
        })
        .expect("spawn")
        .join()
        .expect("bounds");
    assert_eq!(bounds.top - bounds.usable_start, 64 * 1024);
    assert_eq!(bounds.usable_start - bounds.guard_start, 4096);
    assert!(local_addr > bounds.usable_start && local_addr < bounds.top);
    assert!(in_guard);
    assert!(!in_stack);
    assert!(!stack_guard_contains(bounds.guard_start));
}

#[test]
fn epoch_advances_and_deadlines_yield() {
    let exec = executor(1);
    let start = epoch_counter().load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(30));
    let later = exec.epoch_counter().load(Ordering::Relaxed);
    assert!(
        later >= start + 10,
        "epoch went {start} -> {later} in 30 ms"
    );

    let log = Arc::new(Mutex::new(Vec::new()));
    let l1 = log.clone();
    let busy = exec
        .spawn(move || {
            // Queue another green thread on this (only) worker first, so the
            // yield below has someone to yield to.
            let l2 = l1.clone();
            let other = shoal_scheduler::spawn(move || l2.lock().unwrap().push("other"))
                .expect("spawn other");
            // A deadline already passed: the next check yields.
            set_deadline(Some(0));
            assert_eq!(shoal_scheduler::deadline(), Some(0));
            l1.lock().unwrap().push("busy-before");
            let yielded = yield_if_deadline_passed();
            l1.lock().unwrap().push("busy-after");
            // A fresh timeslice was granted: no yield right away.
            let result = (yielded, yield_if_deadline_passed());
            other.join().expect("other");
            result
        })
        .expect("spawn");
    assert_eq!(busy.join().expect("busy"), (true, false));
    assert_eq!(*log.lock().unwrap(), ["busy-before", "other", "busy-after"]);
}

#[test]
fn os_thread_fallbacks_work() {
    // Outside executors these behave like std.
    assert!(current().id().is_none());
    yield_now();
    sleep(Duration::from_millis(1));
    current().unpark();
    shoal_scheduler::park();
    assert!(!yield_if_deadline_passed());
    assert!(current_worker_index().is_none());
    let err: JoinError = JoinError::Cancelled;
    assert_eq!(err.to_string(), "the green thread was cancelled");
}

#[test]
fn public_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Executor>();
    send_sync::<shoal_scheduler::Handle>();
    send_sync::<shoal_scheduler::Thread>();
    send_sync::<shoal_scheduler::JoinHandle<String>>();
    send_sync::<shoal_scheduler::channel::Sender<String>>();
    send_sync::<shoal_scheduler::channel::Receiver<String>>();
    send_sync::<shoal_scheduler::net::TcpStream>();
    send_sync::<shoal_scheduler::net::TcpListener>();
}

#[test]
fn the_epoch_tick_is_process_wide() {
    let _running = executor(1);
    let other = Executor::builder()
        .workers(1)
        .epoch_tick(Duration::from_millis(7))
        .build();
    match other {
        Err(shoal_scheduler::BuildError::EpochTickConflict { running, requested }) => {
            assert_eq!(running, Duration::from_millis(1));
            assert_eq!(requested, Duration::from_millis(7));
        }
        other => panic!("expected EpochTickConflict, got {other:?}"),
    }
    assert_eq!(
        shoal_scheduler::epoch_tick(),
        Some(Duration::from_millis(1))
    );
}

#[test]
fn invalid_configuration_is_rejected() {
    for builder in [
        Executor::builder().workers(0),
        Executor::builder().stack_size(1024),
        Executor::builder().max_stacks_per_worker(0),
        Executor::builder().epoch_tick(Duration::ZERO),
    ] {
        assert!(matches!(
            builder.build(),
            Err(shoal_scheduler::BuildError::InvalidConfig(_))
        ));
    }
}

#[test]
fn cleanup_of_a_cancelled_thread_may_block_on_a_channel() {
    // A destructor that waits for a message while its thread unwinds from a
    // cancellation really parks (it is not turned into a busy loop).
    struct WaitOnDrop(
        Option<shoal_scheduler::channel::Receiver<u32>>,
        Arc<Mutex<Option<u32>>>,
    );
    impl Drop for WaitOnDrop {
        fn drop(&mut self) {
            if let Some(rx) = self.0.take() {
                *self.1.lock().unwrap() = rx.recv().ok();
            }
        }
    }
    let exec = executor(1);
    let (tx, rx) = shoal_scheduler::channel::bounded(1);
    let got = Arc::new(Mutex::new(None));
    let started = Arc::new(AtomicBool::new(false));
    let (g, s) = (got.clone(), started.clone());
    let handle = exec
        .spawn(move || {
            let _guard = WaitOnDrop(Some(rx), g);
            s.store(true, Ordering::SeqCst);
            loop {
                shoal_scheduler::park();
            }
        })
        .expect("spawn");
    wait_for(&started);
    handle.cancel();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!handle.is_finished(), "cleanup is waiting for the message");
    tx.send(5).expect("send");
    assert!(handle.join().expect_err("cancelled").is_cancelled());
    assert_eq!(*got.lock().unwrap(), Some(5));
}
