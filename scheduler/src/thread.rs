//! What code running *on* a green thread can do: yield, park, sleep, look
//! at its deadline, learn it was cancelled.
//!
//! Every function here also works on a plain OS thread, where it falls back
//! to `std::thread` (yield, park, sleep) or does nothing (deadlines), so
//! that libraries built on it (channels, join) work anywhere.
//!
//! # Cancellation
//!
//! A green thread is cancelled by [`JoinHandle::cancel`](crate::JoinHandle::cancel)
//! or a [`ShutdownMode::Cancel`](crate::ShutdownMode::Cancel) shutdown. The
//! request takes effect at its next *suspension point*:
//!
//! - the plain functions ([`yield_now`], [`park`], [`sleep`], channel
//!   `send`/`recv`, `JoinHandle::join`) **unwind** the green thread's stack
//!   (a panic-free `resume_unwind`, no panic hook), running destructors; its
//!   `JoinHandle` then reports [`JoinError::Cancelled`](crate::JoinError);
//! - the `try_` functions ([`try_yield_now`], [`try_park`],
//!   [`try_park_timeout`], [`try_sleep`], [`try_yield_if_deadline_passed`])
//!   return `Err(Cancelled)` instead and never unwind. **Code that must not
//!   be unwound through** (a libcall made by JIT-compiled code whose frames
//!   have no unwind info) must use these and return to its caller, which
//!   can then leave the foreign frames its own way (e.g. a trap);
//! - I/O waits ([`crate::io`], [`crate::net`]) return an `io::Error` for
//!   which [`crate::io::is_cancelled`] is true, and never unwind.
//!
//! While a thread is already unwinding (a destructor running during a panic
//! or a cancellation) suspension points never start a second unwind, and
//! cleanup code may still park and wait (a blocking `recv` in a destructor
//! works). During a [`ShutdownMode::Cancel`](crate::ShutdownMode::Cancel)
//! shutdown, though, a cancelled thread's parks only yield, so that shutdown
//! terminates: a thread that keeps suspending after cancellation is
//! eventually abandoned (its stack leaked, never unwound; its JoinHandle
//! reports `Cancelled`).
//!
//! Every `try_` function still yields once when it reports `Cancelled`, so a
//! caller that ignores the error in a loop cannot monopolise its worker.

use std::num::NonZeroU64;
use std::panic::resume_unwind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::{current_task, current_worker};
use crate::epoch::epoch_now;
use crate::error::Cancelled;
use crate::join::CancelUnwind;
use crate::task::Task;
use crate::worker::WorkerCore;

/// Identifies a green thread (unique within its executor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(NonZeroU64);

impl ThreadId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

#[derive(Clone)]
enum Inner {
    Green(Arc<Task>),
    Os(std::thread::Thread),
}

/// A handle to a green thread (or an OS thread), used to unpark it.
///
/// Cheap to clone, `Send + Sync`; `unpark` works from any thread.
#[derive(Clone)]
pub struct Thread {
    inner: Inner,
}

impl Thread {
    pub(crate) fn from_task(task: Arc<Task>) -> Thread {
        Thread {
            inner: Inner::Green(task),
        }
    }

    /// Makes the thread's park token available, waking it if it is parked.
    ///
    /// If the thread is not parked, its next [`park`] returns at once: an
    /// unpark is never lost. Tokens do not accumulate. Unparking a finished
    /// thread does nothing.
    pub fn unpark(&self) {
        match &self.inner {
            Inner::Green(task) => Task::unpark(task),
            Inner::Os(thread) => thread.unpark(),
        }
    }

    /// The green thread's id (`None` for an OS thread).
    pub fn id(&self) -> Option<ThreadId> {
        match &self.inner {
            Inner::Green(task) => NonZeroU64::new(task.id()).map(ThreadId),
            Inner::Os(_) => None,
        }
    }

    /// Whether this is a green thread.
    pub fn is_green(&self) -> bool {
        matches!(self.inner, Inner::Green(_))
    }

    /// Index of the worker the green thread runs on (`None` for an OS thread).
    pub fn worker(&self) -> Option<usize> {
        match &self.inner {
            Inner::Green(task) => Some(task.remote.index()),
            Inner::Os(_) => None,
        }
    }

    /// Starts loading what dropping the last handle of a finished green
    /// thread touches (see [`JoinHandle::prefetch`](crate::JoinHandle::prefetch)
    /// and `Task::prefetch_shared`).
    pub(crate) fn prefetch_record(&self) {
        if let Inner::Green(task) = &self.inner {
            Task::prefetch_shared(task);
        }
    }

