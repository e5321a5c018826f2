//! The tickers wake at every tick only while some instance is preempted
//! (`shoal_scheduler`'s epoch docs, step 7): coarse while nothing spins,
//! fine as soon as an instance runs through its timeslice, coarse again
//! `FINE_HOLD` after it stopped.
//!
//! Its own test binary: the ticker is process-wide, and a spinning test
//! running beside this one would keep the ticks fine.

use shoal::runtime::Runtime;
use shoal::{Linker, TrapKind};
use std::time::{Duration, Instant};

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
