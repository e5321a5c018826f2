//! Waiting for an instance's result, or cancelling it.
//!
//! A [`JoinHandle`] wraps the scheduler's join handle of the instance's
//! green thread, whose closure returns `Result<R, RunError>`; `join`
//! flattens the scheduler's own outcomes into [`RunError`]: a green thread
//! cancelled before it started becomes a `Cancelled` trap, like one
//! cancelled while it ran; a host panic becomes [`RunError::Panicked`].

use super::error::RunError;

/// An owned permission to wait for an instance's result, or to cancel it.
///
/// Dropping it detaches the instance: it runs to its end (or its budget)
/// and its result is dropped.
pub struct JoinHandle<R> {
    inner: shoal_scheduler::JoinHandle<Result<R, RunError>>,
}

impl<R> JoinHandle<R> {
    pub(crate) fn new(inner: shoal_scheduler::JoinHandle<Result<R, RunError>>) -> Self {
        JoinHandle { inner }
    }

    /// Waits for the instance to finish and returns what its entry export
    /// returned, or why it did not.
    ///
    /// On an OS thread this blocks the thread; on a green thread it parks
    /// only that green thread. (If the *calling* green thread is cancelled
    /// while it waits, it unwinds, as the scheduler's `join` does; from a
    /// host function that is caught and carried out of wasm safely.)
    pub fn join(self) -> Result<R, RunError> {
        self.inner.join().map_err(RunError::from).and_then(|r| r)
    }

    /// Asks the instance to stop. It takes effect at the instance's next
    /// suspension point: within one timeslice for an instance running wasm
    /// (its deadline callback traps with `Cancelled`), at once for one
    /// parked in a host function that waits with the `try_` functions or
    /// the helpers of [`host`](super::host) (the host function returns the
    /// `Cancelled` trap), and before it starts for one not yet started.
    /// `join` then returns a [`TrapKind::Cancelled`](shoal_instance::TrapKind)
    /// trap (or the result, if it finished first).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether the instance has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Starts loading what joining this handle touches: call it a few
    /// handles ahead when collecting many finished instances (see
    /// [`shoal_scheduler::JoinHandle::prefetch`]).
    pub fn prefetch(&self) {
        self.inner.prefetch();
    }

    /// The green thread running the instance (for `unpark`, its worker).
    pub fn thread(&self) -> &shoal_scheduler::Thread {
        self.inner.thread()
    }
}

impl<R> std::fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("thread", self.inner.thread())
            .field("finished", &self.is_finished())
            .finish()
    }
}
