//! The options every stress workload shares, the runtime they build, the
//! workload files they read, and the header every JSON line starts with.
//!
//! The header has the Wasmtime peer's fields, in its order (`workload`,
//! `runtime`, `version`, `alloc`, `executor`, `workers`, `epoch`,
//! `tick_us`), with Shoal's values: `alloc` is always `"pooling"` (every
//! instance takes its memory, tables and VMContext from the engine's pools),
//! `executor` is `"thread_per_core"`. Then Shoal's own: `timeslice_us`,
//! `memory_strategy`, and `options` when a limit was set by hand.

use super::error::StressError;
use super::report::Record;
use super::sysinfo;
use crate::runtime::Runtime;
use shoal_instance::{Config, MemoryStrategy, PoolingConfig};
use std::path::PathBuf;
use std::time::Duration;

/// The options of every workload. [`Default`] is Shoal's defaults.
#[derive(Clone, Debug)]
pub struct StressOptions {
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Linear memory strategy (default `Checked`).
    pub memory_strategy: MemoryStrategy,
    /// Epoch tick (default 250 µs, the runtime's).
    pub tick: Duration,
    /// Timeslice (default: one tick).
    pub timeslice: Option<Duration>,
    /// Where the `.wat` workloads are (default `../shared/workloads` next to
    /// the repository this binary was built from).
    pub workloads_dir: Option<PathBuf>,
    /// `Config::pooling.max_instances` / `max_memories` / `max_tables`
    /// (default: sized from the instances a run holds at once).
    pub pool_max_instances: Option<usize>,
    /// Green threads per worker (default: sized from the run).
    pub max_instances_per_worker: Option<usize>,
    /// Show a progress bar on stderr for runs longer than a second.
    pub progress: bool,
    /// Rotate the workers over the CPUs (default: on, the runtime's).
    pub rotate_workers: bool,
}

impl Default for StressOptions {
    fn default() -> Self {
        StressOptions {
            workers: None,
            memory_strategy: MemoryStrategy::Checked,
            tick: Duration::from_micros(250),
            timeslice: None,
            workloads_dir: None,
            pool_max_instances: None,
            max_instances_per_worker: None,
            progress: false,
            rotate_workers: true,
        }
    }
}

/// The green-thread stack size of the runtime's default contract.
pub const STACK_SIZE: u64 = 512 << 10;

impl StressOptions {
    /// Worker threads used.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(sysinfo::cores)
    }

    /// The memory strategy's name (`checked`, `guarded`).
    pub fn strategy_name(&self) -> &'static str {
        match self.memory_strategy {
            MemoryStrategy::Checked => "checked",
            MemoryStrategy::Guarded => "guarded",
        }
    }

    /// The timeslice the runtime uses: `timeslice` rounded up to ticks.
    pub fn effective_timeslice(&self) -> Duration {
        let tick = self.tick.as_nanos().max(1);
        let ticks = self
            .timeslice
            .map_or(1, |t| t.as_nanos().div_ceil(tick).max(1));
        Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
    }

    /// Checks the options that every workload uses.
    pub fn check(&self) -> Result<(), StressError> {
        if self.workers == Some(0) {
            return Err(StressError::Config("--workers must be at least 1".into()));
        }
        if self.pool_max_instances == Some(0) || self.max_instances_per_worker == Some(0) {
            return Err(StressError::Config(
                "pool and per-worker limits must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// A runtime for a run that holds up to `live` instances at once: the
    /// engine's pools and the workers' stack pools are sized from it unless
    /// set by hand.
    pub fn runtime(&self, live: usize) -> Result<Runtime, StressError> {
        self.check()?;
        let defaults = PoolingConfig::default();
        let pool = self
            .pool_max_instances
            .unwrap_or_else(|| defaults.max_instances.max(live.saturating_add(4096)));
        let config = Config {
            pooling: PoolingConfig {
                max_instances: pool,
                max_memories: pool,
                max_tables: pool,
                ..defaults
            },
            ..Config::default()
        };
        let per_worker = self
            .max_instances_per_worker
            .unwrap_or_else(|| (1usize << 20).max(live.saturating_add(1024)));
        let mut builder = Runtime::builder()
            .memory_strategy(self.memory_strategy)
            .epoch_tick(self.tick)
            .engine_config(config)
            .max_instances_per_worker(per_worker)
            .rotate_workers(self.rotate_workers);
        if let Some(w) = self.workers {
            builder = builder.workers(w);
        }
        if let Some(t) = self.timeslice {
            builder = builder.timeslice(t);
        }
        Ok(builder.build()?)
    }

    /// The directory of the `.wat` workloads.
    pub fn workloads_dir(&self) -> PathBuf {
        self.workloads_dir.clone().unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/workloads"))
        })
    }

    /// The text of workload `name` (e.g. `spawn.wat`).
    pub fn read_workload(&self, name: &str) -> Result<Vec<u8>, StressError> {
        let path = self.workloads_dir().join(name);
        std::fs::read(&path).map_err(|source| StressError::Workload { path, source })
    }

    /// The fields every JSON line of `workload` starts with.
    pub fn header(&self, workload: &str, epoch: bool) -> Record {
        let mut r = Record::new()
            .with("workload", workload)
            .with("runtime", "shoal")
            .with("version", env!("CARGO_PKG_VERSION"))
            .with("alloc", "pooling")
            .with("executor", "thread_per_core")
            .with("workers", self.worker_count())
            .with("epoch", epoch)
            .with("tick_us", self.tick.as_micros() as u64)
            .with(
                "timeslice_us",
                self.effective_timeslice().as_micros() as u64,
            )
            .with("memory_strategy", self.strategy_name());
        let mut options = Record::new();
        if let Some(v) = self.pool_max_instances {
            options.set("pool_max_instances", v);
        }
        if let Some(v) = self.max_instances_per_worker {
            options.set("max_instances_per_worker", v);
        }
        if !self.rotate_workers {
            options.set("rotate_workers", false);
        }
        if let Some(dir) = &self.workloads_dir {
            options.set("workloads_dir", dir.display().to_string());
        }
        if !options.is_empty() {
            r.set("options", options);
        }
        r
    }
}
