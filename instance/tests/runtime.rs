//! The runtime objects end to end: instantiation with imports, host
//! functions (typed, dynamic, with `Caller`), typed calls, memories and
//! tables from the host, grow limits under both memory strategies, link
//! errors, and traps from segments, libcalls and host functions.

use shoal_instance::{
    Caller, Config, Engine, Error, Extern, ExternRef, Func, FuncType, Global, GlobalType, Instance,
    Linker, Memory, MemoryStrategy, MemoryType, Module, Store, Table, TableType, Trap, TrapKind,
    Val, ValType,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const STRATEGIES: [MemoryStrategy; 2] = [MemoryStrategy::Guarded, MemoryStrategy::Checked];

fn engine(strategy: MemoryStrategy) -> Engine {
    engine_with(Config {
        memory_strategy: strategy,
        ..Config::default()
    })
}

fn engine_with(config: Config) -> Engine {
    Engine::new(config).expect("engine")
}

fn module(engine: &Engine, wat: &str) -> Module {
    Module::new(engine, wat).expect("module compiles")
}

fn trap_kind(err: &Error) -> TrapKind {
    match err {
        Error::Trap(t) => t.kind,
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn typed_host_functions_and_typed_calls() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let m = module(
            &engine,
            r#"(module
                (import "env" "add" (func $add (param i32 i32) (result i32)))
                (import "env" "pair" (func $pair (param i64) (result i64 f64)))
                (import "env" "count" (func $count))
                (func (export "run") (param i32) (result i32)
                    call $count
                    (call $add (local.get 0) (i32.const 1)))
                (func (export "pair") (param i64) (result i64 f64)
                    (call $pair (local.get 0)))
                (func (export "nine") (param i32 i64 f32 f64 i32 i64 f32 f64 i32) (result f64)
                    (f64.add (f64.convert_i32_s (local.get 8)) (local.get 7))))"#,
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let mut store = Store::new(&engine, 0u32);
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap("env", "add", |a: i32, b: i32| a.wrapping_add(b))
            .expect("define");
        linker
            .func_wrap("env", "pair", |x: i64| (x * 2, x as f64 / 2.0))
            .expect("define");
        let c = calls.clone();
        linker
            .func_wrap("env", "count", move |mut caller: Caller<'_, u32>| {
                *caller.data_mut() += 1;
                c.fetch_add(1, Ordering::Relaxed);
            })
            .expect("define");
        let instance = linker.instantiate(&mut store, &m).expect("instantiate");

        let run = instance
            .get_typed_func::<(i32,), i32>(&store, "run")
            .expect("typed run");
        assert_eq!(run.call(&mut store, (41,)).expect("call"), 42);
        assert_eq!(run.call(&mut store, (i32::MAX,)).expect("call"), i32::MIN);
        assert_eq!(*store.data(), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 2);

        let pair = instance
            .get_typed_func::<i64, (i64, f64)>(&store, "pair")
            .expect("pair");
        assert_eq!(pair.call(&mut store, 7).expect("call"), (14, 3.5));

        let f = instance.get_func(&store, "nine").expect("nine");
        let args = [
            Val::I32(1),
            Val::I64(2),
            Val::from(3.0f32),
            Val::from(4.0f64),
            Val::I32(5),
            Val::I64(6),
            Val::from(7.0f32),
            Val::from(8.5f64),
            Val::I32(9),
        ];
        assert_eq!(
            f.call(&mut store, &args).expect("call"),
            vec![Val::from(17.5f64)]
        );

        // Wrong types are refused before the call.
        let err = instance
            .get_typed_func::<(i64,), i32>(&store, "run")
            .expect_err("type");
        assert!(err.to_string().contains("run"), "{err}");
        let err = f.call(&mut store, &[Val::I32(1)]).expect_err("arity");
        assert!(matches!(err, Error::Signature(_)), "{err}");
    }
}

#[test]
fn dynamic_host_function_and_caller_memory() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let m = module(
            &engine,
            r#"(module
                (import "env" "sum" (func $sum (param i32 i32) (result i32)))
                (memory (export "memory") 1)
                (data (i32.const 16) "\01\02\03\04\05")
                (func (export "go") (result i32)
                    (call $sum (i32.const 16) (i32.const 5))))"#,
        );
        let mut store = Store::new(&engine, Vec::<u8>::new());
        let mut linker = Linker::new(&engine);
        linker
            .func_new(
                "env",
                "sum",
                FuncType::new([ValType::I32, ValType::I32], [ValType::I32]),
                |mut caller: Caller<'_, Vec<u8>>, params: &[Val], results: &mut [Val]| {
                    let ptr = params[0].unwrap_i32().unwrap_or(0) as usize;
                    let len = params[1].unwrap_i32().unwrap_or(0) as usize;
                    let memory = caller
                        .get_export("memory")
                        .and_then(Extern::into_memory)
                        .ok_or_else(|| Trap::host("no memory export"))?;
                    let mut buf = vec![0; len];
                    memory
                        .read(&caller, ptr, &mut buf)
                        .map_err(|e| Trap::host(e.to_string()))?;
                    // Write back through the caller too.
                    memory.data_mut(&mut caller)[ptr] = 100;
                    caller.data_mut().extend_from_slice(&buf);
                    results[0] = Val::I32(buf.iter().map(|&b| i32::from(b)).sum());
                    Ok(())
                },
            )
            .expect("define");
        let instance = linker.instantiate(&mut store, &m).expect("instantiate");
        let go = instance
            .get_typed_func::<(), i32>(&store, "go")
            .expect("go");
        assert_eq!(go.call(&mut store, ()).expect("call"), 15);
        assert_eq!(store.data(), &[1, 2, 3, 4, 5]);
        let memory = instance.get_memory(&store, "memory").expect("memory");
        assert_eq!(memory.data(&store)[16], 100);
        assert_eq!(go.call(&mut store, ()).expect("call"), 114);
    }
}

