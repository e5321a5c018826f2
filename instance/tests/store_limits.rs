//! Per-store resource limits (`Store::limiter`): a memory or table whose
//! minimum is above them fails instantiation with a resource error naming
//! the limit; `memory.grow` / `table.grow` past them return -1 without a
//! trap; wasm recursion deeper than the store's stack limit traps; the
//! engine's `Config` limits still apply, the lower one winning.

use shoal_instance::{
    Config, Engine, Error, Linker, Memory, MemoryStrategy, MemoryType, Module, Store, StoreLimits,
    Table, TableType, TrapKind, Val, ValType,
};

const STRATEGIES: [MemoryStrategy; 2] = [MemoryStrategy::Guarded, MemoryStrategy::Checked];

fn engine(strategy: MemoryStrategy, max_memory_pages: u64, max_table_elements: u32) -> Engine {
    Engine::new(Config {
        memory_strategy: strategy,
        max_memory_pages,
        max_table_elements,
        ..Config::default()
    })
    .expect("engine")
}

fn limits(max_memory_pages: u64, max_table_elements: u32) -> StoreLimits {
    StoreLimits {
        max_memory_pages,
        max_table_elements,
        ..StoreLimits::UNLIMITED
    }
}

const GROW_WAT: &str = r#"(module
    (memory (export "mem") 1)
    (table (export "tab") 2 funcref)
    (func (export "grow_memory") (param i32) (result i32)
        (memory.grow (local.get 0)))
    (func (export "memory_size") (result i32) (memory.size))
    (func (export "grow_table") (param i32) (result i32)
        (table.grow (ref.null func) (local.get 0)))
    (func (export "table_size") (result i32) (table.size)))"#;

/// `memory.grow` and `table.grow` of `GROW_WAT` in `store`: how far each
/// can get, growing one by one (memory pages from 1, table elements from 2,
/// stopping at `cap`), and checking that the refused grow returned -1 and
/// changed nothing.
fn reachable(engine: &Engine, store: &mut Store<()>, cap: u32) -> (u32, u32) {
    let module = Module::new(engine, GROW_WAT).expect("module");
    let instance = Linker::new(engine)
        .instantiate(&mut *store, &module)
        .expect("instantiate");
    let f = |name| {
        instance
            .get_typed_func::<(i32,), i32>(&*store, name)
            .expect("export")
    };
    let (grow_memory, grow_table) = (f("grow_memory"), f("grow_table"));
    let size = |name| {
        instance
            .get_typed_func::<(), i32>(&*store, name)
            .expect("export")
    };
    let (memory_size, table_size) = (size("memory_size"), size("table_size"));
    let mut pages = 1;
    while pages < cap {
        let old = grow_memory.call(&mut *store, (1,)).expect("no trap");
        if old == -1 {
            break;
        }
        assert_eq!(old, pages as i32);
        pages += 1;
    }
    assert_eq!(
        memory_size.call(&mut *store, ()).expect("size"),
        pages as i32
    );
    let mut elements = 2;
    while elements < cap {
        let old = grow_table.call(&mut *store, (1,)).expect("no trap");
        if old == -1 {
            break;
        }
        assert_eq!(old, elements as i32);
        elements += 1;
    }
    assert_eq!(
        table_size.call(&mut *store, ()).expect("size"),
        elements as i32
    );
    // A big grow past the limit fails as a whole.
    assert_eq!(grow_memory.call(&mut *store, (1000,)).expect("no trap"), -1);
    assert_eq!(grow_table.call(&mut *store, (1000,)).expect("no trap"), -1);
    (pages, elements)
}

#[test]
fn grows_stop_at_the_lower_of_the_store_and_engine_limits() {
    for strategy in STRATEGIES {
        // The store's limits are the lower ones.
        let engine_a = engine(strategy, 100, 100);
        let mut store = Store::new(&engine_a, ());
        store.limiter(limits(5, 7));
        assert_eq!(store.limits(), limits(5, 7));
        assert_eq!(reachable(&engine_a, &mut store, 50), (5, 7), "{strategy:?}");

        // The engine's are.
        let engine_b = engine(strategy, 4, 6);
        let mut store = Store::new(&engine_b, ());
        store.limiter(limits(50, 50));
        assert_eq!(reachable(&engine_b, &mut store, 50), (4, 6), "{strategy:?}");

        // No store limits: only the engine's.
        let mut store = Store::new(&engine_a, ());
        assert_eq!(store.limits(), StoreLimits::default());
        assert_eq!(
            reachable(&engine_a, &mut store, 20),
            (20, 20),
            "{strategy:?}"
        );
    }
}

