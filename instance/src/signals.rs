//! The OS side of trap handling (Linux, x86_64 and aarch64): the signal
//! handler, the alternate signal stack, reading registers out of a
//! `ucontext`, passing foreign faults on to the previous handler, and the
//! bounds of the current thread's stack.
//!
//! What a fault *means* is decided in [`trap_handling`](crate::trap_handling);
//! this module only turns a signal into a [`Fault`] and back.
//!
//! # Handlers
//!
//! SIGSEGV, SIGBUS, SIGILL and SIGFPE get one handler for the whole process,
//! installed the first time any thread enters wasm ([`install_handlers`]).
//! The actions it replaces are kept, and a fault that is not a wasm trap is
//! passed to them ([`chain`]). Flags:
//! - `SA_SIGINFO`: the handler needs the fault address and the context;
//! - `SA_ONSTACK`: a stack overflow leaves no stack to run a handler on, so
//!   it runs on the thread's alternate signal stack;
//! - `SA_NODEFER` with an empty `sa_mask`: running the handler blocks no
//!   signal, so jumping out of it (which skips the `sigreturn` that would
//!   restore the mask) leaves the thread's signal mask as it was.
//!
//! # Alternate signal stacks
//!
//! Every thread that enters wasm gets one in [`prepare_thread`]: the thread's
//! existing one if it is large enough (Rust's runtime installs a small one on
//! every thread it creates, usually too small to also run this handler
//! after the kernel's signal frame with the full vector state), else a
//! fresh 64 KiB mapping with a guard page below it, freed when the thread
//! exits.

use crate::trap_handling;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!("shoal-instance's trap handling supports Linux on x86_64 and aarch64 only");

/// The signals that compiled code can raise.
const SIGNALS: [c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// What the kernel told us about a synchronous fault.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fault {
    pub signal: c_int,
    /// The faulting instruction.
    pub pc: usize,
    /// The frame pointer (rbp / x29) at the fault.
    pub fp: usize,
    /// The stack pointer at the fault.
    pub sp: usize,
    /// The faulting data address, for SIGSEGV and SIGBUS.
    pub addr: Option<usize>,
}

/// Installs the handler for [`SIGNALS`] once per process. Cheap after the
/// first call.
pub(crate) fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: `PREVIOUS[i]` is written only here, once, before our
            // handler (its only reader) is installed for `signal`. The
            // `sigaction` structs are fully initialised (zeroed, then set).
            unsafe {
                let previous = (*PREVIOUS.0.get())[i].as_mut_ptr();
                if libc::sigaction(signal, ptr::null(), previous) != 0 {
                    panic!(
                        "cannot read the {signal} action: {}",
                        std::io::Error::last_os_error()
                    );
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, ptr::null_mut()) != 0 {
                    panic!(
                        "cannot install the {signal} handler: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
    });
}

/// The actions our handler replaced, by index in [`SIGNALS`].
struct PreviousActions(std::cell::UnsafeCell<[MaybeUninit<libc::sigaction>; SIGNALS.len()]>);

// SAFETY: written once inside `INSTALL` before any reader can run (see
// `install_handlers`), read-only afterwards.
unsafe impl Sync for PreviousActions {}

static PREVIOUS: PreviousActions = PreviousActions(std::cell::UnsafeCell::new(
    [MaybeUninit::zeroed(); SIGNALS.len()],
));

/// The process-wide handler.
extern "C" fn handler(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // Keep errno intact for the interrupted code if we return to it.
    // SAFETY: `__errno_location` is always valid for the current thread.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid `siginfo_t` and `ucontext_t` to an
    // `SA_SIGINFO` handler.
    let fault = unsafe { read_fault(signal, &*info, &*context.cast::<libc::ucontext_t>()) };
    // A signal sent by a process (`kill`, `raise`: `si_code <= 0`) is not
    // a fault, wherever it lands.
    // SAFETY: `info` is valid (kernel-provided).
    if unsafe { (*info).si_code } > 0 {
        // SAFETY: called from a signal handler for a synchronous fault of
        // this thread, with the registers of the interrupted code. Returns
        // only if the fault is not a wasm trap.
        unsafe { trap_handling::handle_fault(&fault) };
    }
    // SAFETY: same arguments as our own handler received.
    unsafe { chain(signal, info, context) };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// # Safety
///
/// `info` and `context` must be what the kernel passed to the handler.
unsafe fn read_fault(signal: c_int, info: &libc::siginfo_t, context: &libc::ucontext_t) -> Fault {
    let addr = if signal == libc::SIGSEGV || signal == libc::SIGBUS {
        // SAFETY: `si_addr` is the valid union member for these signals.
        Some(unsafe { info.si_addr() } as usize)
    } else {
        None
    };
    #[cfg(target_arch = "x86_64")]
    let (pc, fp, sp) = {
        let regs = &context.uc_mcontext.gregs;
        (
            regs[libc::REG_RIP as usize] as usize,
            regs[libc::REG_RBP as usize] as usize,
            regs[libc::REG_RSP as usize] as usize,
        )
    };
    #[cfg(target_arch = "aarch64")]
    let (pc, fp, sp) = {
        let mc = &context.uc_mcontext;
        (mc.pc as usize, mc.regs[29] as usize, mc.sp as usize)
    };
    Fault {
        signal,
        pc,
        fp,
        sp,
        addr,
    }
}

/// Passes a fault that is not a wasm trap to the action our handler
/// replaced, as if we had never been installed:
/// - `SIG_DFL`: restore it and return; a fault re-executes the faulting
///   instruction and now gets the default action (a signal sent by a
///   process is sent again);
/// - `SIG_IGN`: a fault cannot be ignored (the kernel would have forced the
///   default action), so it is treated as `SIG_DFL`; a sent signal is ignored;
/// - a handler: call it with our arguments.
///
/// # Safety
///
/// Only from our signal handler, with the arguments it received.
unsafe fn chain(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let Some(index) = SIGNALS.iter().position(|&s| s == signal) else {
        return;
    };
    // SAFETY: our handler runs only after `install_handlers` wrote
    // `PREVIOUS` (see there).
    let previous: &libc::sigaction = unsafe { (*PREVIOUS.0.get())[index].assume_init_ref() };
    // SAFETY: `info` is valid (kernel-provided).
    let sent_by_process = unsafe { (*info).si_code } <= 0;
    match previous.sa_sigaction {
        libc::SIG_IGN if sent_by_process => {}
        libc::SIG_DFL | libc::SIG_IGN => {
            // SAFETY: resetting a signal to its default action is always
            // allowed; `raise` is async-signal-safe.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut default.sa_mask);
                libc::sigaction(signal, &default, ptr::null_mut());
                if sent_by_process {
                    libc::raise(signal);
                }
            }
        }
        action if previous.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous owner installed `action` as an
            // `SA_SIGINFO` handler with exactly this signature.
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                unsafe { std::mem::transmute(action) };
            f(signal, info, context);
        }
        action => {
            // SAFETY: the previous owner installed `action` as a plain
            // `sa_handler`.
            let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(action) };
            f(signal);
        }
    }
}

