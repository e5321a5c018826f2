//! Catching traps: how a fault in compiled wasm, or a libcall that gives up,
//! becomes an `Err(Trap)` on the host side without ever crashing the host.
//!
//! # The protocol
//!
//! Every entry from the host into wasm goes through `catch_traps`, which
//! sets up a *catch point*; every trap ends by jumping back to the innermost
//! one. Step by step:
//!
//! 1. **Entry.** `catch_traps(limits, max_wasm_stack, f)` builds a
//!    `CatchPoint` in its own frame: the store's `VMRuntimeLimits` and the
//!    stack limit in force, an empty slot for the reason of an unwind, and
//!    the address of its frame (the top of the stack region wasm will use,
//!    which bounds backtrace walks). It keeps the (green) thread's previous
//!    innermost catch point in a local, to restore on the way out.
//!    - On the *outermost* entry of the thread it prepares the OS thread
//!      once (signal handlers for the process, an alternate signal stack and
//!      a backtrace buffer for the thread; see `signals.rs`) and
//!      sets `(*limits).stack_limit` to `sp - max_wasm_stack`, but never lower
//!      than the bottom of the current stack plus [`HOST_STACK_RESERVE`] (a
//!      quarter of the stack for stacks under 256 KiB), so
//!      that a host function called from the deepest wasm frame still has
//!      room to run. The old value is restored on the way out.
//!    - A *nested* entry (host → wasm → host → wasm) keeps the limit of the
//!      outermost one; if it runs with another store's limits, that store
//!      gets the same limit for the duration of the call.
//! 2. **Catch point.** `catch_traps` calls the C function
//!    `shoal_call_with_catch` (src/c/catch.c), which records the registers
//!    with `sigsetjmp(buf, 0)` and calls back into Rust with the address of
//!    `buf`. The callback stores it in the catch point, makes the catch
//!    point the thread's innermost one (a thread-local pointer: no
//!    allocation, no system call) and runs `f`, which enters wasm.
//! 3. **Normal return.** `f` returns; the callback returns; the C function
//!    returns 1. `catch_traps` pops its catch point, restores the stack
//!    limit and returns `Ok(())` (or resumes a panic that `f` itself raised
//!    outside wasm).
//! 4. **A trap raised from inside** (a libcall such as `memory.fill` out of
//!    bounds, a host function that failed or panicked, an epoch deadline that
//!    ran out of budget): the code calls `raise` (or `raise_trap`) after
//!    dropping what it owns. For a trap, `raise` captures the wasm backtrace
//!    of the current activation (the system unwinder finds the first wasm
//!    frame above the host frames, then frame pointers walk the rest; see
//!    `backtrace.rs`), stores the reason in the innermost
//!    catch point, and calls `shoal_unwind`, which `siglongjmp`s to it.
//!    The host and wasm frames in between are discarded, not unwound.
//! 5. **A fault in compiled code** (`ud2`/`udf` at a trap site, a load in a
//!    `Guarded` memory's guard region, a hardware divide error, the
//!    prologue's stack-limit check): the kernel delivers SIGILL, SIGSEGV,
//!    SIGBUS or SIGFPE; the handler runs on the alternate signal stack and
//!    calls `handle_fault` with the PC, frame pointer, stack pointer and
//!    fault address of the interrupted code. If this thread has a catch
//!    point and
//!    - the PC is a recorded trap site in registered wasm code
//!      (`code_registry.rs`), the kind comes from the
//!      site's trap code ([`TrapKind::from_code`]);
//!    - or the fault is a stack access at the bottom of the current stack
//!      (a SIGSEGV/SIGBUS whose address is just below or a little above the
//!      stack pointer, and below the host reserve): a host function called
//!      from wasm, or wasm itself, ran out of stack:
//!      [`TrapKind::StackOverflow`];
//!
//!    then it walks the frame-pointer chain from the faulting frame into the
//!    thread's fixed backtrace buffer (raw PCs: nothing is allocated in the
//!    handler), stores the kind and the frame count in the catch point, and
//!    `siglongjmp`s to it, straight out of the handler. Otherwise the fault
//!    is not ours and goes to the previous handler (`signals.rs`): a fault
//!    in host code, on a thread outside wasm, or in wasm code at no trap
//!    site (a bug in Shoal's code generation, better loud than hidden).
//! 6. **After the jump.** The C function returns 0. `catch_traps` pops its
//!    catch point, restores the stack limit, and turns the stored reason
//!    into the result: a raised trap is returned as is; a fault's raw PCs are
//!    symbolised (function index and names, via each module's
//!    `CodeLookup`) into a [`Trap`]; a
//!    host panic is resumed with `std::panic::resume_unwind`, now that no
//!    wasm frame is left between it and the host's own frames.
//!
//! # Green threads
//!
//! Wasm runs on coroutine stacks that the scheduler switches on one OS
//! thread. The innermost catch point and the bounds of the stack being run
//! form a [`ThreadState`], which must follow its green thread: the runtime
//! swaps it with [`swap_thread_state`] around every resume. Because each
//! catch point lives on its own green thread's stack, a trap jumps only
//! within that stack: it ends only the green thread that trapped, which
//! simply sees `catch_traps` return `Err`. (So Shoal does not need
//! corosensei's trap-handler support, which instead switches a trapping
//! coroutine back to its parent.)
//!
//! # Why these choices
//!
//! - **C `sigsetjmp` rather than inline assembly.** A function that returns
//!   twice cannot be written in Rust, so the catch point lives in eight
//!   lines of C, compiled by `build.rs` with the C compiler that is there
//!   anyway. libc's `sigsetjmp`/`siglongjmp` are correct on every
//!   architecture and ABI detail (callee-saved vector registers on aarch64,
//!   pointer mangling, shadow stacks) without Shoal owning any of it, and
//!   `sigsetjmp(buf, 0)` costs a few nanoseconds: no system call. Hand-written
//!   assembly would save one call but would have to be right twice, for two
//!   architectures, forever. (Fortified `__longjmp_chk` is turned off: it
//!   second-guesses jumps across stacks, which Shoal's are by design.)
//! - **Jump out of the signal handler rather than rewrite the context's PC.**
//!   Redirecting the interrupted context to an unwind function needs a usable
//!   stack under it, and the one case where a host function overflowed into
//!   the guard page leaves none. Jumping out with `siglongjmp` needs no stack
//!   but the handler's own; the two things a `sigreturn` would have restored
//!   are taken care of: the signal mask (the handler is `SA_NODEFER` with an
//!   empty `sa_mask`, so it was never changed) and the alternate stack (the
//!   kernel sees the thread off it as soon as the stack pointer leaves it).
//!
//! # What jumping over frames means for callers
//!
//! Frames between a catch point and the trap are discarded without running
//! destructors. `f`'s captures and any host values live across the jump are
//! leaked, not dropped; code that calls `raise` must drop what it owns first.
//! A panic must never unwind through wasm frames (they have no unwind
//! tables): host-call shims catch it and pass it to `raise` as
//! `UnwindReason::Panic`.
//!
//! # Limits
//!
//! - Backtraces keep the innermost `backtrace::MAX_FRAMES` (1024) frames.
//! - A trap's backtrace covers the innermost activation (wasm frames since
//!   the last host→wasm entry); a trap raised by a host function of an
//!   outer activation appends that activation's frames to the inner ones.
//! - A stack overflow inside a host function has no backtrace: host code
//!   keeps no frame pointers, and the unwinder is not async-signal-safe.
//! - The handlers must stay installed: a library that later replaces the
//!   SIGSEGV/SIGILL/SIGFPE/SIGBUS handlers without chaining to ours turns
//!   every wasm trap into a crash.