#[test]
fn instantiation_refuses_minimums_above_the_store_limits() {
    for strategy in STRATEGIES {
        let engine = engine(strategy, 1000, 1000);
        let mut store = Store::new(&engine, ());
        store.limiter(limits(8, 16));
        let linker = Linker::new(&engine);
        let big_memory = Module::new(&engine, "(module (memory 9))").expect("module");
        match linker.instantiate(&mut store, &big_memory) {
            Err(Error::Resource(message)) => assert!(
                message.contains("StoreLimits::max_memory_pages") && message.contains('8'),
                "{message}"
            ),
            other => panic!("expected a resource error, got {other:?}"),
        }
        let big_table = Module::new(&engine, "(module (table 17 funcref))").expect("module");
        match linker.instantiate(&mut store, &big_table) {
            Err(Error::Resource(message)) => assert!(
                message.contains("StoreLimits::max_table_elements") && message.contains("16"),
                "{message}"
            ),
            other => panic!("expected a resource error, got {other:?}"),
        }
        // At the limits, and with a declared maximum above them: fine (the
        // maximum is capped, as by the engine's limits).
        let fits = Module::new(
            &engine,
            "(module (memory (export \"m\") 8 100) (table (export \"t\") 16 100 funcref))",
        )
        .expect("module");
        let instance = linker.instantiate(&mut store, &fits).expect("fits");
        let memory = instance.get_memory(&store, "m").expect("m");
        let table = instance.get_table(&store, "t").expect("t");
        assert!(memory.grow(&mut store, 1).is_err());
        assert!(table.grow(&mut store, 1, Val::FuncRef(None)).is_err());

        // The engine's limit is named when it is the one exceeded.
        let engine = engine_with_small_config(strategy);
        let mut store = Store::new(&engine, ());
        store.limiter(limits(1000, 1000));
        let module = Module::new(&engine, "(module (memory 9))").expect("module");
        match Linker::new(&engine).instantiate(&mut store, &module) {
            Err(Error::Resource(message)) => {
                assert!(message.contains("Config::max_memory_pages"), "{message}")
            }
            other => panic!("expected a resource error, got {other:?}"),
        }
    }
}

fn engine_with_small_config(strategy: MemoryStrategy) -> Engine {
    engine(strategy, 8, 16)
}

