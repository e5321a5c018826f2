//! One worker: an OS thread that multiplexes green threads.
//!
//! # State
//!
//! Each worker has two halves:
//!
//! - [`WorkerRemote`], shared with every thread: the inbox (a lock-free
//!   `SegQueue` of [`Message`]s), the `mio::Waker` and a small wake-state
//!   word, the spawn reservation counter (which is also the load used for
//!   placement) and a clone of the `mio::Registry`;
//! - [`WorkerCore`], owned by the worker thread (it lives on that thread's
//!   stack and is reached from green threads through a thread-local
//!   pointer): the FIFO run queue, the task table, the stack pool, the timer
//!   heap, the I/O readiness table and the `mio::Poll`. Its interior
//!   `RefCell`s are never borrowed across a green-thread switch.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     run up to BATCH tasks from the front of the run queue      (1)
//!     maintenance:
//!         observe a shutdown request                             (2)
//!         drain the inbox (up to a batch) if notified            (3)
//!         fire expired timers                                    (4)
//!         if the run queue is empty:
//!             exit if shutting down and nothing is left          (5)
//!             if idle for TRIM_AFTER_IDLE: trim or settle a batch
//!             of idle stacks, run the idle hook; else sleep in
//!             poll() until the next timer, a wake-up, or time
//!             to trim                                        (6)
//!         else if any I/O source is registered:
//!             poll() with a zero timeout                         (7)
//! }
//! ```
//!
//! 1. Running a task: the worker publishes the task, its stack bounds and
//!    its green-local value in the thread-local context, calls the switch
//!    hook's `on_resume` (if the executor has one), resumes the coroutine,
//!    and on return calls `on_suspend`, saves the green-local value and
//!    clears the context. The coroutine suspends with `Yield` (pushed to the back of the
//!    run queue) or `Park` (left alone: whoever unparks it re-queues it; see
//!    the park protocol in `task.rs`), or returns (finished: its stack goes
//!    back to the pool, it is removed from the task table). Panics never
//!    reach the loop: the coroutine's entry function catches them.
//! 2. See "Shutdown" below.
//! 3. The inbox carries spawns from other threads, wake-ups of parked tasks
//!    (from `unpark` on other threads) and I/O registrations to free.
//! 4. An expired timer unparks its task if the timer is still the task's
//!    live one (timers are cancelled lazily).
//! 5. See "Shutdown".
//! 6. Sleeping without lost wake-ups: an idle worker first watches its wake
//!    state for `IDLE_SPIN` (50 µs) and drains at once if a sender sets it
//!    to `NOTIFIED`; then it swaps its wake state to
//!    `SLEEPING`; if that returns `NOTIFIED`, a message arrived since the
//!    last drain, so it drains instead of sleeping. A sender pushes its
//!    message first and then swaps the state to `NOTIFIED`; only if it saw
//!    `SLEEPING` does it write to the `mio::Waker` (one `eventfd` write).
//!    Both sides use read-modify-writes on the same word, so one of them
//!    always sees the other. While the worker is busy, senders pay one
//!    atomic swap and no system call.
//! 7. Readiness events set bits in the readiness table and unpark the
//!    tasks waiting on them. Without registered sources the worker makes no
//!    `epoll_wait` call while busy.
//!
//! # Prefetching
//!
//! With thousands of green threads, what a resume touches (the task
//! record, the top frames of the green thread's stack, the state its code
//! reads first) is no longer in the caches, and each miss is found only
//! when the previous one has returned: the yield workload at 10,000
//! instances spent most of a switch's 300 ns waiting for about ten misses
//! in turn. So before running a task, the worker asks the CPU to start
//! loading what two tasks further down the run queue will need, in two
//! steps two switches apart:
//!
//! - the task `RECORD_AHEAD` (4) places ahead: the lines of its task record
//!   that a switch touches (`Task::HOT_LINES`; a task queued while the run
//!   queue is short, as one woken by I/O, gets them prefetched as it is
//!   queued), and, when its run-queue entry carries them (a task queued
//!   right after it yielded, its record still in the caches, gets where it
//!   suspended and its resume hints copied into the entry), the
//!   `STACK_PREFETCH_LINES` lines of its stack from where it suspended and
//!   the addresses its code gave with
//!   [`set_resume_hints`](crate::set_resume_hints);
//! - the task `STACK_AHEAD` (2) places ahead, whose record the first step
//!   loaded two switches before (or, in a shorter queue, the last task):
//!   the same stack lines and hints, read from its record (`Task::suspend`
//!   notes the address there), if the first step could not.
//!
//! A task woken after a park also gets its park hints prefetched (see
//! [`set_park_hints`](crate::set_park_hints)), one line further into its
//! record (`Task::WOKEN_LINES`): what the code it parked in touches when
//! it wakes, like the buffer a socket read fills. On the echo benchmark at
//! 1,000 connections, where every request wakes a parked instance, WASI's
//! socket reads naming their buffer, the guest word they write the count
//! to and the socket took Shoal's server from a median of 119.9k to
//! 128.9k requests/s (8 rounds each, the builds taking turns; +2% and +4%
//! in two runs with the hints switched on and off in one build); `yield`,
//! whose tasks never park, did not change.
//!
//! These are hints only (`prefetcht0`): nothing is read through them.
//! The misses then overlap with the runs of the tasks before it, which took
//! the yield workload at 10,000 instances from 3.3–6.7M to 7.5–12M switches
//! a second on the development machine when the steps were one switch
//! apart, each a switch ahead. On a virtual machine a miss that also misses
//! the TLB takes longer than one switch (about 90 ns) to come back: the
//! worker still waited on the record's lines it had prefetched, and two
//! switches ahead for both steps made `yield` 15–25% faster again. Taking
//! the stack's address from the queue entry starts the stack's misses
//! with the record's instead of after them: +11–15% on one worker; the
//! hints from the entry too, another +12%.
//!
//! # Shutdown
//!
//! 1. `shutdown(mode)` sets the CLOSED bit in every worker's reservation
//!    counter (from then on `spawn` fails with `SpawnError::ShutDown`), stores
//!    the mode and notifies every worker. Spawns that reserved before the bit
//!    was set are still delivered and counted.
//! 2. `Wait`: the worker keeps running normally. `WaitTimeout(d)`: the same,
//!    until `d` has passed, then as `Cancel`.
//! 3. `Cancel`: the worker sets the cancel flag of every live task and
//!    unparks it; spawns still arriving start cancelled (their closure is
//!    dropped unrun). Each cancelled task unwinds at its next suspension
//!    point (or, in the `try_` variants, gets `Err(Cancelled)` and returns).
//!    A task that keeps suspending after cancellation for
//!    `CANCEL_RESUME_LIMIT` resumes is abandoned: its coroutine and stack are
//!    leaked (never unwound through possibly foreign frames) and its
//!    JoinHandle reports `Cancelled`.
//! 4. The worker exits when shutdown was requested, its run queue and task
//!    table are empty and its reservation count is zero (no spawn in
//!    flight). It drops what is left in its inbox, timers and readiness
//!    table, unmaps its stack pool, and the last worker to exit releases the
//!    epoch ticker.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;
use mio::{Events, Poll, Registry, Token, Waker};

