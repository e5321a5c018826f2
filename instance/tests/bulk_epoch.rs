//! Bulk operations on large ranges check the epoch between chunks: with a
//! deadline that is always reached, the store's epoch deadline callback runs
//! several times during one `memory.fill`, `memory.copy`, `memory.init`,
//! `table.fill`, `table.copy`, `table.init` or `table.grow`, and the
//! operation's result is still exactly the spec's. The callback may end the
//! call with a trap between chunks, or suspend the green thread.

use shoal_instance::trap_handling::{swap_thread_state, ThreadState};
use shoal_instance::{
    Caller, Config, Engine, Error, ExternRef, Instance, Linker, MemoryStrategy, Module, Store,
    Trap, TrapKind, UpdateDeadline, Val,
};

const STRATEGIES: [MemoryStrategy; 2] = [MemoryStrategy::Guarded, MemoryStrategy::Checked];

/// The most a bulk operation may do between two epoch checks, as far as
/// these tests are concerned (the libcalls use 1 MiB and 64 Ki elements).
const MAX_CHUNK_BYTES: usize = 4 << 20;
const MAX_CHUNK_ELEMENTS: usize = 256 << 10;

const MIB: usize = 1 << 20;

fn engine(strategy: MemoryStrategy, epoch_interruption: bool) -> Engine {
    Engine::new(Config {
        memory_strategy: strategy,
        epoch_interruption,
        ..Config::default()
    })
    .expect("engine")
}

fn trap_kind(err: &Error) -> TrapKind {
    match err {
        Error::Trap(t) => t.kind,
        other => panic!("expected a trap, got {other}"),
    }
}

/// The data segment of the memory module: 2.5 MiB of letters.
fn segment() -> Vec<u8> {
    (0..5 * MIB / 2)
        .map(|i| b'a' + ((i * 7 + i / 4096) % 26) as u8)
        .collect()
}

fn memory_wat() -> String {
    let data = String::from_utf8(segment()).expect("ascii");
    format!(
        r#"(module
            (memory (export "mem") 1100)
            (data $d "{data}")
            (func (export "fill") (param i32 i32 i32)
                (memory.fill (local.get 0) (local.get 1) (local.get 2)))
            (func (export "copy") (param i32 i32 i32)
                (memory.copy (local.get 0) (local.get 1) (local.get 2)))
            (func (export "init") (param i32 i32 i32)
                (memory.init $d (local.get 0) (local.get 1) (local.get 2))))"#
    )
}

/// A store whose epoch deadline is always reached and whose callback counts
/// its calls in the store's data and lets wasm go on.
fn counting_store(engine: &Engine) -> Store<u64> {
    let mut store = Store::new(engine, 0u64);
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
        *caller.data_mut() += 1;
        Ok(UpdateDeadline::Continue(0))
    });
    store
}

/// Calls the 3-argument export `name` and returns how many times the
/// callback ran during the bulk operation (not counting the function's
/// entry check, which a zero-length call measures).
fn call3(store: &mut Store<u64>, instance: Instance, name: &str, args: (u32, u32, u32)) -> u64 {
    let f = instance
        .get_typed_func::<(u32, u32, u32), ()>(&*store, name)
        .expect("export");
    let before = *store.data();
    f.call(&mut *store, (args.0, args.1, 0))
        .expect("empty call");
    let entry = *store.data() - before;
    let before = *store.data();
    f.call(&mut *store, args).expect("call");
    *store.data() - before - entry
}

fn assert_checked_often(calls: u64, work: usize, chunk: usize, what: &str) {
    let at_least = (work / chunk).saturating_sub(1) as u64;
    assert!(
        calls > 1 && calls >= at_least,
        "{what}: the callback ran {calls} times during the operation, expected at least {}",
        at_least.max(2)
    );
}

