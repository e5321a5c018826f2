//! The executor: a set of workers, one per core, and the ways to put green
//! threads on them and to shut them down.
//!
//! Placement happens once, at spawn: [`Executor::spawn`] reserves room on the
//! least-loaded worker (the load is the worker's count of live and in-flight
//! green threads; ties go to the caller's own worker, so a green thread's
//! children stay local when that is as good) and either starts the green
//! thread directly, when called on that worker, or sends it through the
//! worker's inbox. Green threads never migrate afterwards. The shutdown
//! protocol is described in `worker.rs`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};
use parking_lot::Mutex;

use crate::builder::Config;
use crate::context::current_worker;
use crate::epoch::{epoch_counter, EpochLease};
use crate::error::{BuildError, ShutdownError, SpawnError};
use crate::join::{make_job, JoinHandle, Packet};
use crate::rotation::Rotator;
use crate::stack_pool::StackPool;
use crate::task::Task;
use crate::worker::{Message, WorkerCore, WorkerRemote, WAKER_TOKEN};

/// How [`Executor::shutdown`] treats green threads that are still alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Let every green thread run to completion.
    Wait,
    /// Wait at most this long, then cancel what is left.
    WaitTimeout(Duration),
    /// Cancel every green thread: each unwinds at its next suspension point
    /// (see [`JoinHandle::cancel`]).
    Cancel,
}

const MODE_NONE: u8 = 0;
const MODE_WAIT: u8 = 1;
const MODE_CANCEL: u8 = 2;

/// What a worker is asked to do about shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShutdownRequest {
    None,
    Wait { deadline: Option<Instant> },
    Cancel,
}

/// State shared by the executor, its handles and its workers.
pub(crate) struct Shared {
    workers: Box<[Arc<WorkerRemote>]>,
    mode: AtomicU8,
    drain_deadline: Mutex<Option<Instant>>,
    live_workers: AtomicUsize,
    epoch_lease: Mutex<Option<EpochLease>>,
    timeslice_ticks: u64,
}

thread_local! {
    /// Rotates the first worker looked at by spawns from non-worker threads.
    static SPAWN_CURSOR: Cell<usize> = const { Cell::new(0) };
}

impl Shared {
    pub(crate) fn shutdown_request(&self) -> ShutdownRequest {
        match self.mode.load(Ordering::Acquire) {
            MODE_NONE => ShutdownRequest::None,
            MODE_WAIT => ShutdownRequest::Wait {
                deadline: *self.drain_deadline.lock(),
            },
            _ => ShutdownRequest::Cancel,
        }
    }