#[test]
fn host_errors_and_panics_become_traps_and_panics() {
    let engine = engine(MemoryStrategy::Guarded);
    let m = module(
        &engine,
        r#"(module
            (import "env" "fail" (func $fail (param i32) (result i32)))
            (func (export "go") (param i32) (result i32)
                (i32.add (call $fail (local.get 0)) (i32.const 1))))"#,
    );
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("env", "fail", |x: i32| -> Result<i32, Trap> {
            match x {
                0 => Err(Trap::host("zero is not allowed")),
                1 => panic!("host panic with 1"),
                x => Ok(x),
            }
        })
        .expect("define");
    let instance = linker.instantiate(&mut store, &m).expect("instantiate");
    let go = instance
        .get_typed_func::<i32, i32>(&store, "go")
        .expect("go");
    assert_eq!(go.call(&mut store, 5).expect("ok"), 6);

    let err = go.call(&mut store, 0).expect_err("trap");
    let trap = err.as_trap().expect("a trap");
    assert_eq!(trap.kind, TrapKind::Host);
    assert!(err.to_string().contains("zero is not allowed"), "{err}");

    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = go.call(&mut store, 1);
    }))
    .expect_err("the host panic resumes in the caller");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(message, "host panic with 1");

    // The store is still usable after both.
    assert_eq!(go.call(&mut store, 2).expect("ok"), 3);
}

#[test]
fn reentrant_calls_through_caller() {
    let engine = engine(MemoryStrategy::Guarded);
    let m = module(
        &engine,
        r#"(module
            (import "env" "back" (func $back (param i32) (result i32)))
            (func $fact (export "fact") (param i32) (result i32)
                (if (result i32) (i32.le_s (local.get 0) (i32.const 1))
                    (then (i32.const 1))
                    (else (i32.mul (local.get 0) (call $back (i32.sub (local.get 0) (i32.const 1))))))))"#,
    );
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap(
            "env",
            "back",
            |mut caller: Caller<'_, ()>, n: i32| -> Result<i32, Trap> {
                let fact = caller
                    .get_export("fact")
                    .and_then(Extern::into_func)
                    .ok_or_else(|| Trap::host("no fact"))?;
                let fact = fact
                    .typed::<i32, i32>(&caller)
                    .map_err(|e| Trap::host(e.to_string()))?;
                fact.call(&mut caller, n)
                    .map_err(|e| Trap::host(e.to_string()))
            },
        )
        .expect("define");
    let instance = linker.instantiate(&mut store, &m).expect("instantiate");
    let fact = instance
        .get_typed_func::<i32, i32>(&store, "fact")
        .expect("fact");
    assert_eq!(fact.call(&mut store, 10).expect("call"), 3_628_800);
}

