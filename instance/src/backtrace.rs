//! Wasm backtraces: walking the frame-pointer chain of compiled code, and
//! turning the PCs found into [`FrameInfo`]s.
//!
//! Compiled code keeps frame pointers (the engine sets Cranelift's
//! `preserve_frame_pointers`), and on both x86_64 and aarch64 a frame record
//! is two words: `[fp]` = the caller's frame pointer, `[fp + 8]` = the return
//! address into the caller. So from the PC and frame pointer of the
//! innermost wasm frame, the whole activation (every wasm frame up to the
//! host→wasm trampoline) is a loop of two loads, with no unwind tables.
//!
//! Where the walk starts depends on how the trap was raised:
//! - a fault: the signal handler reads PC and FP from the interrupted
//!   context, walks with [`walk`] into a fixed buffer (no allocation), and
//!   the PCs are symbolised with [`symbolise`] after the unwind;
//! - a libcall or host function calling `raise`: host code does not keep
//!   frame pointers, so [`capture_from_host`] asks the system unwinder
//!   (`_Unwind_Backtrace`, which std links for panics) for the first frame
//!   whose PC is in registered code and reads that frame's FP register from
//!   the unwind context; from there it is the same walk.
//!
//! PCs of caller frames are return addresses; they are recorded minus one so
//! that they point into the call instruction, inside the caller's function
//! even when the call is its last instruction.

use crate::code_registry::{self, RegistryReader};
use crate::trap::FrameInfo;
use std::ffi::{c_int, c_void};

/// Largest number of wasm frames kept in a trap's backtrace (the innermost
/// ones; a runaway recursion has tens of thousands).
pub(crate) const MAX_FRAMES: usize = 1024;

/// Walks the wasm frames of the current activation.
///
/// `pc` is a PC inside the innermost frame to report (exact, or a return
/// address minus one) and `fp` that frame's frame pointer. Calls `each(pc)`
/// for every frame that is inside a wasm function (trampolines are walked
/// through, not reported), innermost first, until `each` returns `false`,
/// the chain leaves registered code, or a frame pointer leaves `lo..hi` or
/// fails to grow towards `hi`.
///
/// # Safety
///
/// All of `lo..hi` must be readable memory (the live part of the current
/// stack, below the catch point). Every frame-pointer read is checked to be
/// inside it, so a corrupt chain ends the walk instead of faulting.
pub(crate) unsafe fn walk(
    reader: &RegistryReader,
    mut pc: usize,
    mut fp: usize,
    lo: usize,
    hi: usize,
    mut each: impl FnMut(usize) -> bool,
) {
    const WORD: usize = std::mem::size_of::<usize>();
    loop {
        if !reader.contains(pc) {
            return;
        }
        if reader.trap_code(pc).is_some() && !each(pc) {
            return;
        }
        if fp < lo || !fp.is_multiple_of(WORD) || fp >= hi || hi - fp < 2 * WORD {
            return;
        }
        // SAFETY: `fp..fp + 16` is inside `lo..hi`, readable by the caller's
        // contract.
        let (caller_fp, return_address) =
            unsafe { (*(fp as *const usize), *((fp + WORD) as *const usize)) };
        if caller_fp <= fp || return_address == 0 {
            return;
        }
        pc = return_address - 1;
        fp = caller_fp;
    }
}

/// Symbolises raw PCs recorded by [`walk`]. PCs outside any wasm function
/// (the code was unregistered meanwhile) are skipped.
pub(crate) fn symbolise(pcs: &[usize]) -> Vec<FrameInfo> {
    if pcs.is_empty() {
        return Vec::new();
    }
    let reader = code_registry::read();
    pcs.iter().filter_map(|&pc| reader.frame_info(pc)).collect()
}

/// The wasm frames of the current activation, seen from host code called
/// (directly or not) by wasm: a libcall, a host function. Frames above
/// `hi` (the catch point) are not reported. Empty if no wasm frame is found.
pub(crate) fn capture_from_host(hi: usize) -> Vec<FrameInfo> {
    let reader = code_registry::read();
    let mut search = Search {
        reader: &reader,
        hi,
        found: None,
    };
    // SAFETY: `trace` matches `_Unwind_Trace_Fn` and only uses `arg` as the
    // `Search` it is given, which outlives the call.
    unsafe {
        _Unwind_Backtrace(trace, (&mut search as *mut Search<'_>).cast());
    }
    let Some((pc, fp)) = search.found else {
        return Vec::new();
    };
    let lo = &search as *const _ as usize;
    let mut pcs = Vec::new();
    // SAFETY: `lo` is an address in this frame and `hi` the catch point,
    // in a frame of an active caller: everything between is live stack.
    unsafe {
        walk(&reader, pc, fp, lo, hi, |pc| {
            pcs.push(pc);
            pcs.len() < MAX_FRAMES
        });
    }
    pcs.iter().filter_map(|&pc| reader.frame_info(pc)).collect()
}

struct Search<'a> {
    reader: &'a RegistryReader,
    /// The catch point: frames above it belong to an outer activation.
    hi: usize,
    /// (PC for lookup, FP) of the first frame found in registered code.
    found: Option<(usize, usize)>,
}

/// DWARF register number of the frame pointer.
#[cfg(target_arch = "x86_64")]
const DWARF_FP: c_int = 6; // rbp
#[cfg(target_arch = "aarch64")]
const DWARF_FP: c_int = 29; // x29

const URC_NO_REASON: c_int = 0;
const URC_NORMAL_STOP: c_int = 4;

extern "C" fn trace(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&mut Search` passed to `_Unwind_Backtrace` by
    // `capture_from_host`, alive for the whole backtrace.
    let search = unsafe { &mut *arg.cast::<Search<'_>>() };
    // SAFETY: `ctx` is the context the unwinder passes to its callback.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    // SAFETY: as above.
    if unsafe { _Unwind_GetCFA(ctx) } > search.hi {
        // Past the catch point without meeting wasm: no wasm frame to report.
        return URC_NORMAL_STOP;
    }
    // A caller frame's IP is a return address: look up the call itself.
    let pc = ip - 1;
    if search.reader.contains(pc) {
        // SAFETY: as above; the frame pointer is a callee-saved register
        // that the unwinder tracks in every frame.
        let fp = unsafe { _Unwind_GetGR(ctx, DWARF_FP) };
        search.found = Some((pc, fp));
        return URC_NORMAL_STOP;
    }
    URC_NO_REASON
}

// The unwinder's C interface (libgcc_s or LLVM libunwind; std links one).
extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    fn _Unwind_GetGR(ctx: *mut c_void, index: c_int) -> usize;
    fn _Unwind_GetCFA(ctx: *mut c_void) -> usize;
}
