//! The tickers wake at every tick only while some instance is preempted
//! (`shoal_scheduler`'s epoch docs, step 7): coarse while nothing spins,
//! fine as soon as an instance runs through its timeslice, coarse again
//! `FINE_HOLD` after it stopped.
//!
//! Its own test binary: the ticker is process-wide, and a spinning test
//! running beside this one would keep the ticks fine. Its tests take turns
//! (`ONE_AT_A_TIME`) for the same reason.

use shoal::runtime::{host, Runtime};
use shoal::{Linker, Trap, TrapKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime
        .compile(
            r#"(module
  (func (export "spin") (param i32) (result i32)
    (loop $forever (br $forever))
    (local.get 0)))"#,
        )
        .expect("compile");
    let linker = Linker::<()>::new(runtime.engine());
    let spin = runtime
        .template(&module, &linker, "spin")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");

    assert!(
        wait_for_ticks(true),
        "no instance runs, yet the ticks stay fine"
    );
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

/// An instance whose worker thread is stopped under it for a while (here a
/// host function that blocks the thread, as a descheduled virtual CPU
/// would) reaches its deadline right after, and is preempted; but it parks
/// soon after, so it does not spin and the ticks must stay coarse.
#[test]
fn a_run_stopped_under_it_does_not_make_the_ticks_fine() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const ROUNDS: i32 = 20;
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime
        .compile(
            r#"(module
  (import "env" "stall" (func $stall))
  (import "env" "nap" (func $nap))
  (func $check)
  (func (export "run") (param $n i32) (result i32)
    (loop $again
      (call $stall)
      (call $check)
      (call $nap)
      (br_if $again
        (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $n)))"#,
        )
        .expect("compile");
    // Ticker wake-ups seen by the shortest stall, and naps that found the
    // ticks fine.
    let least_wakes = Arc::new(AtomicU64::new(u64::MAX));
    let fine_seen = Arc::new(AtomicU64::new(0));
    let mut linker = Linker::<()>::new(runtime.engine());
    let least = least_wakes.clone();
    linker
        .func_wrap("env", "stall", move || {
            let wakes = shoal::scheduler::ticker_wakes();
            std::thread::sleep(Duration::from_millis(6));
            least.fetch_min(shoal::scheduler::ticker_wakes() - wakes, Ordering::Relaxed);
        })
        .expect("stall");
    let fine = fine_seen.clone();
    linker
        .func_wrap("env", "nap", move || -> Result<(), Trap> {
            if !shoal::scheduler::ticks_are_coarse() {
                fine.fetch_add(1, Ordering::Relaxed);
            }
            host::sleep(Duration::from_millis(2))
        })
        .expect("nap");
    let run = runtime
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");

    assert!(
        wait_for_ticks(true),
        "no instance runs, yet the ticks stay fine"
    );
    let handle = run.spawn(ROUNDS).expect("spawn");
    assert_eq!(handle.join().expect("run"), 0);
    // Each stall spanned two wake-ups, so each call of $check found the
    // deadline passed by a run that looked a whole coarse interval long.
    assert!(
        least_wakes.load(Ordering::Relaxed) >= 2,
        "a stall saw only {} ticker wake-ups: the deadline may not have passed",
        least_wakes.load(Ordering::Relaxed)
    );
    assert_eq!(
        fine_seen.load(Ordering::Relaxed),
        0,
        "preemptions of an instance that parks right after made the ticks fine"
    );
    assert!(shoal::scheduler::ticks_are_coarse());
}
