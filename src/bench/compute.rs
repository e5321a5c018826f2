//! The `compute` workload: the kernels of `compute.wat` (`fib`, `sieve`,
//! `matmul`), each timed `reps` times, with epoch checks compiled in and
//! out: what preemption costs a busy instance.
//!
//! As in the Wasmtime peer's `compute`: one instance per mode, every kernel
//! called `reps` times on it, the clock around the guest call alone;
//! `matmul_init` (untimed) before each `matmul`, since `sieve` reuses the
//! memory. Every result is checked (against a Rust computation of the same
//! kernel for non-default arguments).
//!
//! Both modes run on a green thread of a Shoal runtime, in a store of
//! their own:
//!
//! - `epoch: true`: the runtime's engine (epoch checks at every function
//!   entry and loop back edge) with the ticker running; at each deadline the
//!   store's callback yields the green thread (`try_yield_now`: back of the
//!   worker's run queue, which is empty here, so it resumes at once) and
//!   re-arms one timeslice: `epoch_yields_per_call` counts those yields.
//! - `epoch: false`: an engine with the same settings but no epoch checks.
//!
//! With `--tick-us` far above a call's length the "on" mode measures the
//! checks alone (no yield lands).

use super::error::StressError;
use super::options::StressOptions;
use super::report::{ms, round, Column, Record, Report, Value};
use shoal_instance::{Config, Engine, Linker, Module, Store, UpdateDeadline};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters of `compute` (the peer's defaults).
#[derive(Clone, Debug)]
pub struct ComputeParams {
    /// Calls per kernel (`-r`).
    pub reps: usize,
    /// `fib`'s argument.
    pub fib_n: u32,
    /// `sieve`'s argument.
    pub sieve_n: u32,
    /// `matmul`'s matrix size.
    pub matmul_n: u32,
    /// Epoch modes to run, in this order.
    pub epoch: Vec<bool>,
}

impl Default for ComputeParams {
    fn default() -> Self {
        ComputeParams {
            reps: 11,
            fib_n: 30,
            sieve_n: 10_000_000,
            matmul_n: 200,
            epoch: vec![true, false],
        }
    }
}

/// The table's columns.
pub const COLUMNS: &[Column] = &[
    ("kernel", "kernel"),
    ("arg", "arg"),
    ("epoch", "epoch"),
    ("median_ms", "median ms"),
    ("min_ms", "min ms"),
    ("max_ms", "max ms"),
    ("epoch_yields_per_call", "yields/call"),
];

/// Bytes of `compute.wat`'s memory (160 pages).
const MEMORY_BYTES: u64 = 160 * 65536;

/// One of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Naive recursive Fibonacci.
    Fib,
    /// Sieve of Eratosthenes.
    Sieve,
    /// Naive n×n f64 matrix product.
    Matmul,
}

impl Kernel {
    /// Every kernel, in the peer's order.
    pub const ALL: [Kernel; 3] = [Kernel::Fib, Kernel::Sieve, Kernel::Matmul];

    /// The `kernel` field.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Fib => "fib",
            Kernel::Sieve => "sieve",
            Kernel::Matmul => "matmul",
        }
    }

    fn arg(self, p: &ComputeParams) -> u32 {
        match self {
            Kernel::Fib => p.fib_n,
            Kernel::Sieve => p.sieve_n,
            Kernel::Matmul => p.matmul_n,
        }
    }
}

/// `fib(n)` as `compute.wat` computes it (wrapping, like i64.add).
pub fn fib(n: u32) -> i64 {
    let (mut a, mut b) = (0i64, 1i64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

/// The number of primes up to `n`.
pub fn primes_up_to(n: u32) -> i32 {
    if n == 10_000_000 {
        return 664_579;
    }
    let n = n as usize;
    let mut is = vec![true; n + 1];
    let mut count = 0;
    for i in 2..=n {
        if is[i] {
            count += 1;
            let mut j = i.saturating_mul(i);
            while j <= n {
                is[j] = false;
                j += i;
            }
        }
    }
    count
}

/// The sum of the elements of `A × B` for `compute.wat`'s matrices.
pub fn matmul_sum(n: u32) -> f64 {
    if n == 200 {
        return 2000.0;
    }
    let n = n as i64;
    let a = |i: i64, j: i64| (((i + j) % 7) - 3) as f64;
    let b = |i: i64, j: i64| (((i * j) % 5) - 2) as f64;
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0;
            for k in 0..n {
                acc += a(i, k) * b(k, j);
            }
            total += acc;
        }
    }
    total
}

