//! Errors of the scheduler's public API.

use std::any::Any;
use std::fmt;
use std::io;
use std::time::Duration;

/// Building an [`Executor`](crate::Executor) failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration value is out of range.
    #[error("invalid executor configuration: {0}")]
    InvalidConfig(String),
    /// Creating a worker's `mio::Poll` or waker failed.
    #[error("creating the I/O poller of worker {worker} failed: {source} (check the open-file limit, `ulimit -n`)")]
    Poll {
        /// Worker index.
        worker: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Spawning an OS thread (worker or epoch ticker) failed.
    #[error("spawning a scheduler thread failed: {0}")]
    Thread(#[source] io::Error),
    /// The process-wide epoch ticker already runs with another period.
    #[error(
        "the epoch ticker already runs with a {running:?} tick (set by another live executor); \
         the epoch is process-wide, so build this executor with the same epoch_tick \
         (requested {requested:?}) or shut the other executors down first"
    )]
    EpochTickConflict {
        /// Period of the running ticker.
        running: Duration,
        /// Period requested by this builder.
        requested: Duration,
    },
}

/// Spawning a green thread failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The executor has been shut down (or is shutting down).
    #[error("the executor is shut down: no new green threads are accepted after shutdown()")]
    ShutDown,
    /// The worker already runs as many green threads as its stack pool allows.
    #[error(
        "worker {worker} already has {limit} green threads alive, the limit of its stack pool; \
         wait for some to finish or raise ExecutorBuilder::max_stacks_per_worker"
    )]
    StackPoolExhausted {
        /// Worker index.
        worker: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Mapping stack memory failed (reported through the JoinHandle, since
    /// stacks are mapped on the worker).
    #[error("worker {worker} could not allocate a green-thread stack: {reason}")]
    StackAllocation {
        /// Worker index.
        worker: usize,
        /// What the stack pool reported.
        reason: String,
    },
    /// `spawn_on` was given a worker index the executor does not have.
    #[error("worker index {index} is out of range: the executor has {workers} workers")]
    NoSuchWorker {
        /// The index given.
        index: usize,
        /// Number of workers.
        workers: usize,
    },
    /// `shoal_scheduler::spawn` was called outside any executor.
    #[error(
        "not running on an executor: call Executor::spawn or Handle::spawn, or call \
         shoal_scheduler::spawn from inside a green thread"
    )]
    NoExecutor,
}

/// A green thread did not produce a value.
pub enum JoinError {
    /// It panicked; the payload is what `std::panic::catch_unwind` returns.
    Panicked(Box<dyn Any + Send + 'static>),
    /// It was cancelled ([`JoinHandle::cancel`](crate::JoinHandle::cancel)
    /// or [`ShutdownMode::Cancel`](crate::ShutdownMode::Cancel)) before it
    /// returned.
    Cancelled,
    /// It never started: see the inner error.
    SpawnFailed(SpawnError),
}

impl JoinError {
    /// The panic message, if it panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(payload) => payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }

    /// Whether the thread was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether the thread panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
            JoinError::Cancelled => f.write_str("Cancelled"),
            JoinError::SpawnFailed(e) => f.debug_tuple("SpawnFailed").field(e).finish(),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "the green thread panicked: {msg}"),
                None => f.write_str("the green thread panicked"),
            },
            JoinError::Cancelled => f.write_str("the green thread was cancelled"),
            JoinError::SpawnFailed(e) => write!(f, "the green thread never started: {e}"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinError::SpawnFailed(e) => Some(e),
            _ => None,
        }
    }
}

/// The current green thread has been cancelled. Returned by the `try_`
/// suspension points ([`try_yield_now`](crate::try_yield_now),
/// [`try_park`](crate::try_park), ...) instead of unwinding; the caller should
/// return promptly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the green thread was cancelled")]
pub struct Cancelled;

/// [`Executor::shutdown`](crate::Executor::shutdown) could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Called from one of the executor's own workers: shutdown was started,
    /// but a worker cannot wait for itself. The workers exit on their own.
    #[error(
        "shutdown() was called from inside the executor it shuts down; shutdown has started but \
         cannot be awaited from a worker (call it from another thread to wait)"
    )]
    CalledFromWorker,
    /// A worker thread panicked (a scheduler bug, not a green-thread panic).
    #[error("worker {0} panicked; its green threads were lost")]
    WorkerPanicked(usize),
}