    fn request_shutdown(&self, mode: ShutdownMode) {
        match mode {
            ShutdownMode::Wait => {
                let _ = self.mode.compare_exchange(
                    MODE_NONE,
                    MODE_WAIT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            ShutdownMode::WaitTimeout(limit) => {
                {
                    let mut deadline = self.drain_deadline.lock();
                    let at = Instant::now().checked_add(limit);
                    *deadline = match (*deadline, at) {
                        (Some(old), Some(new)) => Some(old.min(new)),
                        (old, new) => old.or(new),
                    };
                }
                let _ = self.mode.compare_exchange(
                    MODE_NONE,
                    MODE_WAIT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            ShutdownMode::Cancel => self.mode.store(MODE_CANCEL, Ordering::Release),
        }
        for worker in self.workers.iter() {
            worker.close();
        }
    }

    fn is_shut_down(&self) -> bool {
        self.mode.load(Ordering::Acquire) != MODE_NONE
    }

    /// Called by each worker as it exits; the last one releases the ticker.
    pub(crate) fn worker_exited(&self) {
        if self.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(self.epoch_lease.lock().take());
        }
    }

    fn is_own_worker(&self) -> bool {
        current_worker().is_some_and(|w| std::ptr::eq(&**w.shared(), self))
    }

    /// The least-loaded worker (ties: the caller's own, else rotating).
    fn pick_worker(&self) -> usize {
        self.pick_worker_near(0)
    }

    pub(crate) fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_on(self.pick_worker(), f)
    }

    /// The caller's own worker if it is one of ours and has at most
    /// `slack` more green threads than the least-loaded; else the
    /// least-loaded.
    fn pick_worker_near(&self, slack: usize) -> usize {
        let n = self.workers.len();
        if n <= 1 {
            return 0;
        }
        // One scan, from the caller's own worker (or a rotating start).
        let (start, mine) = match current_worker() {
            Some(w) if std::ptr::eq(&**w.shared(), self) => (w.remote().index(), true),
            _ => (
                SPAWN_CURSOR.with(|c| {
                    let v = c.get().wrapping_add(1);
                    c.set(v);
                    v % n
                }),
                false,
            ),
        };
        let start_load = self.workers[start].load();
        let (mut best, mut best_load) = (start, start_load);
        for k in 1..n {
            let i = (start + k) % n;
            let load = self.workers[i].load();
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        if mine && start_load <= best_load.saturating_add(slack) {
            start
        } else {
            best
        }
    }

    pub(crate) fn spawn_on<F, T>(&self, index: usize, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let workers = self.workers.len();
        let remote = self
            .workers
            .get(index)
            .ok_or(SpawnError::NoSuchWorker { index, workers })?;
        remote.reserve()?;
        let packet = Arc::new(Packet::new());
        let task = Task::new(
            remote.next_id(),
            remote.clone(),
            self.timeslice_ticks,
            packet.clone(),
        );
        let (job, handle) = make_job(f, task.clone(), packet);
        match current_worker() {
            Some(worker) if std::ptr::eq(worker.remote(), &**remote) => {
                worker.start_task(task, job);
            }
            _ => remote.send(Message::Spawn {
                task,
                job: Box::new(job),
            }),
        }
        Ok(handle)
    }
}

/// A cloneable, `Send + Sync` reference to an executor, for spawning from
/// anywhere. It does not keep the workers running: once the executor shuts
/// down, spawning through a handle fails with [`SpawnError::ShutDown`].
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// The executor the caller runs on (inside a green thread or a worker).
    pub fn current() -> Option<Handle> {
        current_worker().map(|w| Handle {
            shared: w.shared().clone(),
        })
    }

    /// Spawns `f` as a green thread on the least-loaded worker.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.spawn(f)
    }

    /// Spawns `f` as a green thread on worker `worker`.
    pub fn spawn_on<F, T>(&self, worker: usize, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.spawn_on(worker, f)
    }

    /// Spawns `f` on the caller's own worker when the caller runs on this
    /// executor and its worker has at most `slack` more green threads than
    /// the least-loaded one (no cross-thread wake-up); else on the
    /// least-loaded worker, as [`spawn`](Self::spawn).
    pub fn spawn_near<F, T>(&self, slack: usize, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = &self.shared;
        shared.spawn_on(shared.pick_worker_near(slack), f)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Green threads alive or in flight, per worker.
    pub fn loads(&self) -> Vec<usize> {
        self.shared.workers.iter().map(|w| w.load()).collect()
    }

    /// Starts shutting down and returns at once (see
    /// [`Executor::shutdown`] to wait for it). Calling it again may turn a
    /// `Wait` into a `Cancel`, never the reverse.
    pub fn shutdown(&self, mode: ShutdownMode) {
        self.shared.request_shutdown(mode);
    }

    /// Whether shutdown has been requested.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shut_down()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

/// Spawns `f` as a green thread on the executor the caller runs on (least
/// loaded worker). Fails with [`SpawnError::NoExecutor`] outside executors.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match current_worker() {
        Some(worker) => worker.shared().spawn(f),
        None => Err(SpawnError::NoExecutor),
    }
}

/// A thread-per-core executor of green threads. Built with
/// [`Executor::builder`]; dropping it shuts it down with
/// [`ShutdownMode::Cancel`] and waits for its workers.
pub struct Executor {
    handle: Handle,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Moves the workers between CPUs, when that applies (`rotation.rs`).
    rotator: Option<Rotator>,
}

impl Executor {
    /// A builder with the default configuration.
    pub fn builder() -> crate::ExecutorBuilder {
        crate::ExecutorBuilder::new()
    }

    /// An executor with the default configuration.
    pub fn new() -> Result<Executor, BuildError> {
        Self::builder().build()
    }

