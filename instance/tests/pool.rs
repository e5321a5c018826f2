//! Instance pools end to end: reused memories and tables read as fresh,
//! data segments are re-applied, pool limits give resource errors, many
//! threads spawn at once, steady-state spawning makes no memory system
//! calls; and the store's epoch deadline callback.

use shoal_instance::{
    Caller, Config, Engine, Error, InstancePre, Linker, MemoryStrategy, Module, OsCalls,
    PoolingConfig, Store, Trap, TrapKind, UpdateDeadline,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const STRATEGIES: [MemoryStrategy; 2] = [MemoryStrategy::Guarded, MemoryStrategy::Checked];

fn engine_with(strategy: MemoryStrategy, pooling: PoolingConfig) -> Engine {
    Engine::new(Config {
        memory_strategy: strategy,
        pooling,
        ..Config::default()
    })
    .expect("engine")
}

fn pre(engine: &Engine, wat: &str) -> InstancePre<()> {
    let module = Module::new(engine, wat).expect("module compiles");
    Linker::new(engine)
        .instantiate_pre(&module)
        .expect("instantiate_pre")
}

fn trap_kind(err: &Error) -> TrapKind {
    match err {
        Error::Trap(t) => t.kind,
        other => panic!("expected a trap, got {other}"),
    }
}

/// A memory of `min` pages growable to 4: `check` returns 1 when every
/// accessible byte is zero except a data segment "shoal" at 100, `scribble`
/// grows to `pages` pages and writes 0xA5 everywhere.
fn scribbler(min: u32) -> String {
    format!(
        r#"(module
            (memory (export "memory") {min} 4)
            (data (i32.const 100) "shoal")
            (func (export "check") (result i32)
                (local $i i32) (local $acc i64) (local $end i32)
                (local.set $end (i32.mul (memory.size) (i32.const 65536)))
                (block $done
                    (loop $next
                        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
                        (if (i32.and (i32.ne (local.get $i) (i32.const 96))
                                     (i32.ne (local.get $i) (i32.const 104)))
                            (then (local.set $acc
                                (i64.or (local.get $acc) (i64.load (local.get $i))))))
                        (local.set $i (i32.add (local.get $i) (i32.const 8)))
                        (br $next)))
                ;; The segment is at 100..105: the words at 96 and 104 hold it.
                (i32.and
                    (i64.eqz (local.get $acc))
                    (i32.and
                        (i64.eq (i64.load (i32.const 96)) (i64.const 0x616f687300000000))
                        (i64.eq (i64.load (i32.const 104)) (i64.const 0x6c)))))
            (func (export "scribble") (param $pages i32)
                (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))
                (memory.fill (i32.const 0) (i32.const 0xA5)
                    (i32.mul (memory.size) (i32.const 65536))))
            (func (export "load") (param i32) (result i32)
                (i32.load (local.get 0))))"#
    )
}

#[test]
fn reused_memories_read_as_fresh_with_segments_reapplied() {
    let configs = [
        PoolingConfig::default(),
        // Only one page kept resident: the rest goes through madvise.
        PoolingConfig {
            memory_keep_resident: 4096,
            ..PoolingConfig::default()
        },
        // Nothing kept warm: every release is a cold one.
        PoolingConfig {
            warm_memories_per_thread: 0,
            ..PoolingConfig::default()
        },
    ];
    for strategy in STRATEGIES {
        for pooling in configs.clone() {
            let engine = engine_with(strategy, pooling);
            let pre = pre(&engine, &scribbler(1));
            for round in 0..20 {
                let mut store = Store::new(&engine, ());
                let instance = pre.instantiate(&mut store).expect("instantiate");
                let check = instance
                    .get_typed_func::<(), i32>(&store, "check")
                    .expect("check");
                let scribble = instance
                    .get_typed_func::<(i32,), ()>(&store, "scribble")
                    .expect("scribble");
                let load = instance
                    .get_typed_func::<(i32,), i32>(&store, "load")
                    .expect("load");
                assert_eq!(
                    check.call(&mut store, ()).expect("check"),
                    1,
                    "{strategy:?} round {round}: a reused memory reads as fresh"
                );
                // The previous instance grew to 3 pages: this one has 1.
                let err = load.call(&mut store, (65536,)).expect_err("out of bounds");
                assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds, "{strategy:?}");
                scribble
                    .call(&mut store, (1 + round % 3,))
                    .expect("scribble");
                assert_eq!(load.call(&mut store, (0,)).expect("load"), -0x5a5a5a5b);
            }
        }
    }
}