use crate::backtrace::{self, MAX_FRAMES};
use crate::code_registry;
use crate::signals::{self, Fault};
use crate::trap::{Trap, TrapKind};
use crate::vmcontext::VMRuntimeLimits;
use cranelift_codegen::ir::TrapCode;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

/// Stack kept free for host code below wasm's stack limit: a host function
/// called from the deepest wasm frame has at least this much before it hits
/// the guard page (and if it still overflows, that is a trap too). Stacks
/// smaller than four times this keep a quarter of their size instead.
pub const HOST_STACK_RESERVE: usize = 64 * 1024;

/// The host reserve of the stack `lo..hi`.
fn host_reserve(lo: usize, hi: usize) -> usize {
    HOST_STACK_RESERVE.min(hi.saturating_sub(lo) / 4)
}

/// Why wasm stopped, as raised from inside.
pub(crate) enum UnwindReason {
    /// A trap, returned as `Err` by `catch_traps`.
    Trap(Trap),
    /// A host panic, resumed by `catch_traps` once wasm frames are gone.
    Panic(Box<dyn Any + Send>),
}

/// The trap-handling state of one green thread (or of a plain OS thread):
/// its innermost catch point and the bounds of the stack it runs on.
///
/// A green-thread runtime keeps one per green thread and swaps it in with
/// [`swap_thread_state`] whenever it resumes that green thread.
///
/// A green thread suspended inside wasm (in a host function or an epoch
/// yield) has catch points on its stack. To cancel it, resume it and let the
/// suspended host code raise a trap (e.g. `TrapKind::Cancelled`): that jumps
/// to its catch point and the green thread returns normally. Never
/// force-unwind it with a panic (corosensei's `force_unwind`, or dropping the
/// coroutine): a panic cannot unwind through wasm frames and aborts the
/// process. If its stack is simply discarded instead (`force_reset`), its
/// `ThreadState` must be discarded with it, never installed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadState {
    catch: *const CatchPoint,
    /// `lo..hi` of the stack; `0..0` = the OS thread's own stack.
    stack_lo: usize,
    stack_hi: usize,
}

// SAFETY: the pointer is only dereferenced on the thread that runs the green
// thread it belongs to, while that green thread is the one installed (see
// `swap_thread_state`); moving the value between threads while the green
// thread is suspended is harmless.
unsafe impl Send for ThreadState {}

impl ThreadState {
    /// The state of a thread running on its OS thread's own stack, outside
    /// wasm. This is what every OS thread starts with.
    pub const fn os_thread() -> ThreadState {
        ThreadState {
            catch: ptr::null(),
            stack_lo: 0,
            stack_hi: 0,
        }
    }

    /// The state of a new green thread whose stack is `lo..hi` (`hi` is its
    /// base, the highest address; `lo` the lowest usable address, or the
    /// start of the guard page below it: either works).
    pub const fn for_stack(lo: usize, hi: usize) -> ThreadState {
        ThreadState {
            catch: ptr::null(),
            stack_lo: lo,
            stack_hi: hi,
        }
    }

    /// Whether this (green) thread is inside a `catch_traps` call, i.e.
    /// running or suspended inside wasm or a host function called by it.
    pub fn in_wasm(&self) -> bool {
        !self.catch.is_null()
    }

    /// The stack bounds given to [`for_stack`](Self::for_stack), if any.
    pub fn stack_bounds(&self) -> Option<(usize, usize)> {
        (self.stack_hi != 0).then_some((self.stack_lo, self.stack_hi))
    }
}

impl Default for ThreadState {
    fn default() -> Self {
        ThreadState::os_thread()
    }
}

/// Installs `new` as the current thread's trap-handling state and returns
/// the one it replaces. Costs two thread-local accesses.
///
/// A green-thread runtime calls it on the OS thread around every resume:
///
/// ```text
/// let outer = swap_thread_state(green.trap_state);   // now running `green`
/// coroutine.resume(..);                               // runs until it suspends or ends
/// green.trap_state = swap_thread_state(outer);       // save it, back to the worker's
/// ```
///
/// with `green.trap_state = ThreadState::for_stack(lo, hi)` when the green
/// thread is created. Between the two swaps, `catch_traps` on the coroutine
/// sees the green thread's own catch points and stack bounds.
///
/// # Safety
///
/// - `new` must be the state of the green thread that is about to run on
///   this OS thread (or that runs on it now), as returned by the swap that
///   last saved it, or fresh from [`ThreadState::for_stack`] with the
///   bounds of its real stack. Installing another green thread's state
///   would make a trap jump onto a stack that is not running: undefined
///   behaviour.
/// - The state returned must be installed again, with this function,
///   before that green thread (or the code that called this) runs again.
#[inline]
pub unsafe fn swap_thread_state(new: ThreadState) -> ThreadState {
    let state = local();
    state.current.replace(new)
}

/// Prepares the current OS thread to run wasm: the process's signal
/// handlers, this thread's alternate signal stack, its backtrace buffer.
///
/// Optional: the first `catch_traps` on a thread does it. A runtime may
/// call it when it starts a worker, to get any error early and keep the
/// cost off the first request.
pub fn init_current_thread() -> crate::Result<()> {
    let state = local();
    if state.ready.get() {
        return Ok(());
    }
    let result = signals::prepare_thread();
    // Cache the OS stack bounds (reads /proc on the main thread: once).
    state
        .os_stack
        .set(signals::os_thread_stack_bounds().unwrap_or((0, 0)));
    TRACE_BUFFER.with(|b| state.trace.set(b.0.get().cast()));
    // Mark ready even on failure: without an alternate stack, traps in wasm
    // still work (their handler has the wasm stack's host reserve to run
    // on); only a host stack overflow would then end the process.
    state.ready.set(true);
    result.map_err(|e| crate::Error::Resource(format!("cannot prepare thread for wasm traps: {e}")))
}

// ---------------------------------------------------------------------------
// Thread-local state

/// Everything trap handling keeps per OS thread. `const`-initialised and
/// without destructor, so the signal handler may read it.
struct LocalState {
    /// The running green thread's state (swapped by `swap_thread_state`).
    current: Cell<ThreadState>,
    /// `prepare_thread` ran on this OS thread.
    ready: Cell<bool>,
    /// The OS thread's own stack bounds (`0..0`: unknown).
    os_stack: Cell<(usize, usize)>,
    /// `MAX_FRAMES` words for the signal handler's raw backtrace; null until
    /// the thread is ready, and again after the thread's TLS is torn down.
    trace: Cell<*mut usize>,
}

