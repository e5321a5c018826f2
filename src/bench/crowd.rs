//! A crowd: many long-lived instances spawned one after another, each on
//! its own green thread, that a workload holds alive (parked, waiting for a
//! start signal) before it measures.
//!
//! The crowd keeps every member's join handle and notices failures as they
//! happen, so that a run hitting a limit stops spawning at once:
//!
//! 1. [`Crowd::spawn`] runs the member's body (an instance run in place on
//!    the new green thread, `InstanceTemplate::run_here`) and records its
//!    error, if any, in a shared [`Failures`]; a refused spawn is recorded
//!    too. It returns `false` once anything has failed: stop spawning.
//! 2. [`Crowd::wait_settled`] waits until every member is either ready (the
//!    workload's own counter: parked, waiting) or finished. Members that
//!    never started (their stack could not be mapped) are found by scanning
//!    the handles when progress stalls.
//! 3. The workload releases the members (its own signal), then
//!    [`Crowd::join_all`] waits for them all to finish and collects every
//!    outcome. Each member counts itself finished as its green thread
//!    ends (its instance dropped), and the one that completes the count
//!    wakes the driving thread: the driver sleeps through the members'
//!    teardowns and wakes once, instead of waiting on each handle in turn.
//!    Waiting on each handle woke it at every member finishing after the
//!    one it waited for, and each wake-up took the CPU of the worker that
//!    finished it, hundreds of times in the last milliseconds of a run.
//! 4. [`Crowd::error`] turns the first failure into a [`LimitHit`] (how far
//!    the run got and how to raise the limit) or, if it was not a limit, an
//!    instance failure.

use super::error::StressError;
use super::limits::{Limit, LimitHit};
use super::progress::Progress;
use crate::runtime::{RunError, SpawnError};
use shoal_scheduler::{Handle, JoinHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How many handles ahead `join_all` asks for a member's join state to be
/// loaded (`JoinHandle::prefetch`): by the time the crowd is collected,
/// ten thousand finished members' states are out of the caches.
const JOIN_AHEAD: usize = 8;

/// What a member's green thread returns.
pub(crate) type Outcome<R> = Result<R, RunError>;

/// Failures seen so far: how many, and the first one.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    count: AtomicUsize,
    first: Mutex<Option<(String, Option<Limit>)>>,
}

impl Failures {
    /// Records a member's failure. Out of line and cold: it runs on the
    /// member's green thread, whose stack depth is part of what a parked
    /// instance costs.
    #[cold]
    #[inline(never)]
    pub(crate) fn record(&self, e: &RunError) {
        self.note(e.to_string(), Limit::from_run_error(e));
    }

    fn note(&self, message: String, limit: Option<Limit>) {
        self.count.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert((message, limit));
        }
    }

    /// How many members failed.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// How many members have finished, and whom to wake when all have (step 3
/// of the module docs).
#[derive(Debug)]
struct FinishLatch {
    finished: AtomicUsize,
    /// How many members `join_all` waits for; `usize::MAX` until it does.
    expected: AtomicUsize,
    driver: Thread,
}

impl FinishLatch {
    /// Counts a member finished; wakes the driver if it was the last.
    fn finish(&self) {
        let finished = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        if finished >= self.expected.load(Ordering::Acquire) {
            self.driver.unpark();
        }
    }
}

/// Counts its member finished when dropped: also when the member's body
/// unwinds (a cancelled green thread).
struct Finishing(Arc<FinishLatch>);

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Many members alive at once; see the module docs.
pub(crate) struct Crowd<R> {
    handles: Vec<JoinHandle<Outcome<R>>>,
    /// Room for every outcome, made with the crowd: `join_all` runs while a
    /// workload measures, and allocates nothing.
    outcomes: Vec<Outcome<R>>,
    failures: Arc<Failures>,
    latch: Arc<FinishLatch>,
}