    pub(crate) fn cancel(&self) {
        if let Inner::Green(task) = &self.inner {
            Task::cancel(task);
        }
    }
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Green(task) => f
                .debug_struct("Thread")
                .field("id", &task.id())
                .field("worker", &task.remote.index())
                .finish(),
            Inner::Os(thread) => f.debug_tuple("Thread").field(&thread.id()).finish(),
        }
    }
}

/// The calling thread: the running green thread, or else the OS thread.
pub fn current() -> Thread {
    match current_task() {
        Some(task) => Thread::from_task(task.arc()),
        None => Thread {
            inner: Inner::Os(std::thread::current()),
        },
    }
}

/// Whether the caller runs on a green thread.
pub fn is_green_thread() -> bool {
    current_task().is_some()
}

/// Index of the worker the caller runs on, if it is a worker thread (inside
/// a green thread or in the worker's own loop).
pub fn current_worker_index() -> Option<usize> {
    current_worker().map(|w| w.remote().index())
}

/// Whether the running green thread has been asked to cancel.
#[inline]
pub fn is_cancelled() -> bool {
    current_task().is_some_and(|t| t.is_cancelled())
}

/// Whether a panic payload (as caught by `std::panic::catch_unwind`) is the
/// unwind of a cancelled green thread. Code that catches panics (a host-call
/// shim, say) should let such a payload continue (`resume_unwind`) once it
/// is safe to, rather than report it as a panic.
pub fn is_cancel_unwind(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<CancelUnwind>()
}

/// Unwinds the green thread if `result` says it was cancelled (unless it is
/// already unwinding).
#[inline]
pub(crate) fn cancel_point(result: Result<(), Cancelled>) {
    if result.is_err() && !std::thread::panicking() {
        resume_unwind(Box::new(CancelUnwind));
    }
}

/// Unwinds at once if the running green thread is cancelled (and not
/// already unwinding).
#[inline]
fn unwind_if_cancelled(task: &Task) {
    if task.is_cancelled() {
        cancel_point(Err(Cancelled));
    }
}

/// Puts the green thread at the back of its worker's run queue.
///
/// On an OS thread: `std::thread::yield_now`. Unwinds if cancelled (see the
/// module docs; [`try_yield_now`] does not).
#[inline]
pub fn yield_now() {
    match current_task() {
        Some(task) => {
            unwind_if_cancelled(task);
            cancel_point(task.yield_green());
        }
        None => std::thread::yield_now(),
    }
}

/// [`yield_now`] that reports cancellation instead of unwinding.
///
/// A cancelled green thread still yields once before it gets
/// `Err(Cancelled)`, so that a caller ignoring the error cannot monopolise
/// its worker (the same holds for the other `try_` functions).
#[inline]
pub fn try_yield_now() -> Result<(), Cancelled> {
    match current_task() {
        Some(task) => task.yield_green(),
        None => {
            std::thread::yield_now();
            Ok(())
        }
    }
}

/// Blocks until [`Thread::unpark`] is called (or returns at once if a token
/// is present). May return spuriously: call it in a loop that re-checks a
/// condition. Parks only the green thread, not its worker. Unwinds if
/// cancelled.
pub fn park() {
    if let Some(task) = current_task() {
        unwind_if_cancelled(task);
    }
    cancel_point(try_park());
}

/// [`park`] that reports cancellation instead of unwinding.
pub fn try_park() -> Result<(), Cancelled> {
    match current_task() {
        Some(task) => task.park_green(),
        None => {
            std::thread::park();
            Ok(())
        }
    }
}

/// [`park`] with a time limit. Unwinds if cancelled.
pub fn park_timeout(timeout: Duration) {
    if let Some(task) = current_task() {
        unwind_if_cancelled(task);
    }
    cancel_point(try_park_timeout(timeout));
}

/// [`park_timeout`] that reports cancellation instead of unwinding.
pub fn try_park_timeout(timeout: Duration) -> Result<(), Cancelled> {
    let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
        std::thread::park_timeout(timeout);
        return Ok(());
    };
    let Some(at) = Instant::now().checked_add(timeout) else {
        return task.park_green();
    };
    let timer = TimerGuard::new(worker, task, at);
    let result = task.park_green();
    drop(timer);
    result
}

/// Sleeps for at least `duration`; parks only the green thread. Unwinds if
/// cancelled.
pub fn sleep(duration: Duration) {
    if let Some(task) = current_task() {
        unwind_if_cancelled(task);
    }
    cancel_point(try_sleep(duration));
}

