//! # shoal-scheduler
//!
//! Green threads on stack-switched coroutines over a thread-per-core
//! executor. It knows nothing about WebAssembly: any `Send` closure can run
//! as a green thread.
//!
//! ```
//! use shoal_scheduler::{channel, Executor, ShutdownMode};
//!
//! let executor = Executor::builder().workers(2).build()?;
//! let (tx, rx) = channel::bounded(4);
//! let producer = executor.spawn(move || {
//!     for i in 0..10u32 {
//!         tx.send(i).unwrap(); // parks this green thread while full
//!     }
//! })?;
//! let consumer = executor.spawn(move || rx.iter().sum::<u32>())?;
//! producer.join()?;
//! assert_eq!(consumer.join()?, 45);
//! executor.shutdown(ShutdownMode::Wait)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Pieces
//!
//! - [`Executor`] / [`ExecutorBuilder`] / [`Handle`]: one worker thread per
//!   core, each with a FIFO run queue, a `mio::Poll`, a timer heap and an
//!   inbox (`worker.rs` documents the loop and the shutdown protocol).
//! - Green threads ([`spawn`], [`JoinHandle`], [`Thread`]): corosensei
//!   coroutines on pooled stacks; they never migrate. Inside one:
//!   [`yield_now`], [`sleep`], [`park`], [`current`], deadlines. The
//!   workspace builds corosensei with its x86-64 switch patched to jump
//!   both ways instead of `call`/`ret`, so that the return address
//!   predictor stays in step when green threads suspend deep in a call
//!   chain (`vendor/README.md` in the repository).
//! - [`channel`]: bounded and unbounded channels that park green threads.
//! - [`io`] and [`net`]: readiness waits and blocking-style TCP.
//! - The stack pool (`stack_pool.rs`): stacks carved from a few large
//!   regions, with guard pages that do not cost `vm.max_map_count` entries.
//! - Worker rotation (`rotation.rs`): one worker per CPU, each moved to
//!   the next CPU of its node every [`ROTATION_PERIOD`], so that a slow CPU
//!   slows every worker's green threads alike.
//! - The epoch ([`epoch_counter`]): a process-wide tick counter with a
//!   stable address, for compiled code to check deadlines against.
//!
//! ## Hooks for a runtime running JIT code on green threads
//!
//! - [`current_stack_bounds`] to derive a stack limit, and
//!   [`stack_guard_contains`] for a signal handler to recognise a stack
//!   overflow (both async-signal-safe);
//! - [`green_local`] / [`set_green_local`]: a pointer slot that follows the
//!   green thread across switches (e.g. a trap-catch pointer);
//! - [`SwitchHook`] (`ExecutorBuilder::switch_hook`): two functions called
//!   around every run of a green thread, with a typed 32-byte
//!   [`SwitchSlot`] per green thread, to swap a runtime's own thread-local
//!   state (such as `shoal-instance`'s trap-handling `ThreadState`);
//! - [`IdleHook`] (`ExecutorBuilder::idle_hook`): a runtime's deferred
//!   clean-up, done when a worker has gone quiet (such as returning the
//!   memory of a burst of finished instances to the kernel);
//! - [`try_yield_now`], [`try_park`], [`try_sleep`],
//!   [`try_yield_if_deadline_passed`]: suspension points that report
//!   cancellation as `Err(Cancelled)` instead of unwinding, for code that
//!   must not be unwound through (see the `thread` module docs);
//! - [`epoch_counter`] (a `&'static AtomicU64`), [`set_deadline`],
//!   [`deadline`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod builder;
mod cache;
pub mod channel;
mod context;
mod epoch;
mod error;
mod executor;
mod hooks;
pub mod io;
mod join;
pub mod net;
mod rotation;
mod stack_pool;
mod sys;
mod task;
mod thread;
mod timer;
mod worker;

pub use builder::{ExecutorBuilder, MIN_STACK_SIZE};
pub use epoch::{
    epoch_counter, epoch_now, epoch_tick, request_fine_ticks, ticker_wakes, ticks_are_coarse,
    time_to_next_tick, COARSE_STRIDE, FINE_HOLD, MAX_TICKERS,
};
pub use error::{BuildError, Cancelled, JoinError, ShutdownError, SpawnError};
pub use executor::{spawn, Executor, Handle, ShutdownMode};
pub use hooks::{
    current_stack_bounds, green_local, set_green_local, set_park_hints, set_resume_hints,
    stack_guard_contains, IdleHook, StackBounds, SwitchHook, SwitchSlot, PARK_HINTS, RESUME_HINTS,
};
pub use join::JoinHandle;
pub use rotation::ROTATION_PERIOD;
pub use thread::{
    current, current_worker_index, deadline, is_cancel_unwind, is_cancelled, is_green_thread, park,
    park_timeout, set_deadline, set_deadline_in, set_timeslice, sleep, try_park, try_park_timeout,
    try_sleep, try_yield_if_deadline_passed, try_yield_now, yield_if_deadline_passed, yield_now,
    Thread, ThreadId,
};