impl<R: Send + 'static> Crowd<R> {
    /// An empty crowd with room for `capacity` members, driven (spawned,
    /// released and joined) from the calling thread.
    pub(crate) fn with_capacity(capacity: usize) -> Crowd<R> {
        Crowd {
            handles: Vec::with_capacity(capacity),
            outcomes: Vec::with_capacity(capacity),
            failures: Arc::new(Failures::default()),
            latch: Arc::new(FinishLatch {
                finished: AtomicUsize::new(0),
                expected: AtomicUsize::new(usize::MAX),
                driver: std::thread::current(),
            }),
        }
    }

    /// Members spawned.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// The handles (to unpark or cancel members).
    pub(crate) fn handles(&self) -> &[JoinHandle<Outcome<R>>] {
        &self.handles
    }

    /// Spawns a member on the least-loaded worker of `executor`. Returns
    /// `false` if the spawn was refused or any member has failed so far:
    /// the caller should stop spawning.
    pub(crate) fn spawn(
        &mut self,
        executor: &Handle,
        body: impl FnOnce() -> Outcome<R> + Send + 'static,
    ) -> bool {
        let failures = self.failures.clone();
        let finishing = Finishing(self.latch.clone());
        let spawned = executor.spawn(move || {
            let _finishing = finishing;
            let outcome = body();
            if let Err(e) = &outcome {
                failures.record(e);
            }
            outcome
        });
        match spawned {
            Ok(h) => {
                self.handles.push(h);
                self.failures.count() == 0
            }
            Err(e) => {
                let e = SpawnError::Executor(e);
                self.failures
                    .note(e.to_string(), Limit::from_spawn_error(&e));
                false
            }
        }
    }

    /// Waits until every member is ready (`ready` counts them) or has
    /// finished (failed, or never started), showing the ready count on
    /// `progress`.
    pub(crate) fn wait_settled(&self, ready: &AtomicUsize, progress: &Progress) {
        let target = self.handles.len();
        let mut last = (usize::MAX, Instant::now());
        loop {
            let r = ready.load(Ordering::Acquire);
            progress.set(r as u64);
            let f = self.failures.count();
            if r + f >= target {
                return;
            }
            if r + f != last.0 {
                last = (r + f, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(100) {
                // Stalled: members that never started are finished without
                // having run their body.
                let finished = self.handles.iter().filter(|h| h.is_finished()).count();
                if r + finished >= target {
                    return;
                }
                last.1 = Instant::now();
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Waits until every member has finished (module docs, step 3), then
    /// joins them in spawn order, recording failures the bodies could not
    /// see (a green thread that never started).
    pub(crate) fn join_all(self) -> (Vec<Outcome<R>>, Arc<Failures>) {
        self.wait_finished();
        let failures = self.failures;
        let mut outcomes = self.outcomes;
        for handle in self.handles.iter().take(JOIN_AHEAD) {
            handle.prefetch();
        }
        let mut handles = self.handles.into_iter();
        while let Some(handle) = handles.next() {
            if let Some(later) = handles.as_slice().get(JOIN_AHEAD - 1) {
                later.prefetch();
            }
            outcomes.push(match handle.join() {
                Ok(outcome) => outcome,
                Err(e) => {
                    let e = RunError::from(e);
                    if !e.is_cancelled() {
                        failures.record(&e);
                    }
                    Err(e)
                }
            });
        }
        (outcomes, failures)
    }
}

impl<R> Crowd<R> {
    /// Sleeps until the latch counts every member finished. A member counts
    /// itself when its closure is dropped, run or not (a green thread that
    /// never started drops it unrun); one whose closure is never dropped (a
    /// coroutine abandoned at a cancelling shutdown leaks its stack) is
    /// noticed by a scan of the handles, which such a shutdown completes,
    /// at every timeout.
    fn wait_finished(&self) {
        let target = self.handles.len();
        self.latch.expected.store(target, Ordering::Release);
        while self.latch.finished.load(Ordering::Acquire) < target {
            std::thread::park_timeout(Duration::from_millis(200));
            if self.latch.finished.load(Ordering::Acquire) < target
                && self.handles.iter().all(|h| h.is_finished())
            {
                return;
            }
        }
    }
}

impl Failures {
    /// The first failure as an error: a [`LimitHit`] (`reached` of
    /// `wanted`) if it was a limit, else an instance failure. `None` if
    /// nothing failed.
    pub(crate) fn error(&self, reached: usize, wanted: usize) -> Option<StressError> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let first = self.first.lock().ok().and_then(|f| f.clone());
        Some(match first {
            Some((_, Some(limit))) => StressError::Limit(LimitHit {
                limit,
                reached,
                wanted,
                before_start: false,
            }),
            Some((message, None)) => StressError::Instances {
                failed: count,
                first: message,
            },
            None => StressError::Instances {
                failed: count,
                first: "unknown".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_scheduler::{Executor, ShutdownMode};

    #[test]
    fn join_all_waits_for_every_member_and_each_counts_itself_finished() {
        let executor = Executor::builder().workers(2).build().unwrap();
        let mut crowd: Crowd<u32> = Crowd::with_capacity(64);
        for i in 0..64u32 {
            assert!(crowd.spawn(executor.handle(), move || {
                // Some members yield a while, so that the driver waits.
                for _ in 0..(i % 8) * 50 {
                    shoal_scheduler::yield_now();
                }
                Ok(i)
            }));
        }
        let latch = crowd.latch.clone();
        let (outcomes, failures) = crowd.join_all();
        assert_eq!(latch.finished.load(Ordering::Acquire), 64);
        assert_eq!(failures.count(), 0);
        let values: Vec<u32> = outcomes.into_iter().map(|o| o.unwrap()).collect();
        assert_eq!(values, (0..64).collect::<Vec<_>>());
        executor.shutdown(ShutdownMode::Wait).unwrap();
    }

    #[test]
    fn a_member_that_panics_still_counts_itself_finished() {
        let executor = Executor::builder().workers(1).build().unwrap();
        let mut crowd: Crowd<u32> = Crowd::with_capacity(2);
        assert!(crowd.spawn(executor.handle(), || Ok(7)));
        assert!(crowd.spawn(executor.handle(), || panic!("a member's bug")));
        let latch = crowd.latch.clone();
        let (outcomes, _) = crowd.join_all();
        assert_eq!(latch.finished.load(Ordering::Acquire), 2);
        assert!(matches!(outcomes[0], Ok(7)));
        assert!(outcomes[1].is_err());
        executor.shutdown(ShutdownMode::Wait).unwrap();
    }
}