/// One kernel's timings in one mode.
struct Timing {
    kernel: Kernel,
    result: Value,
    times: Vec<Duration>,
    yields: u64,
}

/// Runs `compute` (see the module docs).
pub fn run(opts: &StressOptions, p: &ComputeParams) -> Result<Report, StressError> {
    let bad = |m: &str| Err(StressError::Config(m.to_string()));
    if p.reps == 0 || p.epoch.is_empty() {
        return bad("compute needs -r >= 1 and at least one --epoch mode");
    }
    if u64::from(p.sieve_n) + 1 > MEMORY_BYTES || p.sieve_n < 2 {
        return bad("--sieve-n must be in 2..=10485759 (compute.wat has 10 MiB of memory)");
    }
    if 24 * u64::from(p.matmul_n).pow(2) > MEMORY_BYTES || p.matmul_n == 0 {
        return bad("--matmul-n must be in 1..=661 (three n×n f64 matrices in 10 MiB)");
    }
    if p.fib_n > 40 {
        return bad("--fib-n must be at most 40 (naive recursion: fib(40) makes 331M calls)");
    }
    opts.check()?;
    let runtime = opts.runtime(16)?;
    let wat = opts.read_workload("compute.wat")?;
    let ticks = (runtime.timeslice().as_nanos() / runtime.epoch_tick().as_nanos().max(1)) as u64;

    let mut report = Report::new("compute", COLUMNS);
    for &epoch in &p.epoch {
        let engine = if epoch {
            runtime.engine().clone()
        } else {
            Engine::new(Config {
                epoch_interruption: false,
                ..runtime.engine().config().clone()
            })
            .map_err(|e| StressError::guest("an engine without epoch checks", e))?
        };
        let module =
            Module::new(&engine, &wat).map_err(|e| StressError::guest("compute.wat", e))?;
        let params = p.clone();
        let timings = runtime
            .executor()
            .spawn(move || time_kernels(&engine, &module, &params, epoch, ticks.max(1)))
            .map_err(|e| StressError::guest("the compute green thread", e))?
            .join()
            .map_err(|e| StressError::guest("the compute green thread", e))??;
        for t in timings {
            let mut times = t.times;
            times.sort_unstable();
            let mut r = opts.header("compute", epoch);
            r.extend(
                Record::new()
                    .with("kernel", t.kernel.name())
                    .with("arg", t.kernel.arg(p))
                    .with("result", t.result)
                    .with("reps", p.reps)
                    .with("min_ms", ms(times[0]))
                    .with("median_ms", ms(times[times.len() / 2]))
                    .with("max_ms", ms(times[times.len() - 1]))
                    .with(
                        "epoch_yields_per_call",
                        round(t.yields as f64 / p.reps as f64, 2),
                    ),
            );
            report.records.push(r);
        }
    }
    add_ratios(&mut report);
    Ok(report)
}

/// Notes with each kernel's on/off ratio of medians, when both ran.
fn add_ratios(report: &mut Report) {
    for k in Kernel::ALL {
        let median = |epoch: bool| {
            report
                .records
                .iter()
                .find(|r| {
                    r.get("kernel").and_then(Value::as_str) == Some(k.name())
                        && r.get("epoch") == Some(&Value::Bool(epoch))
                })
                .and_then(|r| r.get("median_ms"))
                .and_then(Value::as_f64)
        };
        if let (Some(on), Some(off)) = (median(true), median(false)) {
            report.notes.push(format!(
                "{}: epoch checks on/off = {:.3} (target <= 1.10)",
                k.name(),
                on / off.max(1e-9)
            ));
        }
    }
}