/// [`sleep`] that reports cancellation instead of unwinding.
pub fn try_sleep(duration: Duration) -> Result<(), Cancelled> {
    let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
        std::thread::sleep(duration);
        return Ok(());
    };
    if duration.is_zero() {
        return task.yield_green();
    }
    let Some(at) = Instant::now().checked_add(duration) else {
        // "Forever": only cancellation ends it.
        loop {
            task.park_green()?;
        }
    };
    let timer = TimerGuard::new(worker, task, at);
    let mut wakes = 0u32;
    let result = loop {
        if !timer.is_pending() {
            break Ok(());
        }
        if let Err(cancelled) = task.park_green() {
            break Err(cancelled);
        }
        wakes += 1;
    };
    drop(timer);
    if result.is_ok() && wakes > 1 {
        // Some wake-up was not the timer: it may have been a token meant for
        // a later `park`, which must not be lost.
        task.restore_token();
    }
    result
}

/// Parks until `ready()` holds; unwinds if cancelled. Re-creates a park
/// token it may have swallowed (see `try_sleep`).
pub(crate) fn park_until(ready: impl FnMut() -> bool) {
    if let Some(task) = current_task() {
        unwind_if_cancelled(task);
    }
    cancel_point(try_park_until(ready));
}

/// [`park_until`] that reports cancellation instead of unwinding.
pub(crate) fn try_park_until(mut ready: impl FnMut() -> bool) -> Result<(), Cancelled> {
    let mut wakes = 0u32;
    while !ready() {
        try_park()?;
        wakes += 1;
    }
    if wakes > 1 {
        match current_task() {
            Some(task) => task.restore_token(),
            None => std::thread::current().unpark(),
        }
    }
    Ok(())
}

/// The running green thread's timer; cancelled on drop if still pending.
pub(crate) struct TimerGuard<'a> {
    worker: &'a WorkerCore,
    task: &'a Task,
    seq: u64,
}

impl<'a> TimerGuard<'a> {
    pub(crate) fn new(worker: &'a WorkerCore, task: &'a Task, at: Instant) -> Self {
        let seq = worker.add_timer(at, task.arc());
        TimerGuard { worker, task, seq }
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.task.local().timer_seq.get() == self.seq
    }
}

impl Drop for TimerGuard<'_> {
    fn drop(&mut self) {
        if self.is_pending() {
            self.worker.cancel_timer(self.task);
        }
    }
}

/// The running green thread's deadline, as an epoch value (see
/// [`epoch_counter`](crate::epoch_counter)); `None` if it has none or on an
/// OS thread.
pub fn deadline() -> Option<u64> {
    current_task()
        .map(|t| t.local().deadline.get())
        .filter(|d| *d != u64::MAX)
}

/// Sets the running green thread's deadline to an absolute epoch value
/// (`None`: no deadline). Does nothing on an OS thread.
pub fn set_deadline(deadline: Option<u64>) {
    if let Some(task) = current_task() {
        task.local().deadline.set(deadline.unwrap_or(u64::MAX));
    }
}

/// Sets the running green thread's deadline `ticks` epochs from now.
pub fn set_deadline_in(ticks: u64) {
    set_deadline(Some(epoch_now().saturating_add(ticks)));
}

/// Sets how many ticks the running green thread gets after each deadline
/// yield (0: no automatic deadline). The executor's `timeslice` is the
/// default. Does nothing on an OS thread.
pub fn set_timeslice(ticks: u64) {
    if let Some(task) = current_task() {
        task.local().timeslice.set(ticks);
    }
}

/// Yields if the running green thread's deadline has passed; then grants it
/// a new timeslice (deadline = now + timeslice). Returns whether it yielded.
/// Unwinds if cancelled.
///
/// Cost when the deadline has not passed: two loads and a compare.
///
/// It does not ask for fine ticks ([`request_fine_ticks`](crate::request_fine_ticks)):
/// while the ticks are coarse, a deadline may pass up to
/// [`COARSE_STRIDE`](crate::COARSE_STRIDE) ticks late, or early by as much.
#[inline]
pub fn yield_if_deadline_passed() -> bool {
    match try_yield_if_deadline_passed() {
        Ok(yielded) => yielded,
        Err(cancelled) => {
            cancel_point(Err(cancelled));
            true
        }
    }
}

/// [`yield_if_deadline_passed`] that reports cancellation instead of
/// unwinding.
#[inline]
pub fn try_yield_if_deadline_passed() -> Result<bool, Cancelled> {
    let Some(task) = current_task() else {
        return Ok(false);
    };
    let local = task.local();
    if epoch_now() < local.deadline.get() {
        return Ok(false);
    }
    task.yield_green()?;
    let slice = local.timeslice.get();
    local.deadline.set(if slice == 0 {
        u64::MAX
    } else {
        epoch_now().saturating_add(slice)
    });
    Ok(true)
}