thread_local! {
    static STATE: LocalState = const {
        LocalState {
            current: Cell::new(ThreadState::os_thread()),
            ready: Cell::new(false),
            os_stack: Cell::new((0, 0)),
            trace: Cell::new(ptr::null_mut()),
        }
    };
    /// Owns the backtrace buffer `STATE.trace` points to (lazily allocated
    /// with the thread-local, freed at thread exit).
    static TRACE_BUFFER: TraceBuffer = TraceBuffer(Box::new(UnsafeCell::new([0; MAX_FRAMES])));
}

struct TraceBuffer(Box<UnsafeCell<[usize; MAX_FRAMES]>>);

impl Drop for TraceBuffer {
    fn drop(&mut self) {
        // No handler may write to the buffer once it is freed.
        let _ = STATE.try_with(|s| s.trace.set(ptr::null_mut()));
    }
}

/// This thread's state. It has no destructor, so it lives as long as the
/// thread: the reference never dangles.
#[inline]
fn local() -> &'static LocalState {
    // SAFETY: see above; `&'static` is only ever used on this thread
    // (`LocalState` is `!Sync`, so it cannot leave it).
    STATE.with(|s| unsafe { &*(s as *const LocalState) })
}

impl LocalState {
    /// Bounds of the stack currently running: the green thread's, or the OS
    /// thread's. `0..0` if unknown.
    fn stack_bounds(&self) -> (usize, usize) {
        let current = self.current.get();
        if current.stack_hi != 0 {
            (current.stack_lo, current.stack_hi)
        } else {
            self.os_stack.get()
        }
    }

    fn set_catch(&self, catch: *const CatchPoint) {
        let mut current = self.current.get();
        current.catch = catch;
        self.current.set(current);
    }
}

// ---------------------------------------------------------------------------
// Catch points

/// One `catch_traps` activation; lives in its frame.
struct CatchPoint {
    /// The `sigjmp_buf` in `shoal_call_with_catch`'s frame.
    jmp_buf: Cell<*mut c_void>,
    /// The store's limits this entry runs with (may be null).
    limits: *mut VMRuntimeLimits,
    /// The stack limit in force during this entry.
    stack_limit: usize,
    /// An address in `catch_traps`' frame: every wasm frame of this
    /// activation is below it.
    frame: usize,
    /// Why we jumped back here. Written by `raise` or the signal handler
    /// right before the jump; read after it.
    unwind: UnsafeCell<Unwind>,
}

enum Unwind {
    None,
    /// Raised by `raise`.
    Raised(UnwindReason),
    /// A fault: its kind (or the unknown trap code) and how many raw PCs the
    /// handler left in the thread's backtrace buffer.
    Fault {
        kind: Result<TrapKind, TrapCode>,
        frames: usize,
    },
}

extern "C" {
    /// Runs `callback(payload, jmp_buf)` under a catch point; 1 if it
    /// returned, 0 if `shoal_unwind(jmp_buf)` was called. See src/c/catch.c.
    fn shoal_call_with_catch(
        callback: unsafe extern "C" fn(payload: *mut c_void, jmp_buf: *mut c_void),
        payload: *mut c_void,
    ) -> c_int;
    /// Jumps to the catch point `jmp_buf`; never returns.
    fn shoal_unwind(jmp_buf: *mut c_void) -> !;
}

/// What `catch_traps` hands to the callback.
struct Call<'a, F> {
    state: &'a LocalState,
    catch: &'a CatchPoint,
    f: Option<F>,
    /// A panic of `f` outside wasm (caught so it does not unwind into C).
    panic: Option<Box<dyn Any + Send>>,
}

/// Runs on top of `shoal_call_with_catch`'s frame.
///
/// # Safety
///
/// `payload` must be the `Call<F>` `catch_traps` passed, `jmp_buf` the
/// catch point set up by `shoal_call_with_catch`.
unsafe extern "C" fn call_closure<F: FnOnce()>(payload: *mut c_void, jmp_buf: *mut c_void) {
    // SAFETY: by this function's contract.
    let call = unsafe { &mut *payload.cast::<Call<'_, F>>() };
    call.catch.jmp_buf.set(jmp_buf);
    call.state.set_catch(call.catch);
    if let Some(f) = call.f.take() {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(f)) {
            call.panic = Some(panic);
        }
    }
}

