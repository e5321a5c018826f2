//! Configuration of a [`Runtime`]: workers, time, memory, default contract.
//!
//! # Time
//!
//! One process-wide ticker advances the epoch every `epoch_tick`; compiled
//! code compares it with its store's deadline. A timeslice is a whole number
//! of ticks (at least one). A slice ends at the first check after the tick
//! that reaches the deadline, so with a one-tick slice every slice ends at
//! a tick boundary, and slices run back to back start right after one:
//! each lasts about one tick.
//!
//! The default is a 250 µs tick and a one-tick slice. Short slices are what
//! fairness needs: a spinning instance waits `instances / workers × slice`
//! between two slices, and over a run of `T` an instance gets about
//! `T × workers / (instances × slice)` slices, so its progress is quantised
//! in units of `1 / slices`: at 1,000 spinners on 2 workers for 5 s, a
//! 1 ms slice gives each ~10 slices (a spread of ~5% from quantisation
//! alone), 250 µs gives ~40. A preemption costs a few hundred nanoseconds;
//! what shorter ticks cost is the tickers' wake-ups (4,000 a second at
//! 250 µs, shared between the CPUs). On the 2-vCPU development VM each
//! wake-up took about 16–20 µs from the CPU it interrupted (timer
//! interrupts exit to the hypervisor; the same with a plain
//! `clock_nanosleep` loop, a `timerfd` or a per-thread POSIX timer signal,
//! measured in C): two plain spinning threads lost 1.2% of their progress
//! to 1 ms ticks, 4% to 250 µs, 9.5% to 125 µs and 18.5% to 62 µs, and
//! `shoal stress preempt` (1,000 spinners, 5 s) made 6.24, 6.15, 5.99 and
//! 5.70G increments/s at 1,000, 500, 250 and 125 µs. A 125 µs tick took
//! that run's coefficient of variation from a median of 0.0153 to 0.0106
//! (8 runs each, taking turns) and its worst gap from 1.08x to 1.15x the
//! round-robin ideal; 250 µs stays the default.
//!
//! CPU budgets ([`Contract::cpu_budget_epochs`]) are counted in ticks: use
//! [`Runtime::epochs`] to convert a duration.

use super::error::BuildError;
use super::Runtime;
use crate::contract::Contract;
use shoal_instance::{Config, MemoryStrategy};
use std::time::Duration;

/// Builds a [`Runtime`]. Every setting has a default; see each method.
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    pub(crate) workers: Option<usize>,
    pub(crate) pin_workers: bool,
    pub(crate) rotate_workers: bool,
    pub(crate) epoch_tick: Duration,
    pub(crate) timeslice: Option<Duration>,
    pub(crate) memory_strategy: MemoryStrategy,
    pub(crate) contract: Contract,
    pub(crate) engine_config: Config,
    pub(crate) max_instances_per_worker: usize,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeBuilder {
    /// The defaults: one worker per core, a 250 µs epoch tick, one-tick
    /// timeslices, `Checked` memories, the permissive default contract.
    pub fn new() -> Self {
        RuntimeBuilder {
            workers: None,
            pin_workers: false,
            rotate_workers: true,
            epoch_tick: Duration::from_micros(250),
            timeslice: None,
            memory_strategy: MemoryStrategy::Checked,
            contract: Contract::default(),
            engine_config: Config::default(),
            max_instances_per_worker: 1 << 20,
        }
    }

    /// Number of worker threads (default: the number of cores).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Pins worker `i` to the `i`-th CPU (default: off).
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.pin_workers = pin;
        self
    }

    /// Moves each worker to the next CPU every 100 ms, so that a CPU slower
    /// than the others slows every worker's instances alike (default: on;
    /// only for unpinned workers, one per CPU). See
    /// [`shoal_scheduler::ExecutorBuilder::rotate_workers`].
    pub fn rotate_workers(mut self, rotate: bool) -> Self {
        self.rotate_workers = rotate;
        self
    }

    /// Period of the process-wide epoch (default 250 µs, at least 10 µs).
    /// Every executor alive in the process must use the same period.
    pub fn epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick;
        self
    }

    /// CPU time an instance runs before it yields to the next one, rounded
    /// up to whole epoch ticks (default: one tick).
    pub fn timeslice(mut self, timeslice: Duration) -> Self {
        self.timeslice = Some(timeslice);
        self
    }

    /// How linear memories are laid out (default
    /// [`MemoryStrategy::Checked`]: explicit bounds checks, memories packed
    /// in slabs; the strategy for many small instances. `Guarded` is
    /// faster for memory-heavy code but reserves 8 GiB of address space per
    /// memory, which caps a process near 15,000 live instances).
    pub fn memory_strategy(mut self, strategy: MemoryStrategy) -> Self {
        self.memory_strategy = strategy;
        self
    }

    /// The contract for every instance spawned without one of its own
    /// (default: [`Contract::default`], permissive). Its memory, table and
    /// stack limits are also the runtime-wide ceilings (see
    /// [`Runtime`]'s docs), and its `stack_size` is the size of every green
    /// thread's stack.
    pub fn contract(mut self, contract: Contract) -> Self {
        self.contract = contract;
        self
    }

    /// The engine configuration to start from (default
    /// [`Config::default`]), e.g. to tune its pools. The runtime overrides
    /// `epoch_interruption` (always on), `memory_strategy`,
    /// `max_memory_pages`, `max_table_elements` and `max_wasm_stack` (from
    /// the default contract).
    pub fn engine_config(mut self, config: Config) -> Self {
        self.engine_config = config;
        self
    }

    /// Most green threads alive at once per worker (its stack pool's size;
    /// default 1,048,576). Spawning beyond it fails with
    /// `SpawnError::Executor(StackPoolExhausted)`.
    pub fn max_instances_per_worker(mut self, n: usize) -> Self {
        self.max_instances_per_worker = n;
        self
    }

    /// Starts the runtime: the engine, the workers and the epoch ticker.
    pub fn build(self) -> Result<Runtime, BuildError> {
        Runtime::start(self)
    }

    /// The timeslice in ticks (validated).
    pub(crate) fn timeslice_ticks(&self) -> Result<u64, BuildError> {
        let tick = self.epoch_tick.as_nanos();
        if !(10_000..=60_000_000_000).contains(&tick) {
            return Err(BuildError::InvalidConfig(format!(
                "epoch_tick must be between 10 µs and 60 s, got {:?}",
                self.epoch_tick
            )));
        }
        let ticks = match self.timeslice {
            None => 1,
            Some(slice) => slice.as_nanos().div_ceil(tick).max(1),
        };
        u64::try_from(ticks).map_err(|_| {
            BuildError::InvalidConfig(format!("timeslice {:?} is too long", self.timeslice))
        })
    }

    /// The engine configuration the runtime uses.
    pub(crate) fn engine_config_for_runtime(&self) -> Result<Config, BuildError> {
        if self.contract.stack_size < 64 * 1024 {
            return Err(BuildError::InvalidConfig(format!(
                "the default contract's stack_size is {} bytes; instances need at least 64 KiB \
                 (wasm frames plus room for host functions)",
                self.contract.stack_size
            )));
        }
        Ok(Config {
            epoch_interruption: true,
            memory_strategy: self.memory_strategy,
            max_memory_pages: self.contract.max_memory_pages,
            max_table_elements: self.contract.max_table_elements,
            max_wasm_stack: self.contract.stack_size,
            ..self.engine_config.clone()
        })
    }
}
