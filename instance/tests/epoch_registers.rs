//! Values live across an epoch check survive the cold path: with a deadline
//! that is always reached, every function entry and every branch back to a
//! loop header calls the epoch stub, the libcall and the store's callback,
//! and results must be the same as without epoch checks. The functions
//! keep more integer and float values live across their loop back edges
//! than there are registers, so that both caller-saved and callee-saved
//! registers hold some. Their loops branch back with `br_if` (bottom
//! tested, as compilers emit them); `br_back_edges_keep_values_too` covers
//! a test at the top and `br` at the bottom.

use shoal_instance::{
    Caller, Config, Engine, Linker, MemoryStrategy, Module, Store, UpdateDeadline, Val,
};

/// How the test's loops branch back to their headers.
#[derive(Clone, Copy, Debug)]
enum BackEdge {
    /// `br_if $l` at the bottom (the loop runs while the condition holds).
    BrIf,
    /// An exit test at the top and `br $l` at the bottom; the inner loop
    /// also carries its value as a loop param.
    Br,
}

/// A function of `n` i64 and `n` f64 accumulators, updated in a loop of
/// `iterations` turns (each from its neighbours, so that all stay live),
/// then folded into one i64.
fn many_live_values(n: usize, back_edge: BackEdge) -> String {
    let mut body = String::new();
    let mut locals = String::new();
    for i in 0..n {
        locals.push_str(&format!("(local $a{i} i64) (local $f{i} f64) "));
        body.push_str(&format!(
            "(local.set $a{i} (i64.add (local.get $seed) (i64.const {})))\n\
             (local.set $f{i} (f64.convert_i64_s (local.get $a{i})))\n",
            i * 7919 + 1
        ));
    }
    let mut step = String::new();
    for i in 0..n {
        let j = (i + 1) % n;
        step.push_str(&format!(
            "(local.set $a{i} (i64.xor (i64.mul (local.get $a{i}) (i64.const 6364136223846793005)) (local.get $a{j})))\n\
             (local.set $f{i} (f64.add (f64.mul (local.get $f{i}) (f64.const 0.5)) (local.get $f{j})))\n"
        ));
    }
    let mut fold = String::from("(local.get $seed)");
    for i in 0..n {
        fold = format!(
            "(i64.add (i64.rotl {fold} (i64.const 5)) (i64.add (local.get $a{i}) (i64.trunc_sat_f64_s (local.get $f{i}))))"
        );
    }
    let (inner, outer) = match back_edge {
        BackEdge::BrIf => (
            r#"(loop $l
                    (local.set $x (i64.add (local.get $x) (i64.const 3)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
                (local.get $x)"#
                .to_string(),
            format!(
                r#"(loop $l
                    {step}
                    (local.set $a0 (call $inner (local.get $a0)))
                    (local.set $k (i32.add (local.get $k) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $k) (local.get $iterations))))"#
            ),
        ),
        BackEdge::Br => (
            r#"(block $done (result i64)
                    (local.get $x)
                    (loop $l (param i64) (result i64)
                        (i64.add (i64.const 3))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br_if $done (i32.ge_u (local.get $i) (i32.const 3)))
                        (br $l)))"#
                .to_string(),
            format!(
                r#"(block $out (loop $l
                    (br_if $out (i32.ge_u (local.get $k) (local.get $iterations)))
                    {step}
                    (local.set $a0 (call $inner (local.get $a0)))
                    (local.set $k (i32.add (local.get $k) (i32.const 1)))
                    (br $l)))"#
            ),
        ),
    };
    format!(
        r#"(module
            (func $inner (param $x i64) (result i64)
                (local $i i32)
                {inner})
            (func (export "run") (param $seed i64) (param $iterations i32) (result i64)
                (local $k i32) {locals}
                {body}
                {outer}
                {fold}))"#
    )
}

fn run(strategy: MemoryStrategy, epoch: bool, wat: &str, seed: i64) -> (i64, u64) {
    let engine = Engine::new(Config {
        memory_strategy: strategy,
        epoch_interruption: epoch,
        ..Config::default()
    })
    .expect("engine");
    let module = Module::new(&engine, wat).expect("module");
    let mut store = Store::new(&engine, 0u64);
    if epoch {
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
            *caller.data_mut() += 1;
            Ok(UpdateDeadline::Continue(0))
        });
    }
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    let func = instance.get_func(&store, "run").expect("run");
    let result = func
        .call(&mut store, &[Val::I64(seed), Val::I32(50)])
        .expect("call");
    match result[..] {
        [Val::I64(v)] => (v, *store.data()),
        ref other => panic!("unexpected results {other:?}"),
    }
}

/// Runs the function of `back_edge` loops with and without epoch checks
/// and compares; returns how many times the cold path ran (the same for
/// every case).
fn check_values_survive(back_edge: BackEdge) -> u64 {
    let mut calls_seen = None;
    for n in [4, 12, 24] {
        let wat = many_live_values(n, back_edge);
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            for seed in [1, -77, 0x1234_5678_9abc] {
                let (expected, _) = run(strategy, false, &wat, seed);
                let (actual, calls) = run(strategy, true, &wat, seed);
                assert_eq!(actual, expected, "{n} values, {strategy:?}, seed {seed}");
                assert_eq!(*calls_seen.get_or_insert(calls), calls, "{n} values");
            }
        }
    }
    calls_seen.unwrap_or(0)
}

#[test]
fn values_live_across_epoch_checks_survive_the_cold_path() {
    // `run`'s entry, its loop's 49 `br_if`s back, and per turn `inner`'s
    // entry and its loop's 2 `br_if`s back.
    assert_eq!(check_values_survive(BackEdge::BrIf), 1 + 49 + 50 * 3);
}

#[test]
fn br_back_edges_keep_values_too() {
    // `run`'s entry, its loop's 50 `br`s back, and per turn `inner`'s entry
    // and its loop's 2 `br`s back (with the loop param).
    assert_eq!(check_values_survive(BackEdge::Br), 1 + 50 + 50 * 3);
}
