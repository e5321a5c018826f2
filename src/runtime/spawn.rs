//! The life of one instance on a green thread: birth, run, teardown.
//!
//! # Protocol
//!
//! On the spawning thread ([`InstanceTemplate::spawn`] and friends):
//!
//! 1. **Admission.** The template was checked once when it was built (the
//!    contract's imports and limits, the linker's imports, the entry export
//!    and its type), so a spawn does no linking and no checks but one: it
//!    takes a permit from the contract's instance limit
//!    (`instance_limit.rs`), failing at once with
//!    [`SpawnError::InstanceLimit`] when the limit is reached.
//! 2. **Placement.** It hands a closure holding the template (an `Arc`), the
//!    host data, the arguments and the permit to the executor: on the
//!    caller's own worker when the caller is one of the runtime's green
//!    threads and its worker is not busier than the others (see
//!    [`spawn_green`]), else on the least-loaded worker
//!    ([`SpawnError::Executor`] if the executor is shut down or the
//!    worker's stack pool is full). It returns a [`JoinHandle`].
//!
//! On the worker, inside the new green thread ([`live`]):
//!
//! 3. **Birth.** The switch hook has installed the green thread's trap state
//!    (stack bounds inside its coroutine stack) and started its CPU clock. A
//!    fresh [`Store`] is created with the runtime's engine and the host
//!    data, and room for its own blocks (VMContext, records) in its own
//!    allocation, as much as the template's first instance needed
//!    (`Store::with_arena`); the contract's memory and table limits (if stricter than the
//!    runtime's), the epoch deadline callback ([`Preemption`]) and the
//!    first deadline are set; then the instance is created from the template's
//!    [`InstancePre`](shoal_instance::InstancePre): its VMContext, memory and
//!    tables come from the engine's pools, on the worker that will run it,
//!    so its memory is first touched by the core that uses it. A start
//!    function runs here, already preemptible and under budget.
//! 4. **Run.** The deadline is set again (a full slice for the guest) and
//!    the entry export is called (found by name in the new instance: one
//!    hash lookup, as the instance API has no accessor by export index). Compiled code runs natively; at each
//!    deadline the callback yields the green thread, or ends the call with a
//!    `Timeout` or `Cancelled` trap. Host functions run on the green
//!    thread's stack and may park it (sleep, channel, socket): only this
//!    green thread waits.
//! 5. **Trap.** A fault in wasm (or a host function's error, a spent budget,
//!    a cancellation) jumps to the call's catch point on this green
//!    thread's stack: the call returns `Err(Trap)`, and nothing else is
//!    affected. A host function's panic is resumed after the wasm frames are
//!    gone and unwinds this green thread only (reported as
//!    [`RunError::Panicked`]).
//! 6. **Inspection (optional).** `spawn_then` closures see the store, the
//!    instance and the result (e.g. to read linear memory after a trap).
//! 7. **Teardown.** The store is dropped: the instance's memory, tables
//!    and VMContext go back to the engine's pools, reset. The permit is
//!    given back, then the result is handed to the `JoinHandle`, and the
//!    green thread's stack returns to the worker's stack pool.
//!
//! Cancellation ([`JoinHandle::cancel`]) marks the green thread; it takes
//! effect at its next suspension point: the deadline callback of a spinning
//! instance, the `try_` wait of a host function parked in
//! [`host::sleep`](super::host::sleep) and the like, or before it ever
//! starts (then only teardown runs). A green thread with wasm frames on its
//! stack is never force-unwound.

use super::cpu_clock;
use super::error::{RunError, SpawnError};
use super::instance_limit::Permit;
use super::join::JoinHandle;
use super::preemption::{Preemption, SliceStats, StatsCell};
use super::slice_clock::ResumeRefresh;
use super::template::TemplateShared;
use shoal_instance::{Instance, Store, Val, WasmParams, WasmResults};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How the entry export is called: with `Val`s, or with static types.
pub(crate) trait EntryCall<T>: Send + 'static {
    /// What the export returns.
    type Output: Send + 'static;
    /// Finds the export in `instance` and calls it.
    fn call(
        self,
        store: &mut Store<T>,
        instance: Instance,
        export: &str,
    ) -> Result<Self::Output, shoal_instance::Error>;
}

/// A call with `Val`s (types checked against the export's at each call).
pub(crate) struct DynamicCall(pub(crate) Vec<Val>);

impl<T> EntryCall<T> for DynamicCall {
    type Output = Vec<Val>;
    fn call(
        self,
        store: &mut Store<T>,
        instance: Instance,
        export: &str,
    ) -> Result<Vec<Val>, shoal_instance::Error> {
        let func =
            instance
                .get_func(&*store, export)
                .ok_or_else(|| shoal_instance::Error::Export {
                    name: export.to_string(),
                    message: "the instance has no function by this name".into(),
                })?;
        func.call(store, &self.0)
    }
}

/// A call with static types (checked once, when the template was typed).
pub(crate) struct TypedCall<P, R>(pub(crate) P, pub(crate) std::marker::PhantomData<fn() -> R>);

impl<T, P: WasmParams, R: WasmResults> EntryCall<T> for TypedCall<P, R> {
    type Output = R;
    fn call(
        self,
        store: &mut Store<T>,
        instance: Instance,
        export: &str,
    ) -> Result<R, shoal_instance::Error> {
        // One hash lookup of the name and a type comparison per instance
        // (a few tens of nanoseconds of a ~1 µs spawn).
        let func = instance.get_typed_func::<P, R>(&*store, export)?;
        func.call(store, self.0)
    }
}

