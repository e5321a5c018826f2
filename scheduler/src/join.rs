//! Delivering a green thread's outcome to its [`JoinHandle`].
//!
//! The spawned closure is wrapped in a *job* that runs on the green thread:
//! it checks the cancel flag, runs the closure under `catch_unwind`, turns
//! the outcome into `Result<T, JoinError>`, returns the spawn reservation to
//! the worker and then stores the result in a shared packet and unparks the
//! joiner. A job that is dropped without running (its worker tore it down)
//! still completes the packet, with [`JoinError::Cancelled`], so a joiner
//! never waits forever.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cache::{arc_counts, prefetch};
use crate::error::JoinError;
use crate::task::{AbortJoin, Start, Task};
use crate::thread::{park_until, Thread};

/// Raised (with `resume_unwind`) at a suspension point of a cancelled green
/// thread; recognised by the job and reported as `JoinError::Cancelled`.
pub(crate) struct CancelUnwind;

struct PacketState<T> {
    result: Option<Result<T, JoinError>>,
    joiner: Option<Thread>,
    detached: bool,
}

pub(crate) struct Packet<T> {
    done: AtomicBool,
    state: Mutex<PacketState<T>>,
}

// The result is always dropped by a party that runs user code safely: the
// green thread itself (when its JoinHandle is already gone) or the
// JoinHandle's owner. It is never left for the worker loop to drop, where a
// destructor that parks or sleeps would block the worker.

impl<T: Send> AbortJoin for Packet<T> {
    fn abort(&self) {
        self.complete(Err(JoinError::Cancelled));
    }
}

impl<T> Packet<T> {
    pub(crate) fn new() -> Self {
        Packet {
            done: AtomicBool::new(false),
            state: Mutex::new(PacketState {
                result: None,
                joiner: None,
                detached: false,
            }),
        }
    }

    fn complete(&self, result: Result<T, JoinError>) {
        let (joiner, unwanted) = {
            let mut state = self.state.lock();
            if self.done.load(Ordering::Relaxed) {
                (None, Some(result))
            } else {
                self.done.store(true, Ordering::Release);
                if state.detached {
                    (None, Some(result))
                } else {
                    state.result = Some(result);
                    (state.joiner.take(), None)
                }
            }
        };
        // Dropped here, outside the lock, on the completing thread.
        drop(unwanted);
        if let Some(joiner) = joiner {
            joiner.unpark();
        }
    }
}

/// Completes the packet with `Cancelled` if dropped before `finish`.
struct Completion<T> {
    packet: Option<Arc<Packet<T>>>,
}

impl<T> Completion<T> {
    fn finish(mut self, task: &Task, result: Result<T, JoinError>) {
        release_reservation(task);
        if let Some(packet) = self.packet.take() {
            packet.complete(result);
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(packet) = self.packet.take() {
            packet.complete(Err(JoinError::Cancelled));
        }
    }
}

/// Returns the task's spawn reservation (once), before the joiner can see
/// the result, so that "join, then spawn again" never trips the stack limit.
fn release_reservation(task: &Task) {
    let local = task.local();
    if !local.reservation_released.replace(true) {
        task.remote.release_reservation();
    }
}

/// Runs `f` without letting anything unwind out: a panicking destructor's
/// payload is leaked rather than dropped (its drop could panic again).
fn quietly(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        std::mem::forget(payload);
    }
}