#[test]
fn memory_grow_limits_under_both_strategies() {
    for strategy in STRATEGIES {
        let engine = engine_with(Config {
            memory_strategy: strategy,
            max_memory_pages: 4,
            ..Config::default()
        });
        let m = module(
            &engine,
            r#"(module
                (memory (export "mem") 1 3)
                (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
                (func (export "size") (result i32) (memory.size))
                (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
                (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"#,
        );
        let unbounded = module(
            &engine,
            r#"(module (memory 0) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        );
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &m)
            .expect("instantiate");
        let grow = instance
            .get_typed_func::<i32, i32>(&store, "grow")
            .expect("grow");
        let other = Linker::new(&engine)
            .instantiate(&mut store, &unbounded)
            .expect("instantiate");
        let grow2 = other
            .get_typed_func::<i32, i32>(&store, "grow")
            .expect("grow2");
        let size = instance
            .get_typed_func::<(), i32>(&store, "size")
            .expect("size");
        let load = instance
            .get_typed_func::<i32, i32>(&store, "load")
            .expect("load");
        let store_fn = instance
            .get_typed_func::<(i32, i32), ()>(&store, "store")
            .expect("store");

        assert_eq!(load.call(&mut store, 65532).expect("in bounds"), 0);
        let err = load.call(&mut store, 65533).expect_err("oob");
        assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds, "{strategy:?}");
        let err = load.call(&mut store, -1).expect_err("oob");
        assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds, "{strategy:?}");

        assert_eq!(grow.call(&mut store, 1).expect("grow"), 1);
        assert_eq!(size.call(&mut store, ()).expect("size"), 2);
        store_fn
            .call(&mut store, (65536 + 100, 7))
            .expect("store in new page");
        assert_eq!(load.call(&mut store, 65536 + 100).expect("load"), 7);
        // Module maximum 3.
        assert_eq!(grow.call(&mut store, 2).expect("grow"), -1);
        assert_eq!(grow.call(&mut store, 1).expect("grow"), 2);
        assert_eq!(grow.call(&mut store, 0).expect("grow"), 3);
        assert_eq!(grow.call(&mut store, -1).expect("grow"), -1);
        // Config maximum 4 for the memory without a maximum.
        assert_eq!(grow2.call(&mut store, 4).expect("grow"), 0);
        assert_eq!(grow2.call(&mut store, 1).expect("grow"), -1);

        let mem = instance.get_memory(&store, "mem").expect("mem");
        assert_eq!(mem.size_pages(&store), 3);
        assert_eq!(mem.data(&store).len(), 3 * 65536);
        assert!(mem.grow(&mut store, 1).is_err());
        let mut buf = [0u8; 4];
        mem.read(&store, 65536 + 100, &mut buf).expect("read");
        assert_eq!(buf, [7, 0, 0, 0]);
        assert!(mem.read(&store, 3 * 65536 - 2, &mut buf).is_err());
        assert!(mem.write(&mut store, usize::MAX, &buf).is_err());
    }
}

#[test]
fn host_memory_table_global_imports() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let m = module(
            &engine,
            r#"(module
                (import "host" "mem" (memory 1 2))
                (import "host" "tab" (table 2 funcref))
                (import "host" "g" (global $g (mut i64)))
                (import "host" "k" (global $k i32))
                (func $seven (result i32) (i32.const 7))
                (elem (i32.const 1) $seven)
                (data (i32.const 8) "hi")
                (func (export "bump") (result i64)
                    (global.set $g (i64.add (global.get $g) (i64.extend_i32_s (global.get $k))))
                    (global.get $g))
                (func (export "call1") (result i32) (call_indirect (result i32) (i32.const 1)))
                (func (export "grow") (result i32) (memory.grow (i32.const 1))))"#,
        );
        let mut store = Store::new(&engine, ());
        let mem = Memory::new(
            &mut store,
            MemoryType {
                minimum: 1,
                maximum: Some(2),
            },
        )
        .expect("mem");
        let tab = Table::new(
            &mut store,
            TableType {
                element: ValType::FuncRef,
                minimum: 2,
                maximum: None,
            },
            Val::FuncRef(None),
        )
        .expect("table");
        let g = Global::new(
            &mut store,
            GlobalType {
                content: ValType::I64,
                mutable: true,
            },
            Val::I64(10),
        )
        .expect("global");
        let k = Global::new(
            &mut store,
            GlobalType {
                content: ValType::I32,
                mutable: false,
            },
            Val::I32(5),
        )
        .expect("global");
        let instance = Instance::new(
            &mut store,
            &m,
            &[mem.into(), tab.into(), g.into(), k.into()],
        )
        .expect("instantiate");
        assert_eq!(&mem.data(&store)[8..10], b"hi");
        let bump = instance
            .get_typed_func::<(), i64>(&store, "bump")
            .expect("bump");
        assert_eq!(bump.call(&mut store, ()).expect("bump"), 15);
        assert_eq!(g.get(&store), Val::I64(15));
        g.set(&mut store, Val::I64(100)).expect("set");
        assert_eq!(bump.call(&mut store, ()).expect("bump"), 105);
        assert!(k.set(&mut store, Val::I32(1)).is_err(), "immutable");
        assert!(g.set(&mut store, Val::I32(1)).is_err(), "wrong type");

        // The element written by the segment is a function of the instance.
        let f = match tab.get(&store, 1) {
            Some(Val::FuncRef(Some(f))) => f,
            other => panic!("expected a funcref, got {other:?}"),
        };
        assert_eq!(f.call(&mut store, &[]).expect("call"), vec![Val::I32(7)]);
        let call1 = instance
            .get_typed_func::<(), i32>(&store, "call1")
            .expect("call1");
        assert_eq!(call1.call(&mut store, ()).expect("call"), 7);

        // A host function put into the table from the host is callable
        // from wasm through call_indirect.
        let host = Func::wrap(&mut store, || 99i32);
        tab.set(&mut store, 1, Val::FuncRef(Some(host)))
            .expect("set");
        assert_eq!(tab.get(&store, 1), Some(Val::FuncRef(Some(host))));
        assert_eq!(call1.call(&mut store, ()).expect("call"), 99);
        tab.set(&mut store, 1, Val::FuncRef(None)).expect("set");
        let err = call1.call(&mut store, ()).expect_err("null");
        assert_eq!(trap_kind(&err), TrapKind::IndirectCallToNull);

        // Host-side table misuse is an error, not a panic.
        assert!(tab.set(&mut store, 2, Val::FuncRef(None)).is_err());
        assert!(tab.set(&mut store, 0, Val::ExternRef(None)).is_err());
        assert_eq!(tab.get(&store, 2), None);
        assert_eq!(
            tab.grow(&mut store, 3, Val::FuncRef(Some(host)))
                .expect("grow"),
            2
        );
        assert_eq!(tab.size(&store), 5);
        assert_eq!(tab.get(&store, 4), Some(Val::FuncRef(Some(host))));

        // The imported memory grows from wasm up to its own maximum.
        let grow = instance
            .get_typed_func::<(), i32>(&store, "grow")
            .expect("grow");
        assert_eq!(grow.call(&mut store, ()).expect("grow"), 1);
        assert_eq!(grow.call(&mut store, ()).expect("grow"), -1);
        assert_eq!(mem.size_pages(&store), 2);
    }
}

