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
//!    [`Crowd::join_all`] collects every outcome.
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
use std::time::{Duration, Instant};

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

/// Many members alive at once; see the module docs.
pub(crate) struct Crowd<R> {
    handles: Vec<JoinHandle<Outcome<R>>>,
    failures: Arc<Failures>,
}

impl<R: Send + 'static> Crowd<R> {
    /// An empty crowd with room for `capacity` members.
    pub(crate) fn with_capacity(capacity: usize) -> Crowd<R> {
        Crowd {
            handles: Vec::with_capacity(capacity),
            failures: Arc::new(Failures::default()),
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
        let spawned = executor.spawn(move || {
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

    /// Joins every member, in spawn order, recording failures the bodies
    /// could not see (a green thread that never started).
    pub(crate) fn join_all(self) -> (Vec<Outcome<R>>, Arc<Failures>) {
        let failures = self.failures;
        let outcomes = self
            .handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(outcome) => outcome,
                Err(e) => {
                    let e = RunError::from(e);
                    if !e.is_cancelled() {
                        failures.record(&e);
                    }
                    Err(e)
                }
            })
            .collect();
        (outcomes, failures)
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