#[test]
fn memory_fill_of_64_mib_checks_the_epoch_and_fills_exactly() {
    for strategy in STRATEGIES {
        let engine = engine(strategy, true);
        let module = Module::new(&engine, memory_wat()).expect("module");
        let mut store = counting_store(&engine);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let memory = instance.get_memory(&store, "mem").expect("mem");
        let (dst, len) = (100usize, 64 * MIB);
        let calls = call3(&mut store, instance, "fill", (dst as u32, 0xAB, len as u32));
        assert_checked_often(calls, len, MAX_CHUNK_BYTES, "memory.fill");
        let bytes = memory.data(&store);
        assert!(bytes[..dst].iter().all(|&b| b == 0));
        assert!(bytes[dst..dst + len].iter().all(|&b| b == 0xAB));
        assert!(bytes[dst + len..].iter().all(|&b| b == 0));

        // Out of bounds by one byte: a trap before any write or check.
        let size = bytes.len();
        let fill = instance
            .get_typed_func::<(u32, u32, u32), ()>(&store, "fill")
            .expect("fill");
        let before = *store.data();
        let err = fill
            .call(&mut store, (1, 0xCD, size as u32))
            .expect_err("out of bounds");
        assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds);
        assert_eq!(*store.data() - before, 1, "only the entry check ran");
        assert!(memory.data(&store).iter().all(|&b| b != 0xCD), "no write");
    }
}

#[test]
fn memory_copy_in_chunks_handles_overlap_both_ways() {
    for strategy in STRATEGIES {
        let engine = engine(strategy, true);
        let module = Module::new(&engine, memory_wat()).expect("module");
        let mut store = counting_store(&engine);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let memory = instance.get_memory(&store, "mem").expect("mem");
        for (i, b) in memory.data_mut(&mut store).iter_mut().enumerate() {
            *b = ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8;
        }
        let mut model = memory.data(&store).to_vec();
        let cases = [
            // (dst, src, len): overlapping with dst above src (copied
            // backwards), with dst below src (forwards), disjoint, and
            // overlapping within one chunk.
            (3 * MIB + 5, 1000, 40 * MIB),
            (1000, 3 * MIB + 5, 40 * MIB),
            (50 * MIB, 7, 10 * MIB + 3),
            (20, 10, MIB / 2),
            (10, 20, MIB / 2),
        ];
        for (dst, src, len) in cases {
            let calls = call3(
                &mut store,
                instance,
                "copy",
                (dst as u32, src as u32, len as u32),
            );
            if len > MAX_CHUNK_BYTES {
                assert_checked_often(calls, len, MAX_CHUNK_BYTES, "memory.copy");
            }
            model.copy_within(src..src + len, dst);
            assert!(
                memory.data(&store) == &model[..],
                "memory.copy({dst}, {src}, {len}) under {strategy:?}"
            );
        }
    }
}

#[test]
fn memory_init_in_chunks_copies_the_segment() {
    let engine = engine(MemoryStrategy::Checked, true);
    let module = Module::new(&engine, memory_wat()).expect("module");
    let mut store = counting_store(&engine);
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    let memory = instance.get_memory(&store, "mem").expect("mem");
    let segment = segment();
    let (dst, src) = (12_345usize, 7usize);
    let len = segment.len() - src - 3;
    let calls = call3(
        &mut store,
        instance,
        "init",
        (dst as u32, src as u32, len as u32),
    );
    assert!(calls >= 2, "memory.init of 2.5 MiB: {calls} callback calls");
    let bytes = memory.data(&store);
    assert!(bytes[..dst].iter().all(|&b| b == 0));
    assert!(bytes[dst..dst + len] == segment[src..src + len]);
    assert!(bytes[dst + len..].iter().all(|&b| b == 0));

    // Past the segment by one byte: a trap, nothing written.
    let init = instance
        .get_typed_func::<(u32, u32, u32), ()>(&store, "init")
        .expect("init");
    let far = 40 * MIB as u32;
    let err = init
        .call(&mut store, (far, src as u32, (len + 4) as u32))
        .expect_err("out of bounds");
    assert_eq!(trap_kind(&err), TrapKind::MemoryOutOfBounds);
    assert!(memory.data(&store)[far as usize..].iter().all(|&b| b == 0));
}

const TABLE_SIZE: u32 = 300_000;
const SEGMENT_ITEMS: usize = 70_000;