#[test]
fn link_errors_name_the_import() {
    let engine = engine(MemoryStrategy::Guarded);
    let m = module(
        &engine,
        r#"(module
            (import "env" "f" (func (param i32)))
            (import "env" "mem" (memory 2)))"#,
    );
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let err = linker.instantiate(&mut store, &m).expect_err("unknown");
    assert!(
        matches!(&err, Error::Link { module, name, .. } if module == "env" && name == "f"),
        "{err}"
    );
    assert!(err.to_string().contains("env::f"), "{err}");

    linker.func_wrap("env", "f", |_: i64| {}).expect("define");
    let err = linker
        .instantiate(&mut store, &m)
        .expect_err("incompatible");
    let text = err.to_string();
    assert!(
        text.contains("env::f") && text.contains("incompatible import type"),
        "{text}"
    );
    assert!(
        text.contains("(param i32)") && text.contains("(param i64)"),
        "{text}"
    );

    linker.func_wrap("env", "f", |_: i32| {}).expect("define");
    let small = Memory::new(
        &mut store,
        MemoryType {
            minimum: 1,
            maximum: None,
        },
    )
    .expect("mem");
    linker.define("env", "mem", small).expect("define");
    let err = linker.instantiate(&mut store, &m).expect_err("too small");
    let text = err.to_string();
    assert!(
        text.contains("env::mem") && text.contains("incompatible import type"),
        "{text}"
    );

    // Limits subtyping uses the current size.
    small.grow(&mut store, 1).expect("grow");
    linker.instantiate(&mut store, &m).expect("now it fits");

    // Items of another store are refused.
    let mut other = Store::new(&engine, ());
    let err = linker.instantiate(&mut other, &m).expect_err("other store");
    assert!(err.to_string().contains("another store"), "{err}");
}

#[test]
fn exports_registered_under_a_name_link_instances() {
    let engine = engine(MemoryStrategy::Checked);
    let a = module(
        &engine,
        r#"(module
            (memory (export "mem") 1)
            (global (export "g") (mut i32) (i32.const 3))
            (table (export "tab") 2 funcref)
            (func $double (export "double") (param i32) (result i32)
                (i32.mul (local.get 0) (i32.const 2)))
            (elem (i32.const 0) $double))"#,
    );
    let b = module(
        &engine,
        r#"(module
            (import "a" "mem" (memory 1))
            (import "a" "g" (global $g (mut i32)))
            (import "a" "tab" (table 1 funcref))
            (import "a" "double" (func $double (param i32) (result i32)))
            (export "double_again" (func $double))
            (func (export "run") (result i32)
                (i32.store (i32.const 0) (call $double (global.get $g)))
                (global.set $g (i32.const 10))
                (call_indirect (param i32) (result i32) (i32.load (i32.const 0)) (i32.const 0))))"#,
    );
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let ia = linker.instantiate(&mut store, &a).expect("a");
    linker.instance(&mut store, "a", ia).expect("register");
    let ib = linker.instantiate(&mut store, &b).expect("b");
    let run = ib.get_typed_func::<(), i32>(&store, "run").expect("run");
    assert_eq!(run.call(&mut store, ()).expect("run"), 12);
    let g = ia.get_global(&store, "g").expect("g");
    assert_eq!(g.get(&store), Val::I32(10));
    let mem = ia.get_memory(&store, "mem").expect("mem");
    assert_eq!(&mem.data(&store)[..4], &6i32.to_le_bytes());
    // Re-exported import is the same function.
    assert_eq!(
        ib.get_func(&store, "double_again"),
        ia.get_func(&store, "double")
    );
    assert_eq!(ib.exports(&store).len(), 2);
}

