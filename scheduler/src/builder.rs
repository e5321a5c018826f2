//! Configuration of an [`Executor`](crate::Executor).

use std::time::Duration;

use crate::error::BuildError;
use crate::executor::Executor;
use crate::hooks::{IdleHook, SwitchHook, WorkerHooks};
use crate::stack_pool::StackPoolConfig;

/// Validated configuration handed to the executor.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub workers: usize,
    pub pin_workers: bool,
    pub rotate_workers: bool,
    pub stacks: StackPoolConfig,
    pub epoch_tick: Duration,
    pub timeslice_ticks: u64,
    pub realtime_ticker: bool,
    pub event_capacity: usize,
    pub thread_name: String,
    pub hooks: WorkerHooks,
}

/// Builds an [`Executor`]. Every setting has a default; see each method.
#[derive(Clone, Debug)]
pub struct ExecutorBuilder {
    workers: Option<usize>,
    pin_workers: bool,
    rotate_workers: bool,
    stack_size: usize,
    guard_size: usize,
    max_stacks_per_worker: usize,
    stacks_per_region: usize,
    keep_resident: usize,
    warm_stacks: usize,
    epoch_tick: Duration,
    timeslice: Option<Duration>,
    realtime_ticker: bool,
    event_capacity: usize,
    thread_name: String,
    hooks: WorkerHooks,
}

/// Smallest usable stack accepted (room for the entry frames, a panic and
/// formatting).
pub const MIN_STACK_SIZE: usize = 16 * 1024;

impl Default for ExecutorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ExecutorBuilder {
    /// The defaults: one worker per available core, not pinned, 256 KiB
    /// stacks with a 16 KiB guard, at most 1,048,576 green threads per
    /// worker, 1 ms epoch tick, 10 ms timeslice.
    pub fn new() -> Self {
        ExecutorBuilder {
            workers: None,
            pin_workers: false,
            rotate_workers: true,
            stack_size: 256 * 1024,
            guard_size: 16 * 1024,
            max_stacks_per_worker: 1 << 20,
            stacks_per_region: 1024,
            keep_resident: 8 * 1024,
            warm_stacks: 1024,
            epoch_tick: Duration::from_millis(1),
            timeslice: Some(Duration::from_millis(10)),
            realtime_ticker: true,
            event_capacity: 1024,
            thread_name: "shoal-worker".into(),
            hooks: WorkerHooks::default(),
        }
    }