/// On a green thread: one instance, every kernel `reps` times.
fn time_kernels(
    engine: &Engine,
    module: &Module,
    p: &ComputeParams,
    epoch: bool,
    slice_ticks: u64,
) -> Result<Vec<Timing>, StressError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| StressError::Instances {
        failed: 1,
        first: format!("{what}: {e}"),
    };
    let yields = Arc::new(AtomicU64::new(0));
    let mut store = Store::new(engine, ());
    if epoch {
        let y = yields.clone();
        store.set_epoch_deadline(slice_ticks + 1);
        store.epoch_deadline_callback(move |_| {
            y.fetch_add(1, Ordering::Relaxed);
            // Cancellation is not used here; a cancelled yield just goes on.
            let _ = shoal_scheduler::try_yield_now();
            Ok(UpdateDeadline::Continue(slice_ticks))
        });
    }
    let instance = Linker::<()>::new(engine)
        .instantiate(&mut store, module)
        .map_err(|e| fail("instantiate compute.wat", &e))?;
    let get = |name: &str| fail(&format!("export {name}"), &"missing or of another type");
    let fib_f = instance
        .get_typed_func::<(i32,), i64>(&store, "fib")
        .map_err(|_| get("fib"))?;
    let sieve_f = instance
        .get_typed_func::<(i32,), i32>(&store, "sieve")
        .map_err(|_| get("sieve"))?;
    let init_f = instance
        .get_typed_func::<(i32,), ()>(&store, "matmul_init")
        .map_err(|_| get("matmul_init"))?;
    let matmul_f = instance
        .get_typed_func::<(i32,), f64>(&store, "matmul")
        .map_err(|_| get("matmul"))?;
    let (want_fib, want_sieve, want_mm) = (
        fib(p.fib_n),
        primes_up_to(p.sieve_n),
        matmul_sum(p.matmul_n),
    );

    let mut out = Vec::new();
    for kernel in Kernel::ALL {
        let arg = kernel.arg(p) as i32;
        let mut times = Vec::with_capacity(p.reps);
        let mut result = Value::Null;
        let yields0 = yields.load(Ordering::Relaxed);
        for _ in 0..p.reps {
            if kernel == Kernel::Matmul {
                init_f
                    .call(&mut store, (arg,))
                    .map_err(|e| fail("matmul_init", &e))?;
            }
            if epoch {
                store.set_epoch_deadline(slice_ticks + 1);
            }
            let t = Instant::now();
            let (ok, value) = match kernel {
                Kernel::Fib => {
                    let v = fib_f
                        .call(&mut store, (arg,))
                        .map_err(|e| fail("fib", &e))?;
                    (v == want_fib, Value::from(v))
                }
                Kernel::Sieve => {
                    let v = sieve_f
                        .call(&mut store, (arg,))
                        .map_err(|e| fail("sieve", &e))?;
                    (v == want_sieve, Value::from(v))
                }
                Kernel::Matmul => {
                    let v = matmul_f
                        .call(&mut store, (arg,))
                        .map_err(|e| fail("matmul", &e))?;
                    (v == want_mm, Value::from(v))
                }
            };
            times.push(t.elapsed());
            if !ok {
                return Err(fail(
                    &format!("{}({arg})", kernel.name()),
                    &format!("returned {value:?}, which is wrong"),
                ));
            }
            result = value;
        }
        out.push(Timing {
            kernel,
            result,
            times,
            yields: yields.load(Ordering::Relaxed) - yields0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_kernels() {
        assert_eq!(fib(30), 832_040);
        assert_eq!(primes_up_to(100), 25);
        assert_eq!(matmul_sum(2), {
            // A = [[-3,-2],[-2,-1]], B = [[-2,-2],[-2,-1]]
            let a = [[-3.0, -2.0], [-2.0, -1.0]];
            let b = [[-2.0, -2.0], [-2.0, -1.0]];
            let mut t = 0.0;
            for row in &a {
                for (b0, b1) in b[0].iter().zip(&b[1]) {
                    t += row[0] * b0 + row[1] * b1;
                }
            }
            t
        });
    }
}
