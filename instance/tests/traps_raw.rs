//! Traps end to end, as compiled wasm raises them: every trap the spec
//! defines comes back as `Error::Trap` with its kind and the wasm frames
//! (index and name) it happened in, under both memory strategies; stack
//! exhaustion in wasm and in a host function called from wasm is a trap;
//! and the process survives many traps on many threads at once.
//!
//! The trap machinery itself (catch points, signals, chaining to previous
//! handlers, green threads) is unit-tested with hand-written machine code in
//! `src/trap_handling.rs`.

use shoal_instance::{
    Config, Engine, Error, Linker, MemoryStrategy, Module, Store, Trap, TrapKind,
};

const STRATEGIES: [MemoryStrategy; 2] = [MemoryStrategy::Guarded, MemoryStrategy::Checked];

fn engine(strategy: MemoryStrategy) -> Engine {
    Engine::new(Config {
        memory_strategy: strategy,
        ..Config::default()
    })
    .expect("engine")
}

const TRAPS: &str = r#"(module $traps
    (type $v_i (func (result i32)))
    (type $i_i (func (param i32) (result i32)))
    (memory 1)
    (table 4 funcref)
    (elem (i32.const 0) $answer $identity)
    (func $answer (type $v_i) (i32.const 42))
    (func $identity (type $i_i) (local.get 0))

    (func $unreachable (export "unreachable") unreachable)
    (func $load (export "load") (param i32) (result i32) (i32.load (local.get 0)))
    (func $store (export "store") (param i32) (i32.store8 (local.get 0) (i32.const 1)))
    (func $load_offset (export "load_offset") (param i32) (result i64)
        (i64.load offset=0xffffffff (local.get 0)))
    (func $div_s (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
    (func $div_u (export "div_u") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1)))
    (func $rem_s (export "rem_s") (param i64 i64) (result i64) (i64.rem_s (local.get 0) (local.get 1)))
    (func $rem_u (export "rem_u") (param i64 i64) (result i64) (i64.rem_u (local.get 0) (local.get 1)))
    (func $trunc (export "trunc") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
    (func $trunc_u (export "trunc_u") (param f32) (result i64) (i64.trunc_f32_u (local.get 0)))
    (func $call_v_i (export "call_v_i") (param i32) (result i32)
        (call_indirect (type $v_i) (local.get 0)))
    (func $recurse (export "recurse") (param i32) (result i32)
        (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
    (func $fill (export "fill") (param i32 i32) (memory.fill (local.get 0) (i32.const 7) (local.get 1)))

    ;; outer -> middle -> inner: unreachable, for backtraces
    (func $inner (param i32) (result i32)
        (if (local.get 0) (then unreachable))
        (i32.const 1))
    (func $middle (param i32) (result i32) (i32.add (call $inner (local.get 0)) (i32.const 1)))
    (func $outer (export "nested") (param i32) (result i32)
        (i32.add (call $middle (local.get 0)) (i32.const 1)))
    ;; a libcall that traps, two frames down
    (func $fill_all (param i32) (memory.fill (i32.const 0) (i32.const 0) (local.get 0)))
    (func $calls_fill (export "calls_fill") (param i32) (call $fill_all (local.get 0)))
)"#;

fn trap_of(result: Result<impl std::fmt::Debug, Error>) -> Trap {
    match result {
        Err(Error::Trap(trap)) => trap,
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn names(trap: &Trap) -> Vec<&str> {
    trap.backtrace
        .iter()
        .map(|f| f.func_name.as_deref().unwrap_or("?"))
        .collect()
}

#[test]
fn every_spec_trap_is_an_error_with_kind_and_function() {
    for strategy in STRATEGIES {
        let engine = engine(strategy);
        let module = Module::new(&engine, TRAPS).expect("module");
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        macro_rules! func {
            ($name:literal, $p:ty, $r:ty) => {
                instance
                    .get_typed_func::<$p, $r>(&store, $name)
                    .expect($name)
            };
        }
        let check = |trap: Trap, kind: TrapKind, func: &str| {
            assert_eq!(trap.kind, kind, "{strategy:?} {func}: {trap}");
            assert_eq!(
                names(&trap).first().copied(),
                Some(func),
                "{strategy:?}: {trap}"
            );
            assert_eq!(trap.backtrace[0].module_name.as_deref(), Some("traps"));
        };

        let unreachable = func!("unreachable", (), ());
        check(
            trap_of(unreachable.call(&mut store, ())),
            TrapKind::Unreachable,
            "unreachable",
        );

        let load = func!("load", i32, i32);
        assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
        for addr in [65533, 65536, -1, i32::MIN] {
            check(
                trap_of(load.call(&mut store, addr)),
                TrapKind::MemoryOutOfBounds,
                "load",
            );
        }
        let store8 = func!("store", i32, ());
        store8.call(&mut store, 65535).unwrap();
        check(
            trap_of(store8.call(&mut store, 65536)),
            TrapKind::MemoryOutOfBounds,
            "store",
        );
        let load_offset = func!("load_offset", i32, i64);
        for addr in [0, -1] {
            let trap = trap_of(load_offset.call(&mut store, addr));
            check(trap, TrapKind::MemoryOutOfBounds, "load_offset");
        }

        let div_s = func!("div_s", (i32, i32), i32);
        assert_eq!(div_s.call(&mut store, (-7, 2)).unwrap(), -3);
        check(
            trap_of(div_s.call(&mut store, (1, 0))),
            TrapKind::IntegerDivisionByZero,
            "div_s",
        );
        check(
            trap_of(div_s.call(&mut store, (i32::MIN, -1))),
            TrapKind::IntegerOverflow,
            "div_s",
        );
        let div_u = func!("div_u", (i32, i32), i32);
        check(
            trap_of(div_u.call(&mut store, (1, 0))),
            TrapKind::IntegerDivisionByZero,
            "div_u",
        );
        let rem_s = func!("rem_s", (i64, i64), i64);
        assert_eq!(
            rem_s.call(&mut store, (i64::MIN, -1)).unwrap(),
            0,
            "rem_s INT_MIN % -1 is 0"
        );
        check(
            trap_of(rem_s.call(&mut store, (1, 0))),
            TrapKind::IntegerDivisionByZero,
            "rem_s",
        );
        let rem_u = func!("rem_u", (i64, i64), i64);
        check(
            trap_of(rem_u.call(&mut store, (1, 0))),
            TrapKind::IntegerDivisionByZero,
            "rem_u",
        );

        let trunc = func!("trunc", f64, i32);
        assert_eq!(trunc.call(&mut store, -2.9).unwrap(), -2);
        check(
            trap_of(trunc.call(&mut store, f64::NAN)),
            TrapKind::BadConversionToInteger,
            "trunc",
        );
        check(
            trap_of(trunc.call(&mut store, 3e9)),
            TrapKind::IntegerOverflow,
            "trunc",
        );
        let trunc_u = func!("trunc_u", f32, i64);
        check(
            trap_of(trunc_u.call(&mut store, -1.0)),
            TrapKind::IntegerOverflow,
            "trunc_u",
        );

        let call_v_i = func!("call_v_i", i32, i32);
        assert_eq!(call_v_i.call(&mut store, 0).unwrap(), 42);
        check(
            trap_of(call_v_i.call(&mut store, 1)),
            TrapKind::BadSignature,
            "call_v_i",
        );
        check(
            trap_of(call_v_i.call(&mut store, 2)),
            TrapKind::IndirectCallToNull,
            "call_v_i",
        );
        check(
            trap_of(call_v_i.call(&mut store, 4)),
            TrapKind::TableOutOfBounds,
            "call_v_i",
        );

        let fill = func!("fill", (i32, i32), ());
        fill.call(&mut store, (65535, 1)).unwrap();
        check(
            trap_of(fill.call(&mut store, (65535, 2))),
            TrapKind::MemoryOutOfBounds,
            "fill",
        );

        // The instance still works after all that.
        assert_eq!(call_v_i.call(&mut store, 0).unwrap(), 42);
    }
}

#[test]
fn backtraces_list_wasm_frames_innermost_first() {
    let engine = engine(MemoryStrategy::Guarded);
    let module = Module::new(&engine, TRAPS).expect("module");
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");

    let nested = instance
        .get_typed_func::<i32, i32>(&store, "nested")
        .unwrap();
    assert_eq!(nested.call(&mut store, 0).unwrap(), 3);
    let trap = trap_of(nested.call(&mut store, 1));
    assert_eq!(trap.kind, TrapKind::Unreachable);
    assert_eq!(names(&trap), ["inner", "middle", "outer"]);
    let text = trap.to_string();
    assert!(text.contains("traps!inner"), "{text}");

    // Raised by a libcall: found through the host frames by the unwinder.
    let calls_fill = instance
        .get_typed_func::<i32, ()>(&store, "calls_fill")
        .unwrap();
    let trap = trap_of(calls_fill.call(&mut store, 65537));
    assert_eq!(trap.kind, TrapKind::MemoryOutOfBounds);
    assert_eq!(names(&trap), ["fill_all", "calls_fill"]);
}

#[test]
fn runaway_recursion_is_stack_exhaustion() {
    let engine = engine(MemoryStrategy::Guarded);
    let module = Module::new(&engine, TRAPS).expect("module");
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    let recurse = instance
        .get_typed_func::<i32, i32>(&store, "recurse")
        .unwrap();
    for _ in 0..3 {
        let trap = trap_of(recurse.call(&mut store, 0));
        assert_eq!(trap.kind, TrapKind::StackOverflow);
        assert!(
            trap.backtrace.len() > 100,
            "deep backtrace: {}",
            trap.backtrace.len()
        );
        assert!(names(&trap).iter().all(|&n| n == "recurse"));
    }
    // Same on a thread whose stack is smaller than max_wasm_stack: the limit
    // stops above the bottom of the thread's stack.
    let engine = Engine::new(Config {
        max_wasm_stack: 64 << 20,
        ..Config::default()
    })
    .unwrap();
    let result = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let module = Module::new(&engine, TRAPS).expect("module");
            let mut store = Store::new(&engine, ());
            let instance = Linker::new(&engine)
                .instantiate(&mut store, &module)
                .expect("instantiate");
            let recurse = instance
                .get_typed_func::<i32, i32>(&store, "recurse")
                .unwrap();
            trap_of(recurse.call(&mut store, 0)).kind
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, TrapKind::StackOverflow);
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let buf = std::hint::black_box([n; 64]);
    deep(buf[1] + 1).wrapping_add(buf[2])
}

#[test]
fn host_function_stack_overflow_is_a_trap() {
    let kinds = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let engine = engine(MemoryStrategy::Guarded);
            let module = Module::new(
                &engine,
                r#"(module
                    (import "env" "deep" (func $deep (param i64) (result i64)))
                    (func $calls_host (export "go") (param i64) (result i64)
                        (call $deep (local.get 0))))"#,
            )
            .unwrap();
            let mut store = Store::new(&engine, ());
            let mut linker = Linker::new(&engine);
            linker
                .func_wrap("env", "deep", |n: i64| deep(n as u64) as i64)
                .unwrap();
            let instance = linker.instantiate(&mut store, &module).unwrap();
            let go = instance.get_typed_func::<i64, i64>(&store, "go").unwrap();
            (0..3)
                .map(|_| trap_of(go.call(&mut store, 0)).kind)
                .collect::<Vec<_>>()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(kinds, [TrapKind::StackOverflow; 3]);
}

#[test]
fn many_traps_on_many_threads() {
    let threads: Vec<_> = STRATEGIES
        .iter()
        .cycle()
        .take(8)
        .map(|&strategy| {
            std::thread::spawn(move || {
                let engine = engine(strategy);
                let module = Module::new(&engine, TRAPS).expect("module");
                let mut store = Store::new(&engine, ());
                let instance = Linker::new(&engine)
                    .instantiate(&mut store, &module)
                    .expect("instantiate");
                let load = instance.get_typed_func::<i32, i32>(&store, "load").unwrap();
                let div_s = instance
                    .get_typed_func::<(i32, i32), i32>(&store, "div_s")
                    .unwrap();
                let unreachable = instance
                    .get_typed_func::<(), ()>(&store, "unreachable")
                    .unwrap();
                for i in 0..500 {
                    let trap = match i % 3 {
                        0 => trap_of(load.call(&mut store, -4)),
                        1 => trap_of(div_s.call(&mut store, (i, 0))),
                        _ => trap_of(unreachable.call(&mut store, ())),
                    };
                    let expected = [
                        TrapKind::MemoryOutOfBounds,
                        TrapKind::IntegerDivisionByZero,
                        TrapKind::Unreachable,
                    ][i as usize % 3];
                    assert_eq!(trap.kind, expected);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
