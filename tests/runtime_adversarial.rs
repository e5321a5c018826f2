//! The adversarial mix: well-behaved instances and hostile ones run at the
//! same time on two workers. Every well-behaved instance returns the right
//! checksum; every hostile one ends with its own specific trap (or, for the
//! `memory.grow` bomb, finds the contract's limit); the process survives
//! and the runtime goes on serving.

use shoal::runtime::{RunError, Runtime};
use shoal::{Contract, Linker, TrapKind};

const CHECKSUM: &str = r#"(module
  (func (export "run") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))"#;

/// An infinite loop: only its CPU budget stops it.
const INFINITE_LOOP: &str = r#"(module
  (func (export "run") (param i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))"#;

/// Unbounded recursion with a sizeable frame.
const RECURSION_BOMB: &str = r#"(module
  (func $down (param $n i64) (result i64)
    (local i64 i64 i64 i64 i64 i64 i64 i64)
    (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))
  (func (export "run") (param i32) (result i32)
    (drop (call $down (i64.const 0)))
    (i32.const 0)))"#;

/// Grows memory one page at a time until `memory.grow` fails (-1), then
/// returns the size it reached: the contract's limit.
const GROW_BOMB: &str = r#"(module
  (memory 1)
  (func (export "run") (param i32) (result i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (memory.size)))"#;

/// Reads far past the end of its one page.
const OUT_OF_BOUNDS: &str = r#"(module
  (memory 1 1)
  (func (export "run") (param $n i32) (result i32)
    (i32.load (i32.add (i32.const 0x10000) (local.get $n)))))"#;

const DIVIDE_BY_ZERO: &str = r#"(module
  (func (export "run") (param $n i32) (result i32)
    (i32.div_s (local.get $n) (i32.sub (local.get $n) (local.get $n)))))"#;

/// `call_indirect` of a `() -> i32` function as `(i32) -> i32`.
const BAD_SIGNATURE: &str = r#"(module
  (type $unary (func (param i32) (result i32)))
  (func $nullary (result i32) (i32.const 7))
  (table 1 1 funcref)
  (elem (i32.const 0) $nullary)
  (func (export "run") (param $n i32) (result i32)
    (call_indirect (type $unary) (local.get $n) (i32.const 0))))"#;

const MAX_PAGES: u64 = 16;

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Value(i32),
    Trap(TrapKind),
}

#[test]
fn hostile_instances_get_their_traps_and_good_ones_their_checksums() {
    let contract = Contract {
        max_memory_pages: MAX_PAGES,
        max_table_elements: 1000,
        ..Contract::default()
    };
    let runtime = Runtime::builder()
        .workers(2)
        .contract(contract.clone())
        .build()
        .expect("runtime");
    let linker = Linker::<()>::new(runtime.engine());
    let template = |wat: &str, contract: Option<Contract>| {
        let module = runtime.compile(wat).expect("compile");
        match contract {
            None => runtime.template(&module, &linker, "run"),
            Some(c) => runtime.template_with_contract(&module, &linker, "run", c),
        }
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed")
    };
    // Infinite loops get a CPU budget of 20 ticks (5 ms at the default
    // tick); the others have none.
    let budgeted = Contract {
        cpu_budget_epochs: Some(20),
        ..contract
    };
    let kinds = [
        (template(CHECKSUM, None), None),
        (
            template(INFINITE_LOOP, Some(budgeted)),
            Some(Expect::Trap(TrapKind::Timeout)),
        ),
        (
            template(RECURSION_BOMB, None),
            Some(Expect::Trap(TrapKind::StackOverflow)),
        ),
        (
            template(GROW_BOMB, None),
            Some(Expect::Value(MAX_PAGES as i32)),
        ),
        (
            template(OUT_OF_BOUNDS, None),
            Some(Expect::Trap(TrapKind::MemoryOutOfBounds)),
        ),
        (
            template(DIVIDE_BY_ZERO, None),
            Some(Expect::Trap(TrapKind::IntegerDivisionByZero)),
        ),
        (
            template(BAD_SIGNATURE, None),
            Some(Expect::Trap(TrapKind::BadSignature)),
        ),
    ];

    // 40 rounds of every kind, interleaved, all alive at once.
    let mut running = Vec::new();
    for round in 0..40 {
        for (kind, (t, expect)) in kinds.iter().enumerate() {
            let n = 10_000 + round * 1000 + kind as i32;
            let expect = expect.unwrap_or(Expect::Value(checksum(n)));
            running.push((kind, n, expect, t.spawn(n).expect("spawn")));
        }
    }
    for (kind, n, expect, handle) in running {
        let got = match handle.join() {
            Ok(v) => Expect::Value(v),
            Err(RunError::Trap(t)) => Expect::Trap(t.kind),
            Err(other) => panic!("kind {kind} run({n}): unexpected {other}"),
        };
        assert_eq!(got, expect, "kind {kind} run({n})");
    }

    // The runtime still serves after all that.
    assert_eq!(
        kinds[0].0.spawn(77).expect("spawn").join().expect("ok"),
        checksum(77)
    );
    assert_eq!(runtime.live_instances(), 0);
}

#[test]
fn host_panics_and_host_errors_end_only_their_instance() {
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let module = runtime
        .compile(
            r#"(module
                (import "env" "fail" (func $fail (param i32) (result i32)))
                (func (export "run") (param i32) (result i32)
                    (call $fail (local.get 0))))"#,
        )
        .expect("compile");
    let mut linker = Linker::<()>::new(runtime.engine());
    linker
        .func_wrap("env", "fail", |n: i32| -> Result<i32, shoal::Trap> {
            match n {
                0 => panic!("host function panicked on purpose"),
                1 => Err(shoal::Trap::host("refused on purpose")),
                n => Ok(n * 2),
            }
        })
        .expect("define");
    let run = runtime
        .template(&module, &linker, "run")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    let panicked = run.spawn(0).expect("spawn").join().unwrap_err();
    assert_eq!(
        panicked.panic_message(),
        Some("host function panicked on purpose")
    );
    let refused = run.spawn(1).expect("spawn").join().unwrap_err();
    assert_eq!(refused.trap_kind(), Some(TrapKind::Host));
    assert!(
        refused.to_string().contains("refused on purpose"),
        "{refused}"
    );
    assert_eq!(run.spawn(21).expect("spawn").join().expect("ok"), 42);
}
