//! Stores with an arena for their own blocks (`Store::with_arena`): a
//! module behaves the same whether the arena holds all, some or none of the
//! store's blocks (its limits, the instances' records and VMContexts, the
//! host functions' records); the store reports how much it wanted; dropping
//! it drops everything in it.

use shoal_instance::{Config, Engine, Error, Linker, Module, PoolingConfig, Store, TrapKind};
use std::sync::Arc;

/// Two instances (the second imports the first's memory, table and
/// function), host functions called directly and through the table, a
/// mutable global, memory written and read.
const PROVIDER: &str = r#"(module
    (import "host" "add" (func $add (param i32 i32) (result i32)))
    (import "host" "twice" (func $twice (param i32) (result i32)))
    (memory (export "mem") 1)
    (table (export "tab") 2 funcref)
    (elem (i32.const 0) $add $twice)
    (global $g (mut i32) (i32.const 7))
    (func (export "bump") (param i32) (result i32)
        (global.set $g (call $add (global.get $g) (local.get 0)))
        (i32.store (i32.const 64) (global.get $g))
        (global.get $g)))"#;

const USER: &str = r#"(module
    (import "provider" "mem" (memory 1))
    (import "provider" "tab" (table 2 funcref))
    (import "provider" "bump" (func $bump (param i32) (result i32)))
    (type $unary (func (param i32) (result i32)))
    (func (export "run") (param i32) (result i32)
        (drop (call $bump (local.get 0)))
        ;; twice(memory[64]) through the table
        (call_indirect (type $unary) (i32.load (i32.const 64)) (i32.const 1)))
    (func (export "trap") (result i32) (i32.div_u (i32.const 1) (i32.const 0))))"#;

/// Runs both modules in a store with an arena of `arena_bytes`; returns
/// what the store wanted. `alive` is held by the host closures and the
/// store's data.
fn run_in(engine: &Engine, arena_bytes: usize, alive: &Arc<()>) -> usize {
    let provider = Module::new(engine, PROVIDER).expect("provider compiles");
    let user = Module::new(engine, USER).expect("user compiles");
    let mut store = Store::with_arena(engine, alive.clone(), arena_bytes);
    let mut linker = Linker::new(engine);
    let (a, b) = (alive.clone(), alive.clone());
    linker
        .func_wrap("host", "add", move |x: i32, y: i32| {
            let _ = &a;
            x.wrapping_add(y)
        })
        .expect("define add");
    linker
        .func_wrap("host", "twice", move |x: i32| {
            let _ = &b;
            x.wrapping_mul(2)
        })
        .expect("define twice");
    let provider = linker
        .instantiate(&mut store, &provider)
        .expect("instantiate provider");
    linker
        .instance(&mut store, "provider", provider)
        .expect("register provider");
    let user = linker
        .instantiate(&mut store, &user)
        .expect("instantiate user");

    let run = user.get_typed_func::<i32, i32>(&store, "run").expect("run");
    assert_eq!(run.call(&mut store, 3).expect("run(3)"), 20, "(7 + 3) * 2");
    assert_eq!(run.call(&mut store, 5).expect("run(5)"), 30, "(10 + 5) * 2");
    let trap = user
        .get_typed_func::<(), i32>(&store, "trap")
        .expect("trap");
    let err = trap.call(&mut store, ()).expect_err("divides by zero");
    assert!(
        matches!(&err, Error::Trap(t) if t.kind == TrapKind::IntegerDivisionByZero),
        "{err}"
    );
    assert_eq!(run.call(&mut store, 1).expect("after the trap"), 32);
    let memory = provider.get_memory(&store, "mem").expect("memory");
    let mut word = [0u8; 4];
    memory.read(&store, 64, &mut word).expect("read");
    assert_eq!(i32::from_le_bytes(word), 16);
    store.arena_bytes_wanted()
}

#[test]
fn a_store_runs_the_same_whatever_its_arena_holds() {
    // Room for the two instances of one store at a time: an instance
    // record not dropped with its store keeps its VMContext's place.
    let engine = Engine::new(Config {
        pooling: PoolingConfig {
            max_instances: 2,
            ..PoolingConfig::default()
        },
        ..Config::default()
    })
    .expect("engine");
    let alive = Arc::new(());
    let wanted = run_in(&engine, 0, &alive);
    assert!(wanted > 0, "the store has blocks of its own");
    assert_eq!(Arc::strong_count(&alive), 1, "everything was dropped");
    for arena_bytes in [
        16,
        64,
        wanted / 2,
        wanted - 1,
        wanted,
        wanted + 100,
        1 << 20,
    ] {
        assert_eq!(
            run_in(&engine, arena_bytes, &alive),
            wanted,
            "the same store wants the same, with an arena of {arena_bytes}"
        );
        assert_eq!(
            Arc::strong_count(&alive),
            1,
            "everything was dropped (an arena of {arena_bytes})"
        );
    }
}