/// Size of the alternate signal stacks we allocate (usable part).
const ALTSTACK_SIZE: usize = 64 * 1024;
/// Headroom our handler (and a chained one) needs beyond the kernel's signal
/// frame, to reuse a thread's existing alternate stack.
const ALTSTACK_HEADROOM: usize = 16 * 1024;

thread_local! {
    /// This thread's alternate signal stack, if we allocated it.
    static ALTSTACK: Cell<Option<AltStack>> = const { Cell::new(None) };
    /// Whether `prepare_thread` ran on this thread.
    static PREPARED: Cell<bool> = const { Cell::new(false) };
    /// Unmaps `ALTSTACK` at thread exit.
    static ALTSTACK_OWNER: AltStackOwner = const { AltStackOwner };
}

#[derive(Clone, Copy)]
struct AltStack {
    /// Start of the mapping (the guard page).
    mapping: *mut c_void,
    /// Guard page + usable stack.
    len: usize,
    /// The usable part, as given to `sigaltstack`.
    sp: *mut c_void,
}

struct AltStackOwner;

impl Drop for AltStackOwner {
    fn drop(&mut self) {
        let Ok(Some(stack)) = ALTSTACK.try_with(|s| s.take()) else {
            return;
        };
        // SAFETY: querying is always allowed. If our stack is still the
        // thread's alternate stack, disable it before unmapping (the thread
        // is exiting; nothing is restored). Nothing runs on it here: we are
        // in a TLS destructor on the thread's own stack.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(ptr::null(), &mut current) == 0
                && current.ss_flags & libc::SS_DISABLE == 0
                && current.ss_sp == stack.sp
            {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, ptr::null_mut());
            }
            libc::munmap(stack.mapping, stack.len);
        }
    }
}

/// Makes this thread ready to run wasm: handlers installed, a large enough
/// alternate signal stack. Cheap after the first call on a thread.
pub(crate) fn prepare_thread() -> Result<(), std::io::Error> {
    if PREPARED.with(|p| p.get()) {
        return Ok(());
    }
    install_handlers();
    ensure_altstack()?;
    PREPARED.with(|p| p.set(true));
    Ok(())
}

fn ensure_altstack() -> Result<(), std::io::Error> {
    // SAFETY: plain syscalls on this thread's own state and on a fresh
    // private mapping that nothing else references.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(ptr::null(), &mut current) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let kernel_frame = libc::getauxval(libc::AT_MINSIGSTKSZ) as usize;
        let needed = kernel_frame.max(libc::MINSIGSTKSZ) + ALTSTACK_HEADROOM;
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= needed {
            return Ok(());
        }
        let page = crate::pool::page_size();
        let size = ALTSTACK_SIZE.max(needed).next_multiple_of(page);
        let len = size + page;
        let mapping = libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mapping == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let sp = mapping.cast::<u8>().add(page).cast::<c_void>();
        if libc::mprotect(sp, size, libc::PROT_READ | libc::PROT_WRITE) != 0 {
            let e = std::io::Error::last_os_error();
            libc::munmap(mapping, len);
            return Err(e);
        }
        let new = libc::stack_t {
            ss_sp: sp,
            ss_flags: 0,
            ss_size: size,
        };
        if libc::sigaltstack(&new, ptr::null_mut()) != 0 {
            let e = std::io::Error::last_os_error();
            libc::munmap(mapping, len);
            return Err(e);
        }
        ALTSTACK.with(|s| s.set(Some(AltStack { mapping, len, sp })));
        // Touch the owner so that its destructor is registered.
        ALTSTACK_OWNER.with(|_| {});
    }
    Ok(())
}

/// The bounds `lo..hi` of the current OS thread's stack (its usable part,
/// above the guard), as pthread reports them.
pub(crate) fn os_thread_stack_bounds() -> Result<(usize, usize), std::io::Error> {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before use and
    // destroyed after; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let rc = libc::pthread_getattr_np(libc::pthread_self(), &mut attr);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let mut addr: *mut c_void = ptr::null_mut();
        let mut size: usize = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok((addr as usize, addr as usize + size))
    }
}
