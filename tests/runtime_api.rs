//! The runtime API end to end: untyped and typed spawns, `spawn_then`,
//! running instances on green threads the embedder spawned (`run_here`),
//! spawning instances from inside green threads, preemption of spinning
//! code (also in a start function), and what is `Send`/`Sync`.

use shoal::runtime::{InstanceTemplate, JoinHandle, RunError, Runtime, TypedTemplate};
use shoal::{Linker, TrapKind, Val};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADD: &str = r#"(module
  (memory (export "memory") 1 1)
  (func (export "add") (param i32 i64) (result i64)
    (i64.store (i32.const 8) (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))
    (i64.load (i32.const 8))))"#;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime")
}

#[test]
fn untyped_typed_and_inspected_spawns() {
    let rt = runtime(2);
    let module = rt.compile(ADD).expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let h = rt
        .spawn(&module, &linker, "add", vec![Val::I32(2), Val::I64(40)])
        .expect("spawn");
    assert_eq!(h.join().expect("ok"), vec![Val::I64(42)]);
    let h = rt
        .spawn_typed::<(), (i32, i64), i64>(&module, &linker, "add", (-2, 44))
        .expect("spawn");
    assert_eq!(h.join().expect("ok"), 42);
    // Arguments of the wrong type are an error of that instance.
    let err = rt
        .spawn(&module, &linker, "add", vec![Val::I64(2), Val::I64(40)])
        .expect("spawn")
        .join()
        .unwrap_err();
    assert!(matches!(err, RunError::Instance(_)), "{err}");

    // spawn_then: read the result back from memory on the green thread.
    let template = rt.template(&module, &linker, "add").expect("template");
    let h = template
        .spawn_then((), vec![Val::I32(1), Val::I64(2)], |f| {
            let memory = f
                .instance
                .and_then(|i| i.get_memory(&*f.store, "memory"))
                .expect("memory");
            let mut bytes = [0u8; 8];
            memory.read(&*f.store, 8, &mut bytes).expect("read");
            (
                f.result.is_ok(),
                i64::from_le_bytes(bytes),
                f.stats.slices >= 1,
            )
        })
        .expect("spawn");
    assert_eq!(h.join().expect("ok"), (true, 3, true));
}

#[test]
fn run_here_in_embedder_green_threads_and_os_threads() {
    let rt = runtime(2);
    let module = rt.compile(ADD).expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let add = rt
        .template(&module, &linker, "add")
        .expect("template")
        .typed::<(i32, i64), i64>()
        .expect("typed");
    // Green threads of the runtime's own executor.
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let add = add.clone();
            rt.executor()
                .spawn(move || add.run_here((), (i, 1000)))
                .expect("spawn")
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            h.join().expect("green thread").expect("instance"),
            1000 + i as i64
        );
    }
    // A plain OS thread.
    assert_eq!(add.run_here((), (1, 1)).expect("on an OS thread"), 2);
    // A green thread of an executor without the runtime's switch hook is
    // refused: a trap there could jump onto the wrong stack.
    let foreign = shoal::scheduler::Executor::builder()
        .workers(1)
        .epoch_tick(rt.epoch_tick())
        .build()
        .expect("executor");
    let a = add.clone();
    let refused = foreign
        .spawn(move || a.run_here((), (1, 1)))
        .expect("spawn");
    assert!(matches!(
        refused.join().expect("green thread"),
        Err(RunError::NotOnRuntime)
    ));
}

#[test]
fn green_threads_spawn_instances_per_request() {
    let rt = runtime(2);
    let module = rt.compile(ADD).expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let add = rt
        .template(&module, &linker, "add")
        .expect("template")
        .typed::<(i32, i64), i64>()
        .expect("typed");
    // An "accept loop" green thread spawning one instance per "request"
    // and collecting the results, parking (not blocking) while it waits.
    let server = rt
        .executor()
        .spawn(move || {
            let handles: Vec<JoinHandle<i64>> = (0..1000)
                .map(|i| add.spawn((i, 1)).expect("spawn"))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("ok"))
                .sum::<i64>()
        })
        .expect("spawn");
    assert_eq!(server.join().expect("server"), (1..=1000).sum::<i64>());
}

const SPINNER: &str = r#"(module
  (import "env" "progress" (func $progress (param i32)))
  (memory 1 1)
  (func (export "spin") (param $id i32) (result i32)
    (loop $forever
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (if (i64.eq (i64.load (i32.const 0)) (i64.const 100000))
        (then (call $progress (local.get $id))))
      (br $forever))
    (i32.const 0)))"#;

#[test]
fn spinners_share_one_worker() {
    let rt = runtime(1);
    let module = rt.compile(SPINNER).expect("compile");
    let progressed = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(rt.engine());
    let p = progressed.clone();
    linker
        .func_wrap("env", "progress", move |_: i32| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .expect("define");
    let spin = rt
        .template(&module, &linker, "spin")
        .expect("template")
        .typed::<i32, i32>()
        .expect("typed");
    // Three instances that never return, on one worker: without
    // preemption only the first would ever run.
    let handles: Vec<_> = (0..3).map(|i| spin.spawn(i).expect("spawn")).collect();
    let t = Instant::now();
    while progressed.load(Ordering::SeqCst) < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "an instance never ran"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for h in &handles {
        h.cancel();
    }
    for h in handles {
        assert!(h.join().unwrap_err().is_cancelled());
    }
}

#[test]
fn a_spinning_start_function_is_preempted_and_budgeted() {
    let rt = runtime(1);
    let module = rt
        .compile(
            r#"(module
                (func $start (loop $l (br $l)))
                (start $start)
                (func (export "run")))"#,
        )
        .expect("compile");
    let quick = rt.compile(ADD).expect("compile");
    let linker = Linker::<()>::new(rt.engine());
    let budget = shoal::Contract {
        cpu_budget_epochs: Some(rt.epochs(Duration::from_millis(20))),
        ..shoal::Contract::default()
    };
    let start = rt
        .template_with_contract(&module, &linker, "run", budget)
        .expect("template");
    let stuck = start.spawn(vec![]).expect("spawn");
    // The same single worker still serves others meanwhile.
    let add = rt
        .template(&quick, &linker, "add")
        .expect("template")
        .typed::<(i32, i64), i64>()
        .expect("typed");
    assert_eq!(add.spawn((1, 2)).expect("spawn").join().expect("ok"), 3);
    let err = stuck.join().unwrap_err();
    assert_eq!(err.trap_kind(), Some(TrapKind::Timeout), "{err}");
}

#[test]
fn handles_and_templates_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    fn send<X: Send>() {}
    send_sync::<Runtime>();
    send_sync::<InstanceTemplate<()>>();
    send_sync::<TypedTemplate<(), (i32, i64), i64>>();
    send_sync::<JoinHandle<Vec<Val>>>();
    send::<RunError>();
    send_sync::<shoal::runtime::SpawnError>();
}

/// The runtime forwards `rotate_workers` to its executor: on by default,
/// where it applies (one unpinned worker per CPU, at least two).
#[test]
fn worker_rotation_is_on_by_default_and_can_be_turned_off() {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0);
    // SAFETY: `set` is a valid cpu_set_t.
    let cpus = unsafe { libc::CPU_COUNT(&set) } as usize;
    let rotating = Runtime::builder().workers(cpus).build().expect("runtime");
    assert_eq!(rotating.rotates_workers(), cpus >= 2);
    drop(rotating);
    let fixed = Runtime::builder()
        .workers(cpus)
        .rotate_workers(false)
        .build()
        .expect("runtime");
    assert!(!fixed.rotates_workers());
}
