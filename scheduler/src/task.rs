//! The record of one green thread and its park/unpark state machine.
//!
//! A [`Task`] is shared (`Arc`) between its worker and any number of
//! [`Thread`](crate::Thread) / [`JoinHandle`](crate::JoinHandle) handles on
//! other threads. It has two halves:
//!
//! - atomics any thread may touch: the park token and the cancel flag;
//! - [`TaskLocal`], touched **only on the owning worker thread**: the
//!   coroutine, the saved green-local value, the deadline, the timer slot.
//!   Green threads never migrate, so "the owning worker" is fixed at spawn.
//!
//! # Park protocol
//!
//! `park` is a one-token semaphore, like `std::thread::park`:
//!
//! ```text
//!            park(): token present          unpark()
//!   NOTIFIED ------------------------> EMPTY ---------> NOTIFIED
//!   EMPTY --park(): CAS--> PARKED --unpark(): CAS, schedule--> NOTIFIED
//! ```
//!
//! `park` moves `EMPTY -> PARKED` and suspends with [`Suspend::Park`]; the
//! worker then does not queue the task. `unpark` moves `PARKED -> NOTIFIED`
//! and is then the one party that schedules the task (on the worker's run
//! queue directly when called on that worker, else through its inbox). On
//! resume, the task swaps the state back to `EMPTY`. An `unpark` before
//! `park` leaves `NOTIFIED`, which the next `park` consumes without
//! suspending: no wake-up is lost. `DONE` marks a finished task; `unpark`
//! then does nothing.
//!
//! Only the running task itself moves `EMPTY -> PARKED`, and only while it
//! runs, so the task is always truly suspended before anyone can schedule it.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use corosensei::{Coroutine, Yielder};

use crate::cache::{arc_counts, prefetch, LINE};
use crate::context::current_worker;
use crate::error::{Cancelled, SpawnError};
use crate::hooks::SwitchSlot;
use crate::stack_pool::PooledStack;
use crate::worker::{Message, WorkerRemote};

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;
const DONE: u8 = 3;

/// Why a green thread suspended, as seen by its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Runnable: put it at the back of the run queue.
    Yield,
    /// Parked: someone will `unpark` it.
    Park,
}

/// The coroutine type of every green thread.
pub(crate) type Coro = Coroutine<(), Suspend, (), PooledStack>;
pub(crate) type GreenYielder = Yielder<(), Suspend>;

/// How a job is started on its worker.
pub(crate) enum Start {
    /// Run it (it checks the cancel flag first).
    Run,
    /// It can never run: deliver this error to its JoinHandle.
    Fail(SpawnError),
}

/// A spawned closure, type-erased, as sent to another worker. It runs the
/// user's function, catches panics and completes the JoinHandle; it never
/// unwinds.
pub(crate) type BoxedJob = Box<dyn FnOnce(&Task, Start) + Send + 'static>;

/// Fields only the owning worker thread touches.
///
/// In declaration order (`repr(C)`): first the ones every switch touches
/// (see [`Task`]'s layout), then the rest.
#[repr(C)]
pub(crate) struct TaskLocal {
    // Touched at every switch.
    pub(crate) coroutine: UnsafeCell<Option<Coro>>,
    /// About where the stack pointer was when the green thread last
    /// suspended: the frames it returns through when resumed start here
    /// (see `WorkerCore::prefetch_next`). 0 before the first suspension.
    pub(crate) suspended_at: Cell<usize>,
    pub(crate) yielder: Cell<*const GreenYielder>,
    /// `(guard_start, usable_start, top)` of the stack.
    pub(crate) bounds: Cell<(usize, usize, usize)>,
    /// See [`crate::set_resume_hints`].
    pub(crate) resume_hints: Cell<[usize; crate::hooks::RESUME_HINTS]>,
    pub(crate) green_local: Cell<*mut ()>,
    /// Storage of the executor's switch hook, if any.
    pub(crate) switch_slot: UnsafeCell<SwitchSlot>,
    // Touched when a parked task is woken (see `Task::WOKEN_LINES`).
    /// See [`crate::set_park_hints`].
    pub(crate) park_hints: Cell<[usize; crate::hooks::PARK_HINTS]>,
    // Touched when the task starts, sleeps, is cancelled or ends.
    /// Epoch value at which `yield_if_deadline_passed` yields.
    pub(crate) deadline: Cell<u64>,
    /// Ticks granted after a deadline yield (0: no automatic deadline).
    pub(crate) timeslice: Cell<u64>,
    /// Sequence number of this task's live timer, 0 if none.
    pub(crate) timer_seq: Cell<u64>,
    /// Index in the worker's task table.
    pub(crate) slot: Cell<usize>,
    /// Resumes since cancellation during a cancelling shutdown.
    pub(crate) cancel_resumes: Cell<u32>,
    /// The worker is dropping the coroutine (corosensei forced unwind).
    pub(crate) force_unwinding: Cell<bool>,
    /// The spawn reservation was returned to the worker.
    pub(crate) reservation_released: Cell<bool>,
}