#[test]
fn host_grows_and_host_created_objects_obey_the_store_limits() {
    for strategy in STRATEGIES {
        let engine = engine(strategy, 1000, 1000);
        let mut store = Store::new(&engine, ());
        store.limiter(limits(3, 4));
        // Host-created memories and tables are not refused for their
        // minimum, but cannot grow past the limit.
        let memory = Memory::new(
            &mut store,
            MemoryType {
                minimum: 2,
                maximum: None,
            },
        )
        .expect("memory");
        assert_eq!(memory.grow(&mut store, 1).expect("grow"), 2);
        assert!(matches!(
            memory.grow(&mut store, 1),
            Err(Error::Resource(_))
        ));
        let big = Memory::new(
            &mut store,
            MemoryType {
                minimum: 5,
                maximum: None,
            },
        )
        .expect("the host may create it");
        assert!(big.grow(&mut store, 1).is_err());
        assert_eq!(big.grow(&mut store, 0).expect("grow by 0"), 5);
        let table = Table::new(
            &mut store,
            TableType {
                element: ValType::ExternRef,
                minimum: 1,
                maximum: None,
            },
            Val::ExternRef(None),
        )
        .expect("table");
        assert_eq!(
            table
                .grow(&mut store, 3, Val::ExternRef(None))
                .expect("grow"),
            1
        );
        assert!(table.grow(&mut store, 1, Val::ExternRef(None)).is_err());

        // An instance importing the host memory grows it no further either.
        let module = Module::new(
            &engine,
            r#"(module (import "host" "mem" (memory 1))
                (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        )
        .expect("module");
        let mut linker = Linker::new(&engine);
        linker
            .define("host", "mem", shoal_instance::Extern::Memory(memory))
            .expect("define");
        let instance = linker
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let grow = instance
            .get_typed_func::<(i32,), i32>(&store, "grow")
            .expect("grow");
        assert_eq!(grow.call(&mut store, (1,)).expect("no trap"), -1);
    }
}

#[test]
fn lowering_the_limits_later_applies_to_existing_objects() {
    for strategy in STRATEGIES {
        let engine = engine(strategy, 1000, 1000);
        let mut store = Store::new(&engine, ());
        let module = Module::new(&engine, GROW_WAT).expect("module");
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let grow_memory = instance
            .get_typed_func::<(i32,), i32>(&store, "grow_memory")
            .expect("grow_memory");
        let grow_table = instance
            .get_typed_func::<(i32,), i32>(&store, "grow_table")
            .expect("grow_table");
        assert_eq!(grow_memory.call(&mut store, (2,)).expect("grow"), 1);
        assert_eq!(grow_table.call(&mut store, (2,)).expect("grow"), 2);
        store.limiter(limits(4, 5));
        assert_eq!(grow_memory.call(&mut store, (2,)).expect("no trap"), -1);
        assert_eq!(grow_memory.call(&mut store, (1,)).expect("grow"), 3);
        assert_eq!(grow_table.call(&mut store, (2,)).expect("no trap"), -1);
        assert_eq!(grow_table.call(&mut store, (1,)).expect("grow"), 4);
        // Already at or above a lowered limit: they keep their size.
        store.limiter(limits(2, 2));
        assert_eq!(grow_memory.call(&mut store, (0,)).expect("grow by 0"), 4);
        assert_eq!(grow_memory.call(&mut store, (1,)).expect("no trap"), -1);
        assert_eq!(grow_table.call(&mut store, (1,)).expect("no trap"), -1);
        // Unlimited again: back to the engine's (and the declared) maxima.
        store.limiter(StoreLimits::UNLIMITED);
        assert_eq!(grow_memory.call(&mut store, (1,)).expect("grow"), 4);
        assert_eq!(grow_table.call(&mut store, (1,)).expect("grow"), 5);
    }
}

const RECURSE_WAT: &str = r#"(module
    (func $depth (export "depth") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
            (then (i32.const 0))
            (else (i32.add (i32.const 1)
                (call $depth (i32.sub (local.get 0) (i32.const 1))))))))"#;

/// A store's `max_wasm_stack` below the engine's: recursion that fits the
/// engine's limit traps with `StackOverflow` under the store's, and fits
/// again once the store's limit is raised (it applies per call into wasm).
#[test]
fn wasm_stack_stops_at_the_store_limit() {
    let engine = Engine::new(Config::default()).expect("engine");
    let module = Module::new(&engine, RECURSE_WAT).expect("module");
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    let depth = instance
        .get_typed_func::<(i32,), i32>(&store, "depth")
        .expect("export");
    // 5,000 frames fit the engine's 512 KiB.
    assert_eq!(depth.call(&mut store, (5_000,)).expect("fits"), 5_000);

    store.limiter(StoreLimits {
        max_wasm_stack: 16 * 1024,
        ..StoreLimits::UNLIMITED
    });
    match depth.call(&mut store, (5_000,)) {
        Err(Error::Trap(trap)) => assert_eq!(trap.kind, TrapKind::StackOverflow, "{trap}"),
        other => panic!("expected a stack overflow, got {other:?}"),
    }
    // Shallow recursion still fits the small stack.
    assert_eq!(depth.call(&mut store, (50,)).expect("fits"), 50);

    store.limiter(StoreLimits::UNLIMITED);
    assert_eq!(depth.call(&mut store, (5_000,)).expect("fits again"), 5_000);
}