use crate::cache::{prefetch, prefetch_lines, LINE};
use crate::context::CTX;
use crate::epoch::epoch_now;
use crate::error::SpawnError;
use crate::executor::{Shared, ShutdownRequest};
use crate::hooks::{WorkerHooks, RESUME_HINTS};
use crate::io::IoTable;
use crate::stack_pool::{StackError, StackPool};
use crate::task::{BoxedJob, Coro, Start, Suspend, Task, TaskTable};
use crate::timer::TimerHeap;

/// Tasks run between two maintenance passes (as in tokio).
const BATCH: usize = 61;
/// Resumes a cancelled task gets during a cancelling shutdown before it is
/// abandoned.
const CANCEL_RESUME_LIMIT: u32 = 100_000;
/// Inbox messages handled per maintenance pass.
const INBOX_BATCH: usize = 256;
/// Idle stacks trimmed or settled per idle pass of the loop.
const TRIM_BATCH: usize = 256;
/// How long a worker must have been idle before it trims and settles its
/// idle stacks.
const TRIM_AFTER_IDLE: Duration = Duration::from_millis(50);
/// How long an idle worker watches its wake state before it sleeps in
/// `epoll_wait` (step 6 of the loop): a message in that window costs its
/// sender one atomic swap instead of an `eventfd` write and the worker no
/// sleep/wake cycle, which on the development VM cost tens to hundreds of
/// microseconds (an idle virtual CPU must be woken by the hypervisor). It
/// decided whether `spawn` at concurrency 256 kept both workers busy
/// (~1M instances/s) or not (~550k/s).
const IDLE_SPIN: Duration = Duration::from_micros(50);
/// mio token of the worker's waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

