//! The runtime: WebAssembly instances as preemptible green threads.
//!
//! A [`Runtime`] is an [`Engine`] whose compiled code checks the
//! scheduler's process-wide epoch, plus an [`Executor`] (one worker thread
//! per core) whose switch hook carries each green thread's trap state.
//! Besides the workers, the process runs one epoch ticker thread per CPU
//! and, while the workers are one per CPU and unpinned, a rotator thread
//! that moves them to the next CPU every 100 ms
//! ([`RuntimeBuilder::rotate_workers`]). Every instance runs on its own
//! green thread:
//!
//! ```no_run
//! use shoal::runtime::Runtime;
//! use shoal::{Linker, Trap};
//!
//! let runtime = Runtime::builder().workers(2).build()?;
//! let module = runtime.compile(r#"(module
//!     (import "env" "sleep_ms" (func $sleep (param i32)))
//!     (func (export "run") (param i32) (result i32)
//!         (call $sleep (i32.const 1))
//!         (i32.mul (local.get 0) (i32.const 2))))"#)?;
//! let mut linker = Linker::<()>::new(runtime.engine());
//! linker.func_wrap("env", "sleep_ms", |ms: i32| -> Result<(), Trap> {
//!     shoal::runtime::host::sleep(std::time::Duration::from_millis(ms as u64))
//! })?;
//! let run = runtime.template(&module, &linker, "run")?.typed::<i32, i32>()?;
//! let handles: Vec<_> = (0..10_000).map(|i| run.spawn(i)).collect::<Result<_, _>>()?;
//! for (i, h) in handles.into_iter().enumerate() {
//!     assert_eq!(h.join()?, 2 * i as i32);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The protocol, end to end
//!
//! 1. **Build** ([`RuntimeBuilder::build`]): the engine is created with
//!    epoch interruption on, reading `shoal_scheduler::epoch_counter()`, and
//!    with the default contract's memory, table and stack limits as its
//!    ceilings; the executor starts its workers and the epoch ticker, with
//!    the runtime's switch hook (`switch_hook.rs`).
//! 2. **Compile** ([`Runtime::compile`]) once per module.
//! 3. **Template** ([`Runtime::template`], `template.rs`): checks the
//!    module against the contract (a forbidden import is refused with its
//!    name), resolves imports once, finds the entry export.
//! 4. **Spawn** (`spawn.rs`): takes a permit from the contract's instance
//!    limit and places a green thread on the least-loaded worker. The
//!    instance is born *inside* that green thread (store, instance from
//!    the engine's pools), runs its entry export, and is torn down there.
//! 5. **Run, yield, trap** (`preemption.rs`): compiled code reaches its
//!    deadline once per timeslice; the deadline callback yields the green
//!    thread (back of the run queue), or ends the call with `Timeout` (budget
//!    spent) or `Cancelled`. Host functions may park the green thread
//!    ([`host`]). A fault ends only its instance, as a trap returned by the
//!    call on that green thread.
//! 6. **Join or cancel** ([`JoinHandle`]).
//! 7. **Shut down** ([`Runtime::shutdown`], or drop: cancel): running
//!    instances trap with `Cancelled` at their next deadline, parked ones
//!    when their host function sees the cancellation; then the workers exit.
//!
//! # Security by contract
//!
//! A [`Contract`] is checked when a template is built (imports, declared
//! memory and table sizes; `Contract::check` does the same without a
//! runtime) and enforced while instances run:
//!
//! - `memory.grow` / `table.grow` beyond `max_memory_pages` /
//!   `max_table_elements` fail (return -1) as the spec says. The default
//!   contract's limits are the engine's, for every instance; a template's
//!   own contract sets stricter ones on each of its instances' stores
//!   (`Store::limiter`).
//! - `stack_size`: the default contract's is the size of every green
//!   thread's stack and the engine's `max_wasm_stack`; a template's own
//!   contract may set less (enforced per store: deeper recursion traps with
//!   `StackOverflow`), not more (refused with
//!   [`SpawnError::UnenforceableContract`]).
//! - `cpu_budget_epochs`: CPU time (ticks the instance's green thread
//!   actually ran, `cpu_clock.rs`); a spent budget ends the instance with
//!   `Trap { kind: Timeout }`, within one timeslice.
//! - `max_instances`: live instances per contract; a spawn beyond it fails
//!   at once with [`SpawnError::InstanceLimit`].
//!
//! # Embedding in your own green threads
//!
//! [`Runtime::executor`] is a handle to the runtime's executor: green
//! threads spawned with it (a server's accept loop, a connection handler)
//! can spawn instances from templates or run one in place with
//! [`InstanceTemplate::run_here`].

mod builder;
mod cpu_clock;
mod error;
pub mod host;
mod instance_limit;
mod join;
mod preemption;
mod slice_clock;
mod spawn;
mod switch_hook;
mod template;

pub use builder::RuntimeBuilder;
pub use error::{BuildError, RunError, SpawnError};
pub use join::JoinHandle;
pub use preemption::SliceStats;
pub use shoal_scheduler::{ShutdownError, ShutdownMode};
pub use spawn::Finished;
pub use template::{InstanceTemplate, TypedTemplate};

use crate::contract::Contract;
use instance_limit::InstanceLimit;
use shoal_instance::{Engine, Linker, Module, Val, WasmParams, WasmResults};
use shoal_scheduler::Executor;
use std::sync::Arc;
use std::time::Duration;

