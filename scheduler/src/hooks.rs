//! Hooks for a runtime that runs foreign (JIT-compiled) code on green
//! threads: stack bounds, a guard-page query for signal handlers, a
//! per-green-thread pointer slot, and a switch hook that lets a runtime swap
//! its own thread-local state in and out around every run of a green thread.
//!
//! All of them read the worker thread's context thread-local (see
//! `context.rs`): a handful of `fs:`-relative loads, no locks, no
//! allocation, no lazy initialisation. They are therefore
//! **async-signal-safe** and may be called from a `SIGSEGV`/`SIGILL` handler
//! running on the faulting thread (on its alternate signal stack; Rust's
//! `std::thread` installs one for every thread it spawns, workers included).

use std::any::TypeId;
use std::mem::{align_of, size_of};

use crate::context::CTX;

/// The stack of the running green thread. Stacks grow down:
/// `guard_start < usable_start < top`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackBounds {
    /// Lowest address of the guard area (accessing
    /// `guard_start..usable_start` faults).
    pub guard_start: usize,
    /// Lowest usable address. Compiled code can use
    /// `usable_start + red_zone` as its stack limit (Cranelift
    /// `Function::stack_limit`), keeping `red_zone` bytes for the host
    /// functions and libcalls it calls.
    pub usable_start: usize,
    /// Highest address (exclusive): where the stack started.
    pub top: usize,
}

/// The running green thread's stack bounds; `None` outside green threads.
/// Async-signal-safe.
#[inline]
pub fn current_stack_bounds() -> Option<StackBounds> {
    CTX.with(|c| {
        let top = c.stack_top.get();
        (top != 0).then(|| StackBounds {
            guard_start: c.guard_start.get(),
            usable_start: c.usable_start.get(),
            top,
        })
    })
}

/// Whether `addr` lies in the guard area of the green thread running on
/// this OS thread, i.e. whether a fault at `addr` is that green thread's
/// stack overflow. Only the running green thread can overflow its stack, so
/// it is the only one checked. Async-signal-safe: meant for a `SIGSEGV`
/// handler, called with the fault address (`si_addr`).
#[inline]
pub fn stack_guard_contains(addr: usize) -> bool {
    CTX.with(|c| {
        let top = c.stack_top.get();
        top != 0 && addr >= c.guard_start.get() && addr < c.usable_start.get()
    })
}

/// The running green thread's green-local value (null until set).
///
/// # Guarantee
///
/// Each green thread has its own slot, starting null. The value one green
/// thread sets is the value it reads back, however green threads interleave
/// on the worker: the worker saves the slot into the green thread's record
/// when it suspends and restores it when it resumes. Reading is one
/// thread-local load, so a signal handler on the worker thread reads the
/// value of the green thread that was running when the signal hit — the
/// intended use is a per-green-thread trap-catch pointer read by a trap
/// handler. Outside green threads it behaves as a plain thread-local of
/// the OS thread (on a worker thread it is reset to null around every
/// switch). Async-signal-safe.
#[inline]
pub fn green_local() -> *mut () {
    CTX.with(|c| c.green_local.get())
}

/// Sets the running green thread's green-local value (see [`green_local`]).
/// The scheduler never dereferences it.
///
/// # Safety
///
/// The slot belongs to whoever built the executor: its switch hook or its
/// signal handler may dereference what the slot holds, trusting that only
/// it stores there. Only that owner may set the slot, with a value its
/// readers accept (for the `shoal` runtime's green threads, the runtime
/// alone).
#[inline]
pub unsafe fn set_green_local(value: *mut ()) {
    CTX.with(|c| c.green_local.set(value));
}

/// How many addresses [`set_resume_hints`] takes.
pub const RESUME_HINTS: usize = 4;

/// Tells the worker which memory the running green thread touches first
/// whenever it resumes (beyond its own stack, which the worker knows):
/// say, the fields of its store that a host call reads on its way back to
/// wasm. Zeros are ignored.
///
/// Only a hint, for the cache: the worker starts loading these addresses
/// (with the top of the green thread's stack) while the green thread before
/// it in the run queue runs, so that with thousands of green threads,
/// whose state no longer fits the caches, a switch does not wait for each
/// miss in turn. Nothing is ever read or written through them: any value is
/// safe. No effect outside a green thread.
pub fn set_resume_hints(hints: [usize; RESUME_HINTS]) {
    if let Some(task) = crate::context::current_task() {
        task.local().resume_hints.set(hints);
    }
}

/// How many addresses [`set_park_hints`] takes.
pub const PARK_HINTS: usize = 3;

/// Tells the worker which memory the running green thread touches first
/// when it is woken from its next park, beyond what
/// [`set_resume_hints`] names: say, the buffer a read that is about to park
/// will fill. Zeros are ignored.
///
/// Only a hint, as for [`set_resume_hints`]: when a parked green thread is
/// woken, the worker starts loading these addresses a few switches before
/// it runs. They are not used when it resumes after a yield (a yielding
/// green thread is still in the caches' reach, and its queue entry carries
/// its resume hints), and they stay set until replaced. Nothing is ever
/// read or written through them: any value is safe. No effect outside a
/// green thread.
#[inline]
pub fn set_park_hints(hints: [usize; PARK_HINTS]) {
    if let Some(task) = crate::context::current_task() {
        task.local().park_hints.set(hints);
    }
}