#[test]
fn segments_and_start_follow_2_0_semantics() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let mut store = Store::new(&engine, ());
        let mem = Memory::new(
            &mut store,
            MemoryType {
                minimum: 1,
                maximum: None,
            },
        )
        .expect("mem");
        let tab = Table::new(
            &mut store,
            TableType {
                element: ValType::FuncRef,
                minimum: 3,
                maximum: None,
            },
            Val::FuncRef(None),
        )
        .expect("table");
        let mut linker = Linker::new(&engine);
        linker.define("m", "mem", mem).expect("define");
        linker.define("m", "tab", tab).expect("define");

        // The first data segment is written, the second is out of bounds.
        let m = module(
            &engine,
            r#"(module
                (import "m" "mem" (memory 1))
                (data (i32.const 0) "ab")
                (data (i32.const 65535) "cd"))"#,
        );
        let err = linker.instantiate(&mut store, &m).expect_err("oob data");
        assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds);
        assert_eq!(&mem.data(&store)[..2], b"ab");

        // Element segments come first: a table error prevents the data.
        let m = module(
            &engine,
            r#"(module
                (import "m" "mem" (memory 1))
                (import "m" "tab" (table 3 funcref))
                (func $f)
                (elem (i32.const 2) $f)
                (elem (i32.const 2) $f $f)
                (data (i32.const 0) "zz"))"#,
        );
        let err = linker.instantiate(&mut store, &m).expect_err("oob elem");
        assert_eq!(trap_kind(&err), TrapKind::TableOutOfBounds);
        assert!(
            matches!(tab.get(&store, 2), Some(Val::FuncRef(Some(_)))),
            "first elem written"
        );
        assert_eq!(
            &mem.data(&store)[..2],
            b"ab",
            "no data after the failed elem"
        );
        // The function in the table outlives the failed instantiation.
        let Some(Val::FuncRef(Some(f))) = tab.get(&store, 2) else {
            unreachable!()
        };
        assert_eq!(f.call(&mut store, &[]).expect("call"), vec![]);

        // Zero-length segments at the end are fine; past the end they trap.
        let ok = module(
            &engine,
            r#"(module (import "m" "mem" (memory 1)) (data (i32.const 65536) ""))"#,
        );
        linker.instantiate(&mut store, &ok).expect("empty at end");
        let bad = module(
            &engine,
            r#"(module (import "m" "mem" (memory 1)) (data (i32.const 65537) ""))"#,
        );
        assert_eq!(
            trap_kind(&linker.instantiate(&mut store, &bad).expect_err("past end")),
            TrapKind::MemoryOutOfBounds
        );

        // A start function that traps: its writes stay, the error is a trap.
        let m = module(
            &engine,
            r#"(module
                (import "m" "mem" (memory 1))
                (func $start (i32.store8 (i32.const 5) (i32.const 33)) unreachable)
                (start $start))"#,
        );
        let err = linker.instantiate(&mut store, &m).expect_err("start traps");
        assert_eq!(trap_kind(&err), TrapKind::Unreachable);
        assert_eq!(mem.data(&store)[5], 33);
    }
}