fn table_wat() -> String {
    let items = " $one".repeat(SEGMENT_ITEMS);
    format!(
        r#"(module
            (type $t (func (result i32)))
            (table $f (export "funcs") {TABLE_SIZE} 400000 funcref)
            (table $e (export "refs") {TABLE_SIZE} externref)
            (elem $seg func{items})
            (func $one (result i32) (i32.const 1))
            (func (export "fill") (param i32 i32)
                (table.fill $f (local.get 0) (ref.func $one) (local.get 1)))
            (func (export "copy") (param i32 i32 i32)
                (table.copy $e $e (local.get 0) (local.get 1) (local.get 2)))
            (func (export "init") (param i32 i32 i32)
                (table.init $f $seg (local.get 0) (local.get 1) (local.get 2)))
            (func (export "grow") (param i32) (result i32)
                (table.grow $f (ref.func $one) (local.get 0)))
            (func (export "call") (param i32) (result i32)
                (call_indirect $f (type $t) (local.get 0))))"#
    )
}

fn table_instance(engine: &Engine, store: &mut Store<u64>) -> Instance {
    let module = Module::new(engine, table_wat()).expect("module");
    Linker::new(engine)
        .instantiate(store, &module)
        .expect("instantiate")
}

/// Which elements of the funcref table are set (`true`) or null.
fn funcref_pattern(store: &Store<u64>, instance: Instance) -> Vec<bool> {
    let table = instance.get_table(store, "funcs").expect("funcs");
    (0..table.size(store))
        .map(|i| match table.get(store, i) {
            Some(Val::FuncRef(f)) => f.is_some(),
            other => panic!("element {i}: {other:?}"),
        })
        .collect()
}

#[test]
fn table_fill_and_init_check_the_epoch_between_chunks() {
    let engine = engine(MemoryStrategy::Guarded, true);
    let mut store = counting_store(&engine);
    let instance = table_instance(&engine, &mut store);
    let fill = instance
        .get_typed_func::<(u32, u32), ()>(&store, "fill")
        .expect("fill");
    let before = *store.data();
    let (dst, len) = (10u32, TABLE_SIZE - 20);
    fill.call(&mut store, (dst, len)).expect("fill");
    let calls = *store.data() - before - 1;
    assert_checked_often(calls, len as usize, MAX_CHUNK_ELEMENTS, "table.fill");
    let pattern = funcref_pattern(&store, instance);
    let expected: Vec<bool> = (0..TABLE_SIZE).map(|i| i >= dst && i < dst + len).collect();
    assert!(pattern == expected, "table.fill wrote exactly its range");
    let call = instance
        .get_typed_func::<(u32,), i32>(&store, "call")
        .expect("call");
    assert_eq!(call.call(&mut store, (dst + len - 1,)).expect("call"), 1);

    // Out of bounds: a trap before any write.
    let err = fill.call(&mut store, (0, TABLE_SIZE + 1)).expect_err("oob");
    assert_eq!(trap_kind(&err), TrapKind::TableOutOfBounds);
    assert_eq!(
        funcref_pattern(&store, instance),
        expected,
        "no partial write"
    );

    // table.init of a 70,000-item segment into the two null ends.
    let mut store = counting_store(&engine);
    let instance = table_instance(&engine, &mut store);
    let (dst, src, len) = (1_000u32, 5u32, SEGMENT_ITEMS as u32 - 10);
    let calls = call3(&mut store, instance, "init", (dst, src, len));
    assert!(
        calls >= 1,
        "table.init of 70,000 items: {calls} callback calls"
    );
    let expected: Vec<bool> = (0..TABLE_SIZE).map(|i| i >= dst && i < dst + len).collect();
    assert!(funcref_pattern(&store, instance) == expected);
    let init = instance
        .get_typed_func::<(u32, u32, u32), ()>(&store, "init")
        .expect("init");
    let err = init
        .call(&mut store, (TABLE_SIZE - len + 1, src, len))
        .expect_err("oob");
    assert_eq!(trap_kind(&err), TrapKind::TableOutOfBounds);
    assert!(
        funcref_pattern(&store, instance) == expected,
        "no partial write"
    );
}

