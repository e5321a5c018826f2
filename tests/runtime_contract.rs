//! Security by contract through the runtime: forbidden imports refused with
//! their name, the instance limit, memory and table limits, CPU budgets
//! (counting only CPU time, not time parked), contracts the runtime cannot
//! enforce, and modules from another engine.

use shoal::runtime::{host, RunError, Runtime, SpawnError};
use shoal::{Contract, Engine, ImportPattern, Linker, Module, Trap, TrapKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn runtime(contract: Contract) -> Runtime {
    Runtime::builder()
        .workers(2)
        .contract(contract)
        .build()
        .expect("runtime")
}

#[test]
fn forbidden_import_is_refused_with_its_name() {
    let rt = runtime(Contract::default().allow_imports([ImportPattern::new("env", "log_*")]));
    let module = rt
        .compile(
            r#"(module
                (import "env" "log_line" (func (param i32)))
                (import "env" "open_socket" (func (result i32)))
                (func (export "run")))"#,
        )
        .expect("compile");
    let mut linker = Linker::<()>::new(rt.engine());
    linker
        .func_wrap("env", "log_line", |_: i32| {})
        .expect("define");
    linker
        .func_wrap("env", "open_socket", || 3)
        .expect("define");
    let err = rt.spawn(&module, &linker, "run", vec![]).unwrap_err();
    assert!(
        matches!(err, SpawnError::Contract(ref v) if v.len() == 1),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("env::open_socket"), "{message}");
    assert!(!message.contains("env::log_line`"), "{message}");
}

#[test]
fn link_and_export_errors_are_reported_before_running() {
    let rt = runtime(Contract::default());
    let module = rt
        .compile(r#"(module (import "env" "missing" (func)) (func (export "go")) (memory (export "mem") 1))"#)
        .expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let err = rt.template(&module, &linker, "go").unwrap_err();
    assert!(matches!(err, SpawnError::Link(_)), "{err}");
    assert!(err.to_string().contains("env::missing"), "{err}");

    let module = rt
        .compile(r#"(module (func (export "go") (param i32)) (memory (export "mem") 1))"#)
        .expect("compile");
    let err = rt.template(&module, &linker, "run").unwrap_err();
    assert!(
        err.to_string().contains("no export `run`") && err.to_string().contains("go"),
        "{err}"
    );
    let err = rt.template(&module, &linker, "mem").unwrap_err();
    assert!(err.to_string().contains("is a memory"), "{err}");
    let err = rt
        .template(&module, &linker, "go")
        .expect("template")
        .typed::<i64, ()>()
        .unwrap_err();
    assert!(err.to_string().contains("not the requested"), "{err}");

    // A module compiled by an engine without the runtime's epoch checks.
    let foreign = Module::new(
        &Engine::new(shoal::Config::default()).expect("engine"),
        "(module (func (export \"go\")))",
    )
    .expect("compile");
    let err = rt.template(&foreign, &linker, "go").unwrap_err();
    assert!(matches!(err, SpawnError::ForeignModule), "{err}");
}

#[test]
fn max_instances_is_enforced_and_permits_come_back() {
    let rt = runtime(Contract::default());
    let module = rt
        .compile(
            r#"(module (import "env" "sleep_ms" (func $s (param i32)))
                (func (export "run") (param i32) (result i32) (call $s (local.get 0)) (local.get 0)))"#,
        )
        .expect("compile");
    let mut linker = Linker::<()>::new(rt.engine());
    linker
        .func_wrap("env", "sleep_ms", |ms: i32| -> Result<(), Trap> {
            host::sleep(Duration::from_millis(ms as u64))
        })
        .expect("define");
    let limited = Contract {
        max_instances: Some(5),
        ..Contract::default()
    };
    let run = rt
        .template_with_contract(&module, &linker, "run", limited)
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let parked: Vec<_> = (0..5)
        .map(|_| run.spawn(3_600_000).expect("within the limit"))
        .collect();
    let err = run.spawn(1).unwrap_err();
    assert!(
        matches!(err, SpawnError::InstanceLimit { limit: 5 }),
        "{err}"
    );
    assert!(err.to_string().contains("max_instances"), "{err}");
    assert_eq!(run.untyped().live_instances(), 5);
    // Other templates (here: the default contract) are not affected.
    let other = rt
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    assert_eq!(other.spawn(3).expect("spawn").join().expect("ok"), 3);
    // Finishing one gives its place back before join returns.
    let mut parked = parked.into_iter();
    let first = parked.next().expect("one");
    first.cancel();
    assert!(first.join().unwrap_err().is_cancelled());
    assert_eq!(
        run.spawn(2)
            .expect("a place was given back")
            .join()
            .expect("ok"),
        2
    );
    for h in parked {
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    }
    assert_eq!(run.untyped().live_instances(), 0);
    // run_here counts too.
    let all: Vec<_> = (0..5)
        .map(|_| run.spawn(3_600_000).expect("spawn"))
        .collect();
    assert!(matches!(
        run.run_here((), 1),
        Err(RunError::Refused(SpawnError::InstanceLimit { .. }))
    ));
    for h in all {
        h.cancel();
        let _ = h.join();
    }
}

#[test]
fn memory_and_table_limits_fail_growth_as_the_spec_says() {
    let rt = runtime(Contract {
        max_memory_pages: 8,
        max_table_elements: 20,
        ..Contract::default()
    });
    let module = rt
        .compile(
            r#"(module
                (memory 2)
                (table 5 funcref)
                (func (export "grow") (param i32) (result i32 i32 i32)
                    (memory.grow (local.get 0))
                    (table.grow (ref.null func) (local.get 0))
                    (memory.size)))"#,
        )
        .expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let grow = rt
        .template(&module, &linker, "grow")
        .expect("template")
        .typed::<i32, (i32, i32, i32)>()
        .expect("typed");
    assert_eq!(grow.spawn(6).expect("spawn").join().expect("ok"), (2, 5, 8));
    assert_eq!(
        grow.spawn(7).expect("spawn").join().expect("ok"),
        (-1, 5, 2)
    );
    assert_eq!(
        grow.spawn(16).expect("spawn").join().expect("ok"),
        (-1, -1, 2)
    );

    // A module declaring more than the contract allows is refused up front.
    let big = rt
        .compile("(module (memory 9) (func (export \"go\")))")
        .expect("compile");
    let err = rt.template(&big, &linker, "go").unwrap_err();
    assert!(
        err.to_string().contains("memory 0 needs at least 9 pages"),
        "{err}"
    );

    // A template's own, stricter contract holds its instances to its
    // limits (set on their stores); the runtime's other instances keep the
    // runtime's.
    let strict = Contract {
        max_memory_pages: 4,
        max_table_elements: 6,
        ..Contract::default()
    };
    let strict_grow = rt
        .template_with_contract(&module, &linker, "grow", strict.clone())
        .expect("template")
        .typed::<i32, (i32, i32, i32)>()
        .expect("typed");
    assert_eq!(
        strict_grow.spawn(2).expect("spawn").join().expect("ok"),
        (2, -1, 4)
    );
    assert_eq!(
        strict_grow.spawn(3).expect("spawn").join().expect("ok"),
        (-1, -1, 2)
    );
    assert_eq!(grow.spawn(3).expect("spawn").join().expect("ok"), (2, 5, 5));

    // A contract promising more stack than the runtime's green threads
    // have cannot be kept.
    let big_stack = Contract {
        stack_size: 64 << 20,
        ..strict
    };
    let err = rt
        .template_with_contract(&module, &linker, "grow", big_stack)
        .unwrap_err();
    assert!(matches!(err, SpawnError::UnenforceableContract(_)), "{err}");
}

