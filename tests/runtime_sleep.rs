//! Blocking host functions park only their instance: 10,000 instances are
//! asleep in a host `sleep_ms` import at the same time while other
//! instances run to completion on the same two workers; then the sleepers
//! are released and all of them complete with the right result.
//!
//! No timing assertion: each sleeper loops `sleep_ms(20)` until the test
//! releases it, so "all asleep at once" holds however slowly the machine
//! spawns them.

use shoal::runtime::{host, Runtime, SliceStats};
use shoal::{Linker, Trap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SLEEPER: &str = r#"(module
  (import "env" "sleep_ms" (func $sleep_ms (param i32)))
  (import "env" "released" (func $released (result i32)))
  (func (export "run") (param $n i32) (result i32)
    (local $naps i32)
    (loop $again
      (call $sleep_ms (i32.const 20))
      (local.set $naps (i32.add (local.get $naps) (i32.const 1)))
      (br_if $again (i32.eqz (call $released))))
    (i32.add (local.get $n) (i32.mul (i32.lt_u (local.get $naps) (i32.const 1)) (i32.const 1000000)))))"#;

const WORKER: &str = r#"(module
  (func (export "checksum") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))"#;

fn checksum(n: i32) -> i32 {
    let mut acc = 0i32;
    let mut i = 0i32;
    loop {
        acc = acc.wrapping_mul(31).wrapping_add(i);
        i += 1;
        if i >= n {
            return acc;
        }
    }
}

