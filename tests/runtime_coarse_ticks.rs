//! The tickers wake at every tick only while some instance is preempted
//! (`shoal_scheduler`'s epoch docs, step 7): coarse while nothing spins,
//! fine as soon as an instance runs through its timeslice, coarse again
//! `FINE_HOLD` after it stopped.
//!
//! Its own test binary: the ticker is process-wide, and a spinning test
//! running beside this one would keep the ticks fine. Its tests take turns
//! (`ONE_AT_A_TIME`) for the same reason.

use shoal::runtime::{host, Runtime, TypedTemplate};
use shoal::{Linker, Module, Trap, TrapKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The `spin` export of `module`, once the ticks are coarse (no instance
/// runs yet).
fn spin_when_coarse(
    runtime: &Runtime,
    module: &Module,
    linker: &Linker<()>,
) -> TypedTemplate<(), i32, i32> {
    let spin = runtime
        .template(module, linker, "spin")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    assert!(
        wait_for_ticks(true),
        "no instance runs, yet the ticks stay fine"
    );
    spin
}

/// A one-worker runtime and `wat` compiled for it.
fn one_worker(wat: &str) -> (Runtime, Module) {
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime.compile(wat).expect("compile");
    (runtime, module)
}

/// Waits up to 10 s for `ticks_are_coarse() == coarse`.
fn wait_for_ticks(coarse: bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if shoal::scheduler::ticks_are_coarse() == coarse {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn ticks_are_fine_only_while_an_instance_spins() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (runtime, module) = one_worker(
        r#"(module
  (func (export "spin") (param i32) (result i32)
    (loop $forever (br $forever))
    (local.get 0)))"#,
    );
    let linker = Linker::<()>::new(runtime.engine());
    let spin = spin_when_coarse(&runtime, &module, &linker);
    let (wakes, started) = (shoal::scheduler::ticker_wakes(), Instant::now());
    std::thread::sleep(Duration::from_millis(50));
    let coarse_wakes = shoal::scheduler::ticker_wakes() - wakes;
    let ticks = started.elapsed().as_micros() as u64 / 250;
    // Coarse, the tickers wake at most at one tick in COARSE_STRIDE of
    // those that passed (a late ticker wakes less often, never more).
    assert!(
        coarse_wakes <= ticks / shoal::scheduler::COARSE_STRIDE + 2,
        "{coarse_wakes} wake-ups in {ticks} ticks of coarse ticks"
    );

    let spinner = spin.spawn(7).expect("spawn");
    assert!(
        wait_for_ticks(false),
        "an instance spins, and its preemptions did not make the ticks fine"
    );
    spinner.cancel();
    let err = spinner.join().expect_err("cancelled");
    assert_eq!(err.trap_kind(), Some(TrapKind::Cancelled), "{err}");

    assert!(
        wait_for_ticks(true),
        "the spinner is gone, yet the ticks stay fine"
    );
}

/// With a crowd of spinners, the second one preempted at coarse ticks (the
/// first confirmed by the next, a coarse interval or two later) asks for
/// fine ones: the ticks turn fine long before every spinner has had a
/// first (coarse, 1-2 ms) slice. A rule that waited for some spinner's
/// *own* second preemption left 5,000 spinners per worker on coarse ticks
/// for longer than a 5 s `preempt` run, and 3,691 of 10,000 starved.
///
/// The spinners all wait at a start line (yielding) until every one is
/// queued; then each notes, as it starts to spin, whether the ticks are
/// still coarse (on the worker, so the test thread's own delays do not
/// count): a few do, against all 400 under that rule.
#[test]
fn a_crowd_of_spinners_turns_the_ticks_fine_at_its_second_preemption() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const CROWD: usize = 400;
    let (runtime, module) = one_worker(
        r#"(module
  (import "env" "ready" (func $ready))
  (import "env" "spinning" (func $spinning))
  (func (export "spin") (param i32) (result i32)
    (call $ready)
    (call $spinning)
    (loop $forever (br $forever))
    (local.get 0)))"#,
    );
    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    // Spinners that started to spin, and those that did while the ticks
    // were coarse.
    let spinning = Arc::new(AtomicUsize::new(0));
    let spinning_coarse = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(runtime.engine());
    let (g, r) = (go.clone(), ready.clone());
    linker
        .func_wrap("env", "ready", move || -> Result<(), Trap> {
            r.fetch_add(1, Ordering::AcqRel);
            while !g.load(Ordering::Acquire) {
                host::yield_now()?;
            }
            Ok(())
        })
        .expect("ready");
    let (s, c) = (spinning.clone(), spinning_coarse.clone());
    linker
        .func_wrap("env", "spinning", move || {
            if shoal::scheduler::ticks_are_coarse() {
                c.fetch_add(1, Ordering::AcqRel);
            }
            s.fetch_add(1, Ordering::AcqRel);
        })
        .expect("spinning");
    let spin = spin_when_coarse(&runtime, &module, &linker);
    let spinners: Vec<_> = (0..CROWD)
        .map(|i| spin.spawn(i as i32).expect("spawn"))
        .collect();
    let wait_for = |count: &AtomicUsize| {
        let t = Instant::now();
        while count.load(Ordering::Acquire) < CROWD && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        count.load(Ordering::Acquire)
    };
    let all_ready = wait_for(&ready);
    assert!(
        shoal::scheduler::ticks_are_coarse(),
        "yielding at the start line made the ticks fine"
    );
    go.store(true, Ordering::Release);
    let all_spinning = wait_for(&spinning);
    let coarse = spinning_coarse.load(Ordering::Acquire);
    for spinner in &spinners {
        spinner.cancel();
    }
    for spinner in spinners {
        let err = spinner.join().expect_err("cancelled");
        assert_eq!(err.trap_kind(), Some(TrapKind::Cancelled), "{err}");
    }
    assert_eq!((all_ready, all_spinning), (CROWD, CROWD), "spinners lost");
    assert!(
        coarse < CROWD / 4,
        "{coarse} of {CROWD} spinners started to spin before the ticks turned fine"
    );
}