/// Per-green-thread storage owned by a [`SwitchHook`]: room for one `Copy`
/// value of up to 32 bytes (alignment up to 8), empty when the green thread
/// is spawned. Typed and checked: [`get`](Self::get) only returns a value of
/// the type last [`put`](Self::put).
#[derive(Clone, Copy)]
pub struct SwitchSlot {
    words: [usize; 4],
    type_id: Option<TypeId>,
}

impl SwitchSlot {
    pub(crate) const EMPTY: SwitchSlot = SwitchSlot {
        words: [0; 4],
        type_id: None,
    };

    /// Whether nothing was put in the slot yet (a green thread's first run).
    pub fn is_empty(&self) -> bool {
        self.type_id.is_none()
    }

    /// Stores `value` (replacing what was there).
    pub fn put<T: Copy + 'static>(&mut self, value: T) {
        const {
            assert!(
                size_of::<T>() <= size_of::<[usize; 4]>() && align_of::<T>() <= align_of::<usize>(),
                "a SwitchSlot holds at most 32 bytes, aligned to at most 8"
            );
        }
        // SAFETY: the const assertion above guarantees that `T` fits in
        // `words` and needs no more alignment than it has; `T: Copy`, so
        // overwriting old bytes drops nothing.
        unsafe { std::ptr::write(self.words.as_mut_ptr().cast::<T>(), value) };
        self.type_id = Some(TypeId::of::<T>());
    }

    /// The value stored, if it is a `T`.
    pub fn get<T: Copy + 'static>(&self) -> Option<T> {
        if self.type_id != Some(TypeId::of::<T>()) {
            return None;
        }
        // SAFETY: `put::<T>` wrote a valid `T` at the start of `words` (the
        // type id proves it was this `T`), fitting and aligned as checked
        // there; `T: Copy`, so reading it out is a plain copy.
        Some(unsafe { std::ptr::read(self.words.as_ptr().cast::<T>()) })
    }

    /// Empties the slot.
    pub fn clear(&mut self) {
        *self = SwitchSlot::EMPTY;
    }
}

impl std::fmt::Debug for SwitchSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchSlot")
            .field("empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}

/// Two functions the worker calls around **every** run of a green thread,
/// so that a runtime can give each green thread its own copy of some
/// thread-local state (for example the trap-handling state of
/// `shoal-instance`, swapped with its `swap_thread_state`):
///
/// ```text
/// fn on_resume(slot: &mut SwitchSlot) {
///     let state = slot.get::<ThreadState>().unwrap_or_else(|| {
///         let b = shoal_scheduler::current_stack_bounds().expect("in a green thread");
///         ThreadState::for_stack(b.usable_start, b.top)
///     });
///     // SAFETY: this green thread's own state, about to run.
///     unsafe { swap_thread_state(state) };
/// }
/// fn on_suspend(slot: &mut SwitchSlot) {
///     // SAFETY: the worker's own state goes back while the thread is off.
///     slot.put(unsafe { swap_thread_state(ThreadState::os_thread()) });
/// }
/// ```
///
/// Installed with
/// [`ExecutorBuilder::switch_hook`](crate::ExecutorBuilder::switch_hook).
/// For each run of a green thread, on its worker's OS thread:
///
/// 1. the worker publishes the green thread (so [`current_stack_bounds`],
///    [`crate::current`] and [`green_local`] already describe it),
/// 2. calls `on_resume(&mut slot)` with the green thread's slot: install the
///    green thread's state (on its first run the slot is empty: build a
///    fresh state, e.g. from [`current_stack_bounds`]),
/// 3. resumes the green thread until it suspends (yield, park, I/O, ...) or
///    finishes,
/// 4. calls `on_suspend(&mut slot)`: save the green thread's state into the
///    slot and put back the worker's own (outside any green thread),
/// 5. clears the context.
///
/// Nothing else runs on that OS thread between 2 and 4 except the green
/// thread itself. The hooks must not panic (a panic would take the worker
/// down) and should be cheap: they run on every switch.
#[derive(Clone, Copy, Debug)]
pub struct SwitchHook {
    /// Called just before the green thread runs.
    pub on_resume: fn(&mut SwitchSlot),
    /// Called just after it suspends or finishes.
    pub on_suspend: fn(&mut SwitchSlot),
}

/// Deferred work a runtime does on an idle worker thread (see
/// `ExecutorBuilder::idle_hook`): called with a budget (a count of units
/// of work, for the hook to interpret), it does at most that much and
/// returns whether more is left.
///
/// A worker calls it only after it ran green threads and has since been
/// quiet for a while (the same wait as before it trims idle stacks), then
/// again at each idle pass until it returns `false`. It runs on the worker
/// thread, outside any green thread, and must not panic.
pub type IdleHook = fn(usize) -> bool;

/// The hooks a worker calls, from `ExecutorBuilder`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorkerHooks {
    pub switch: Option<SwitchHook>,
    pub idle: Option<IdleHook>,
}