#[test]
fn ten_thousand_instances_asleep_at_once_while_others_run() {
    const SLEEPERS: usize = 10_000;
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let asleep = Arc::new(AtomicUsize::new(0));
    let in_loop = Arc::new(AtomicUsize::new(0));
    let peak_in_loop = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));

    let mut linker = Linker::<bool>::new(runtime.engine());
    let (a, l, p) = (asleep.clone(), in_loop.clone(), peak_in_loop.clone());
    linker
        .func_wrap(
            "env",
            "sleep_ms",
            move |mut caller: shoal::Caller<'_, bool>, ms: i32| -> Result<(), Trap> {
                if !*caller.data() {
                    // First nap of this instance: it is now in its sleep loop.
                    *caller.data_mut() = true;
                    let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                }
                a.fetch_add(1, Ordering::SeqCst);
                let slept = host::sleep(Duration::from_millis(ms.max(0) as u64));
                a.fetch_sub(1, Ordering::SeqCst);
                slept
            },
        )
        .expect("define sleep_ms");
    let (r, l) = (release.clone(), in_loop.clone());
    linker
        .func_wrap("env", "released", move || -> i32 {
            let released = r.load(Ordering::SeqCst);
            if released {
                l.fetch_sub(1, Ordering::SeqCst);
            }
            released as i32
        })
        .expect("define released");

    let sleeper = runtime
        .template(&runtime.compile(SLEEPER).expect("compile"), &linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let sleepers: Vec<_> = (0..SLEEPERS as i32)
        .map(|n| sleeper.spawn(n).expect("spawn sleeper"))
        .collect();

    let start = Instant::now();
    while in_loop.load(Ordering::SeqCst) < SLEEPERS {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {SLEEPERS} sleepers started",
            in_loop.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(peak_in_loop.load(Ordering::SeqCst), SLEEPERS);

    // While all of them are in their sleep loop (asleep, or between two
    // naps), other instances run to completion on the same workers.
    let worker = runtime
        .template(
            &runtime.compile(WORKER).expect("compile"),
            &linker,
            "checksum",
        )
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let others: Vec<_> = (1..=200)
        .map(|i| (i * 1000, worker.spawn(i * 1000).expect("spawn worker")))
        .collect();
    for (n, h) in others {
        assert_eq!(h.join().expect("worker instance"), checksum(n));
    }
    assert_eq!(
        in_loop.load(Ordering::SeqCst),
        SLEEPERS,
        "every sleeper was still in its sleep loop while the others ran"
    );
    eprintln!(
        "{} of {SLEEPERS} sleepers were parked in sleep_ms when the 200 others had finished",
        asleep.load(Ordering::SeqCst)
    );

    release.store(true, Ordering::SeqCst);
    for (n, h) in sleepers.into_iter().enumerate() {
        assert_eq!(h.join().expect("sleeper"), n as i32, "sleeper {n}");
    }
    assert_eq!(in_loop.load(Ordering::SeqCst), 0);
    assert_eq!(asleep.load(Ordering::SeqCst), 0);
    assert_eq!(runtime.live_instances(), 0);
}

/// Spawns one instance that calls the host function `env.nap` `n` times in
/// a loop; returns its timeslice statistics once it has returned `n`.
fn nap_in_a_loop(runtime: &Runtime, linker: &Linker<()>, n: i32) -> SliceStats {
    let module = runtime
        .compile(
            r#"(module
  (import "env" "nap" (func $nap))
  (func (export "run") (param $n i32) (result i32)
    (local $i i32)
    (loop $again
      (call $nap)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $i)))"#,
        )
        .expect("compile");
    let run = runtime
        .template(&module, linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let (result, stats) = run
        .spawn_then((), n, |f| (f.result.ok(), f.stats))
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(result, Some(n));
    stats
}

/// An instance resumed after its host function slept well past its epoch
/// deadline gets its deadline moved forward by the resume itself: its next
/// epoch check does not call the deadline callback just to continue
/// (`SliceStats::continues`).
#[test]
fn a_resume_after_a_host_park_moves_the_deadline_forward() {
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let mut linker = Linker::<()>::new(runtime.engine());
    linker
        .func_wrap("env", "nap", || -> Result<(), Trap> {
            host::sleep(Duration::from_millis(2))
        })
        .expect("define nap");
    let stats = nap_in_a_loop(&runtime, &linker, 20);
    // Each 2 ms nap spans several 250 µs ticks: without the resume moving
    // the deadline, every nap would end in a callback that only continues.
    assert_eq!(stats.continues, 0, "{stats:?}");
}

/// An instance that parks between short runs gets a whole new timeslice at
/// every resume: it is never preempted, however much CPU its runs add up
/// to. (Charged instead for the CPU it used across its parks, in whole
/// ticks, it would be preempted about once every five runs here: each
/// 50 µs run spans a boundary of the 250 µs tick one time in five.) The
/// host function asks for fine ticks, as a preempted instance would: with
/// coarse ticks a deadline passed in a short run is let go anyway.
#[test]
fn an_instance_that_parks_between_short_runs_is_not_preempted() {
    const RUNS: i32 = 100;
    const SPIN: Duration = Duration::from_micros(50);
    let runtime = Runtime::builder().workers(1).build().expect("runtime");
    let tick = Duration::from_micros(250);
    // Runs that lasted half a tick or more (the machine stalled), or saw
    // the epoch move by two ticks or more (a late ticker catching up):
    // those may legitimately reach their deadline, and are allowed to.
    let long_runs = Arc::new(AtomicUsize::new(0));
    let woke = Arc::new(std::sync::Mutex::new(None::<(Instant, u64)>));
    let mut linker = Linker::<()>::new(runtime.engine());
    let (long, last_wake) = (long_runs.clone(), woke.clone());
    linker
        .func_wrap("env", "nap", move || -> Result<(), Trap> {
            shoal::scheduler::request_fine_ticks();
            let started = Instant::now();
            while started.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            if let Some((woke, epoch)) = last_wake.lock().expect("lock").take() {
                let ticks = shoal::scheduler::epoch_now().saturating_sub(epoch);
                if woke.elapsed() >= tick / 2 || ticks >= 2 {
                    long.fetch_add(1, Ordering::SeqCst);
                }
            }
            host::sleep(Duration::from_millis(1))?;
            *last_wake.lock().expect("lock") =
                Some((Instant::now(), shoal::scheduler::epoch_now()));
            Ok(())
        })
        .expect("define nap");
    let stats = nap_in_a_loop(&runtime, &linker, RUNS);
    let long_runs = long_runs.load(Ordering::SeqCst) as u64;
    assert!(
        stats.preemptions <= long_runs,
        "{} preemptions, {long_runs} runs of half a tick or more: {stats:?}",
        stats.preemptions
    );
}
