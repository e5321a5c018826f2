//! Cancellation through a `JoinHandle`: of an instance spinning in wasm, of
//! one parked in a host function (with the runtime's `host` helpers, with a
//! channel wrapped in `host::blocking`, and with the scheduler's plain,
//! unwinding `sleep`), of one not started yet, and of everything at
//! shutdown. Each ends with a `Cancelled` trap (or, for the unwinding
//! sleep, as cancelled), its instance permit is given back, and the
//! runtime goes on.

use shoal::runtime::{host, Runtime, ShutdownMode};
use shoal::{Linker, Trap, TrapKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GUEST: &str = r#"(module
  (import "env" "started" (func $started))
  (import "env" "sleep_ms" (func $sleep_ms (param i32)))
  (import "env" "recv" (func $recv (result i32)))
  (import "env" "plain_sleep" (func $plain_sleep))
  (memory 1 1)
  (func (export "spin") (param i32) (result i32)
    (call $started)
    (loop $forever
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (br $forever))
    (i32.const 0))
  (func (export "sleep") (param $ms i32) (result i32)
    (call $started)
    (call $sleep_ms (local.get $ms))
    (i32.const 1))
  (func (export "recv") (param i32) (result i32)
    (call $started)
    (call $recv))
  (func (export "plain_sleep") (param i32) (result i32)
    (call $started)
    (call $plain_sleep)
    (i32.const 1)))"#;

struct Fixture {
    runtime: Runtime,
    started: Arc<AtomicUsize>,
    linker: Linker<()>,
    module: shoal::Module,
    _tx: shoal::scheduler::channel::Sender<i32>,
}

fn fixture() -> Fixture {
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let started = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = shoal::scheduler::channel::unbounded::<i32>();
    let mut linker = Linker::<()>::new(runtime.engine());
    let s = started.clone();
    linker
        .func_wrap("env", "started", move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .expect("started");
    linker
        .func_wrap("env", "sleep_ms", |ms: i32| -> Result<(), Trap> {
            host::sleep(Duration::from_millis(ms as u32 as u64))
        })
        .expect("sleep_ms");
    linker
        .func_wrap("env", "recv", move || -> Result<i32, Trap> {
            host::blocking(|| rx.recv())?.map_err(|e| Trap::host(e.to_string()))
        })
        .expect("recv");
    linker
        .func_wrap("env", "plain_sleep", || {
            shoal::scheduler::sleep(Duration::from_secs(3600));
        })
        .expect("plain_sleep");
    let module = runtime.compile(GUEST).expect("compile");
    Fixture {
        runtime,
        started,
        linker,
        module,
        _tx: tx,
    }
}

fn wait_started(f: &Fixture, n: usize) {
    let t = Instant::now();
    while f.started.load(Ordering::SeqCst) < n {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "instances never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn cancel_running_and_parked_instances() {
    let f = fixture();
    let template = |export: &str| {
        f.runtime
            .template(&f.module, &f.linker, export)
            .expect("template")
            .typed::<i32, i32>()
            .expect("typed")
    };
    let spinning: Vec<_> = (0..8)
        .map(|_| template("spin").spawn(0).expect("spawn"))
        .collect();
    let sleeping = template("sleep").spawn(3_600_000).expect("spawn");
    let receiving = template("recv").spawn(0).expect("spawn");
    let plain = template("plain_sleep").spawn(0).expect("spawn");
    wait_started(&f, 11);
    assert_eq!(f.runtime.live_instances(), 11);

    // A parked one first: it must end at once, not after an hour.
    let t = Instant::now();
    sleeping.cancel();
    let err = sleeping.join().expect_err("cancelled");
    assert_eq!(err.trap_kind(), Some(TrapKind::Cancelled), "{err}");
    assert!(t.elapsed() < Duration::from_secs(60));

    receiving.cancel();
    let err = receiving.join().expect_err("cancelled");
    assert_eq!(err.trap_kind(), Some(TrapKind::Cancelled), "{err}");

    // The scheduler's plain sleep unwinds the green thread; the host-call
    // shim carries the unwind past the wasm frames.
    plain.cancel();
    assert!(plain.join().expect_err("cancelled").is_cancelled());

    // Spinning ones end at their next deadline.
    for h in &spinning {
        h.cancel();
    }
    for h in spinning {
        let err = h.join().expect_err("cancelled");
        assert!(err.is_cancelled(), "{err}");
    }
    assert_eq!(f.runtime.live_instances(), 0);

    // The runtime goes on.
    let sleep = template("sleep");
    assert_eq!(sleep.spawn(1).expect("spawn").join().expect("ok"), 1);
}

#[test]
fn cancel_before_start_and_at_shutdown() {
    let f = fixture();
    let spin = f
        .runtime
        .template(&f.module, &f.linker, "spin")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    // Cancelled as soon as spawned: it may or may not have started.
    for _ in 0..100 {
        let h = spin.spawn(0).expect("spawn");
        h.cancel();
        assert!(h.join().expect_err("cancelled").is_cancelled());
    }
    assert_eq!(f.runtime.live_instances(), 0);

    // Shutdown cancels spinning and parked instances alike.
    let spinners: Vec<_> = (0..50).map(|_| spin.spawn(0).expect("spawn")).collect();
    let sleep = f
        .runtime
        .template(&f.module, &f.linker, "sleep")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let sleepers: Vec<_> = (0..50)
        .map(|_| sleep.spawn(3_600_000).expect("spawn"))
        .collect();
    wait_started(&f, 100);
    f.runtime.shutdown(ShutdownMode::Cancel).expect("shutdown");
    for h in spinners.into_iter().chain(sleepers) {
        assert!(h.join().expect_err("cancelled").is_cancelled());
    }
    assert!(matches!(
        spin.spawn(0),
        Err(shoal::runtime::SpawnError::Executor(_))
    ));
}