#[test]
fn table_copy_in_chunks_handles_overlap_both_ways() {
    let engine = engine(MemoryStrategy::Guarded, true);
    let mut store = counting_store(&engine);
    let instance = table_instance(&engine, &mut store);
    let table = instance.get_table(&store, "refs").expect("refs");
    let mut model: Vec<u64> = (0..u64::from(TABLE_SIZE)).map(|i| i * 3 + 1).collect();
    for (i, &v) in model.iter().enumerate() {
        table
            .set(&mut store, i as u32, Val::ExternRef(Some(ExternRef(v))))
            .expect("set");
    }
    let cases = [
        (70_001usize, 3usize, 200_000usize),
        (3, 70_001, 200_000),
        (10, 5, 1000),
        (5, 10, 1000),
    ];
    for (dst, src, len) in cases {
        let calls = call3(
            &mut store,
            instance,
            "copy",
            (dst as u32, src as u32, len as u32),
        );
        if len > MAX_CHUNK_ELEMENTS {
            assert_checked_often(calls, len, MAX_CHUNK_ELEMENTS, "table.copy");
        } else if len > 65_536 {
            assert!(calls >= 1);
        }
        model.copy_within(src..src + len, dst);
        let actual: Vec<u64> = (0..TABLE_SIZE)
            .map(|i| match table.get(&store, i) {
                Some(Val::ExternRef(Some(ExternRef(v)))) => v,
                other => panic!("element {i}: {other:?}"),
            })
            .collect();
        assert!(actual == model, "table.copy({dst}, {src}, {len})");
    }
}

#[test]
fn table_grow_in_steps_and_abandoned() {
    let engine = engine(MemoryStrategy::Guarded, true);
    let mut store = counting_store(&engine);
    let instance = table_instance(&engine, &mut store);
    let grow = instance
        .get_typed_func::<(u32,), i32>(&store, "grow")
        .expect("grow");
    let call = instance
        .get_typed_func::<(u32,), i32>(&store, "call")
        .expect("call");
    let before = *store.data();
    assert_eq!(
        grow.call(&mut store, (100_000,)).expect("grow"),
        TABLE_SIZE as i32
    );
    let calls = *store.data() - before - 1;
    assert!(calls >= 1, "table.grow by 100,000: {calls} callback calls");
    let table = instance.get_table(&store, "funcs").expect("funcs");
    assert_eq!(table.size(&store), 400_000);
    assert_eq!(call.call(&mut store, (399_999,)).expect("call"), 1);
    assert_eq!(call.call(&mut store, (TABLE_SIZE,)).expect("call"), 1);
    // Past the maximum: -1 at once.
    let before = *store.data();
    assert_eq!(grow.call(&mut store, (1,)).expect("grow"), -1);
    assert_eq!(*store.data() - before, 1, "only the entry check ran");

    // A callback that ends the call between two steps: the grow is
    // abandoned, the table keeps its size, and it can grow again.
    let mut store = Store::new(&engine, 0u64);
    let instance = table_instance(&engine, &mut store);
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
        *caller.data_mut() += 1;
        // The first call is the function's entry check; the second comes
        // between two steps of the grow.
        if *caller.data() == 2 {
            Err(Trap::new(TrapKind::Cancelled))
        } else {
            Ok(UpdateDeadline::Continue(0))
        }
    });
    let grow = instance
        .get_typed_func::<(u32,), i32>(&store, "grow")
        .expect("grow");
    let err = grow.call(&mut store, (100_000,)).expect_err("cancelled");
    assert_eq!(trap_kind(&err), TrapKind::Cancelled);
    let table = instance.get_table(&store, "funcs").expect("funcs");
    assert_eq!(table.size(&store), TABLE_SIZE, "the grow did not happen");
    assert_eq!(
        grow.call(&mut store, (100_000,)).expect("grow"),
        TABLE_SIZE as i32
    );
    assert_eq!(table.size(&store), 400_000);
    assert!(matches!(
        table.get(&store, 399_999),
        Some(Val::FuncRef(Some(_)))
    ));
}