#[test]
fn bulk_memory_and_table_libcalls() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let m = module(
            &engine,
            r#"(module
                (memory (export "mem") 1)
                (table (export "tab") 4 funcref)
                (func $a (result i32) (i32.const 1))
                (func $b (result i32) (i32.const 2))
                (data $d "0123456789")
                (elem $e func $a $b)
                (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
                (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
                (func (export "init") (param i32 i32 i32) (memory.init $d (local.get 0) (local.get 1) (local.get 2)))
                (func (export "drop") (data.drop $d))
                (func (export "tinit") (param i32 i32 i32) (table.init $e (local.get 0) (local.get 1) (local.get 2)))
                (func (export "edrop") (elem.drop $e))
                (func (export "tcopy") (param i32 i32 i32) (table.copy (local.get 0) (local.get 1) (local.get 2)))
                (func (export "tgrow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0)))
                (func (export "tfill") (param i32 i32) (table.fill (local.get 0) (ref.func $b) (local.get 1)))
                (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0))))"#,
        );
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &m)
            .expect("instantiate");
        let f3 = |name: &str, store: &Store<()>| {
            instance
                .get_typed_func::<(i32, i32, i32), ()>(store, name)
                .expect(name)
        };
        let (fill, copy, init, tinit, tcopy) = (
            f3("fill", &store),
            f3("copy", &store),
            f3("init", &store),
            f3("tinit", &store),
            f3("tcopy", &store),
        );
        let drop_data = instance
            .get_typed_func::<(), ()>(&store, "drop")
            .expect("drop");
        let edrop = instance
            .get_typed_func::<(), ()>(&store, "edrop")
            .expect("edrop");
        let tgrow = instance
            .get_typed_func::<i32, i32>(&store, "tgrow")
            .expect("tgrow");
        let tfill = instance
            .get_typed_func::<(i32, i32), ()>(&store, "tfill")
            .expect("tfill");
        let call = instance
            .get_typed_func::<i32, i32>(&store, "call")
            .expect("call");
        let mem = instance.get_memory(&store, "mem").expect("mem");

        fill.call(&mut store, (10, 0x41, 5)).expect("fill");
        assert_eq!(&mem.data(&store)[10..15], b"AAAAA");
        // Out of bounds: trap, and nothing written.
        let err = fill
            .call(&mut store, (65534, 0x42, 5))
            .expect_err("oob fill");
        assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds);
        assert_eq!(&mem.data(&store)[65534..], &[0, 0]);
        fill.call(&mut store, (65536, 0, 0))
            .expect("empty fill at the end");

        copy.call(&mut store, (12, 10, 5))
            .expect("overlapping copy");
        assert_eq!(&mem.data(&store)[10..17], b"AAAAAAA");
        assert_eq!(
            trap_kind(&copy.call(&mut store, (0, 65535, 2)).expect_err("oob")),
            TrapKind::MemoryOutOfBounds
        );

        init.call(&mut store, (100, 2, 5)).expect("init");
        assert_eq!(&mem.data(&store)[100..105], b"23456");
        assert_eq!(
            trap_kind(&init.call(&mut store, (0, 8, 3)).expect_err("oob src")),
            TrapKind::MemoryOutOfBounds
        );
        drop_data.call(&mut store, ()).expect("drop");
        init.call(&mut store, (0, 0, 0))
            .expect("empty init of a dropped segment");
        assert_eq!(
            trap_kind(&init.call(&mut store, (0, 0, 1)).expect_err("dropped")),
            TrapKind::MemoryOutOfBounds
        );

        tinit.call(&mut store, (0, 0, 2)).expect("table.init");
        assert_eq!(call.call(&mut store, 0).expect("call"), 1);
        assert_eq!(call.call(&mut store, 1).expect("call"), 2);
        assert_eq!(
            trap_kind(&call.call(&mut store, 2).expect_err("null")),
            TrapKind::IndirectCallToNull
        );
        assert_eq!(
            trap_kind(&call.call(&mut store, 4).expect_err("past end")),
            TrapKind::TableOutOfBounds
        );
        tcopy.call(&mut store, (2, 0, 2)).expect("table.copy");
        assert_eq!(call.call(&mut store, 3).expect("call"), 2);
        assert_eq!(
            trap_kind(&tcopy.call(&mut store, (3, 0, 2)).expect_err("oob")),
            TrapKind::TableOutOfBounds
        );
        edrop.call(&mut store, ()).expect("elem.drop");
        assert_eq!(
            trap_kind(&tinit.call(&mut store, (0, 0, 1)).expect_err("dropped")),
            TrapKind::TableOutOfBounds
        );

        assert_eq!(tgrow.call(&mut store, 2).expect("grow"), 4);
        tfill.call(&mut store, (4, 2)).expect("fill");
        assert_eq!(call.call(&mut store, 5).expect("call"), 2);
        assert_eq!(
            trap_kind(&tfill.call(&mut store, (5, 2)).expect_err("oob")),
            TrapKind::TableOutOfBounds
        );
        let tab = instance.get_table(&store, "tab").expect("tab");
        assert_eq!(tab.size(&store), 6);
    }
}

#[test]
fn references_round_trip_through_wasm() {
    let engine = engine(MemoryStrategy::Guarded);
    let m = module(
        &engine,
        r#"(module
            (func $f (export "f") (result i32) (i32.const 5))
            (global $fg (export "fg") funcref (ref.func $f))
            (func (export "id_extern") (param externref) (result externref) (local.get 0))
            (func (export "id_func") (param funcref) (result funcref) (local.get 0))
            (func (export "is_null") (param externref) (result i32) (ref.is_null (local.get 0))))"#,
    );
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .expect("instantiate");
    let id_extern = instance
        .get_typed_func::<Option<ExternRef>, Option<ExternRef>>(&store, "id_extern")
        .expect("id_extern");
    assert_eq!(
        id_extern
            .call(&mut store, Some(ExternRef(0)))
            .expect("call"),
        Some(ExternRef(0))
    );
    assert_eq!(id_extern.call(&mut store, None).expect("call"), None);
    let is_null = instance.get_func(&store, "is_null").expect("is_null");
    assert_eq!(
        is_null
            .call(&mut store, &[Val::ExternRef(Some(ExternRef(7)))])
            .expect("call"),
        vec![Val::I32(0)]
    );
    assert_eq!(
        is_null
            .call(&mut store, &[Val::ExternRef(None)])
            .expect("call"),
        vec![Val::I32(1)]
    );

    let f = instance.get_func(&store, "f").expect("f");
    let fg = instance.get_global(&store, "fg").expect("fg");
    assert_eq!(fg.get(&store), Val::FuncRef(Some(f)));
    let id_func = instance.get_func(&store, "id_func").expect("id_func");
    assert_eq!(
        id_func
            .call(&mut store, &[Val::FuncRef(Some(f))])
            .expect("call"),
        vec![Val::FuncRef(Some(f))]
    );
    let host = Func::wrap(&mut store, |x: i32| x);
    assert_eq!(
        id_func
            .call(&mut store, &[Val::FuncRef(Some(host))])
            .expect("call"),
        vec![Val::FuncRef(Some(host))]
    );

    // A funcref of another store is refused.
    let mut other = Store::new(&engine, ());
    let foreign = Func::wrap(&mut other, || {});
    assert!(id_func
        .call(&mut store, &[Val::FuncRef(Some(foreign))])
        .is_err());
    assert!(f.call(&mut other, &[]).is_err());
}