/// An engine and an executor that run every instance as a preemptible
/// green thread. See the module docs.
///
/// Dropping it cancels every instance still alive (as
/// [`shutdown`](Self::shutdown) with [`ShutdownMode::Cancel`]) and waits for
/// the workers.
pub struct Runtime {
    engine: Engine,
    executor: Executor,
    epoch_tick: Duration,
    timeslice_ticks: u64,
    contract: Contract,
    limit: Arc<InstanceLimit>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.executor.workers())
            .field("epoch_tick", &self.epoch_tick)
            .field("timeslice_ticks", &self.timeslice_ticks)
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// A runtime with the default configuration.
    pub fn new() -> Result<Runtime, BuildError> {
        Self::builder().build()
    }

    fn start(b: RuntimeBuilder) -> Result<Runtime, BuildError> {
        let timeslice_ticks = b.timeslice_ticks()?;
        let config = b.engine_config_for_runtime()?;
        let engine = Engine::with_epoch_counter(config, shoal_scheduler::epoch_counter())
            .map_err(BuildError::Engine)?;
        let mut executor = Executor::builder()
            .pin_workers(b.pin_workers)
            .rotate_workers(b.rotate_workers)
            .epoch_tick(b.epoch_tick)
            .timeslice(Some(ticks_to_duration(b.epoch_tick, timeslice_ticks)))
            .stack_size(b.contract.stack_size)
            .max_stacks_per_worker(b.max_instances_per_worker)
            .switch_hook(switch_hook::HOOK)
            // Memory released by a burst of finished instances goes back to
            // the kernel once the worker is quiet (`shoal_instance::pool`).
            .idle_hook(shoal_instance::pool::discard_idle_memory);
        if let Some(workers) = b.workers {
            executor = executor.workers(workers);
        }
        let executor = executor.build().map_err(BuildError::Executor)?;
        Ok(Runtime {
            engine,
            executor,
            epoch_tick: b.epoch_tick,
            timeslice_ticks,
            limit: InstanceLimit::new(b.contract.max_instances),
            contract: b.contract,
        })
    }

    /// The engine: compile modules with it, and create linkers for it.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A handle to the executor, to spawn green threads of your own that
    /// may spawn instances or run them in place
    /// ([`InstanceTemplate::run_here`]).
    pub fn executor(&self) -> &shoal_scheduler::Handle {
        self.executor.handle()
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.executor.workers()
    }

    /// Whether the workers are being moved between CPUs (see
    /// [`RuntimeBuilder::rotate_workers`]).
    pub fn rotates_workers(&self) -> bool {
        self.executor.rotates_workers()
    }

    /// Validates and compiles a module (wasm bytes or text) for this
    /// runtime.
    pub fn compile(&self, bytes: impl AsRef<[u8]>) -> shoal_instance::Result<Module> {
        Module::new(&self.engine, bytes)
    }

    /// The default contract.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// The epoch tick.
    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// The timeslice.
    pub fn timeslice(&self) -> Duration {
        ticks_to_duration(self.epoch_tick, self.timeslice_ticks)
    }

    pub(crate) fn timeslice_ticks(&self) -> u64 {
        self.timeslice_ticks
    }

    pub(crate) fn default_limit(&self) -> &Arc<InstanceLimit> {
        &self.limit
    }

    /// `duration` in epoch ticks, rounded up (for
    /// [`Contract::cpu_budget_epochs`]).
    pub fn epochs(&self, duration: Duration) -> u64 {
        let ticks = duration
            .as_nanos()
            .div_ceil(self.epoch_tick.as_nanos().max(1));
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// Instances alive under the default contract.
    pub fn live_instances(&self) -> usize {
        self.limit.live()
    }

    /// A template for spawning instances of `module` calling `export`,
    /// under the default contract (see `template.rs` for what is checked).
    pub fn template<T: Send + 'static>(
        &self,
        module: &Module,
        linker: &Linker<T>,
        export: &str,
    ) -> Result<InstanceTemplate<T>, SpawnError> {
        InstanceTemplate::new(self, module, linker, export, None)
    }

    /// A template under its own `contract` (its own instance limit and CPU
    /// budget; see the module docs for memory, table and stack limits).
    pub fn template_with_contract<T: Send + 'static>(
        &self,
        module: &Module,
        linker: &Linker<T>,
        export: &str,
        contract: Contract,
    ) -> Result<InstanceTemplate<T>, SpawnError> {
        InstanceTemplate::new(self, module, linker, export, Some(contract))
    }

    /// Spawns one instance of `module`, calling `export` with `args`, under
    /// the default contract.
    ///
    /// This links and checks the module on every call; to spawn the same
    /// module many times (one instance per request), build a
    /// [`template`](Self::template) once and spawn from it.
    pub fn spawn<T: Default + Send + 'static>(
        &self,
        module: &Module,
        linker: &Linker<T>,
        export: &str,
        args: Vec<Val>,
    ) -> Result<JoinHandle<Vec<Val>>, SpawnError> {
        self.template(module, linker, export)?.spawn(args)
    }

    /// [`spawn`](Self::spawn) with static types.
    pub fn spawn_typed<T: Default + Send + 'static, P: WasmParams, R: WasmResults>(
        &self,
        module: &Module,
        linker: &Linker<T>,
        export: &str,
        params: P,
    ) -> Result<JoinHandle<R>, SpawnError> {
        self.template(module, linker, export)?
            .typed::<P, R>()?
            .spawn(params)
    }

    /// Stops accepting instances, then waits for the live ones
    /// ([`ShutdownMode::Wait`]), or cancels them ([`ShutdownMode::Cancel`]:
    /// each traps with `Cancelled` at its next deadline or host wait), and
    /// joins the workers.
    pub fn shutdown(self, mode: ShutdownMode) -> Result<(), ShutdownError> {
        self.executor.shutdown(mode)
    }
}

/// `ticks` epoch ticks of `tick` each, saturating.
fn ticks_to_duration(tick: Duration, ticks: u64) -> Duration {
    let nanos = tick.as_nanos().saturating_mul(u128::from(ticks));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