#[test]
fn memories_of_other_sizes_reuse_slots_safely() {
    // Guarded slots keep their accessible prefix between users; a user with
    // another initial size must see exactly its own size accessible.
    for strategy in STRATEGIES {
        let engine = engine_with(strategy, PoolingConfig::default());
        let small = pre(&engine, &scribbler(1));
        let big = pre(&engine, &scribbler(2));
        for round in 0..10 {
            for (pre, pages) in [(&small, 1), (&big, 2)] {
                let mut store = Store::new(&engine, ());
                let instance = pre.instantiate(&mut store).expect("instantiate");
                let check = instance
                    .get_typed_func::<(), i32>(&store, "check")
                    .expect("check");
                let load = instance
                    .get_typed_func::<(i32,), i32>(&store, "load")
                    .expect("load");
                let scribble = instance
                    .get_typed_func::<(i32,), ()>(&store, "scribble")
                    .expect("scribble");
                assert_eq!(check.call(&mut store, ()).expect("check"), 1);
                let end = pages * 65536;
                assert_eq!(load.call(&mut store, (end - 4,)).expect("last word"), 0);
                let err = load.call(&mut store, (end,)).expect_err("past the end");
                assert_eq!(
                    trap_kind(&err),
                    TrapKind::MemoryOutOfBounds,
                    "{strategy:?} round {round} pages {pages}"
                );
                scribble.call(&mut store, (4,)).expect("scribble");
            }
        }
    }
}

#[test]
fn reused_tables_are_reset_to_their_initial_contents() {
    let wat = r#"(module
        (table $funcs (export "funcs") 4 funcref)
        (table $refs 3 externref)
        (func $f (result i32) (i32.const 7))
        (elem (table $funcs) (i32.const 1) func $f)
        (elem declare func $f)
        (func (export "fill") (param externref)
            (table.set $funcs (i32.const 0) (ref.func $f))
            (table.set $funcs (i32.const 2) (ref.func $f))
            (table.set $funcs (i32.const 3) (ref.func $f))
            (table.fill $refs (i32.const 0) (local.get 0) (i32.const 3)))
        (func (export "nulls") (result i32)
            ;; A bit per element that is null: funcs 0..4, then refs 0..3.
            (i32.or
                (i32.or
                    (i32.or (ref.is_null (table.get $funcs (i32.const 0)))
                        (i32.shl (ref.is_null (table.get $funcs (i32.const 1))) (i32.const 1)))
                    (i32.or (i32.shl (ref.is_null (table.get $funcs (i32.const 2))) (i32.const 2))
                        (i32.shl (ref.is_null (table.get $funcs (i32.const 3))) (i32.const 3))))
                (i32.or
                    (i32.or (i32.shl (ref.is_null (table.get $refs (i32.const 0))) (i32.const 4))
                        (i32.shl (ref.is_null (table.get $refs (i32.const 1))) (i32.const 5)))
                    (i32.shl (ref.is_null (table.get $refs (i32.const 2))) (i32.const 6))))))"#;
    for strategy in STRATEGIES {
        let engine = engine_with(strategy, PoolingConfig::default());
        let pre = pre(&engine, wat);
        for round in 0..10 {
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let nulls = instance
                .get_typed_func::<(), i32>(&store, "nulls")
                .expect("nulls");
            let fill = instance.get_func(&store, "fill").expect("fill");
            assert_eq!(
                nulls.call(&mut store, ()).expect("nulls"),
                0b111_1101,
                "{strategy:?} round {round}: only funcs[1] is set"
            );
            fill.call(
                &mut store,
                &[shoal_instance::Val::ExternRef(Some(
                    shoal_instance::ExternRef(5),
                ))],
            )
            .expect("fill");
            assert_eq!(nulls.call(&mut store, ()).expect("nulls"), 0);
        }
    }
}