/// Wraps `f` into a job for `task`; returns it with its JoinHandle.
pub(crate) fn make_job<F, T>(
    f: F,
    task: Arc<Task>,
    packet: Arc<Packet<T>>,
) -> (impl FnOnce(&Task, Start) + Send + 'static, JoinHandle<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let completion = Completion {
        packet: Some(packet.clone()),
    };
    let job = move |task: &Task, start: Start| {
        let result = match start {
            Start::Fail(err) => {
                quietly(move || drop(f));
                Err(JoinError::SpawnFailed(err))
            }
            Start::Run if task.is_cancelled() => {
                quietly(move || drop(f));
                Err(JoinError::Cancelled)
            }
            Start::Run => match catch_unwind(AssertUnwindSafe(f)) {
                Ok(value) => Ok(value),
                Err(payload) => {
                    if payload.is::<CancelUnwind>() || task.local().force_unwinding.get() {
                        quietly(move || drop(payload));
                        Err(JoinError::Cancelled)
                    } else {
                        Err(JoinError::Panicked(payload))
                    }
                }
            },
        };
        // Storing the result may drop it (if the handle is gone) and user
        // destructors may panic: contain that too.
        quietly(move || completion.finish(task, result));
    };
    let handle = JoinHandle {
        packet,
        thread: Thread::from_task(task),
    };
    (job, handle)
}

/// An owned permission to wait for a green thread's result.
///
/// Dropping it detaches the thread (it keeps running).
pub struct JoinHandle<T> {
    packet: Arc<Packet<T>>,
    thread: Thread,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns its result.
    ///
    /// On an OS thread this blocks the OS thread; inside a green thread it
    /// parks only the calling green thread. If the *calling* green thread is
    /// cancelled while waiting, this unwinds it (see
    /// [`yield_now`](crate::yield_now)).
    pub fn join(self) -> Result<T, JoinError> {
        loop {
            {
                let mut state = self.packet.state.lock();
                if let Some(result) = state.result.take() {
                    drop(state);
                    self.dismiss();
                    return result;
                }
                state.joiner = Some(crate::thread::current());
            }
            let packet = &self.packet;
            park_until(|| packet.done.load(Ordering::Acquire));
        }
    }

    /// Drops a handle whose result was taken without `Drop`'s detaching
    /// (which locks the packet once more): the thread has finished and
    /// nothing is left in the packet to detach from.
    fn dismiss(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: each field is read out once and dropped here; `this` is
        // never used or dropped again.
        unsafe {
            drop(std::ptr::read(&this.packet));
            drop(std::ptr::read(&this.thread));
        }
    }

    /// Whether the thread has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.packet.done.load(Ordering::Acquire)
    }

    /// Starts loading what joining this handle touches (a hint for the
    /// cache: nothing changes otherwise).
    ///
    /// For collecting many threads that finished a while ago, as a server
    /// or a benchmark does at the end of a batch: by then their shared
    /// state is out of the caches, and each `join` waits for its own
    /// misses in turn. Calling `prefetch` on the handle a few places ahead
    /// of the one being joined lets those loads overlap.
    pub fn prefetch(&self) {
        // The result's state and the `Arc`'s counts just before it.
        prefetch(arc_counts(&self.packet));
        let packet = Arc::as_ptr(&self.packet) as usize;
        prefetch(packet.wrapping_add(std::mem::size_of::<Packet<T>>() - 1));
        self.thread.prefetch_record();
    }

    /// Requests cancellation of the thread.
    ///
    /// It takes effect at the thread's next suspension point (yield, park,
    /// sleep, I/O wait, channel or join wait): the blocking functions unwind
    /// the thread's stack, running destructors, and the `try_` variants
    /// return [`Cancelled`](crate::Cancelled). A parked thread is woken to
    /// observe it; a thread that has not started never runs. A thread that
    /// never reaches a suspension point is not interrupted. `join` then
    /// returns `Err(JoinError::Cancelled)` (or the value, if the thread
    /// finished anyway).
    pub fn cancel(&self) {
        self.thread.cancel();
    }

    /// The thread's handle (for `unpark`).
    pub fn thread(&self) -> &Thread {
        &self.thread
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let result = {
            let mut state = self.packet.state.lock();
            state.detached = true;
            state.joiner = None;
            state.result.take()
        };
        drop(result);
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", &self.thread)
            .field("finished", &self.is_finished())
            .finish()
    }
}