/// Calls `f` (which enters compiled wasm) under a catch point.
///
/// A trap inside returns `Err(Trap)` with the wasm backtrace; a host panic
/// raised inside ([`UnwindReason::Panic`]) is resumed here after the wasm
/// frames are gone. On the outermost entry of a (green) thread it sets
/// `(*limits).stack_limit` (see the module docs) and restores it after;
/// `limits` may be null when `f` runs no wasm that reads it. Prepares the
/// thread on first use ([`init_current_thread`]).
///
/// If `f` is cut short by a trap, its captures are leaked, not dropped: give
/// it only values without meaningful destructors (pointers, references).
pub(crate) fn catch_traps<F: FnOnce()>(
    limits: *mut VMRuntimeLimits,
    max_wasm_stack: usize,
    f: F,
) -> Result<(), Trap> {
    let state = local();
    let prev = state.current.get().catch;
    let frame_marker = 0u8;
    let frame = &frame_marker as *const u8 as usize;

    let stack_limit = if prev.is_null() {
        if !state.ready.get() {
            // An error only means no alternate signal stack; see there.
            let _ = init_current_thread();
        }
        outermost_stack_limit(state.stack_bounds(), frame, max_wasm_stack)
    } else {
        // SAFETY: `prev` is a live catch point of this green thread: catch
        // points are popped before their frame returns.
        unsafe { (*prev).stack_limit }
    };

    // Give `limits` this entry's limit unless the enclosing entry already
    // did (same store).
    // SAFETY: `prev` as above; `limits` is a valid store's limits or null.
    let set_limit = !limits.is_null() && (prev.is_null() || unsafe { (*prev).limits } != limits);
    let saved_limit = if set_limit {
        // SAFETY: `limits` is valid (non-null, by the caller's contract).
        unsafe { std::mem::replace(&mut (*limits).stack_limit, stack_limit) }
    } else {
        0
    };

    let catch = CatchPoint {
        jmp_buf: Cell::new(ptr::null_mut()),
        limits,
        stack_limit,
        frame,
        unwind: UnsafeCell::new(Unwind::None),
    };
    let mut call = Call {
        state,
        catch: &catch,
        f: Some(f),
        panic: None,
    };
    // SAFETY: `call_closure::<F>` gets the `Call<F>` it expects; `call` and
    // `catch` outlive the call. Anything that jumps back here does so only
    // while `catch` is the innermost catch point, i.e. before we pop it.
    let returned =
        unsafe { shoal_call_with_catch(call_closure::<F>, (&mut call as *mut Call<'_, F>).cast()) };

    debug_assert_eq!(
        state.current.get().catch,
        &catch as *const CatchPoint,
        "catch points out of order: was a green thread's ThreadState not swapped back?"
    );
    state.set_catch(prev);
    if set_limit {
        // SAFETY: as above.
        unsafe { (*limits).stack_limit = saved_limit };
    }

    if returned != 0 {
        if let Some(panic) = call.panic {
            panic::resume_unwind(panic);
        }
        return Ok(());
    }
    match catch.unwind.into_inner() {
        Unwind::Raised(UnwindReason::Trap(trap)) => Err(trap),
        Unwind::Raised(UnwindReason::Panic(panic)) => panic::resume_unwind(panic),
        Unwind::Fault { kind, frames } => Err(fault_trap(state, kind, frames)),
        Unwind::None => Err(Trap {
            kind: TrapKind::Unreachable,
            backtrace: Vec::new(),
            message: Some("internal error: unwound without a reason".into()),
        }),
    }
}

/// `sp - max_wasm_stack`, but at least the host reserve above the bottom
/// of the stack when `sp` is inside known bounds.
fn outermost_stack_limit((lo, hi): (usize, usize), sp: usize, max_wasm_stack: usize) -> usize {
    let wanted = sp.saturating_sub(max_wasm_stack);
    if lo < sp && sp <= hi {
        wanted.max(lo.saturating_add(host_reserve(lo, hi)))
    } else {
        // Unknown stack (a coroutine whose bounds were not given): rely on
        // the handler's stack-overflow detection near the guard page.
        wanted
    }
}

/// Builds the `Trap` for a fault whose raw PCs are in the thread's buffer.
fn fault_trap(state: &LocalState, kind: Result<TrapKind, TrapCode>, frames: usize) -> Trap {
    let buffer = state.trace.get();
    let backtrace = if buffer.is_null() || frames == 0 {
        Vec::new()
    } else {
        // SAFETY: the handler wrote `frames <= MAX_FRAMES` PCs into the
        // buffer, which lives as long as the thread; nothing else writes it
        // until the next fault on this thread.
        backtrace::symbolise(unsafe { std::slice::from_raw_parts(buffer, frames.min(MAX_FRAMES)) })
    };
    match kind {
        Ok(kind) => Trap {
            kind,
            backtrace,
            message: None,
        },
        Err(code) => Trap {
            kind: TrapKind::Unreachable,
            backtrace,
            message: Some(format!("internal error: unknown trap code {code}")),
        },
    }
}

/// Unwinds to the innermost catch point, which makes its `catch_traps`
/// return `Err(trap)` or resume the panic. A trap gets the wasm frames of
/// the current activation appended to its backtrace (not for
/// [`TrapKind::Exit`], which is not an error).
///
/// # Safety
///
/// - Only while inside [`catch_traps`] on this (green) thread; otherwise the
///   process is aborted (there is nowhere to go).
/// - Every frame between the caller and the catch point is discarded without
///   running destructors: the caller must have dropped what it owns, and
///   the frames in between (wasm, trampolines, libcall and host-call shims)
///   must hold nothing that needs dropping.
pub(crate) unsafe fn raise(reason: UnwindReason) -> ! {
    let catch = local().current.get().catch;
    if catch.is_null() {
        eprintln!("shoal: a wasm trap was raised outside of any catch point; aborting");
        std::process::abort();
    }
    // SAFETY: `catch` is this green thread's innermost live catch point.
    let catch = unsafe { &*catch };
    record_reason(catch, reason);
    // SAFETY: the catch point's C frame is live (it is below us on this
    // stack); everything owned here was moved into the catch point.
    unsafe { shoal_unwind(catch.jmp_buf.get()) }
}

/// [`raise`] of a trap of `kind`, with the backtrace.
///
/// # Safety
///
/// As for [`raise`].
pub(crate) unsafe fn raise_trap(kind: TrapKind) -> ! {
    // SAFETY: forwarded contract.
    unsafe { raise(UnwindReason::Trap(Trap::new(kind))) }
}

/// Stores `reason` in `catch`, adding the backtrace. Separate from `raise`
/// so that every temporary is dropped before the jump.
#[inline(never)]
fn record_reason(catch: &CatchPoint, reason: UnwindReason) {
    let reason = match reason {
        UnwindReason::Trap(mut trap) if !matches!(trap.kind, TrapKind::Exit(_)) => {
            trap.backtrace
                .extend(backtrace::capture_from_host(catch.frame));
            UnwindReason::Trap(trap)
        }
        other => other,
    };
    // SAFETY: only this thread touches the catch point's `unwind`, and no
    // reference to it is live.
    unsafe { *catch.unwind.get() = Unwind::Raised(reason) };
}

/// Decides what a fault on this thread is; if it is a wasm trap, unwinds to
/// the innermost catch point and does not return.
///
/// # Safety
///
/// Only from the signal handler, for a synchronous fault of the current
/// thread described by `fault`.
pub(crate) unsafe fn handle_fault(fault: &Fault) {
    let state = local();
    let catch = state.current.get().catch;
    if catch.is_null() {
        return;
    }
    // SAFETY: `catch` is this green thread's innermost live catch point
    // (the faulting code runs on top of it).
    let catch = unsafe { &*catch };
    // Everything that holds a lock or a reference is dropped inside
    // `classify_fault`: only plain values are live at the jump.
    // SAFETY: forwarded contract.
    let Some((kind, frames)) = (unsafe { classify_fault(state, catch, fault) }) else {
        return;
    };
    // SAFETY: as in `record_reason`; the previous value is `Unwind::None`.
    unsafe { ptr::write(catch.unwind.get(), Unwind::Fault { kind, frames }) };
    // SAFETY: the catch point's frame is live below the faulting code on
    // this stack; jumping out of the handler is sound because the handler
    // runs with SA_NODEFER and an empty mask (see the module docs).
    unsafe { shoal_unwind(catch.jmp_buf.get()) }
}

/// The trap kind of `fault` and the number of raw PCs recorded, or `None`
/// if it is not a wasm trap. Allocates nothing.
///
/// # Safety
///
/// As for [`handle_fault`].
unsafe fn classify_fault(
    state: &LocalState,
    catch: &CatchPoint,
    fault: &Fault,
) -> Option<(Result<TrapKind, TrapCode>, usize)> {
    let reader = code_registry::read_in_signal_handler();
    let site = reader.as_ref().and_then(|r| r.trap_code(fault.pc));
    let kind = match site {
        Some(Some(code)) => TrapKind::from_code(code).ok_or(code),
        _ if is_stack_overflow(fault, state.stack_bounds()) => Ok(TrapKind::StackOverflow),
        // A fault in wasm code at no trap site is a bug in Shoal's code
        // generation; a fault in host code is the host's. Neither is a
        // trap: pass it on.
        _ => return None,
    };
    let mut frames = 0;
    let buffer = state.trace.get();
    if let (Some(reader), Some(_), false) = (&reader, site, buffer.is_null()) {
        // SAFETY: `fault.sp..catch.frame` is the live stack between the
        // faulting frame and the catch point. `buffer` has MAX_FRAMES words
        // and only this thread uses it.
        unsafe {
            backtrace::walk(reader, fault.pc, fault.fp, fault.sp, catch.frame, |pc| {
                *buffer.add(frames) = pc;
                frames += 1;
                frames < MAX_FRAMES
            });
        }
    }
    Some((kind, frames))
}

/// Whether `fault` is a stack access at the bottom of the current stack.
///
/// The address must be close to the stack pointer (a push or call just
/// below it, a probe or store in the frame just above it): memory there is
/// stack, and stack only faults at its guard. When the stack's bounds are
/// known, the address must also be below the host reserve at its bottom.
fn is_stack_overflow(fault: &Fault, (lo, hi): (usize, usize)) -> bool {
    const BELOW_SP: usize = 256;
    const ABOVE_SP: usize = 64 * 1024;
    let Some(addr) = fault.addr else {
        return false;
    };
    debug_assert!(fault.signal == libc::SIGSEGV || fault.signal == libc::SIGBUS);
    let sp = fault.sp;
    if addr < sp.saturating_sub(BELOW_SP) || addr >= sp.saturating_add(ABOVE_SP) {
        return false;
    }
    let known = hi != 0 && sp <= hi && sp >= lo.saturating_sub(1 << 20);
    !known || addr < lo.saturating_add(host_reserve(lo, hi))
}

// Tests drive the machinery with hand-assembled x86_64 functions registered
// as wasm code; end-to-end tests with compiled wasm live in tests/.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::code_registry::{register_code, CodeLookup, CodeRegistration};
    use crate::trap::FrameInfo;
    use std::ops::Range;
    use std::sync::{Arc, OnceLock};

    // --- A tiny "module" of hand-written machine code ----------------------

    const UD2: usize = 0;
    const LOAD: usize = 1;
    const CALL: usize = 2;
    const RECURSE: usize = 3;
    const UNKNOWN_CODE: usize = 4;
    const LOAD_NO_SITE: usize = 5;
    const DIV: usize = 6;

    /// `(machine code, trap sites as (offset, code))` per function index.
    /// Machine code and trap sites `(offset, code)` of one test function.
    type TestFunction = (Vec<u8>, Vec<(usize, TrapCode)>);

    fn functions() -> Vec<TestFunction> {
        use crate::trap::codes;
        const PROLOGUE: [u8; 4] = [0x55, 0x48, 0x89, 0xe5]; // push rbp; mov rbp, rsp
        let with_prologue = |body: &[u8]| [&PROLOGUE[..], body].concat();
        vec![
            // UD2: ud2
            (with_prologue(&[0x0f, 0x0b]), vec![(4, codes::UNREACHABLE)]),
            // LOAD(p): mov rax, [rdi]; pop rbp; ret
            (
                with_prologue(&[0x48, 0x8b, 0x07, 0x5d, 0xc3]),
                vec![(4, TrapCode::HEAP_OUT_OF_BOUNDS)],
            ),
            // CALL(f, x): mov rax, rdi; mov rdi, rsi; call rax; pop rbp; ret
            (
                with_prologue(&[0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0xff, 0xd0, 0x5d, 0xc3]),
                vec![],
            ),
            // RECURSE(limits): cmp rsp, [rdi]; jb trap; call RECURSE; pop rbp; ret; trap: ud2
            // (Cranelift's prologue stack check, then infinite recursion.)
            (
                with_prologue(&[
                    0x48, 0x3b, 0x27, 0x72, 0x07, 0xe8, 0xf2, 0xff, 0xff, 0xff, 0x5d, 0xc3, 0x0f,
                    0x0b,
                ]),
                vec![(16, TrapCode::STACK_OVERFLOW)],
            ),
            // UNKNOWN_CODE: ud2 with a code TrapKind does not know
            (
                with_prologue(&[0x0f, 0x0b]),
                vec![(4, TrapCode::unwrap_user(200))],
            ),
            // LOAD_NO_SITE(p): like LOAD, but the load is not a trap site
            (with_prologue(&[0x48, 0x8b, 0x07, 0x5d, 0xc3]), vec![]),
            // DIV(a, b): mov rax, rdi; cqo; idiv rsi; pop rbp; ret
            (
                with_prologue(&[0x48, 0x89, 0xf8, 0x48, 0x99, 0x48, 0xf7, 0xfe, 0x5d, 0xc3]),
                vec![(9, TrapCode::INTEGER_DIVISION_BY_ZERO)],
            ),
        ]
    }

    struct TestLookup {
        funcs: Vec<Range<usize>>,
        sites: Vec<(usize, TrapCode)>,
    }

    impl TestLookup {
        fn find(&self, pc: usize) -> Option<(u32, Option<TrapCode>)> {
            let index = self.funcs.iter().position(|r| r.contains(&pc))?;
            let code = self
                .sites
                .iter()
                .find(|(site, _)| *site == pc)
                .map(|&(_, code)| code);
            Some((index as u32, code))
        }
    }

    impl CodeLookup for TestLookup {
        fn lookup(&self, pc: usize) -> Option<(FrameInfo, Option<TrapCode>)> {
            let (func_index, code) = self.find(pc)?;
            let frame = FrameInfo {
                func_index,
                func_name: Some(format!("f{func_index}")),
                module_name: Some("test".into()),
            };
            Some((frame, code))
        }
        fn trap_code(&self, pc: usize) -> Option<Option<TrapCode>> {
            self.find(pc).map(|(_, code)| code)
        }
    }

    struct TestCode {
        funcs: Vec<usize>,
        _registration: CodeRegistration,
    }

    // SAFETY: the code is immutable once mapped.
    unsafe impl Sync for TestCode {}

    /// The test functions, mapped once (never unmapped) and registered.
    fn code() -> &'static TestCode {
        static CODE: OnceLock<TestCode> = OnceLock::new();
        CODE.get_or_init(|| {
            // A 16-byte "trampoline" (int3s, not a function) first, to check
            // that registered code outside functions is walked but not reported.
            let mut bytes = vec![0xccu8; 16];
            let mut funcs = Vec::new();
            let mut sites = Vec::new();
            for (body, func_sites) in functions() {
                let start = bytes.len();
                bytes.extend_from_slice(&body);
                funcs.push(start..bytes.len());
                sites.extend(func_sites.iter().map(|&(off, code)| (start + off, code)));
                bytes.resize(bytes.len().next_multiple_of(16), 0xcc);
            }
            let len = bytes.len().next_multiple_of(4096);
            // SAFETY: a fresh private mapping, written then made executable.
            let base = unsafe {
                let p = libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED);
                ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
                assert_eq!(libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC), 0);
                p as usize
            };
            let lookup = TestLookup {
                funcs: funcs.iter().map(|r| base + r.start..base + r.end).collect(),
                sites: sites
                    .iter()
                    .map(|&(off, code)| (base + off, code))
                    .collect(),
            };
            let registration = register_code(base..base + len, Arc::new(lookup));
            TestCode {
                funcs: funcs.iter().map(|r| base + r.start).collect(),
                _registration: registration,
            }
        })
    }

    /// Calls test function `index` with two arguments.
    ///
    /// # Safety
    ///
    /// The arguments must be what that function expects.
    unsafe fn call(index: usize, a: usize, b: usize) -> usize {
        // SAFETY: the address is one of our functions, which follow the C ABI.
        let f: extern "C" fn(usize, usize) -> usize =
            unsafe { std::mem::transmute(code().funcs[index]) };
        f(a, b)
    }

    /// The address of a host function, to be called by `CALL`.
    fn host(f: extern "C" fn(usize) -> usize) -> usize {
        f as usize
    }

    fn func_addr(index: usize) -> usize {
        code().funcs[index]
    }

    /// A page that faults on any access.
    fn guard_page() -> usize {
        static PAGE: OnceLock<usize> = OnceLock::new();
        *PAGE.get_or_init(|| {
            // SAFETY: a fresh PROT_NONE mapping, never unmapped.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    4096,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            p as usize
        })
    }

    fn indices(trap: &Trap) -> Vec<u32> {
        trap.backtrace.iter().map(|f| f.func_index).collect()
    }

    fn assert_clean() {
        assert!(
            !local().current.get().in_wasm(),
            "a catch point was left behind"
        );
    }

    const STACK: usize = 1 << 20;

    // --- Faults in "wasm" ---------------------------------------------------

    #[test]
    fn unreachable_is_a_trap_with_backtrace() {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(UD2, 0, 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::Unreachable);
        assert_eq!(indices(&trap), [UD2 as u32]);
        assert_eq!(trap.backtrace[0].func_name.as_deref(), Some("f0"));
        assert_clean();
    }

    #[test]
    fn load_from_guard_region_is_out_of_bounds() {
        let page = guard_page();
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(LOAD, page + 8, 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::MemoryOutOfBounds);
        assert_eq!(indices(&trap), [LOAD as u32]);
    }

    #[test]
    fn hardware_divide_error_is_a_trap() {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(DIV, 1, 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::IntegerDivisionByZero);
        // And the function works when it does not fault.
        let mut q = 0;
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        catch_traps(ptr::null_mut(), STACK, || q = unsafe { call(DIV, 42, 6) }).unwrap();
        assert_eq!(q, 7);
    }

    #[test]
    fn backtrace_walks_wasm_frames_through_calls() {
        // CALL -> UD2: innermost first.
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, func_addr(UD2), 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::Unreachable);
        assert_eq!(indices(&trap), [UD2 as u32, CALL as u32]);
    }

    #[test]
    fn unknown_trap_code_is_still_a_trap() {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(UNKNOWN_CODE, 0, 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::Unreachable);
        assert!(trap.message.unwrap().contains("unknown trap code"));
    }

    #[test]
    fn many_traps_leave_signal_mask_and_state_alone() {
        // SAFETY: reading this thread's signal mask.
        let mask = || unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), &mut set);
            [libc::SIGSEGV, libc::SIGILL, libc::SIGFPE, libc::SIGBUS]
                .map(|s| libc::sigismember(&set, s))
        };
        let before = mask();
        let page = guard_page();
        for i in 0..2000 {
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
                match i % 3 {
                    0 => call(UD2, 0, 0),
                    1 => call(LOAD, page, 0),
                    _ => call(DIV, 1, 0),
                };
            })
            .unwrap_err();
            assert_eq!(
                trap.kind,
                [
                    TrapKind::Unreachable,
                    TrapKind::MemoryOutOfBounds,
                    TrapKind::IntegerDivisionByZero
                ][i % 3]
            );
        }
        assert_eq!(mask(), before);
        assert_clean();
    }

    // --- Raising from host code -------------------------------------------

    extern "C" fn host_raise(_: usize) -> usize {
        // SAFETY: called from wasm inside catch_traps; nothing owned here.
        unsafe { raise_trap(TrapKind::IntegerOverflow) }
    }

    extern "C" fn host_raise_message(_: usize) -> usize {
        // SAFETY: as above.
        unsafe { raise(UnwindReason::Trap(Trap::host("disk on fire"))) }
    }

    extern "C" fn host_exit(code: usize) -> usize {
        // SAFETY: as above.
        unsafe { raise_trap(TrapKind::Exit(code as i32)) }
    }

    #[test]
    fn raise_from_host_function_returns_trap_with_backtrace() {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, host(host_raise), 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::IntegerOverflow);
        assert_eq!(
            indices(&trap),
            [CALL as u32],
            "the unwinder finds the wasm caller"
        );

        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, host(host_raise_message), 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::Host);
        assert_eq!(trap.message.as_deref(), Some("disk on fire"));
        assert_eq!(indices(&trap), [CALL as u32]);

        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, host(host_exit), 3);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::Exit(3));
        assert!(trap.backtrace.is_empty());
        assert_clean();
    }

    #[test]
    fn raise_without_wasm_frames_has_empty_backtrace() {
        let trap = catch_traps(ptr::null_mut(), STACK, || {
            host_raise(0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::IntegerOverflow);
        assert!(trap.backtrace.is_empty());
    }

    extern "C" fn host_panic(_: usize) -> usize {
        // What a host-call shim does: catch the panic, drop nothing else, raise it.
        let payload = panic::catch_unwind(|| panic!("boom")).unwrap_err();
        // SAFETY: called from wasm inside catch_traps; `payload` is moved.
        unsafe { raise(UnwindReason::Panic(payload)) }
    }

    #[test]
    fn host_panic_is_resumed_after_wasm_frames_are_gone() {
        let result = panic::catch_unwind(|| {
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            let _ = catch_traps(ptr::null_mut(), STACK, || unsafe {
                call(CALL, host(host_panic), 0);
            });
        });
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_clean();
        // The thread still works.
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        assert!(catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(UD2, 0, 0);
        })
        .is_err());
    }

    #[test]
    fn panic_in_closure_outside_wasm_propagates() {
        let mut limits = VMRuntimeLimits::default();
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = catch_traps(&mut limits, STACK, || panic!("plain"));
        }));
        assert_eq!(result.unwrap_err().downcast_ref::<&str>(), Some(&"plain"));
        assert_eq!(limits.stack_limit, 0, "limit restored");
        assert_clean();
    }

    // --- Nesting ----------------------------------------------------------

    thread_local! {
        static INNER: Cell<Option<TrapKind>> = const { Cell::new(None) };
    }

    /// host -> wasm -> host_nested -> catch_traps -> wasm traps (inner), then
    /// returns normally to the outer wasm.
    extern "C" fn host_nested(_: usize) -> usize {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let inner = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, func_addr(UD2), 0);
        });
        let trap = inner.unwrap_err();
        assert_eq!(
            indices(&trap),
            [UD2 as u32, CALL as u32],
            "inner activation only"
        );
        INNER.with(|c| c.set(Some(trap.kind)));
        7
    }

    /// Like host_nested, but then the outer activation traps too.
    extern "C" fn host_nested_then_raise(_: usize) -> usize {
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let inner = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(DIV, 1, 0);
        });
        INNER.with(|c| c.set(Some(inner.unwrap_err().kind)));
        // SAFETY: inside the outer catch_traps; nothing owned is live.
        unsafe { raise_trap(TrapKind::Timeout) }
    }

    #[test]
    fn nested_catch_points() {
        let mut result = 0;
        catch_traps(ptr::null_mut(), STACK, || {
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            result = unsafe { call(CALL, host(host_nested), 0) }
        })
        .unwrap();
        assert_eq!(result, 7);
        assert_eq!(INNER.with(|c| c.take()), Some(TrapKind::Unreachable));

        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(ptr::null_mut(), STACK, || unsafe {
            call(CALL, host(host_nested_then_raise), 0);
        })
        .unwrap_err();
        assert_eq!(
            INNER.with(|c| c.take()),
            Some(TrapKind::IntegerDivisionByZero)
        );
        assert_eq!(trap.kind, TrapKind::Timeout);
        assert_eq!(indices(&trap), [CALL as u32]);
        assert_clean();
    }

    #[test]
    fn nested_entries_share_the_outermost_stack_limit() {
        let mut outer = VMRuntimeLimits::default();
        let mut other = VMRuntimeLimits {
            stack_limit: 1234,
            epoch_deadline: 0,
        };
        let outer_ptr: *mut VMRuntimeLimits = &mut outer;
        let other_ptr: *mut VMRuntimeLimits = &mut other;
        let mut seen = (0, 0, 0);
        catch_traps(outer_ptr, 256 * 1024, || {
            // SAFETY: reading limits we own, around nested entries.
            let limit = unsafe { (*outer_ptr).stack_limit };
            let marker = 0u8;
            let sp = &marker as *const u8 as usize;
            assert!(
                limit < sp && sp - limit <= 256 * 1024 + 4096,
                "limit {limit:#x} sp {sp:#x}"
            );
            // SAFETY: reads limits we own (locals of this test), which
            // outlive the call.
            catch_traps(outer_ptr, 1, || unsafe {
                seen.0 = (*outer_ptr).stack_limit
            })
            .unwrap();
            // SAFETY: as above, for the other store.
            catch_traps(other_ptr, 1, || unsafe {
                seen.1 = (*other_ptr).stack_limit
            })
            .unwrap();
            seen.2 = limit;
        })
        .unwrap();
        assert_eq!(seen.0, seen.2, "same store: limit kept");
        assert_eq!(seen.1, seen.2, "other store: gets the outermost limit");
        assert_eq!(outer.stack_limit, 0);
        assert_eq!(other.stack_limit, 1234, "restored");
    }

    // --- Stack overflow ---------------------------------------------------

    #[test]
    fn wasm_recursion_hits_the_stack_limit() {
        let mut limits = VMRuntimeLimits::default();
        let limits_ptr: *mut VMRuntimeLimits = &mut limits;
        // SAFETY: each test function is called with the arguments it expects; a fault
        // in them is what `catch_traps` is there to catch.
        let trap = catch_traps(limits_ptr, 256 * 1024, || unsafe {
            call(RECURSE, limits_ptr as usize, 0);
        })
        .unwrap_err();
        assert_eq!(trap.kind, TrapKind::StackOverflow);
        assert_eq!(trap.backtrace.len(), backtrace::MAX_FRAMES, "capped");
        assert!(trap
            .backtrace
            .iter()
            .all(|f| f.func_index == RECURSE as u32));
        assert_eq!(limits.stack_limit, 0, "restored");
    }

    fn on_thread_with_stack<T: Send + 'static>(
        size: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::Builder::new()
            .stack_size(size)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn stack_limit_never_eats_the_host_reserve() {
        // Ask for far more wasm stack than the thread has: the limit stops at
        // the bottom of the stack plus the host reserve, and it is a trap.
        on_thread_with_stack(256 * 1024, || {
            let mut limits = VMRuntimeLimits::default();
            let limits_ptr: *mut VMRuntimeLimits = &mut limits;
            for _ in 0..3 {
                // SAFETY: each test function is called with the arguments it expects; a fault
                // in them is what `catch_traps` is there to catch.
                let trap = catch_traps(limits_ptr, 1 << 30, || unsafe {
                    call(RECURSE, limits_ptr as usize, 0);
                })
                .unwrap_err();
                assert_eq!(trap.kind, TrapKind::StackOverflow);
            }
            let (lo, _) = local().os_stack.get();
            assert!(lo != 0, "OS stack bounds known");
        });
    }

    #[inline(never)]
    #[allow(unconditional_recursion)]
    fn deep(n: usize) -> usize {
        let buf = std::hint::black_box([n; 64]);
        deep(buf[1] + 1) + buf[2]
    }

    extern "C" fn host_overflow(_: usize) -> usize {
        deep(0)
    }

    #[test]
    fn host_function_stack_overflow_is_a_trap() {
        on_thread_with_stack(512 * 1024, || {
            let mut limits = VMRuntimeLimits::default();
            for _ in 0..3 {
                // SAFETY: each test function is called with the arguments it expects; a fault
                // in them is what `catch_traps` is there to catch.
                let trap = catch_traps(&mut limits, 1 << 30, || unsafe {
                    call(CALL, host(host_overflow), 0);
                })
                .unwrap_err();
                assert_eq!(trap.kind, TrapKind::StackOverflow);
            }
            // Wasm traps still work afterwards on this thread.
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            let trap = catch_traps(&mut limits, 1 << 30, || unsafe {
                call(UD2, 0, 0);
            })
            .unwrap_err();
            assert_eq!(trap.kind, TrapKind::Unreachable);
        });
    }

    // --- Green threads (corosensei coroutines) ----------------------------

    use corosensei::stack::{DefaultStack, Stack};
    use corosensei::{Coroutine, CoroutineResult, Yielder};

    type Green = Coroutine<(), (), Result<(), Trap>, DefaultStack>;

    /// Runs `f` as a green thread on a fresh stack, with its own ThreadState.
    fn green(
        size: usize,
        f: impl FnOnce(&Yielder<(), ()>) -> Result<(), Trap> + 'static,
    ) -> (Green, ThreadState) {
        let stack = DefaultStack::new(size).unwrap();
        let state = ThreadState::for_stack(stack.limit().get(), stack.base().get());
        (
            Coroutine::with_stack(stack, move |y: &Yielder<(), ()>, ()| f(y)),
            state,
        )
    }

    /// What the scheduler does on every resume.
    fn resume(co: &mut Green, state: &mut ThreadState) -> CoroutineResult<(), Result<(), Trap>> {
        // SAFETY: `state` belongs to `co`, which runs on this thread between the swaps.
        let outer = unsafe { swap_thread_state(*state) };
        let result = co.resume(());
        // SAFETY: putting back what we took.
        *state = unsafe { swap_thread_state(outer) };
        result
    }

    /// Host function that suspends its green thread; `arg` is its yielder.
    extern "C" fn host_yield(yielder: usize) -> usize {
        // SAFETY: the test passes a `&Yielder<(), ()>` of the running coroutine.
        let yielder = unsafe { &*(yielder as *const Yielder<(), ()>) };
        yielder.suspend(());
        0
    }

    /// Suspends, then raises when resumed.
    extern "C" fn host_yield_then_raise(yielder: usize) -> usize {
        host_yield(yielder);
        // SAFETY: inside catch_traps on the resumed green thread.
        unsafe { raise_trap(TrapKind::IntegerOverflow) }
    }

    #[test]
    fn traps_end_only_their_green_thread() {
        // A and B both suspend inside wasm, interleaved; then A faults in
        // wasm and B raises from a host function. Each gets its own trap,
        // and the worker's own state is untouched.
        let (mut a, mut a_state) = green(256 * 1024, |y| {
            let y = y as *const Yielder<(), ()> as usize;
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            catch_traps(ptr::null_mut(), STACK, || unsafe {
                call(CALL, host(host_yield), y);
                call(CALL, func_addr(UD2), 0);
            })
        });
        let (mut b, mut b_state) = green(256 * 1024, |y| {
            let y = y as *const Yielder<(), ()> as usize;
            // SAFETY: each test function is called with the arguments it expects; a fault
            // in them is what `catch_traps` is there to catch.
            catch_traps(ptr::null_mut(), STACK, || unsafe {
                call(CALL, host(host_yield_then_raise), y);
            })
        });
        assert!(matches!(
            resume(&mut a, &mut a_state),
            CoroutineResult::Yield(())
        ));
        assert!(a_state.in_wasm());
        assert!(matches!(
            resume(&mut b, &mut b_state),
            CoroutineResult::Yield(())
        ));
        assert!(b_state.in_wasm());
        assert_clean();

        let CoroutineResult::Return(Err(trap_a)) = resume(&mut a, &mut a_state) else {
            panic!("A must trap")
        };
        assert_eq!(trap_a.kind, TrapKind::Unreachable);
        assert_eq!(indices(&trap_a), [UD2 as u32, CALL as u32]);
        assert!(!a_state.in_wasm());

        let CoroutineResult::Return(Err(trap_b)) = resume(&mut b, &mut b_state) else {
            panic!("B must trap")
        };
        assert_eq!(trap_b.kind, TrapKind::IntegerOverflow);
        assert_eq!(indices(&trap_b), [CALL as u32]);
        assert_clean();
    }

    #[test]
    fn stack_overflow_in_green_thread() {
        for size in [64 * 1024, 256 * 1024, 1 << 20] {
            // Wasm recursion: the limit is computed from the coroutine's stack.
            let (mut co, mut state) = green(size, |_| {
                let mut limits = VMRuntimeLimits::default();
                let limits_ptr: *mut VMRuntimeLimits = &mut limits;
                // SAFETY: each test function is called with the arguments it expects; a fault
                // in them is what `catch_traps` is there to catch.
                catch_traps(limits_ptr, 1 << 30, || unsafe {
                    call(RECURSE, limits_ptr as usize, 0);
                })
            });
            let CoroutineResult::Return(Err(trap)) = resume(&mut co, &mut state) else {
                panic!()
            };
            assert_eq!(trap.kind, TrapKind::StackOverflow, "{size}");

            // A host function overflowing the coroutine's stack into its guard page.
            let (mut co, mut state) = green(size, |_| {
                // SAFETY: each test function is called with the arguments it expects; a fault
                // in them is what `catch_traps` is there to catch.
                catch_traps(ptr::null_mut(), 1 << 30, || unsafe {
                    call(CALL, host(host_overflow), 0);
                })
            });
            let CoroutineResult::Return(Err(trap)) = resume(&mut co, &mut state) else {
                panic!()
            };
            assert_eq!(trap.kind, TrapKind::StackOverflow, "{size}");
        }
        assert_clean();
    }

    // --- Faults that are not ours go to the previous handler ---------------

    const CHILD_ENV: &str = "SHOAL_TRAP_TEST_CHILD";

    fn run_child(mode: &str) -> std::process::ExitStatus {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "trap_handling::tests::child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, mode)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    }

    extern "C" fn exit_42(_: c_int, _: *mut libc::siginfo_t, _: *mut c_void) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(42) }
    }

    /// Not a test of its own: the body of the subprocesses of `chaining`.
    #[test]
    fn child() {
        let Ok(mode) = std::env::var(CHILD_ENV) else {
            return;
        };
        let page = guard_page();
        // SAFETY: deliberately faulting in various ways, in a child process.
        unsafe {
            match mode.as_str() {
                "host-fault-in-wasm-to-previous-handler" => {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = exit_42 as *const () as usize;
                    action.sa_flags = libc::SA_SIGINFO;
                    libc::sigaction(libc::SIGSEGV, &action, ptr::null_mut());
                    init_current_thread().unwrap();
                    // A host fault while inside wasm that is not a stack overflow.
                    let _ = catch_traps(ptr::null_mut(), STACK, || {
                        ptr::read_volatile(page as *const usize);
                    });
                }
                "sent-signal-is-not-a-trap" => {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = exit_42 as *const () as usize;
                    action.sa_flags = libc::SA_SIGINFO;
                    libc::sigaction(libc::SIGILL, &action, ptr::null_mut());
                    let _ = catch_traps(ptr::null_mut(), STACK, || {
                        libc::raise(libc::SIGILL);
                    });
                }
                "fault-outside-wasm" => {
                    init_current_thread().unwrap();
                    ptr::read_volatile(page as *const usize);
                }
                "wasm-fault-at-no-site" => {
                    let _ = catch_traps(ptr::null_mut(), STACK, || {
                        call(LOAD_NO_SITE, page, 0);
                    });
                }
                "sigill-outside-wasm" => {
                    let _ = catch_traps(ptr::null_mut(), STACK, || {
                        std::arch::asm!("ud2");
                    });
                }
                "ignored-sigfpe-fault" => {
                    libc::signal(libc::SIGFPE, libc::SIG_IGN);
                    init_current_thread().unwrap();
                    let zero = std::hint::black_box(0u64);
                    let _ = catch_traps(ptr::null_mut(), STACK, || {
                        std::arch::asm!("div {0}", in(reg) zero, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
                    });
                }
                other => panic!("unknown mode {other}"),
            }
        }
        // Reaching here means the fault was swallowed.
        std::process::exit(0);
    }

    #[test]
    fn chaining() {
        use std::os::unix::process::ExitStatusExt;
        if std::env::var(CHILD_ENV).is_ok() {
            return;
        }
        let status = run_child("host-fault-in-wasm-to-previous-handler");
        assert_eq!(
            status.code(),
            Some(42),
            "previous handler called: {status:?}"
        );
        let status = run_child("sent-signal-is-not-a-trap");
        assert_eq!(
            status.code(),
            Some(42),
            "previous handler called: {status:?}"
        );
        let status = run_child("fault-outside-wasm");
        assert_eq!(
            status.signal(),
            Some(libc::SIGSEGV),
            "default action: {status:?}"
        );
        let status = run_child("wasm-fault-at-no-site");
        assert_eq!(
            status.signal(),
            Some(libc::SIGSEGV),
            "not a trap: {status:?}"
        );
        let status = run_child("sigill-outside-wasm");
        assert_eq!(status.signal(), Some(libc::SIGILL), "{status:?}");
        let status = run_child("ignored-sigfpe-fault");
        assert_eq!(
            status.signal(),
            Some(libc::SIGFPE),
            "a fault cannot be ignored: {status:?}"
        );
    }

    // --- Cost -------------------------------------------------------------

    #[test]
    fn catch_traps_is_cheap() {
        let mut limits = VMRuntimeLimits::default();
        catch_traps(&mut limits, STACK, || {}).unwrap();
        let n = 200_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            catch_traps(&mut limits, STACK, || {
                std::hint::black_box(());
            })
            .unwrap();
        }
        let per_call = start.elapsed() / n;
        eprintln!("catch_traps (outermost, no trap): {per_call:?}");
        assert!(
            per_call < std::time::Duration::from_micros(2),
            "{per_call:?}"
        );
    }
}