/// Completes a JoinHandle with `Cancelled` when the job itself cannot (its
/// coroutine had to be abandoned).
pub(crate) trait AbortJoin: Send + Sync {
    fn abort(&self);
}

/// One green thread.
///
/// # Layout
///
/// A switch touches a task record that, with thousands of green threads,
/// is out of the caches; the worker prefetches it a few switches ahead (see
/// "Prefetching" in `worker.rs`). So the record starts on a cache line and
/// what a switch reads or writes (the park and cancel flags, then the
/// first fields of [`TaskLocal`], through its switch slot) fills its first
/// [`Task::HOT_LINES`] lines, and the park hints, read when the task is
/// woken after a park, follow on the next line ([`Task::WOKEN_LINES`]);
/// the rest (identity, the worker's and the joiner's handles, timers,
/// shutdown state) comes after. Unordered, the same fields spread over
/// five or six lines.
#[repr(C, align(64))]
pub(crate) struct Task {
    park: AtomicU8,
    cancelled: AtomicBool,
    local: TaskLocal,
    id: u64,
    pub(crate) remote: Arc<WorkerRemote>,
    abort: Arc<dyn AbortJoin>,
}

impl Task {
    /// Cache lines from the start of a task that a switch touches.
    pub(crate) const HOT_LINES: usize = 3;
    /// Lines from the start of a task that resuming it after a park
    /// touches: the switch's, and its park hints.
    pub(crate) const WOKEN_LINES: usize = Task::HOT_LINES + 1;
}

const _: () = {
    let hot_end = std::mem::offset_of!(Task, local)
        + std::mem::offset_of!(TaskLocal, switch_slot)
        + std::mem::size_of::<SwitchSlot>();
    assert!(
        hot_end <= Task::HOT_LINES * LINE,
        "a switch's fields of Task must fit in Task::HOT_LINES lines"
    );
    let woken_end = std::mem::offset_of!(Task, local)
        + std::mem::offset_of!(TaskLocal, park_hints)
        + std::mem::size_of::<[usize; crate::hooks::PARK_HINTS]>();
    assert!(
        woken_end <= Task::WOKEN_LINES * LINE,
        "the park hints must fit in Task::WOKEN_LINES lines"
    );
};

// SAFETY: the atomics are thread-safe; `local` (including the !Send
// coroutine) is only accessed on the owning worker thread, which is enforced
// by construction: every access goes through `Task::local`, called only from
// the worker loop or from code running on one of its green threads. The
// coroutine is always taken out (and dropped or recycled) on the worker
// before the last `Arc<Task>` can be dropped elsewhere (see `Drop`).
unsafe impl Send for Task {}
// SAFETY: see above.
unsafe impl Sync for Task {}

impl Task {
    /// Every task lives in an `Arc` (see [`Task::arc`]).
    pub(crate) fn new(
        id: u64,
        remote: Arc<WorkerRemote>,
        timeslice: u64,
        abort: Arc<dyn AbortJoin>,
    ) -> Arc<Task> {
        Arc::new(Task {
            id,
            remote,
            park: AtomicU8::new(EMPTY),
            cancelled: AtomicBool::new(false),
            abort,
            local: TaskLocal {
                coroutine: UnsafeCell::new(None),
                yielder: Cell::new(std::ptr::null()),
                bounds: Cell::new((0, 0, 0)),
                green_local: Cell::new(std::ptr::null_mut()),
                switch_slot: UnsafeCell::new(SwitchSlot::EMPTY),
                deadline: Cell::new(u64::MAX),
                timeslice: Cell::new(timeslice),
                timer_seq: Cell::new(0),
                slot: Cell::new(usize::MAX),
                cancel_resumes: Cell::new(0),
                force_unwinding: Cell::new(false),
                suspended_at: Cell::new(0),
                resume_hints: Cell::new([0; crate::hooks::RESUME_HINTS]),
                park_hints: Cell::new([0; crate::hooks::PARK_HINTS]),
                reservation_released: Cell::new(false),
            },
        })
    }