#[test]
fn instance_pre_instantiates_many_times() {
    let engine = engine(MemoryStrategy::Checked);
    let m = module(
        &engine,
        r#"(module
            (import "env" "inc" (func $inc (param i32) (result i32)))
            (memory 1)
            (global $g (mut i32) (i32.const 0))
            (func (export "run") (result i32)
                (global.set $g (call $inc (global.get $g)))
                (global.get $g)))"#,
    );
    let mut linker = Linker::<u32>::new(&engine);
    linker
        .func_wrap("env", "inc", |mut c: Caller<'_, u32>, x: i32| {
            *c.data_mut() += 1;
            x + 1
        })
        .expect("define");
    let pre = linker.instantiate_pre(&m).expect("pre");
    let mut store = Store::new(&engine, 0);
    for _ in 0..50 {
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let run = instance
            .get_typed_func::<(), i32>(&store, "run")
            .expect("run");
        assert_eq!(run.call(&mut store, ()).expect("call"), 1);
    }
    assert_eq!(*store.data(), 50);
    // The host function was created once in this store.
    let a = linker.instantiate(&mut store, &m).expect("a");
    let b = linker.instantiate(&mut store, &m).expect("b");
    let _ = (a, b);

    // Instances in fresh stores on other threads.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let pre = pre.clone();
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, 0u32);
                let instance = pre.instantiate(&mut store).expect("instantiate");
                let run = instance
                    .get_typed_func::<(), i32>(&store, "run")
                    .expect("run");
                run.call(&mut store, ()).expect("call")
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread"), 1);
    }
}

#[test]
fn store_moves_between_threads() {
    let engine = engine(MemoryStrategy::Guarded);
    let m = module(
        &engine,
        r#"(module (memory (export "m") 1) (func (export "w") (i32.store (i32.const 0) (i32.const 9))))"#,
    );
    let mut store = Store::new(&engine, String::from("state"));
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .expect("instantiate");
    let store = std::thread::spawn(move || {
        let mut store = store;
        let w = instance.get_typed_func::<(), ()>(&store, "w").expect("w");
        w.call(&mut store, ()).expect("call");
        store
    })
    .join()
    .expect("thread");
    let mem = instance.get_memory(&store, "m").expect("m");
    assert_eq!(mem.data(&store)[0], 9);
    assert_eq!(store.data(), "state");
}

#[test]
fn resource_errors_are_reported() {
    let small = engine_with(Config {
        max_memory_pages: 10,
        max_table_elements: 5,
        ..Config::default()
    });
    let mut store = Store::new(&small, ());
    let m = module(&small, "(module (memory 11))");
    let err = Linker::new(&small)
        .instantiate(&mut store, &m)
        .expect_err("too big");
    assert!(matches!(err, Error::Resource(_)), "{err}");
    let m = module(&small, "(module (table 6 funcref))");
    let err = Linker::new(&small)
        .instantiate(&mut store, &m)
        .expect_err("too big");
    assert!(matches!(err, Error::Resource(_)), "{err}");
    // Zero-page memories are fine in both strategies.
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let mut store = Store::new(&engine, ());
        let m = module(
            &engine,
            r#"(module (memory 0 0) (func (export "l") (result i32) (i32.load (i32.const 0))))"#,
        );
        let i = Linker::new(&engine)
            .instantiate(&mut store, &m)
            .expect("zero pages");
        let l = i.get_typed_func::<(), i32>(&store, "l").expect("l");
        assert_eq!(
            trap_kind(&l.call(&mut store, ()).expect_err("oob")),
            TrapKind::MemoryOutOfBounds
        );
    }
}