/// An instance that has finished running, as seen by a `spawn_then`
/// closure: its store (still alive: memory can be read), the instance (if
/// instantiation succeeded), the result of the call and its timeslices.
pub struct Finished<'a, T, R> {
    /// The instance's store.
    pub store: &'a mut Store<T>,
    /// The instance, or `None` if instantiation failed (`result` says why).
    pub instance: Option<Instance>,
    /// What the entry export returned, or why it did not.
    pub result: Result<R, RunError>,
    /// The instance's timeslices.
    pub stats: SliceStats,
    /// When its green thread began creating it (before the store): with
    /// `started.elapsed()`, the instance's latency without queueing.
    pub started: Instant,
}

/// An instance whose call has ended, with its store still alive.
struct Ended<T, R> {
    store: Store<T>,
    instance: Option<Instance>,
    result: Result<R, RunError>,
}

/// Steps 3 to 5 of the module docs: birth and run, on the calling (green)
/// thread. The caller inspects and tears down.
fn run_to_end<T, C>(
    template: &TemplateShared<T>,
    data: T,
    call: C,
    stats: Option<StatsCell>,
) -> Ended<T, C::Output>
where
    T: Send + 'static,
    C: EntryCall<T>,
{
    let (mut preemption, first_deadline) = Preemption::new(template.policy, stats);
    let arena_bytes = template.arena_bytes.load(Ordering::Relaxed);
    let mut store = Store::with_arena(&template.engine, data, arena_bytes);
    if let Some(limits) = template.store_limits {
        store.limiter(limits);
    }
    store.set_epoch_deadline(first_deadline);
    let clock = preemption.clock_ptr();
    store.epoch_deadline_callback(move |_caller| preemption.on_deadline());
    // SAFETY: the clock is owned by the callback, owned by `store`; both
    // live until `store` is dropped, after `_refresh` (declared later,
    // dropped first, on this thread; the store value may move out in
    // `Ended`, which does not drop it or move its heap parts).
    let _refresh = unsafe { ResumeRefresh::install(clock, store.epoch_deadline_ptr()) };
    match template.pre.instantiate(&mut store) {
        Ok(instance) => {
            // Every instance of the template needs the same: learnt once.
            let wanted = store.arena_bytes_wanted();
            if wanted > arena_bytes {
                template.arena_bytes.fetch_max(wanted, Ordering::Relaxed);
            }
            // What a resume touches first: the store's hot fields, the
            // guest's memory (unless the host closures' entries took its
            // place: the scheduler has room for four), and the timeslice
            // the switch hook refreshes.
            let [limits, closures, entries, memory] = store.resume_hints();
            let third = if entries != 0 { entries } else { memory };
            let slice = clock.as_ptr() as usize;
            shoal_scheduler::set_resume_hints([limits, closures, third, slice]);
            // The guest's first slice starts with its call.
            store.set_epoch_deadline(first_deadline);
            let result = call
                .call(&mut store, instance, &template.export)
                .map_err(RunError::from);
            Ended {
                store,
                instance: Some(instance),
                result,
            }
        }
        Err(e) => Ended {
            store,
            instance: None,
            result: Err(RunError::from(e)),
        },
    }
}

/// Runs one instance from birth to teardown on the calling (green)
/// thread and returns what its call returned (module docs, steps 3-7).
pub(crate) fn live<T, C>(
    template: &TemplateShared<T>,
    data: T,
    call: C,
    permit: Permit,
) -> Result<C::Output, RunError>
where
    T: Send + 'static,
    C: EntryCall<T>,
{
    let Ended { store, result, .. } = run_to_end(template, data, call, None);
    drop(store);
    drop(permit);
    result
}

/// [`live`], with `inspect` run on the finished instance (its store still
/// alive) and the instance's timeslice statistics collected.
pub(crate) fn live_then<T, C, U>(
    template: &TemplateShared<T>,
    data: T,
    call: C,
    permit: Permit,
    inspect: impl FnOnce(Finished<'_, T, C::Output>) -> U,
) -> U
where
    T: Send + 'static,
    C: EntryCall<T>,
{
    let started = Instant::now();
    let born = cpu_clock::now();
    let cell: StatsCell = Arc::new(Mutex::new(SliceStats::default()));
    let Ended {
        mut store,
        instance,
        result,
    } = run_to_end(template, data, call, Some(cell.clone()));
    let mut stats = cell.lock().map(|s| *s).unwrap_or_default();
    stats.cpu_ticks = cpu_clock::now().saturating_sub(born);
    let out = inspect(Finished {
        store: &mut store,
        instance,
        result,
        stats,
        started,
    });
    drop(store);
    drop(permit);
    out
}

/// Spawns `body` as a green thread of the template's executor (see the
/// module docs, step 2).
///
/// Placement: from a green thread of the runtime, the instance stays on
/// the caller's own worker unless that worker already has more than one
/// green thread more than the least-loaded one; otherwise (and from other
/// threads) it goes to the least-loaded worker. A request handler that
/// spawns an instance and joins it thus runs it on its own worker, with no
/// cross-thread wake-up (the scheduler alone would send it to the other,
/// idle, sleeping worker), while a burst of spawns still spreads evenly.
pub(crate) fn spawn_green<U: Send + 'static>(
    template: &TemplateShared<impl Send + 'static>,
    body: impl FnOnce() -> Result<U, RunError> + Send + 'static,
) -> Result<JoinHandle<U>, SpawnError> {
    // Within one green thread of the least-loaded worker, stay on the
    // caller's own (see above).
    let inner = template.executor.spawn_near(1, body)?;
    Ok(JoinHandle::new(inner))
}