#[test]
fn pool_limits_are_resource_errors_that_name_the_limit() {
    let cases = [
        (
            "max_memories",
            PoolingConfig {
                max_memories: 2,
                ..PoolingConfig::default()
            },
            "(module (memory 1 1))",
        ),
        (
            "max_tables",
            PoolingConfig {
                max_tables: 2,
                ..PoolingConfig::default()
            },
            "(module (table 1 funcref))",
        ),
        (
            "max_instances",
            PoolingConfig {
                max_instances: 2,
                ..PoolingConfig::default()
            },
            "(module)",
        ),
    ];
    for strategy in STRATEGIES {
        for (field, pooling, wat) in cases.clone() {
            let engine = engine_with(strategy, pooling);
            let pre = pre(&engine, wat);
            let mut live = Vec::new();
            for _ in 0..2 {
                let mut store = Store::new(&engine, ());
                pre.instantiate(&mut store).expect("within the limit");
                live.push(store);
            }
            let mut store = Store::new(&engine, ());
            let err = pre.instantiate(&mut store).expect_err("over the limit");
            assert!(
                matches!(&err, Error::Resource(m) if m.contains(field) && m.contains("raise")),
                "{field}: {err}"
            );
            // A failed instantiation leaves nothing behind, and freeing one
            // makes room for one.
            drop(live.pop());
            pre.instantiate(&mut store).expect("room again");
            let mut another = Store::new(&engine, ());
            pre.instantiate(&mut another).expect_err("full again");
        }
    }
}

const SPAWN_WAT: &str = r#"(module
    (memory (export "memory") 1 1)
    (func (export "run") (param $x i32) (result i32)
        (local $acc i32) (local $i i32) (local $dirty i64)
        ;; Everything must read as zero, then gets scribbled on.
        (block $done
            (loop $next
                (br_if $done (i32.ge_u (local.get $i) (i32.const 65536)))
                (local.set $dirty (i64.or (local.get $dirty) (i64.load (local.get $i))))
                (i64.store (local.get $i) (i64.const -1))
                (local.set $i (i32.add (local.get $i) (i32.const 8)))
                (br $next)))
        (if (i64.ne (local.get $dirty) (i64.const 0)) (then unreachable))
        (local.set $acc
            (i32.add (i32.mul (local.get $x) (i32.const 31)) (i32.const 7)))
        (i32.store (i32.const 0)
            (i32.xor (local.get $acc) (i32.shr_u (local.get $x) (i32.const 3))))
        (i32.add (i32.load (i32.const 0)) (i32.const 1))))"#;

fn spawn_once(engine: &Engine, pre: &InstancePre<()>, x: i32) -> i32 {
    let mut store = Store::new(engine, ());
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let run = instance
        .get_typed_func::<(i32,), i32>(&store, "run")
        .expect("run");
    run.call(&mut store, (x,)).expect("run")
}

fn expected(x: i32) -> i32 {
    (x.wrapping_mul(31).wrapping_add(7) ^ ((x as u32) >> 3) as i32).wrapping_add(1)
}

#[test]
fn many_threads_spawn_at_once() {
    for strategy in STRATEGIES {
        let engine = engine_with(strategy, PoolingConfig::default());
        let pre = pre(&engine, SPAWN_WAT);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (engine, pre) = (&engine, &pre);
                s.spawn(move || {
                    // Stores also move between threads: create here, drop there.
                    let mut held = Vec::new();
                    for i in 0..500 {
                        let x = t * 1000 + i;
                        assert_eq!(spawn_once(engine, pre, x), expected(x));
                        assert_eq!(spawn_once(engine, pre, -x), expected(-x));
                        let mut store = Store::new(engine, ());
                        pre.instantiate(&mut store).expect("instantiate");
                        held.push(store);
                    }
                    held
                });
            }
        });
        // Every thread's cache went back to the engine when it exited: all
        // the limits' permissions are free again.
        assert_eq!(spawn_once(&engine, &pre, 12345), 381_162);
    }
}

#[test]
fn stores_dropped_on_other_threads_give_back_their_memories() {
    let engine = engine_with(
        MemoryStrategy::Checked,
        PoolingConfig {
            max_memories: 40,
            ..PoolingConfig::default()
        },
    );
    let pre = pre(&engine, SPAWN_WAT);
    for _ in 0..5 {
        let stores: Vec<Store<()>> = (0..8)
            .map(|_| {
                let mut store = Store::new(&engine, ());
                pre.instantiate(&mut store).expect("instantiate");
                store
            })
            .collect();
        std::thread::spawn(move || drop(stores))
            .join()
            .expect("dropping thread");
    }
    assert_eq!(spawn_once(&engine, &pre, 1), expected(1));
}