#[test]
fn a_trap_from_the_callback_ends_a_fill_between_chunks() {
    let engine = engine(MemoryStrategy::Guarded, true);
    let module = Module::new(&engine, memory_wat()).expect("module");
    let mut store = Store::new(&engine, 0u64);
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|mut caller: Caller<'_, u64>| {
        *caller.data_mut() += 1;
        if *caller.data() == 4 {
            Err(Trap::new(TrapKind::Timeout))
        } else {
            Ok(UpdateDeadline::Continue(0))
        }
    });
    let fill = instance
        .get_typed_func::<(u32, u32, u32), ()>(&store, "fill")
        .expect("fill");
    let err = fill
        .call(&mut store, (0, 0x11, 64 * MIB as u32))
        .expect_err("timeout");
    assert_eq!(trap_kind(&err), TrapKind::Timeout);
    assert_eq!(*store.data(), 4);
    let memory = instance.get_memory(&store, "mem").expect("mem");
    let bytes = memory.data(&store);
    // What the chunks before the trap wrote stays written; the rest not.
    assert_eq!(bytes[0], 0x11);
    assert_eq!(bytes[64 * MIB - 1], 0);
    // The store goes on.
    store.clear_epoch_deadline_callback();
    fill.call(&mut store, (0, 0x22, 64 * MIB as u32))
        .expect("fill");
    assert_eq!(memory.data(&store)[64 * MIB - 1], 0x22);
}

#[test]
fn without_epoch_checks_bulk_operations_never_call_the_callback() {
    let engine = engine(MemoryStrategy::Guarded, false);
    let module = Module::new(&engine, memory_wat()).expect("module");
    let mut store = counting_store(&engine);
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .expect("instantiate");
    let fill = instance
        .get_typed_func::<(u32, u32, u32), ()>(&store, "fill")
        .expect("fill");
    fill.call(&mut store, (0, 1, 64 * MIB as u32))
        .expect("fill");
    assert_eq!(*store.data(), 0);
}

// ---- suspending the green thread between chunks ------------------------------

use corosensei::stack::{DefaultStack, Stack};
use corosensei::{Coroutine, CoroutineResult, Yielder};

#[test]
fn the_callback_may_suspend_the_green_thread_between_chunks() {
    let engine = engine(MemoryStrategy::Checked, true);
    let module = Module::new(&engine, memory_wat()).expect("module");
    let stack = DefaultStack::new(1 << 20).expect("stack");
    let mut state = ThreadState::for_stack(stack.limit().get(), stack.base().get());
    // The green thread instantiates, fills 64 MiB and copies 40 MiB
    // backwards, and reports the memory's checksum; its callback suspends
    // it every time (the store's data holds the yielder's address).
    let mut green = Coroutine::with_stack(stack, move |yielder: &Yielder<(), ()>, ()| {
        let mut store = Store::new(&engine, yielder as *const Yielder<(), ()> as usize);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .expect("instantiate");
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(|caller: Caller<'_, usize>| {
            // SAFETY: the store's data is the address of the yielder of the
            // coroutine this store's wasm runs on, which outlives the call.
            let yielder = unsafe { &*(*caller.data() as *const Yielder<(), ()>) };
            yielder.suspend(());
            Ok(UpdateDeadline::Continue(0))
        });
        let f = |name| {
            instance
                .get_typed_func::<(u32, u32, u32), ()>(&store, name)
                .expect("export")
        };
        let (fill, copy) = (f("fill"), f("copy"));
        fill.call(&mut store, (0, 0x5A, 64 * MIB as u32))
            .expect("fill");
        fill.call(&mut store, (MIB as u32, 0x3C, MIB as u32))
            .expect("fill");
        copy.call(&mut store, (2 * MIB as u32 + 1, 0, 40 * MIB as u32))
            .expect("copy");
        let memory = instance.get_memory(&store, "mem").expect("mem");
        let mut model = vec![0x5Au8; 64 * MIB];
        model.resize(memory.data(&store).len(), 0);
        model[MIB..2 * MIB].fill(0x3C);
        model.copy_within(0..40 * MIB, 2 * MIB + 1);
        memory.data(&store) == &model[..]
    });
    let mut suspensions = 0;
    let matches = loop {
        // SAFETY: `state` belongs to `green`, which runs on this thread
        // between the two swaps.
        let outer = unsafe { swap_thread_state(state) };
        let result = green.resume(());
        // SAFETY: putting back what was taken.
        state = unsafe { swap_thread_state(outer) };
        match result {
            CoroutineResult::Yield(()) => suspensions += 1,
            CoroutineResult::Return(matches) => break matches,
        }
    };
    assert!(
        matches,
        "the memory holds exactly what the operations wrote"
    );
    // Entry checks of three calls, plus at least 15 + 0 + 9 chunk boundaries.
    assert!(suspensions >= 3 + 24, "suspended {suspensions} times");
}