/// One long run under coarse ticks (here a host function that holds the
/// worker thread for 10 ms, as a virtual CPU descheduled by the hypervisor
/// or a slow system call would) gets the instance preempted, but does not
/// make the ticks fine: nothing else on its worker was preempted in the
/// coarse intervals before. Asking then, about ten times a second on the
/// development VM, kept the ticks fine all the time under the echo
/// benchmark.
#[test]
fn a_single_stall_does_not_make_the_ticks_fine() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (runtime, module) = one_worker(
        r#"(module
  (import "env" "stall" (func $stall))
  (func (export "spin") (param $n i32) (result i32)
    (call $stall)
    ;; A loop, so that a deadline check comes after the stall.
    (loop $again
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $again (i32.gt_s (local.get $n) (i32.const 0))))
    (local.get $n)))"#,
    );
    let mut linker = Linker::<()>::new(runtime.engine());
    linker
        .func_wrap("env", "stall", || {
            // Holds the worker thread (no park): a stall, not a spin.
            std::thread::sleep(Duration::from_millis(10));
        })
        .expect("stall");
    let run = spin_when_coarse(&runtime, &module, &linker);
    // A second stall (the machine's, in the loop after the first) would be
    // a second preemption, which may ask: such an attempt proves nothing,
    // and the test tries again.
    for _attempt in 0..3 {
        assert!(wait_for_ticks(true), "the ticks did not turn coarse");
        let handle = run
            .spawn_then((), 1000, |f| (f.result.ok(), f.stats))
            .expect("spawn");
        let (result, slice_stats) = handle.join().expect("run");
        assert_eq!(result, Some(0));
        assert!(slice_stats.preemptions >= 1, "the stall was not preempted");
        if slice_stats.preemptions > 1 {
            continue;
        }
        // The ticks stay coarse: a request would have turned them fine at
        // the next ticker wake-up, within a coarse interval, for FINE_HOLD.
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(20) {
            assert!(
                shoal::scheduler::ticks_are_coarse(),
                "one stall made the ticks fine"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        return;
    }
    panic!("every attempt was preempted more than once");
}
