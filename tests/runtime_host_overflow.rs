//! A host function called from wasm that overflows its green thread's stack
//! ends its instance with a `StackOverflow` trap, not the process. (In its
//! own test binary: if this ever regressed, the crash would take down only
//! this file's tests.)

use shoal::runtime::Runtime;
use shoal::{Linker, TrapKind};
use std::hint::black_box;

/// Recurses `n` levels with a 2 KiB frame each.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let frame = black_box([n; 256]);
    if n == 0 {
        0
    } else {
        deep(n - 1).wrapping_add(black_box(frame[7]))
    }
}

#[test]
fn host_stack_overflow_is_a_trap() {
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let module = runtime
        .compile(
            r#"(module
                (import "env" "deep" (func $deep (param i64) (result i64)))
                (func (export "run") (param i64) (result i64)
                    (call $deep (local.get 0))))"#,
        )
        .expect("compile");
    let mut linker = Linker::<()>::new(runtime.engine());
    linker
        .func_wrap("env", "deep", |n: i64| deep(n as u64) as i64)
        .expect("define");
    let run = runtime
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<i64, i64>()
        .expect("typed");
    // 10 levels fit; a million (2 GiB of frames) cannot.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let n = if i % 2 == 0 { 1_000_000 } else { 10 };
            (n, run.spawn(n).expect("spawn"))
        })
        .collect();
    for (n, h) in handles {
        let result = h.join();
        if n == 10 {
            assert_eq!(
                result.expect("shallow recursion returns"),
                (1..=10).sum::<i64>()
            );
        } else {
            let err = result.expect_err("deep recursion overflows");
            assert_eq!(err.trap_kind(), Some(TrapKind::StackOverflow), "{err}");
        }
    }
}
