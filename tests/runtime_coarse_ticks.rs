//! The tickers wake at every tick only while some instance is preempted
//! (`shoal_scheduler`'s epoch docs, step 7): coarse while nothing spins,
//! fine as soon as an instance runs through its timeslice, coarse again
//! `FINE_HOLD` after it stopped.
//!
//! Its own test binary: the ticker is process-wide, and a spinning test
//! running beside this one would keep the ticks fine. Its tests take turns
//! (`ONE_AT_A_TIME`) for the same reason.

use shoal::runtime::{Runtime, TypedTemplate};
use shoal::{Linker, Module, TrapKind};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// With a crowd of spinners, the first one preempted at coarse ticks asks
/// for fine ones: the ticks turn fine long before every spinner has had a
/// first (coarse, 1-2 ms) slice. A rule that waited for some spinner's
/// second preemption left 5,000 spinners per worker on coarse ticks for
/// longer than a 5 s `preempt` run, and 3,691 of 10,000 starved.
#[test]
fn a_crowd_of_spinners_turns_the_ticks_fine_at_its_first_preemption() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const CROWD: usize = 400;
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let module = runtime
        .compile(
            r#"(module
  (import "env" "started" (func $started))
  (func (export "spin") (param i32) (result i32)
    (call $started)
    (loop $forever (br $forever))
    (local.get 0)))"#,
        )
        .expect("compile");
    let started = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(runtime.engine());
    let s = started.clone();
    linker
        .func_wrap("env", "started", move || {
            s.fetch_add(1, Ordering::AcqRel);
        })
        .expect("started");
    let spin = spin_when_coarse(&runtime, &module, &linker);
    let spinners: Vec<_> = (0..CROWD)
        .map(|i| spin.spawn(i as i32).expect("spawn"))
        .collect();
    assert!(
        wait_for_ticks(false),
        "the spinners never made the ticks fine"
    );
    // Read as soon as the ticks are seen fine: one spinner per coarse slice
    // has started by then, a few with the test thread's polling delay.
    let started_when_fine = started.load(Ordering::Acquire);
    for spinner in &spinners {
        spinner.cancel();
    }
    for spinner in spinners {
        let err = spinner.join().expect_err("cancelled");
        assert_eq!(err.trap_kind(), Some(TrapKind::Cancelled), "{err}");
    }
    assert!(
        started_when_fine < CROWD / 4,
        "the ticks turned fine only after {started_when_fine} of {CROWD} spinners had started"
    );
}