    /// A new strong reference to this task.
    pub(crate) fn arc(&self) -> Arc<Task> {
        let ptr: *const Task = self;
        // SAFETY: tasks are only ever created inside an `Arc` (`Task::new`
        // returns one), so `ptr` came from `Arc::into_raw`-compatible memory,
        // and `&self` proves the count is at least one right now.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// Completes the JoinHandle with `Cancelled` (used when the coroutine is
    /// abandoned without finishing).
    pub(crate) fn abort_join(&self) {
        self.abort.abort();
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The owner-only half. Must only be called on the owning worker thread.
    #[inline]
    pub(crate) fn local(&self) -> &TaskLocal {
        debug_assert!(
            current_worker().is_some_and(|w| std::ptr::eq(w.remote(), &*self.remote)),
            "task-local state touched off its worker"
        );
        &self.local
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.park.load(Ordering::Acquire) == DONE
    }

    /// Marks the task finished: later `unpark`s do nothing.
    pub(crate) fn mark_done(&self) {
        self.park.store(DONE, Ordering::Release);
    }

    /// Requests cancellation and wakes the task if parked.
    pub(crate) fn cancel(this: &Arc<Task>) {
        this.cancelled.store(true, Ordering::Release);
        Task::unpark(this);
    }

    /// Sets the cancel flag without waking (the caller schedules).
    pub(crate) fn set_cancelled(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Starts loading what a handle held outside the worker touches when
    /// it wakes the task or drops the last reference to it: the first line
    /// of the record (the park word), the line of its worker's handle, and
    /// the line before the record, where `Arc` keeps its counts.
    pub(crate) fn prefetch_shared(this: &Arc<Task>) {
        prefetch(arc_counts(this));
        prefetch(Arc::as_ptr(this) as usize);
        prefetch(std::ptr::addr_of!(this.remote) as usize);
    }

    /// Makes the park token available; schedules the task if it is parked.
    pub(crate) fn unpark(this: &Arc<Task>) {
        let mut state = this.park.load(Ordering::Acquire);
        loop {
            if state == NOTIFIED || state == DONE {
                return;
            }
            match this.park.compare_exchange_weak(
                state,
                NOTIFIED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(PARKED) => {
                    Task::schedule(this);
                    return;
                }
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
    }

    /// Puts a parked-then-notified task back on its worker's run queue.
    fn schedule(this: &Arc<Task>) {
        match current_worker() {
            Some(worker) if std::ptr::eq(worker.remote(), &*this.remote) => {
                worker.push_woken(this.clone());
            }
            _ => this.remote.send(Message::Wake(this.clone())),
        }
    }

    /// Leaves a park token without scheduling (the task is running).
    pub(crate) fn restore_token(&self) {
        let _ = self
            .park
            .compare_exchange(EMPTY, NOTIFIED, Ordering::Release, Ordering::Relaxed);
    }

    /// Suspends the running green thread. Must be called by this task's own
    /// code, on its own coroutine (i.e. `self` is the current task).
    #[inline]
    fn suspend(&self, why: Suspend) {
        let yielder = self.local.yielder.get();
        debug_assert!(!yielder.is_null());
        let here = 0u8;
        self.local
            .suspended_at
            .set(std::ptr::addr_of!(here) as usize);
        // SAFETY: `yielder` was set by the coroutine's entry function to the
        // Yielder on this coroutine's stack, valid until the coroutine
        // returns; callers only reach here from code running on this very
        // coroutine (they got `self` from `current_task()`).
        unsafe { (*yielder).suspend(why) }
    }

    /// Yields to the back of the run queue. For the current task only.
    ///
    /// A cancelled task still yields before it gets `Err(Cancelled)`: code
    /// that ignores the error in a loop then behaves like a yield loop (the
    /// worker keeps running its other green threads, and a cancelling
    /// shutdown can abandon it) instead of monopolising the worker.
    #[inline]
    pub(crate) fn yield_green(&self) -> Result<(), Cancelled> {
        self.suspend(Suspend::Yield);
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Parks until unparked (or a token is present). For the current task
    /// only. May return spuriously.
    ///
    /// A cancelled task yields instead (see [`Task::yield_green`]) and gets
    /// `Err(Cancelled)`, except while it is already unwinding outside a
    /// cancelling shutdown: cleanup code may then park and wait for real
    /// (during a cancelling shutdown it may not, so shutdown terminates).
    pub(crate) fn park_green(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            let cleanup_may_wait =
                std::thread::panicking() && !current_worker().is_some_and(|w| w.is_cancelling());
            if !cleanup_may_wait {
                self.suspend(Suspend::Yield);
                return Err(Cancelled);
            }
        }
        if self
            .park
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            match self
                .park
                .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.suspend(Suspend::Park);
                    // Resumed: an unpark moved us to NOTIFIED; consume it.
                    self.park.swap(EMPTY, Ordering::Acquire);
                }
                // An unpark raced in (NOTIFIED): consume it.
                Err(_) => {
                    self.park.swap(EMPTY, Ordering::Acquire);
                }
            }
        }
        if self.is_cancelled() && !std::thread::panicking() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(coroutine) = self.local.coroutine.get_mut().take() {
            // Unreachable by construction (the worker takes the coroutine
            // out first). Dropping it here could unwind a stack on the wrong
            // thread, so leak it instead.
            std::mem::forget(coroutine);
        }
    }
}

/// The worker's table of live tasks: keeps each alive until it finishes
/// and lets shutdown reach every one of them.
pub(crate) struct TaskTable {
    entries: Vec<Option<Arc<Task>>>,
    free: Vec<usize>,
    len: usize,
}

impl TaskTable {
    pub(crate) fn new() -> Self {
        TaskTable {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, task: Arc<Task>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(task);
                slot
            }
            None => {
                self.entries.push(Some(task));
                // Room for every slot, so that `remove` never allocates.
                self.free.reserve(self.entries.len());
                self.entries.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, slot: usize) -> Option<Arc<Task>> {
        let task = self.entries.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(task)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Clones of every live task.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Task>> {
        self.entries.iter().flatten().cloned().collect()
    }
}