/// A template contract with a smaller stack than the runtime's: recursion
/// that the runtime's default contract allows traps with `StackOverflow`
/// under it, and only in its own instances.
#[test]
fn a_smaller_contract_stack_is_enforced_per_instance() {
    let rt = runtime(Contract::default());
    let module = rt
        .compile(
            r#"(module
    (func $depth (export "depth") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
            (then (i32.const 0))
            (else (i32.add (i32.const 1)
                (call $depth (i32.sub (local.get 0) (i32.const 1))))))))"#,
        )
        .expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let roomy = rt
        .template(&module, &linker, "depth")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let small = Contract {
        stack_size: 16 * 1024,
        ..Contract::default()
    };
    let cramped = rt
        .template_with_contract(&module, &linker, "depth", small)
        .expect("a smaller stack is enforceable")
        .typed::<i32, i32>()
        .expect("typed");
    assert_eq!(
        roomy.spawn(3_000).expect("spawn").join().expect("fits"),
        3_000
    );
    match cramped.spawn(3_000).expect("spawn").join() {
        Err(e) => assert_eq!(
            e.trap().map(|t| t.kind),
            Some(TrapKind::StackOverflow),
            "{e}"
        ),
        Ok(v) => panic!("expected a stack overflow, got {v}"),
    }
    assert_eq!(cramped.spawn(50).expect("spawn").join().expect("fits"), 50);
}

#[test]
fn cpu_budget_ends_spinners_but_not_sleepers() {
    let rt = runtime(Contract::default());
    let module = rt
        .compile(
            r#"(module
                (import "env" "sleep_ms" (func $s (param i32)))
                (func (export "spin") (param i32) (result i32)
                    (loop $l (br $l)) (i32.const 0))
                (func (export "nap") (param $n i32) (result i32)
                    (local $i i32)
                    (loop $l
                        (call $s (i32.const 10))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
                    (local.get $i)))"#,
        )
        .expect("compile");
    let naps = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(rt.engine());
    let n = naps.clone();
    linker
        .func_wrap("env", "sleep_ms", move |ms: i32| -> Result<(), Trap> {
            n.fetch_add(1, Ordering::Relaxed);
            host::sleep(Duration::from_millis(ms as u64))
        })
        .expect("define");
    // 40 ticks of CPU: 10 ms at the default 250 µs tick.
    let budget = Contract {
        cpu_budget_epochs: Some(40),
        ..Contract::default()
    };
    let spin = rt
        .template_with_contract(&module, &linker, "spin", budget.clone())
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let nap = rt
        .template_with_contract(&module, &linker, "nap", budget)
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let t = Instant::now();
    let spinners: Vec<_> = (0..10).map(|_| spin.spawn(0).expect("spawn")).collect();
    // 30 naps of 10 ms: 300 ms of wall time, almost no CPU.
    let nappers: Vec<_> = (0..10).map(|_| nap.spawn(30).expect("spawn")).collect();
    for h in spinners {
        let err = h.join().expect_err("budget spent");
        assert_eq!(err.trap_kind(), Some(TrapKind::Timeout), "{err}");
        assert!(err.to_string().contains("cpu_budget_epochs"), "{err}");
    }
    for h in nappers {
        assert_eq!(h.join().expect("sleeping costs no budget"), 30);
    }
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(naps.load(Ordering::Relaxed), 300);
}
