//! Every way wasm can branch back to a loop header passes an epoch check:
//! `br` and `br_if` (the check's branch is the back edge itself) and
//! `br_table` (through an edge block per target), with and without loop
//! params (one and two), from a block nested inside the loop, and from an
//! inner loop to an outer one. Each function below loops 1,000 times;
//! with a deadline that is always reached, the deadline callback ends it
//! with a trap at its tenth check, which only its loop's checks can reach.

use shoal_instance::{
    Caller, Config, Engine, Error, Linker, Module, Store, Trap, TrapKind, UpdateDeadline, Val,
};

/// Checks the callback lets pass before it ends the call.
const CHECKS: u64 = 10;

/// The functions (each loops 1,000 times), and what each returns when it
/// is not interrupted.
const LOOPS: &[(&str, Option<i64>)] = &[
    ("br", None),
    ("br_if", None),
    ("br_table", None),
    ("br_table_default", None),
    ("br_from_nested_block", None),
    ("br_with_param", Some(1000)),
    ("br_if_with_param", Some(1000)),
    ("br_table_with_param", Some(1000)),
    ("br_if_with_two_params", Some(1000 + 2000)),
    ("inner_br_if_to_outer", None),
    ("inner_br_table_to_outer", None),
    ("br_table_to_two_loops", None),
];

const MODULE: &str = r#"(module
    (func (export "br") (local $n i32)
        (block $out (loop $l
            (br_if $out (i32.ge_u (local.get $n) (i32.const 1000)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $l))))
    (func (export "br_if") (local $n i32)
        (loop $l
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $n) (i32.const 1000)))))
    (func (export "br_table") (local $n i32)
        (block $out (loop $l
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_table $l $out (i32.ge_u (local.get $n) (i32.const 1000))))))
    (func (export "br_table_default") (local $n i32)
        (block $out (loop $l
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_table $out $l (i32.lt_u (local.get $n) (i32.const 1000))))))
    (func (export "br_from_nested_block") (local $n i32)
        (block $out (loop $l
            (block $b
                (br_if $out (i32.ge_u (local.get $n) (i32.const 1000)))
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br $l)))))
    (func (export "br_with_param") (result i64) (local $n i32)
        (block $out (result i64)
            (i64.const 0)
            (loop $l (param i64) (result i64)
                (i64.add (i64.const 1))
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_if $out (i32.ge_u (local.get $n) (i32.const 1000)))
                (br $l))))
    (func (export "br_if_with_param") (result i64) (local $n i32)
        (i64.const 0)
        (loop $l (param i64) (result i64)
            (i64.add (i64.const 1))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $n) (i32.const 1000)))))
    (func (export "br_table_with_param") (result i64) (local $n i32)
        (block $out (result i64)
            (i64.const 0)
            (loop $l (param i64) (result i64)
                (i64.add (i64.const 1))
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_table $l $out (i32.ge_u (local.get $n) (i32.const 1000))))))
    (func (export "br_if_with_two_params") (result i64)
        (local $n i32) (local $x i64) (local $y i64)
        (i64.const 0) (i64.const 0)
        (loop $l (param i64 i64) (result i64 i64)
            (local.set $y) (local.set $x)
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (i64.add (local.get $x) (i64.const 1))
            (i64.add (local.get $y) (i64.const 2))
            (br_if $l (i32.lt_u (local.get $n) (i32.const 1000))))
        (i64.add))
    (func (export "inner_br_if_to_outer") (local $n i32)
        (block $out (loop $outer
            (loop $inner
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_if $out (i32.ge_u (local.get $n) (i32.const 1000)))
                (br_if $outer (i32.const 1))))))
    (func (export "inner_br_table_to_outer") (local $n i32)
        (block $out (loop $outer
            (loop $inner
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_table $outer $out (i32.ge_u (local.get $n) (i32.const 1000)))))))
    (func (export "br_table_to_two_loops") (local $n i32)
        (block $out (loop $a
            (loop $b
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_table $a $b $out
                    (select (i32.const 2) (i32.and (local.get $n) (i32.const 1))
                        (i32.ge_u (local.get $n) (i32.const 1000)))))))))"#;

/// Calls `name` with the deadline always reached (`interrupt`) or never.
fn call(
    engine: &Engine,
    module: &Module,
    name: &str,
    interrupt: bool,
) -> (Result<Vec<Val>, Error>, u64) {
    let mut store = Store::new(engine, 0u64);
    if interrupt {
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
            *caller.data_mut() += 1;
            if *caller.data() < CHECKS {
                Ok(UpdateDeadline::Continue(0))
            } else {
                Err(Trap::new(TrapKind::Timeout))
            }
        });
    } else {
        store.set_epoch_deadline(u64::MAX);
    }
    let instance = Linker::new(engine)
        .instantiate(&mut store, module)
        .expect("instantiate");
    let func = instance.get_func(&store, name).expect(name);
    let result = func.call(&mut store, &[]);
    (result, *store.data())
}

#[test]
fn every_back_edge_form_reaches_the_deadline_callback() {
    let engine = Engine::new(Config {
        epoch_interruption: true,
        ..Config::default()
    })
    .expect("engine");
    let module = Module::new(&engine, MODULE).expect("module");
    for &(name, value) in LOOPS {
        // Uninterrupted, each loop ends by itself with its value...
        let (result, _) = call(&engine, &module, name, false);
        let want: Vec<Val> = value.map(Val::I64).into_iter().collect();
        assert_eq!(result.expect(name), want, "{name} uninterrupted");
        // ...so only the checks on its back edges can stop it early.
        let (result, checks) = call(&engine, &module, name, true);
        match result {
            Err(Error::Trap(t)) => assert_eq!(t.kind, TrapKind::Timeout, "{name}"),
            other => panic!("{name}: expected the callback's trap, got {other:?}"),
        }
        assert_eq!(checks, CHECKS, "{name}: checks before the trap");
    }
}
