//! Cache hints: asking the CPU to start loading a line before it is needed.
//!
//! With thousands of green threads, what a switch or a wake-up touches is
//! out of the caches; the worker names it a few steps ahead (see
//! "Prefetching" in `worker.rs`, and `IoTable::dispatch_all` in `io.rs`).

use std::sync::Arc;

/// A cache line.
pub(crate) const LINE: usize = 64;

/// Asks the CPU to start loading the line at `addr` (a hint: no effect on
/// what the program computes).
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    }
}

/// Asks the CPU to start loading the `lines` lines from `addr` on.
#[inline(always)]
pub(crate) fn prefetch_lines(addr: usize, lines: usize) {
    for line in 0..lines {
        prefetch(addr.wrapping_add(line * LINE));
    }
}

/// Where `this`'s reference counts are: at the start of its allocation,
/// just before the value, padded to the value's alignment (the standard
/// library's layout; a wrong guess would only waste a prefetch).
#[inline(always)]
pub(crate) fn arc_counts<T>(this: &Arc<T>) -> usize {
    let header = (2 * std::mem::size_of::<usize>()).next_multiple_of(std::mem::align_of::<T>());
    (Arc::as_ptr(this) as usize).wrapping_sub(header)
}
