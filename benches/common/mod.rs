//! The compute kernels of `../shared/workloads/compute.wat`, loaded into one
//! Shoal instance and timed one call at a time exactly as the Wasmtime peer's
//! `compute` subcommand times them (`../shared/peers/wasmtime-peer`,
//! `compute_bench`): the clock runs around the guest call only; `matmul`
//! re-creates its input matrices with `matmul_init` before every call,
//! untimed, because `sieve` reuses the same memory.
//!
//! Used by `benches/compute.rs` (criterion); the peer-format JSON lines come
//! from `shoal::bench::compute` (`shoal stress compute`,
//! `examples/compute_report.rs`).

#![allow(dead_code)] // each bench or example uses a part of this module

use shoal::{Config, Engine, Instance, Linker, Module, Store, TypedFunc};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The arguments the peer uses by default, and the results it expects.
pub const FIB_N: i32 = 30;
pub const FIB_WANT: i64 = 832_040;
pub const SIEVE_N: i32 = 10_000_000;
pub const SIEVE_WANT: i32 = 664_579;
pub const MATMUL_N: i32 = 200;
pub const MATMUL_WANT: f64 = 2000.0;

/// One of the three kernels of `compute.wat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Fib,
    Sieve,
    Matmul,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Fib, Kernel::Sieve, Kernel::Matmul];

    /// The name the peer prints in its `kernel` field.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Fib => "fib",
            Kernel::Sieve => "sieve",
            Kernel::Matmul => "matmul",
        }
    }

    /// The argument the kernel is called with (the peer's `arg` field).
    pub fn arg(self) -> i32 {
        match self {
            Kernel::Fib => FIB_N,
            Kernel::Sieve => SIEVE_N,
            Kernel::Matmul => MATMUL_N,
        }
    }
}

/// Where `compute.wat` lives: `../shared/workloads/` next to the repository.
pub fn compute_wat_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/compute.wat")
}

/// Reads `compute.wat`, with a message that says where it was expected.
pub fn read_compute_wat() -> Vec<u8> {
    let path = compute_wat_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the shared compute workload at {}: {e}\n\
             The benchmark expects the project's `shared/` directory (with \
             workloads/compute.wat) next to this repository.",
            path.display()
        )
    })
}

/// An engine with every default but the epoch setting.
pub fn engine(epoch_interruption: bool) -> Engine {
    Engine::new(Config {
        epoch_interruption,
        ..Config::default()
    })
    .expect("create engine")
}

/// One instance of `compute.wat` with its typed exports.
pub struct ComputeInstance {
    store: Store<()>,
    fib: TypedFunc<(i32,), i64>,
    sieve: TypedFunc<(i32,), i32>,
    matmul_init: TypedFunc<(i32,), ()>,
    matmul: TypedFunc<(i32,), f64>,
}

impl ComputeInstance {
    /// Compiles `compute.wat` on an engine with or without epoch checks and
    /// instantiates it. With epoch checks on, the store's deadline is put
    /// out of reach and nothing advances the epoch, so the checks run but
    /// never yield: what is measured is their cost alone.
    pub fn new(epoch_interruption: bool) -> ComputeInstance {
        let engine = engine(epoch_interruption);
        let module = Module::new(&engine, read_compute_wat()).expect("compile compute.wat");
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX);
        let linker = Linker::new(&engine);
        let instance: Instance = linker
            .instantiate(&mut store, &module)
            .expect("instantiate compute.wat");
        let fib = instance
            .get_typed_func::<(i32,), i64>(&store, "fib")
            .expect("export fib");
        let sieve = instance
            .get_typed_func::<(i32,), i32>(&store, "sieve")
            .expect("export sieve");
        let matmul_init = instance
            .get_typed_func::<(i32,), ()>(&store, "matmul_init")
            .expect("export matmul_init");
        let matmul = instance
            .get_typed_func::<(i32,), f64>(&store, "matmul")
            .expect("export matmul");
        ComputeInstance {
            store,
            fib,
            sieve,
            matmul_init,
            matmul,
        }
    }

    /// Runs `kernel` once with the peer's argument, checks the result, and
    /// returns the time of the guest call alone and the result as JSON text.
    pub fn time_once(&mut self, kernel: Kernel) -> (Duration, String) {
        let store = &mut self.store;
        match kernel {
            Kernel::Fib => {
                let (elapsed, v) = timed(|| self.fib.call(store, (FIB_N,)).expect("call fib"));
                assert_eq!(v, FIB_WANT, "fib({FIB_N})");
                (elapsed, v.to_string())
            }
            Kernel::Sieve => {
                let (elapsed, v) =
                    timed(|| self.sieve.call(store, (SIEVE_N,)).expect("call sieve"));
                assert_eq!(v, SIEVE_WANT, "sieve({SIEVE_N})");
                (elapsed, v.to_string())
            }
            Kernel::Matmul => {
                self.matmul_init
                    .call(&mut *store, (MATMUL_N,))
                    .expect("call matmul_init");
                let (elapsed, v) =
                    timed(|| self.matmul.call(store, (MATMUL_N,)).expect("call matmul"));
                assert_eq!(v, MATMUL_WANT, "matmul({MATMUL_N})");
                (elapsed, format!("{v:.1}"))
            }
        }
    }
}

/// Runs `call`, returning how long it took and what it returned.
fn timed<R>(call: impl FnOnce() -> R) -> (Duration, R) {
    let start = Instant::now();
    let result = call();
    (start.elapsed(), result)
}