const RUNNING: u8 = 0;
const SLEEPING: u8 = 1;
const NOTIFIED: u8 = 2;

/// High bit of the reservation counter: no more spawns accepted.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Work sent to a worker from other threads.
pub(crate) enum Message {
    /// Start a green thread.
    Spawn { task: Arc<Task>, job: BoxedJob },
    /// A parked task was unparked: queue it.
    Wake(Arc<Task>),
    /// Free an I/O readiness slot (its source was deregistered).
    FreeIo(usize),
}

/// The part of a worker other threads see.
pub(crate) struct WorkerRemote {
    index: usize,
    /// Tasks alive or in flight to this worker, plus the CLOSED bit.
    reserved: CachePadded<AtomicUsize>,
    next_id: AtomicU64,
    id_stride: u64,
    max_stacks: usize,
    wake_state: CachePadded<AtomicU8>,
    inbox: SegQueue<Message>,
    waker: Waker,
    registry: Registry,
}

impl WorkerRemote {
    pub(crate) fn new(
        index: usize,
        workers: usize,
        max_stacks: usize,
        waker: Waker,
        registry: Registry,
    ) -> WorkerRemote {
        WorkerRemote {
            index,
            reserved: CachePadded::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(0),
            id_stride: workers as u64,
            max_stacks,
            wake_state: CachePadded::new(AtomicU8::new(RUNNING)),
            inbox: SegQueue::new(),
            waker,
            registry,
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Tasks alive or in flight (the placement load).
    pub(crate) fn load(&self) -> usize {
        self.reserved.load(Ordering::Relaxed) & !CLOSED
    }

    /// A new green-thread id, unique within the executor (never 0).
    pub(crate) fn next_id(&self) -> u64 {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        (n * self.id_stride + self.index as u64) + 1
    }

    /// Reserves room for one more task, or says why not.
    pub(crate) fn reserve(&self) -> Result<(), SpawnError> {
        let prev = self.reserved.fetch_add(1, Ordering::AcqRel);
        if prev & CLOSED != 0 {
            self.release_reservation();
            return Err(SpawnError::ShutDown);
        }
        if prev >= self.max_stacks {
            self.release_reservation();
            return Err(SpawnError::StackPoolExhausted {
                worker: self.index,
                limit: self.max_stacks,
            });
        }
        Ok(())
    }

    /// Gives back one reservation; wakes the worker when that may let it
    /// finish shutting down.
    pub(crate) fn release_reservation(&self) {
        let prev = self.reserved.fetch_sub(1, Ordering::AcqRel);
        if prev & CLOSED != 0 && prev & !CLOSED == 1 {
            self.notify();
        }
    }

    /// Refuses all further reservations.
    pub(crate) fn close(&self) {
        self.reserved.fetch_or(CLOSED, Ordering::AcqRel);
        self.notify();
    }

    /// Queues a message and makes sure the worker will look at it.
    pub(crate) fn send(&self, message: Message) {
        self.inbox.push(message);
        self.notify();
    }

    fn notify(&self) {
        if self.wake_state.swap(NOTIFIED, Ordering::AcqRel) == SLEEPING {
            // An error here means the eventfd is gone (process teardown);
            // nothing useful can be done about it.
            let _ = self.waker.wake();
        }
    }
}

/// Where the worker is in the shutdown protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Draining { deadline: Option<Instant> },
    Cancelling,
}

/// The part of a worker only its own thread touches.
pub(crate) struct WorkerCore {
    remote: Arc<WorkerRemote>,
    shared: Arc<Shared>,
    run_queue: RefCell<VecDeque<Queued>>,
    tasks: RefCell<TaskTable>,
    stacks: RefCell<StackPool>,
    timers: RefCell<TimerHeap<Arc<Task>>>,
    io: RefCell<IoTable>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    phase: Cell<Phase>,
    /// The last inbox drain stopped at its batch limit.
    inbox_backlog: Cell<bool>,
    /// Epoch at the last batch that ran something.
    last_busy_epoch: Cell<u64>,
    epoch_tick: Duration,
    /// Quiet ticks before idle stacks are trimmed and settled.
    trim_after_ticks: u64,
    hooks: WorkerHooks,
    /// Green threads ran since the idle hook last reported nothing left.
    idle_hook_due: Cell<bool>,
}

impl WorkerCore {
    pub(crate) fn new(
        remote: Arc<WorkerRemote>,
        shared: Arc<Shared>,
        stacks: StackPool,
        poll: Poll,
        event_capacity: usize,
        epoch_tick: Duration,
        hooks: WorkerHooks,
    ) -> WorkerCore {
        let trim_after_ticks =
            (TRIM_AFTER_IDLE.as_nanos() / epoch_tick.as_nanos().max(1)).max(1) as u64;
        WorkerCore {
            remote,
            shared,
            run_queue: RefCell::new(VecDeque::with_capacity(256)),
            tasks: RefCell::new(TaskTable::new()),
            stacks: RefCell::new(stacks),
            timers: RefCell::new(TimerHeap::new()),
            io: RefCell::new(IoTable::new()),
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(event_capacity.max(16))),
            phase: Cell::new(Phase::Running),
            inbox_backlog: Cell::new(false),
            last_busy_epoch: Cell::new(0),
            epoch_tick,
            trim_after_ticks,
            hooks,
            idle_hook_due: Cell::new(false),
        }
    }