#[test]
fn epoch_deadline_libcall_moves_the_deadline() {
    let engine = engine_with(Config {
        epoch_interruption: true,
        ..Config::default()
    });
    let m = module(
        &engine,
        r#"(module
            (func (export "spin") (param i32) (result i32)
                (local i32)
                (loop $l
                    (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
                (local.get 1)))"#,
    );
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .expect("instantiate");
    let spin = instance
        .get_typed_func::<i32, i32>(&store, "spin")
        .expect("spin");
    for _ in 0..3 {
        engine.increment_epoch();
    }
    // The deadline is the current epoch: the first check calls the runtime,
    // which moves it one epoch ahead, and the loop goes on.
    store.set_epoch_deadline(0);
    assert_eq!(store.epoch_deadline(), 3);
    assert_eq!(spin.call(&mut store, 1000).expect("spin"), 1000);
    assert_eq!(store.epoch_deadline(), 4);
    store.set_epoch_deadline(u64::MAX);
    assert_eq!(store.epoch_deadline(), u64::MAX);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    fn send<X: Send>() {}
    send_sync::<Func>();
    send_sync::<Memory>();
    send_sync::<Table>();
    send_sync::<Global>();
    send_sync::<Instance>();
    send_sync::<Extern>();
    send_sync::<shoal_instance::TypedFunc<(i32, i64), f64>>();
    send_sync::<Linker<std::rc::Rc<()>>>();
    send_sync::<shoal_instance::InstancePre<std::cell::Cell<u8>>>();
    send::<Store<u32>>();
}

#[test]
fn caller_without_a_calling_instance() {
    let engine = engine(MemoryStrategy::Guarded);
    let mut store = Store::new(&engine, ());
    let f = Func::wrap(&mut store, |caller: Caller<'_, ()>| -> i32 {
        i32::from(caller.get_export("memory").is_none())
    });
    assert_eq!(f.call(&mut store, &[]).expect("call"), vec![Val::I32(1)]);
    assert_eq!(f.ty(&store), FuncType::new([], [ValType::I32]));
    let typed = f.typed::<(), i32>(&store).expect("typed");
    assert_eq!(typed.call(&mut store, ()).expect("call"), 1);
    assert!(f.typed::<i32, i32>(&store).is_err());
}

/// Host calls and libcalls find their calling instance through the index in
/// its VMContext header: with several instances in one store sharing one
/// host function, each call must see its own caller's memory, and each
/// `memory.grow` must grow its own instance's memory.
#[test]
fn every_instance_of_a_store_is_its_own_caller() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                "env",
                "first_byte",
                |caller: Caller<'_, ()>| -> Result<i32, Trap> {
                    let memory = caller
                        .get_export("memory")
                        .and_then(Extern::into_memory)
                        .ok_or_else(|| Trap::host("no memory export"))?;
                    Ok(i32::from(memory.data(&caller)[0]))
                },
            )
            .expect("define");
        let instances: Vec<Instance> = (1..=3u8)
            .map(|tag| {
                let m = module(
                    &engine,
                    &format!(
                        r#"(module
                            (import "env" "first_byte" (func $first_byte (result i32)))
                            (memory (export "memory") 1)
                            (data (i32.const 0) "\{tag:02x}")
                            (func (export "grow_by_tag") (result i32)
                                (drop (memory.grow (i32.const {tag})))
                                (memory.size))
                            (func (export "tag") (result i32) (call $first_byte)))"#
                    ),
                );
                linker.instantiate(&mut store, &m).expect("instantiate")
            })
            .collect();
        for &i in &[2usize, 0, 1, 2, 0] {
            let tag = instances[i]
                .get_typed_func::<(), i32>(&store, "tag")
                .expect("tag");
            assert_eq!(tag.call(&mut store, ()).expect("call"), i as i32 + 1);
        }
        for (i, instance) in instances.iter().enumerate().rev() {
            let grow = instance
                .get_typed_func::<(), i32>(&store, "grow_by_tag")
                .expect("grow_by_tag");
            assert_eq!(grow.call(&mut store, ()).expect("grow"), i as i32 + 2);
        }
        for (i, instance) in instances.iter().enumerate() {
            let memory = instance.get_memory(&store, "memory").expect("memory");
            assert_eq!(memory.size_pages(&store), i as u64 + 2, "instance {i}");
        }
    }
}

/// A store's resume hints name its host closures' entries only once they
/// have left the store (more than two): before that they sit inside the
/// table, whose address is already a hint.
#[test]
fn resume_hints_name_the_closure_entries_only_once_they_move_out() {
    let engine = engine(MemoryStrategy::Checked);
    let mut store = Store::new(&engine, ());
    let [limits, table, entries, _] = store.resume_hints();
    assert!(limits != 0 && table != 0, "{limits:x} {table:x}");
    assert_eq!(entries, 0);
    for n in 1..=3 {
        Func::wrap(&mut store, || {});
        let [_, _, entries, _] = store.resume_hints();
        assert_eq!(entries != 0, n > 2, "{n} host functions: {entries:x}");
    }
}

/// The last resume hint is the start of the store's first memory (0
/// while it has none).
#[test]
fn resume_hints_name_the_first_memory() {
    let engine = engine(MemoryStrategy::Checked);
    let mut store = Store::new(&engine, ());
    assert_eq!(store.resume_hints()[3], 0);
    let m = module(&engine, r#"(module (memory (export "m") 1))"#);
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .expect("instantiate");
    let memory = instance.get_memory(&store, "m").expect("memory");
    assert_eq!(
        store.resume_hints()[3],
        memory.data(&store).as_ptr() as usize
    );
}
