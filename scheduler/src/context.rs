//! The per-OS-thread context: which worker this thread is, and which green
//! thread (if any) is running on it right now.
//!
//! One `const`-initialised thread-local of plain `Cell`s with no destructor:
//! reading it compiles to a few `fs:`-relative loads, needs no lazy
//! initialisation and is therefore also safe from a signal handler.
//!
//! The worker writes the green-thread fields just before resuming a green
//! thread and clears them right after it suspends (see `worker.rs`); the
//! per-green-thread "green local" slot is saved into the green thread's
//! record on suspend and restored on resume, so it follows the green thread.

use std::cell::Cell;
use std::ptr;

use crate::task::Task;
use crate::worker::WorkerCore;

pub(crate) struct Context {
    /// The green thread running on this OS thread, or null.
    pub(crate) task: Cell<*const Task>,
    /// The worker this OS thread runs, or null.
    pub(crate) worker: Cell<*const WorkerCore>,
    /// Running green thread's stack: start of the guard area (0 if none).
    pub(crate) guard_start: Cell<usize>,
    /// Running green thread's stack: lowest usable address.
    pub(crate) usable_start: Cell<usize>,
    /// Running green thread's stack: top (exclusive).
    pub(crate) stack_top: Cell<usize>,
    /// The running green thread's green-local value.
    pub(crate) green_local: Cell<*mut ()>,
}

thread_local! {
    pub(crate) static CTX: Context = const {
        Context {
            task: Cell::new(ptr::null()),
            worker: Cell::new(ptr::null()),
            guard_start: Cell::new(0),
            usable_start: Cell::new(0),
            stack_top: Cell::new(0),
            green_local: Cell::new(ptr::null_mut()),
        }
    };
}

/// The green thread running on this OS thread.
///
/// The reference is valid for as long as the calling green thread runs (its
/// worker keeps the task alive until its coroutine has returned). Never keep
/// it beyond that; clone an `Arc<Task>` (via `Task::arc`) to do so.
#[inline]
pub(crate) fn current_task() -> Option<&'static Task> {
    let task = CTX.with(|c| c.task.get());
    // SAFETY: a non-null pointer was set by this thread's worker for the task
    // whose coroutine is running now; the worker's task table holds a strong
    // reference until that coroutine has returned, which is after any code
    // running on it (see the contract above).
    unsafe { task.as_ref() }
}

/// The worker this OS thread runs.
///
/// Valid for as long as the calling code runs on the worker thread: the core
/// lives on the worker thread's own stack for the whole worker loop, and
/// green threads only run inside that loop.
#[inline]
pub(crate) fn current_worker() -> Option<&'static WorkerCore> {
    let worker = CTX.with(|c| c.worker.get());
    // SAFETY: set by the worker loop to its own core for the loop's duration
    // and cleared before the core is dropped (see above).
    unsafe { worker.as_ref() }
}