    /// Number of worker threads (default: `std::thread::available_parallelism`).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Pins worker `i` to the `i`-th CPU the process may use (default: off).
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.pin_workers = pin;
        self
    }

    /// Moves every worker to the next CPU every
    /// [`ROTATION_PERIOD`](crate::ROTATION_PERIOD) (default: on), so that a
    /// CPU slower than the others slows every worker's green threads alike
    /// instead of one worker's. It applies only to unpinned workers, one
    /// per CPU the process may use (the default count), and keeps each
    /// worker within its NUMA node; see `rotation.rs` for the protocol.
    pub fn rotate_workers(mut self, rotate: bool) -> Self {
        self.rotate_workers = rotate;
        self
    }

    /// Usable bytes of each green thread's stack, rounded up to pages
    /// (default 256 KiB, minimum [`MIN_STACK_SIZE`]). Only touched pages cost
    /// memory.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Bytes of guard area below each stack, rounded up to pages (default
    /// 16 KiB, minimum one page). Costs address space only.
    pub fn guard_size(mut self, bytes: usize) -> Self {
        self.guard_size = bytes;
        self
    }

    /// Most green threads alive at once on one worker (default 1,048,576).
    /// Spawning beyond it fails with `SpawnError::StackPoolExhausted`.
    pub fn max_stacks_per_worker(mut self, stacks: usize) -> Self {
        self.max_stacks_per_worker = stacks;
        self
    }

    /// Stacks carved out of one `mmap` region (default 1024).
    pub fn stacks_per_region(mut self, stacks: usize) -> Self {
        self.stacks_per_region = stacks;
        self
    }

    /// Bytes at the top of a finished green thread's stack that stay
    /// resident for the next one (default 8 KiB); deeper pages are returned
    /// to the OS before the stack is reused, or once the worker is idle
    /// (see `stack_pool.rs`).
    pub fn keep_resident(mut self, bytes: usize) -> Self {
        self.keep_resident = bytes;
        self
    }

    /// Idle stacks per worker kept ready (default 1024); stacks released
    /// beyond that are returned to the OS entirely once the worker is idle.
    pub fn warm_stacks(mut self, stacks: usize) -> Self {
        self.warm_stacks = stacks;
        self
    }

    /// Period of the process-wide epoch counter (default 1 ms). All live
    /// executors must agree on it.
    pub fn epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick;
        self
    }

    /// Time a green thread runs before `yield_if_deadline_passed` yields,
    /// rounded up to epoch ticks (default 10 ms; `None`: no automatic
    /// deadline).
    pub fn timeslice(mut self, timeslice: Option<Duration>) -> Self {
        self.timeslice = timeslice;
        self
    }

    /// Whether the epoch ticker asks for real-time priority (default: yes,
    /// best effort).
    pub fn realtime_ticker(mut self, realtime: bool) -> Self {
        self.realtime_ticker = realtime;
        self
    }

    /// Readiness events fetched per `poll` call (default 1024).
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events;
        self
    }

    /// Prefix of worker thread names (default `shoal-worker`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Functions called around every run of every green thread, to keep
    /// per-green-thread copies of a runtime's thread-local state (default:
    /// none). See [`SwitchHook`].
    pub fn switch_hook(mut self, hook: SwitchHook) -> Self {
        self.hooks.switch = Some(hook);
        self
    }

    /// Deferred work for idle workers (default: none): after a worker ran
    /// green threads and then stayed quiet for 50 ms, it calls `hook` in
    /// bounded steps until it reports nothing left. See [`IdleHook`].
    pub fn idle_hook(mut self, hook: IdleHook) -> Self {
        self.hooks.idle = Some(hook);
        self
    }

    fn validate(self) -> Result<Config, BuildError> {
        let invalid = |msg: String| Err(BuildError::InvalidConfig(msg));
        let workers = match self.workers {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if workers == 0 || workers > 4096 {
            return invalid(format!("workers must be in 1..=4096, got {workers}"));
        }
        if self.stack_size < MIN_STACK_SIZE || self.stack_size > 1 << 30 {
            return invalid(format!(
                "stack_size must be in {MIN_STACK_SIZE}..=1 GiB bytes, got {}",
                self.stack_size
            ));
        }
        if self.guard_size > 1 << 24 {
            return invalid(format!(
                "guard_size must be at most 16 MiB, got {}",
                self.guard_size
            ));
        }
        if self.max_stacks_per_worker == 0 {
            return invalid("max_stacks_per_worker must be at least 1".into());
        }
        if self.stacks_per_region == 0 {
            return invalid("stacks_per_region must be at least 1".into());
        }
        if self.epoch_tick < Duration::from_micros(10) || self.epoch_tick > Duration::from_secs(60)
        {
            return invalid(format!(
                "epoch_tick must be between 10 µs and 60 s, got {:?}",
                self.epoch_tick
            ));
        }
        let tick = self.epoch_tick.as_nanos();
        let timeslice_ticks = match self.timeslice {
            None => 0,
            Some(slice) => (slice.as_nanos().div_ceil(tick)).clamp(1, u64::MAX as u128) as u64,
        };
        Ok(Config {
            workers,
            pin_workers: self.pin_workers,
            rotate_workers: self.rotate_workers,
            stacks: StackPoolConfig {
                stack_size: self.stack_size,
                guard_size: self.guard_size,
                max_stacks: self.max_stacks_per_worker,
                stacks_per_region: self.stacks_per_region,
                keep_resident: self.keep_resident,
                warm_stacks: self.warm_stacks,
            },
            epoch_tick: self.epoch_tick,
            timeslice_ticks,
            realtime_ticker: self.realtime_ticker,
            event_capacity: self.event_capacity,
            thread_name: self.thread_name,
            hooks: self.hooks,
        })
    }

    /// Starts the workers (and the epoch ticker if none runs yet).
    pub fn build(self) -> Result<Executor, BuildError> {
        Executor::start(self.validate()?)
    }
}