#[test]
fn steady_state_spawning_makes_no_memory_system_calls() {
    for strategy in STRATEGIES {
        let engine = engine_with(strategy, PoolingConfig::default());
        let pre = pre(&engine, SPAWN_WAT);
        for i in 0..100 {
            assert_eq!(spawn_once(&engine, &pre, i), expected(i));
        }
        let before = OsCalls::thread();
        for i in 0..1000 {
            assert_eq!(spawn_once(&engine, &pre, i), expected(i));
        }
        assert_eq!(
            OsCalls::thread().since(&before),
            OsCalls::default(),
            "{strategy:?}: no mmap, munmap, mprotect or madvise in steady state"
        );
    }
}

// ---- epoch deadline callback ------------------------------------------------

const SPIN_WAT: &str = r#"(module
    (func (export "spin") (loop $l (br $l)))
    (func (export "count") (param $n i32) (result i32)
        (local $i i32)
        (loop $l
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $i)))"#;

/// Advances `engine`'s epoch every 100 µs until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn new(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                engine.increment_epoch();
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn epoch_engine() -> Engine {
    Engine::new(Config {
        epoch_interruption: true,
        ..Config::default()
    })
    .expect("engine")
}

#[test]
fn epoch_callback_continues_then_ends_with_its_trap() {
    let engine = epoch_engine();
    let module = Module::new(&engine, SPIN_WAT).expect("module");
    let _ticker = Ticker::new(&engine);
    for (kind, calls_before_trap) in [(TrapKind::Timeout, 5u32), (TrapKind::Cancelled, 1)] {
        let mut store = Store::new(&engine, 0u32);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut caller: Caller<'_, u32>| {
            *caller.data_mut() += 1;
            if *caller.data() < calls_before_trap {
                Ok(UpdateDeadline::Continue(1))
            } else {
                Err(Trap::new(kind))
            }
        });
        let spin = instance
            .get_typed_func::<(), ()>(&store, "spin")
            .expect("spin");
        let err = spin.call(&mut store, ()).expect_err("ends with the trap");
        assert_eq!(trap_kind(&err), kind);
        assert_eq!(*store.data(), calls_before_trap);
        // The trap carries the backtrace of the spinning function.
        assert!(!err.as_trap().expect("trap").backtrace.is_empty());
    }
}

#[test]
fn epoch_callback_continue_lets_wasm_finish() {
    let engine = epoch_engine();
    let module = Module::new(&engine, SPIN_WAT).expect("module");
    let _ticker = Ticker::new(&engine);
    let mut store = Store::new(&engine, 0u64);
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
        *caller.data_mut() += 1;
        Ok(UpdateDeadline::Continue(1))
    });
    let count = instance
        .get_typed_func::<(i32,), i32>(&store, "count")
        .expect("count");
    let start = std::time::Instant::now();
    let mut n = 1 << 20;
    // Long enough to see a few ticks.
    while *store.data() < 3 && start.elapsed() < std::time::Duration::from_secs(10) {
        assert_eq!(count.call(&mut store, (n,)).expect("count"), n);
        n = n.saturating_mul(2).min(1 << 30);
    }
    assert!(*store.data() >= 3, "the callback ran");

    // Without a callback, reaching the deadline just moves it on.
    store.clear_epoch_deadline_callback();
    store.set_epoch_deadline(0);
    assert_eq!(count.call(&mut store, (1 << 20,)).expect("count"), 1 << 20);
}

#[test]
fn a_panicking_epoch_callback_resumes_the_panic_in_the_host() {
    let engine = epoch_engine();
    let module = Module::new(&engine, SPIN_WAT).expect("module");
    let _ticker = Ticker::new(&engine);
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| panic!("callback panicked"));
    let spin = instance
        .get_typed_func::<(), ()>(&store, "spin")
        .expect("spin");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = spin.call(&mut store, ());
    }));
    let payload = outcome.expect_err("the panic reaches the host");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"callback panicked"));
    // The store is still usable: a deadline out of reach, and spin no more.
    store.clear_epoch_deadline_callback();
    store.epoch_deadline_callback(|_| Err(Trap::new(TrapKind::Cancelled)));
    let err = spin.call(&mut store, ()).expect_err("cancelled");
    assert_eq!(trap_kind(&err), TrapKind::Cancelled);
}