    pub(crate) fn start(config: Config) -> Result<Executor, BuildError> {
        let lease = EpochLease::acquire(config.epoch_tick, config.realtime_ticker)?;
        let n = config.workers;
        let mut polls = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        for index in 0..n {
            let poll_err = |source| BuildError::Poll {
                worker: index,
                source,
            };
            let poll = Poll::new().map_err(poll_err)?;
            let waker = Waker::new(poll.registry(), WAKER_TOKEN).map_err(poll_err)?;
            let registry = poll.registry().try_clone().map_err(poll_err)?;
            remotes.push(Arc::new(WorkerRemote::new(
                index,
                n,
                config.stacks.max_stacks,
                waker,
                registry,
            )));
            polls.push(poll);
        }
        let shared = Arc::new(Shared {
            workers: remotes.into_boxed_slice(),
            mode: AtomicU8::new(MODE_NONE),
            drain_deadline: Mutex::new(None),
            live_workers: AtomicUsize::new(n),
            epoch_lease: Mutex::new(Some(lease)),
            timeslice_ticks: config.timeslice_ticks,
        });
        let rotation =
            Rotator::applies(config.rotate_workers, config.pin_workers, n).and_then(Rotator::start);
        let (rotator, thread_ids) = rotation.unzip();
        let mut threads = Vec::with_capacity(n);
        for (index, poll) in polls.into_iter().enumerate() {
            let remote = shared.workers[index].clone();
            let worker_shared = shared.clone();
            let stacks = StackPool::new(config.stacks.clone());
            let pin = config.pin_workers;
            let capacity = config.event_capacity;
            let epoch_tick = config.epoch_tick;
            let hooks = config.hooks;
            let thread_ids = thread_ids.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", config.thread_name))
                .spawn(move || {
                    let _rotated = thread_ids.map(|ids| ids.register(index));
                    if pin {
                        // Best effort: an unpinned worker still works.
                        let _ = crate::sys::pin_current_thread(index);
                    }
                    let core = WorkerCore::new(
                        remote,
                        worker_shared,
                        stacks,
                        poll,
                        capacity,
                        epoch_tick,
                        hooks,
                    );
                    core.run();
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    // Workers that never started will never exit: account
                    // for them, then stop the ones that did.
                    for _ in index..n {
                        shared.worker_exited();
                    }
                    shared.request_shutdown(ShutdownMode::Cancel);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    if let Some(rotator) = rotator {
                        rotator.stop();
                    }
                    return Err(BuildError::Thread(err));
                }
            }
        }
        Ok(Executor {
            handle: Handle { shared },
            threads,
            rotator,
        })
    }

    /// A handle for spawning from other threads.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns `f` as a green thread on the least-loaded worker.
    ///
    /// Fails with [`SpawnError::ShutDown`] after shutdown and with
    /// [`SpawnError::StackPoolExhausted`] when the chosen (least-loaded)
    /// worker's stack pool is at its limit.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Spawns `f` as a green thread on worker `worker`.
    pub fn spawn_on<F, T>(&self, worker: usize, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn_on(worker, f)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.handle.workers()
    }

    /// Whether the workers are being moved between CPUs (see
    /// [`ExecutorBuilder::rotate_workers`](crate::ExecutorBuilder::rotate_workers)).
    pub fn rotates_workers(&self) -> bool {
        self.rotator.is_some()
    }

    /// The process-wide epoch counter (same as [`crate::epoch_counter`]).
    pub fn epoch_counter(&self) -> &'static AtomicU64 {
        epoch_counter()
    }

    /// Shuts down: no new green threads are accepted, live ones are waited
    /// for or cancelled according to `mode`, then the worker threads exit
    /// and are joined.
    ///
    /// Called from one of this executor's own green threads it cannot wait
    /// for the workers: it starts the shutdown and returns
    /// [`ShutdownError::CalledFromWorker`].
    pub fn shutdown(mut self, mode: ShutdownMode) -> Result<(), ShutdownError> {
        self.shutdown_and_join(mode)
    }

    fn shutdown_and_join(&mut self, mode: ShutdownMode) -> Result<(), ShutdownError> {
        let shared = &self.handle.shared;
        shared.request_shutdown(mode);
        if shared.is_own_worker() {
            self.threads.clear();
            return Err(ShutdownError::CalledFromWorker);
        }
        let mut result = Ok(());
        for (index, thread) in self.threads.drain(..).enumerate() {
            if thread.join().is_err() {
                result = Err(ShutdownError::WorkerPanicked(index));
            }
        }
        if let Some(rotator) = self.rotator.take() {
            rotator.stop();
        }
        result
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.shutdown_and_join(ShutdownMode::Cancel);
        }
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}
