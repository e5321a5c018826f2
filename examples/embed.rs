//! Embedding Shoal: 10,000 instances, each on its own green thread, each
//! calling a blocking host function that parks only its own green thread.
//!
//! ```text
//! cargo run --release --example embed
//! ```

use shoal::runtime::{host, Runtime};
use shoal::{Linker, Trap};
use std::time::{Duration, Instant};

const GUEST: &str = r#"(module
  (import "env" "sleep_ms" (func $sleep_ms (param i32)))
  (func (export "run") (param $n i32) (result i32)
    (call $sleep_ms (i32.const 10))                    ;; parks this instance only
    (i32.add (i32.mul (local.get $n) (local.get $n)) (i32.const 1))))"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One worker per core, preemptive timeslices, the default contract.
    let runtime = Runtime::builder().build()?;
    let module = runtime.compile(GUEST)?;

    // A blocking host function: plain Rust that sleeps. `host::sleep` parks
    // the green thread (not the worker) and turns a cancellation into a
    // trap, so a cancelled instance ends cleanly.
    let mut linker = Linker::<()>::new(runtime.engine());
    linker.func_wrap("env", "sleep_ms", |ms: i32| -> Result<(), Trap> {
        host::sleep(Duration::from_millis(ms.max(0) as u64))
    })?;

    // Link and check once; each spawn then only instantiates and calls.
    let run = runtime
        .template(&module, &linker, "run")?
        .typed::<i32, i32>()?;

    let start = Instant::now();
    let handles = (0..10_000)
        .map(|n| run.spawn(n))
        .collect::<Result<Vec<_>, _>>()?;
    let spawned = start.elapsed();
    for (n, handle) in (0i32..).zip(handles) {
        let got = handle.join()?;
        assert_eq!(got, n.wrapping_mul(n).wrapping_add(1), "instance {n}");
    }
    println!(
        "10000 instances on {} workers: spawned in {:?}, all finished and checked in {:?} \
         (each slept 10 ms)",
        runtime.workers(),
        spawned,
        start.elapsed()
    );
    Ok(())
}
