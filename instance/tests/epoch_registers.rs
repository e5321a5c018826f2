//! Values live across an epoch check survive the cold path: with a deadline
//! that is always reached, every function entry and loop header calls the
//! epoch stub, the libcall and the store's callback, and results must be
//! the same as without epoch checks. The functions keep more integer and
//! float values live across their loop headers than there are registers,
//! so that both caller-saved and callee-saved registers hold some.

use shoal_instance::{
    Caller, Config, Engine, Linker, MemoryStrategy, Module, Store, UpdateDeadline, Val,
};

/// A function of `n` i64 and `n` f64 accumulators, updated in a loop of
/// `iterations` turns (each from its neighbours, so that all stay live),
/// then folded into one i64.
fn many_live_values(n: usize) -> String {
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
    format!(
        r#"(module
            (func $inner (param $x i64) (result i64)
                (local $i i32)
                (loop $l
                    (local.set $x (i64.add (local.get $x) (i64.const 3)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
                (local.get $x))
            (func (export "run") (param $seed i64) (param $iterations i32) (result i64)
                (local $k i32) {locals}
                {body}
                (loop $l
                    {step}
                    (local.set $a0 (call $inner (local.get $a0)))
                    (local.set $k (i32.add (local.get $k) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $k) (local.get $iterations))))
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

#[test]
fn values_live_across_epoch_checks_survive_the_cold_path() {
    for n in [4, 12, 24] {
        let wat = many_live_values(n);
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            for seed in [1, -77, 0x1234_5678_9abc] {
                let (expected, _) = run(strategy, false, &wat, seed);
                let (actual, calls) = run(strategy, true, &wat, seed);
                assert!(calls >= 50 * 5, "the cold path ran {calls} times");
                assert_eq!(actual, expected, "{n} values, {strategy:?}, seed {seed}");
            }
        }
    }
}