    pub(crate) fn remote(&self) -> &WorkerRemote {
        &self.remote
    }

    pub(crate) fn remote_arc(&self) -> &Arc<WorkerRemote> {
        &self.remote
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn io(&self) -> &RefCell<IoTable> {
        &self.io
    }

    /// Whether a cancelling shutdown is under way on this worker.
    pub(crate) fn is_cancelling(&self) -> bool {
        self.phase.get() == Phase::Cancelling
    }

    /// Queues a runnable task at the back of the run queue: a new one, or
    /// one that just yielded (its record is in the caches, so where it
    /// suspended and its resume hints are copied into the queue entry).
    #[inline]
    pub(crate) fn push_runnable(&self, task: Arc<Task>) {
        let local = task.local();
        let (suspended_at, hints) = (local.suspended_at.get(), local.resume_hints.get());
        self.run_queue
            .borrow_mut()
            .push_back(Queued::new(task, suspended_at, hints));
    }

    /// Queues a task woken after it parked. When the queue is short, the
    /// task will run soon, and having waited it is likely out of the
    /// caches: its record starts loading now (see "Prefetching" in the
    /// module docs).
    #[inline]
    pub(crate) fn push_woken(&self, task: Arc<Task>) {
        let mut queue = self.run_queue.borrow_mut();
        if queue.len() < PREFETCH_ON_PUSH_BELOW {
            prefetch_record(&task, Task::WOKEN_LINES);
        }
        // Where it suspended is in its record, likely out of the caches:
        // read later (`prefetch_next`), not now.
        queue.push_back(Queued::new(task, 0, [0; RESUME_HINTS]));
    }

    /// Arms `task`'s timer (replacing any previous one); returns its number.
    pub(crate) fn add_timer(&self, at: Instant, task: Arc<Task>) -> u64 {
        if task.local().timer_seq.get() != 0 {
            self.cancel_timer(&task);
        }
        let local_task = task.clone();
        let seq = self.timers.borrow_mut().insert(at, task);
        local_task.local().timer_seq.set(seq);
        seq
    }

    /// Disarms `task`'s timer.
    pub(crate) fn cancel_timer(&self, task: &Task) {
        task.local().timer_seq.set(0);
        self.timers
            .borrow_mut()
            .note_cancelled(|seq, t| t.local().timer_seq.get() == seq);
    }

    /// Creates the coroutine of `task` on a pooled stack and queues it.
    /// Runs on this worker's thread.
    pub(crate) fn start_task<J>(&self, task: Arc<Task>, job: J)
    where
        J: FnOnce(&Task, Start) + 'static,
    {
        if self.phase.get() == Phase::Cancelling {
            task.set_cancelled();
        }
        let stack = self.stacks.borrow_mut().acquire();
        let stack = match stack {
            Ok(stack) => stack,
            Err(err) => {
                let err = match err {
                    StackError::Exhausted { limit } => SpawnError::StackPoolExhausted {
                        worker: self.remote.index,
                        limit,
                    },
                    other => SpawnError::StackAllocation {
                        worker: self.remote.index,
                        reason: other.to_string(),
                    },
                };
                job(&task, Start::Fail(err));
                task.mark_done();
                return;
            }
        };
        let local = task.local();
        local.bounds.set(stack.bounds());
        let task_ptr: *const Task = Arc::as_ptr(&task);
        let coroutine = Coro::with_stack(stack, move |yielder, ()| {
            // SAFETY: the worker's task table holds a strong reference to
            // the task for as long as its coroutine exists.
            let task = unsafe { &*task_ptr };
            let local = task.local();
            local.yielder.set(yielder);
            let slice = local.timeslice.get();
            if slice != 0 {
                local.deadline.set(epoch_now().saturating_add(slice));
            }
            job(task, Start::Run);
        });
        // SAFETY: owner thread; the coroutine slot of a new task is empty and
        // nothing else references it.
        unsafe { *local.coroutine.get() = Some(coroutine) };
        local.slot.set(self.tasks.borrow_mut().insert(task.clone()));
        self.push_runnable(task);
    }

    /// Runs the worker loop until shutdown completes.
    pub(crate) fn run(&self) {
        CTX.with(|c| c.worker.set(self));
        loop {
            self.run_batch();
            if !self.maintain() {
                break;
            }
        }
        self.teardown();
        CTX.with(|c| c.worker.set(std::ptr::null()));
    }

    fn run_batch(&self) {
        if self.run_queue.borrow().is_empty() {
            return;
        }
        self.last_busy_epoch.set(epoch_now());
        self.idle_hook_due.set(self.hooks.idle.is_some());
        for _ in 0..BATCH {
            let next = {
                let mut queue = self.run_queue.borrow_mut();
                let next = queue.pop_front().map(|queued| queued.task);
                prefetch_next(&mut queue);
                next
            };
            match next {
                Some(task) => self.run_task(task),
                None => return,
            }
        }
    }

    fn run_task(&self, task: Arc<Task>) {
        let local = task.local();
        if self.phase.get() == Phase::Cancelling && task.is_cancelled() {
            let resumes = local.cancel_resumes.get().saturating_add(1);
            local.cancel_resumes.set(resumes);
            if resumes > CANCEL_RESUME_LIMIT {
                self.abandon(task);
                return;
            }
        }
        // SAFETY: owner thread. The `&mut` to the coroutine is the only
        // reference to it while it runs: code on the green thread never
        // touches its own `coroutine` field.
        let Some(coroutine) = (unsafe { &mut *local.coroutine.get() }).as_mut() else {
            return;
        };
        let (guard_start, usable_start, top) = local.bounds.get();
        CTX.with(|c| {
            c.task.set(Arc::as_ptr(&task));
            c.guard_start.set(guard_start);
            c.usable_start.set(usable_start);
            c.stack_top.set(top);
            c.green_local.set(local.green_local.get());
        });
        if let Some(hook) = self.hooks.switch {
            // SAFETY: owner thread; the hook's `&mut` is the only reference
            // to the slot while it runs (nothing else reaches a task's
            // slot), and it ends with the call. In place: copying the slot
            // out and back cost more than the hook itself.
            (hook.on_resume)(unsafe { &mut *local.switch_slot.get() });
        }
        let result = catch_unwind(AssertUnwindSafe(|| coroutine.resume(())));
        if let Some(hook) = self.hooks.switch {
            // SAFETY: as for `on_resume` above.
            (hook.on_suspend)(unsafe { &mut *local.switch_slot.get() });
        }
        CTX.with(|c| {
            local.green_local.set(c.green_local.get());
            c.task.set(std::ptr::null());
            c.guard_start.set(0);
            c.usable_start.set(0);
            c.stack_top.set(0);
            c.green_local.set(std::ptr::null_mut());
        });
        match result {
            Ok(CoroutineResult::Yield(Suspend::Yield)) => self.push_runnable(task),
            Ok(CoroutineResult::Yield(Suspend::Park)) => {}
            Ok(CoroutineResult::Return(())) => self.finish(task),
            // The entry function catches everything; a panic here would be a
            // scheduler bug. The coroutine is finished either way.
            Err(payload) => {
                std::mem::forget(payload);
                self.finish(task);
            }
        }
    }

    /// Recycles a finished task's stack and forgets the task.
    fn finish(&self, task: Arc<Task>) {
        let local = task.local();
        // SAFETY: owner thread, coroutine not running.
        let coroutine = unsafe { (*local.coroutine.get()).take() };
        if let Some(coroutine) = coroutine {
            if coroutine.done() {
                self.stacks.borrow_mut().release(coroutine.into_stack());
            } else {
                std::mem::forget(coroutine);
            }
        }
        self.retire(&task);
    }

    /// Gives up on a task that ignores cancellation: its coroutine (and
    /// stack) is leaked rather than unwound, and its joiner told `Cancelled`.
    fn abandon(&self, task: Arc<Task>) {
        // SAFETY: owner thread, coroutine not running.
        let coroutine = unsafe { (*task.local().coroutine.get()).take() };
        std::mem::forget(coroutine);
        task.abort_join();
        self.retire(&task);
    }

    fn retire(&self, task: &Arc<Task>) {
        let local = task.local();
        task.mark_done();
        if !local.reservation_released.replace(true) {
            self.remote.release_reservation();
        }
        if local.timer_seq.get() != 0 {
            self.cancel_timer(task);
        }
        let removed = self.tasks.borrow_mut().remove(local.slot.get());
        drop(removed);
    }

    /// Returns false when the worker should exit.
    fn maintain(&self) -> bool {
        self.observe_shutdown();
        if self.inbox_backlog.get() || self.take_notification() {
            self.drain_inbox();
        }
        self.fire_timers();
        let idle = self.run_queue.borrow().is_empty();
        if idle {
            if self.phase.get() != Phase::Running
                && self.remote.load() == 0
                && self.tasks.borrow().is_empty()
            {
                return false;
            }
            self.sleep();
        } else if self.io.borrow().live() > 0 {
            self.poll_io(Some(Duration::ZERO));
        }
        true
    }

    fn observe_shutdown(&self) {
        match (self.phase.get(), self.shared.shutdown_request()) {
            (_, ShutdownRequest::None) => {}
            (Phase::Running, ShutdownRequest::Wait { deadline }) => {
                self.phase.set(Phase::Draining { deadline });
            }
            (Phase::Running | Phase::Draining { .. }, ShutdownRequest::Cancel) => {
                self.begin_cancel();
            }
            (Phase::Draining { deadline: Some(at) }, _) if Instant::now() >= at => {
                self.begin_cancel();
            }
            _ => {}
        }
    }

    fn begin_cancel(&self) {
        self.phase.set(Phase::Cancelling);
        let tasks = self.tasks.borrow().snapshot();
        for task in tasks {
            Task::cancel(&task);
        }
    }

    fn take_notification(&self) -> bool {
        self.remote.wake_state.load(Ordering::Relaxed) == NOTIFIED
            && self.remote.wake_state.swap(RUNNING, Ordering::AcqRel) == NOTIFIED
    }

    /// Handles up to INBOX_BATCH messages; remembers if more are waiting.
    /// (Bounded so that a flood of spawns becomes green threads at the pace
    /// they complete, reusing a few warm stacks, instead of all at once.)
    fn drain_inbox(&self) {
        self.inbox_backlog.set(false);
        for _ in 0..INBOX_BATCH {
            let Some(message) = self.remote.inbox.pop() else {
                return;
            };
            match message {
                Message::Spawn { task, job } => self.start_task(task, job),
                Message::Wake(task) => {
                    if !task.is_done() {
                        self.push_woken(task);
                    }
                }
                Message::FreeIo(token) => self.io.borrow_mut().free(token),
            }
        }
        self.inbox_backlog.set(true);
    }

    fn fire_timers(&self) {
        if self.timers.borrow().is_empty() {
            return;
        }
        let now = Instant::now();
        loop {
            let expired = self.timers.borrow_mut().pop_expired(now);
            let Some((seq, task)) = expired else {
                break;
            };
            let local = task.local();
            if local.timer_seq.get() == seq {
                local.timer_seq.set(0);
                Task::unpark(&task);
            } else {
                self.timers.borrow_mut().note_stale_popped();
            }
        }
    }

    /// Sleeps in `poll` until the next timer, an I/O event or a message.
    fn sleep(&self) {
        if self.inbox_backlog.get() {
            return;
        }
        let now = Instant::now();
        let mut wake_at = self.timers.borrow().next_deadline();
        // Idle stacks are trimmed and settled (see `stack_pool.rs`), and
        // the idle hook runs, once the worker has been quiet for
        // TRIM_AFTER_IDLE (measured in epoch ticks, which cost nothing to
        // read), a batch per pass; until then, wake up in time to do it.
        if self.stacks.borrow().has_idle_work() || self.idle_hook_due.get() {
            let quiet = epoch_now().saturating_sub(self.last_busy_epoch.get());
            if quiet >= self.trim_after_ticks {
                self.stacks.borrow_mut().trim_idle(TRIM_BATCH);
                if self.idle_hook_due.get() {
                    let more = self.hooks.idle.is_some_and(|hook| hook(TRIM_BATCH));
                    self.idle_hook_due.set(more);
                }
                self.poll_io(Some(Duration::ZERO));
                return;
            }
            let left = self
                .epoch_tick
                .saturating_mul((self.trim_after_ticks - quiet) as u32);
            let at = now + left;
            wake_at = Some(wake_at.map_or(at, |t| t.min(at)));
        }
        if let Phase::Draining { deadline: Some(at) } = self.phase.get() {
            wake_at = Some(wake_at.map_or(at, |t| t.min(at)));
        }
        let spin = wake_at.is_none_or(|at| at.saturating_duration_since(now) > IDLE_SPIN);
        if (spin && self.spin_for_notification(now))
            || self.remote.wake_state.swap(SLEEPING, Ordering::AcqRel) == NOTIFIED
        {
            self.remote.wake_state.store(RUNNING, Ordering::Release);
            self.drain_inbox();
            return;
        }
        // From now, not from before the spin: timers stay on time.
        self.poll_io(wake_at.map(|at| at.saturating_duration_since(Instant::now())));
        if self.remote.wake_state.swap(RUNNING, Ordering::AcqRel) == NOTIFIED {
            self.drain_inbox();
        }
    }

    /// Watches the wake state for [`IDLE_SPIN`] from `since`; whether a
    /// sender notified the worker meanwhile.
    fn spin_for_notification(&self, since: Instant) -> bool {
        loop {
            for _ in 0..64 {
                if self.remote.wake_state.load(Ordering::Acquire) == NOTIFIED {
                    return true;
                }
                std::hint::spin_loop();
            }
            if since.elapsed() >= IDLE_SPIN {
                return false;
            }
        }
    }

    fn poll_io(&self, timeout: Option<Duration>) {
        let mut events = self.events.borrow_mut();
        let polled = self.poll.borrow_mut().poll(&mut events, timeout);
        if polled.is_err() {
            // EINTR; any other epoll_wait error is impossible with a valid
            // epoll fd and buffer. The loop simply comes back.
            return;
        }
        self.io.borrow_mut().dispatch_all(&events, WAKER_TOKEN);
    }

    fn teardown(&self) {
        while let Some(message) = self.remote.inbox.pop() {
            if let Message::Spawn { task, job } = message {
                // Unreachable (reservations drained), but never lose a joiner.
                job(&task, Start::Fail(SpawnError::ShutDown));
                task.mark_done();
            }
        }
        self.run_queue.borrow_mut().clear();
        self.timers.borrow_mut().clear();
        self.io.borrow_mut().clear();
        self.shared.worker_exited();
    }
}

/// Starts loading what green threads further down `queue` will touch,
/// while the one just taken from it runs (see "Prefetching" in the module
/// docs).
fn prefetch_next(queue: &mut VecDeque<Queued>) {
    if let Some(later) = queue.get_mut(RECORD_AHEAD) {
        // Known from the queue entry: no need to wait for the record.
        if later.suspended_at != 0 {
            prefetch_record(&later.task, Task::HOT_LINES);
            prefetch_resume(later.suspended_at, later.hints, STACK_PREFETCH_LINES);
            later.prefetched_early = true;
        } else {
            prefetch_record(&later.task, Task::WOKEN_LINES);
        }
    }
    let soon = match queue.len() {
        0 => return,
        n => STACK_AHEAD.min(n - 1),
    };
    let soon = &queue[soon];
    // Its record was prefetched by the step above, or as it was queued.
    if !soon.prefetched_early {
        let local = soon.task.local();
        // Queued without where it suspended: woken after a park (or new).
        let woken = soon.suspended_at == 0;
        let lines = if woken {
            WOKEN_STACK_PREFETCH_LINES
        } else {
            STACK_PREFETCH_LINES
        };
        prefetch_resume(local.suspended_at.get(), local.resume_hints.get(), lines);
        if woken {
            prefetch_hints(&local.park_hints.get());
        }
    }
}

/// Prefetches what a green thread that suspended at `sp` touches first
/// when resumed: `lines` lines of the stack it returns through (none for
/// `sp` 0: not known, or never suspended) and its resume hints (0: none).
#[inline(always)]
fn prefetch_resume(sp: usize, hints: [usize; RESUME_HINTS], lines: usize) {
    if sp != 0 {
        // From one line below the suspension point (the switch's own frame)
        // up through the frames it returns through.
        prefetch_lines(sp.wrapping_sub(LINE), lines);
    }
    prefetch_hints(&hints);
}

/// Prefetches each hint (0: none).
#[inline(always)]
fn prefetch_hints(hints: &[usize]) {
    for &hint in hints {
        if hint != 0 {
            prefetch(hint);
        }
    }
}

/// A run-queue entry: the task; where it suspended and its resume hints,
/// when they were known cheaply as it was queued (0 otherwise); and
/// whether its stack lines and hints were prefetched from them already.
struct Queued {
    task: Arc<Task>,
    suspended_at: usize,
    hints: [usize; RESUME_HINTS],
    prefetched_early: bool,
}

impl Queued {
    fn new(task: Arc<Task>, suspended_at: usize, hints: [usize; RESUME_HINTS]) -> Queued {
        Queued {
            task,
            suspended_at,
            hints,
            prefetched_early: false,
        }
    }
}

/// How many places ahead in the run queue a task's stack lines and resume
/// hints are prefetched from its record, when its queue entry did not
/// carry them: a miss that also misses the TLB outlasts a switch.
const STACK_AHEAD: usize = 2;

/// How many places ahead a task's record is prefetched (and, from its
/// queue entry, its stack lines and hints): far enough that `STACK_AHEAD`
/// finds the record cached, since it reads where the stack stopped.
/// Measured against 3 (slower) and 6 (no better).
const RECORD_AHEAD: usize = 2 * STACK_AHEAD;

/// Lines of a green thread's stack prefetched before it resumes: on the
/// yield path of a wasm instance (the switch, the host function, the
/// host-call shims, the wasm frame) its resume touches about 600 bytes.
/// With the prefetch two switches ahead, 8 lines made `yield` at 10,000
/// instances faster than 6, 10, 16 or 20 (alternating runs): each line
/// further is one more load in flight, and its page one more TLB miss
/// when the range crosses a page.
const STACK_PREFETCH_LINES: usize = 8;

/// Lines of stack prefetched for a green thread woken after a park: it
/// returns through the frames of whatever parked it, deeper than a yield's
/// (an echo instance parked in WASI's `fd_read` climbs about 1.8 KB back
/// to its wasm frame). On the echo benchmark at 1,000 connections, 28
/// lines against 8: +3.1% and +3.9% (medians of 6 and 8 rounds, taking
/// turns; 16 lines fell between, 36 no better than 28).
const WOKEN_STACK_PREFETCH_LINES: usize = 28;

/// A run queue shorter than this when a task is queued: the task runs
/// within a few switches, so its record is prefetched as it is queued (a
/// task woken by I/O was parked long enough to be out of the caches).
const PREFETCH_ON_PUSH_BELOW: usize = 32;

/// Prefetches the first `lines` lines of a task record (the task starts on
/// a line: see `Task`'s layout).
#[inline(always)]
fn prefetch_record(task: &Arc<Task>, lines: usize) {
    prefetch_lines(Arc::as_ptr(task) as usize, lines);
}
