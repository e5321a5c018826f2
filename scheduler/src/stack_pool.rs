//! Per-worker pool of green-thread stacks carved out of a few large regions.
//!
//! # Layout
//!
//! A region is one `mmap` of `stacks_per_region` slots (anonymous, private,
//! `MAP_NORESERVE`, transparent huge pages off). Each slot is a guard area
//! followed by the usable stack, which grows down towards the guard:
//!
//! ```text
//!  region base                                                  region end
//!  | guard | usable stack ...... top | guard | usable stack ...... top | ...
//!  ^ limit  ^ usable_start         ^ base (corosensei `Stack::base`)
//! ```
//!
//! Slots are carved lazily, so a region costs only address space until used;
//! a steady stream of spawns reuses released stacks (LIFO, so the hottest,
//! already-resident stack goes first) and does no `mmap` or `munmap`.
//!
//! # Guard pages and `vm.max_map_count`
//!
//! A guard made with `mprotect(PROT_NONE)` splits the region's VMA: every
//! stack would cost two mappings, and `vm.max_map_count` (65530 by default)
//! would cap a process at ~32,000 stacks, far from the million green threads
//! Shoal aims at. So guards are installed with `madvise(MADV_GUARD_INSTALL)`
//! (Linux 6.13+), which marks page-table entries instead of splitting the
//! VMA: a region stays **one** mapping however many stacks it holds, and a
//! stack overflow into the guard still raises `SIGSEGV`. On older kernels the
//! pool falls back to `mprotect`, still guarding every stack (never silently
//! unguarded); running out of mappings there surfaces as
//! [`StackError::Map`], whose message points at `vm.max_map_count`.
//!
//! A guard area is a hard backstop; code that can check a limit (Cranelift's
//! `stack_limit`) should do so using [`crate::current_stack_bounds`].
//!
//! # Resident memory
//!
//! Stack pages cost memory only once touched. A released stack goes back on
//! the free list as it is, and is *settled* before it holds a green thread
//! again, or once the worker is idle:
//!
//! - **Settling.** If the top 1 KiB of the page just below the "keep
//!   resident" window (the top `keep_resident` bytes) holds any non-zero
//!   byte, the previous thread went deeper than the window, so everything
//!   below the window is discarded with `MADV_DONTNEED`. The probe only
//!   reads (an untouched page reads as the shared zero page, costing no
//!   memory). It is a heuristic: a deep frame that wrote only zeros there
//!   escapes it, which costs memory, never correctness.
//! - **When.** A stack is settled when [`StackPool::acquire`] hands it out
//!   again, and idle stacks are settled by [`StackPool::trim_idle`] once the
//!   worker has been idle for a while (a bounded batch at a time; see
//!   `worker.rs`). Not at release: the probe of a stack whose page below the
//!   window was never touched maps the zero page there, a page fault (about
//!   1 µs on a VM), and a burst of threads finishing would pay it for every
//!   fresh stack. A steady stream of spawns reuses the stack it just
//!   released (LIFO), which it settles while the page is hot.
//! - **Trimming.** Idle stacks beyond the `warm_stacks` most recently used
//!   ones are discarded entirely, also only once the worker has been idle
//!   for a while (`trim_idle`): after a burst, memory goes back without
//!   slowing the burst. (`MADV_DONTNEED` in a multi-threaded process costs a
//!   TLB shootdown; doing it on every release made a burst of 100,000
//!   spawns ~15x slower.)
//!
//! So a stack that is handed out keeps at most `keep_resident` bytes of old
//! pages, an idle worker's stacks hold at most that much each (the warm
//! ones) or nothing (the rest), and the common case (shallow threads) does
//! no system call at all. Between a burst's end and the worker's next idle
//! spell, stacks that went deep keep their pages.

use std::io;
use std::num::NonZeroUsize;

use corosensei::stack::{Stack, StackPointer};

use crate::sys::{self, GuardKind, Mapping};

/// Sizing and limits of one worker's stack pool (already page-rounded).
#[derive(Clone, Debug)]
pub(crate) struct StackPoolConfig {
    /// Usable bytes per stack.
    pub stack_size: usize,
    /// Guard bytes below each stack.
    pub guard_size: usize,
    /// Most stacks alive (in use) at once.
    pub max_stacks: usize,
    /// Slots per mapped region.
    pub stacks_per_region: usize,
    /// Bytes at the top of a released stack that are never discarded.
    pub keep_resident: usize,
    /// Idle stacks kept warm; more idle stacks are discarded entirely.
    pub warm_stacks: usize,
}

/// Why a stack could not be handed out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StackError {
    #[error("all {limit} stacks of the pool are in use")]
    Exhausted { limit: usize },
    #[error(
        "mapping green-thread stack memory failed: {source} (on kernels before 6.13 each guarded \
         stack costs two mappings: raise vm.max_map_count or lower max_stacks_per_worker)"
    )]
    Map {
        #[source]
        source: io::Error,
    },
}

/// One stack slot lent out by the pool. It has no `Drop`: it must be given
/// back with [`StackPool::release`] (dropping it only leaks the slot).
#[derive(Debug)]
pub(crate) struct PooledStack {
    /// Highest address (exclusive), where the stack starts.
    top: NonZeroUsize,
    /// Lowest address of the slot, start of the guard area.
    limit: NonZeroUsize,
    /// First usable byte (end of the guard area).
    usable_start: usize,
}

impl PooledStack {
    /// `(guard_start, usable_start, top)`.
    pub(crate) fn bounds(&self) -> (usize, usize, usize) {
        (self.limit.get(), self.usable_start, self.top.get())
    }
}

// SAFETY: `base` is the page-aligned top of the slot and `limit` its bottom,
// including a guard area that faults on access (installed before the slot is
// first lent), and the usable part is at least 16 KiB (checked by the
// builder), above corosensei's MIN_STACK_SIZE.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.top
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.limit
    }
}

struct Region {
    map: Mapping,
    carved: usize,
    slots: usize,
}

/// A worker's pool of stacks. Not thread-safe: owned by one worker.
pub(crate) struct StackPool {
    cfg: StackPoolConfig,
    slot_size: usize,
    regions: Vec<Region>,
    /// Idle stacks, most recently released last (LIFO reuse).
    free: Vec<PooledStack>,
    /// `free[..clean]` have been discarded entirely.
    clean: usize,
    /// `free[..settled]` need no settling (see "Resident memory"):
    /// `clean <= settled <= free.len()`.
    settled: usize,
    in_use: usize,
    guard_kind: Option<GuardKind>,
}

impl StackPool {
    pub(crate) fn new(mut cfg: StackPoolConfig) -> StackPool {
        cfg.stack_size = sys::round_to_page(cfg.stack_size.max(sys::page_size()));
        cfg.guard_size = sys::round_to_page(cfg.guard_size.max(sys::page_size()));
        cfg.keep_resident = sys::round_to_page(cfg.keep_resident).min(cfg.stack_size);
        cfg.stacks_per_region = cfg.stacks_per_region.clamp(1, cfg.max_stacks.max(1));
        let slot_size = cfg.stack_size.saturating_add(cfg.guard_size);
        StackPool {
            cfg,
            slot_size,
            regions: Vec::new(),
            free: Vec::new(),
            clean: 0,
            settled: 0,
            in_use: 0,
            guard_kind: None,
        }
    }

    /// Stacks currently lent out.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Idle stacks ready for reuse.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.free.len()
    }

    /// Lends a stack: a released one if any (settled first, see "Resident
    /// memory"), else a freshly carved slot.
    pub(crate) fn acquire(&mut self) -> Result<PooledStack, StackError> {
        if self.in_use >= self.cfg.max_stacks {
            return Err(StackError::Exhausted {
                limit: self.cfg.max_stacks,
            });
        }
        let stack = match self.free.pop() {
            Some(stack) => {
                let index = self.free.len();
                if index >= self.settled {
                    self.settle(&stack);
                }
                self.clean = self.clean.min(index);
                self.settled = self.settled.min(index);
                stack
            }
            None => {
                // Room to take back every stack lent out, so that `release`
                // never allocates: a teardown of many green threads at once
                // would otherwise grow (and copy) the free list as it goes.
                self.free.reserve(self.in_use + 1);
                self.carve()?
            }
        };
        self.in_use += 1;
        Ok(stack)
    }

    /// Takes a stack back, as it is (it is settled later). Its contents
    /// must be dead (the coroutine finished). Never allocates (see
    /// `acquire`).
    pub(crate) fn release(&mut self, stack: PooledStack) {
        self.in_use = self.in_use.saturating_sub(1);
        self.free.push(stack);
    }

    /// Whether [`trim_idle`](Self::trim_idle) has work to do.
    pub(crate) fn has_idle_work(&self) -> bool {
        self.clean < self.free.len().saturating_sub(self.cfg.warm_stacks)
            || self.settled < self.free.len()
    }

    /// Discards idle stacks beyond the `warm_stacks` most recent ones, then
    /// settles the rest, at most `budget` stacks in all. Returns whether
    /// more remain to be done.
    pub(crate) fn trim_idle(&mut self, budget: usize) -> bool {
        let cold_end = self.free.len().saturating_sub(self.cfg.warm_stacks);
        let end = cold_end.min(self.clean.saturating_add(budget));
        let mut budget = budget - end.saturating_sub(self.clean);
        for stack in &self.free[self.clean.min(end)..end] {
            let (_, usable_start, top) = stack.bounds();
            // SAFETY: an idle stack of a slot we own: no coroutine uses it.
            unsafe { sys::discard(usable_start, top - usable_start) };
        }
        self.clean = self.clean.max(end);
        self.settled = self.settled.max(self.clean);
        while budget > 0 && self.settled < self.free.len() {
            self.settle(&self.free[self.settled]);
            self.settled += 1;
            budget -= 1;
        }
        self.has_idle_work()
    }

    /// Discards what lies below the keep window of an idle stack if its
    /// last thread went that deep (see "Resident memory").
    fn settle(&self, stack: &PooledStack) {
        let (_, usable_start, top) = stack.bounds();
        let keep_low = top - self.cfg.keep_resident;
        if keep_low > usable_start && Self::page_is_dirty(keep_low - sys::page_size()) {
            // SAFETY: the usable part of an idle slot we own, below the
            // window; the coroutine that used it has finished, so its data
            // is dead.
            unsafe { sys::discard(usable_start, keep_low - usable_start) };
        }
    }

    /// Whether the top `PROBE_BYTES` of the page at `addr` hold any non-zero
    /// byte. A stack growing past the page's top edge writes there first
    /// (return addresses, saved registers), so this is where crossing the
    /// keep window shows.
    fn page_is_dirty(addr: usize) -> bool {
        const PROBE_BYTES: usize = 1024;
        let start = addr + sys::page_size() - PROBE_BYTES;
        // SAFETY: `[start, start + PROBE_BYTES)` lies in a readable page of
        // the usable area of a live region (never a guard page: keep_low -
        // page >= usable_start), and no one writes it concurrently (the
        // stack is idle). An untouched page reads as the shared zero page.
        let words = unsafe {
            std::slice::from_raw_parts(
                start as *const u64,
                PROBE_BYTES / std::mem::size_of::<u64>(),
            )
        };
        words.iter().fold(0u64, |acc, w| acc | *w) != 0
    }

    fn carve(&mut self) -> Result<PooledStack, StackError> {
        let needs_region = self.regions.last().is_none_or(|r| r.carved == r.slots);
        if needs_region {
            let slots = self.cfg.stacks_per_region;
            let len = self
                .slot_size
                .checked_mul(slots)
                .ok_or_else(|| StackError::Map {
                    source: io::Error::other("stack region size overflows usize"),
                })?;
            let map = Mapping::new_noreserve(len).map_err(|source| StackError::Map { source })?;
            self.regions.push(Region {
                map,
                carved: 0,
                slots,
            });
        }
        let slot_size = self.slot_size;
        let guard_size = self.cfg.guard_size;
        let region = self.regions.last_mut().ok_or_else(|| StackError::Map {
            source: io::Error::other("no stack region"),
        })?;
        let slot = region.map.addr() + region.carved * slot_size;
        debug_assert!(slot + slot_size <= region.map.addr() + region.map.len());
        // SAFETY: the guard range is the first `guard_size` bytes of a slot of
        // a live region that has never been lent out.
        let kind = unsafe { sys::install_guard(slot, guard_size, self.guard_kind) }
            .map_err(|source| StackError::Map { source })?;
        self.guard_kind = Some(kind);
        region.carved += 1;
        let (Some(top), Some(limit)) =
            (NonZeroUsize::new(slot + slot_size), NonZeroUsize::new(slot))
        else {
            return Err(StackError::Map {
                source: io::Error::other("stack slot at address zero"),
            });
        };
        Ok(PooledStack {
            top,
            limit,
            usable_start: slot + guard_size,
        })
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        if self.in_use != 0 {
            // A stack is still lent out (a coroutine was leaked): unmapping
            // would pull memory from under it, so leak the regions instead.
            for region in self.regions.drain(..) {
                std::mem::forget(region.map);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize) -> StackPoolConfig {
        StackPoolConfig {
            stack_size: 64 * 1024,
            guard_size: 4096,
            max_stacks: max,
            stacks_per_region: 4,
            keep_resident: 8 * 1024,
            warm_stacks: 2,
        }
    }

    #[test]
    fn limit_is_an_error_not_an_abort() {
        let mut pool = StackPool::new(config(3));
        let stacks: Vec<_> = (0..3).map(|_| pool.acquire().expect("stack")).collect();
        assert!(matches!(
            pool.acquire(),
            Err(StackError::Exhausted { limit: 3 })
        ));
        for s in stacks {
            pool.release(s);
        }
        assert_eq!(pool.in_use(), 0);
        assert!(pool.acquire().is_ok());
    }

    #[test]
    fn stacks_are_reused_lifo_and_spread_over_regions() {
        let mut pool = StackPool::new(config(100));
        let stacks: Vec<_> = (0..9).map(|_| pool.acquire().expect("stack")).collect();
        assert_eq!(pool.regions.len(), 3);
        let last_top = stacks[8].bounds().2;
        for s in stacks {
            pool.release(s);
        }
        assert_eq!(pool.idle(), 9);
        assert_eq!(pool.acquire().expect("stack").bounds().2, last_top);
    }

    /// Dirties the whole usable part of `stack`, as a deep recursion would.
    fn dirty_all(stack: &PooledStack) -> (usize, usize) {
        let (_, usable, top) = stack.bounds();
        // SAFETY: the usable range of a stack the caller holds.
        unsafe { std::ptr::write_bytes(usable as *mut u8, 0xAB, top - usable) };
        assert_eq!(
            sys::resident_pages(usable, top - usable).expect("mincore"),
            (top - usable) / sys::page_size()
        );
        (usable, top)
    }

    #[test]
    fn deep_stack_is_trimmed_to_the_keep_window_when_reused() {
        let mut pool = StackPool::new(config(10));
        let stack = pool.acquire().expect("stack");
        let (usable, top) = dirty_all(&stack);
        // Released as it is: no probe, no system call.
        pool.release(stack);
        let all = (top - usable) / sys::page_size();
        assert_eq!(
            sys::resident_pages(usable, top - usable).expect("mincore"),
            all
        );
        // Settled as it is handed out again (LIFO: the same stack).
        let again = pool.acquire().expect("stack");
        assert_eq!(again.bounds().2, top);
        let resident = sys::resident_pages(usable, top - usable).expect("mincore");
        assert_eq!(resident, 8 * 1024 / sys::page_size());
        pool.release(again);
    }

    #[test]
    fn idle_trim_settles_the_warm_stacks() {
        let mut pool = StackPool::new(config(10));
        // warm_stacks = 2: both stay warm, so trimming only settles them.
        let stacks: Vec<_> = (0..2).map(|_| pool.acquire().expect("stack")).collect();
        let ranges: Vec<_> = stacks.iter().map(dirty_all).collect();
        for s in stacks {
            pool.release(s);
        }
        assert!(pool.has_idle_work());
        assert!(pool.trim_idle(1), "one stack left to settle");
        assert!(!pool.trim_idle(1));
        assert!(!pool.has_idle_work());
        for (usable, top) in ranges {
            let resident = sys::resident_pages(usable, top - usable).expect("mincore");
            assert_eq!(resident, 8 * 1024 / sys::page_size());
        }
        // A settled stack is not probed again when reused, and stays whole.
        let s = pool.acquire().expect("stack");
        let (_, _, top) = s.bounds();
        assert_eq!(
            sys::resident_pages(top - 8 * 1024, 8 * 1024).expect("mincore"),
            8 * 1024 / sys::page_size()
        );
        pool.release(s);
    }

    #[test]
    fn shallow_stack_keeps_its_pages() {
        let mut pool = StackPool::new(config(10));
        let stack = pool.acquire().expect("stack");
        let (_, _, top) = stack.bounds();
        // SAFETY: the top page of a stack we hold.
        unsafe { std::ptr::write_bytes((top - 4096) as *mut u8, 0xCD, 4096) };
        pool.release(stack);
        let again = pool.acquire().expect("stack");
        assert_eq!(again.bounds().2, top);
        assert_eq!(sys::resident_pages(top - 4096, 4096).expect("mincore"), 1);
        pool.release(again);
    }

    #[test]
    fn idle_trim_discards_cold_stacks_only() {
        let mut pool = StackPool::new(config(10));
        let stacks: Vec<_> = (0..5).map(|_| pool.acquire().expect("stack")).collect();
        let tops: Vec<usize> = stacks.iter().map(|s| s.bounds().2).collect();
        for &top in &tops {
            // SAFETY: the top page of a stack we hold.
            unsafe { std::ptr::write_bytes((top - 4096) as *mut u8, 1, 4096) };
        }
        for s in stacks {
            pool.release(s);
        }
        // warm_stacks = 2: the 3 least recently released are cold.
        assert!(pool.trim_idle(2), "one cold stack left");
        assert!(!pool.trim_idle(100));
        let resident: Vec<usize> = tops
            .iter()
            .map(|&top| sys::resident_pages(top - 4096, 4096).expect("mincore"))
            .collect();
        assert_eq!(resident, [0, 0, 0, 1, 1]);
        // Reusing a cold stack works (it is simply zero-filled again).
        let mut held = Vec::new();
        while pool.idle() > 0 {
            let s = pool.acquire().expect("stack");
            // SAFETY: the top page of a stack we hold.
            unsafe { std::ptr::write_bytes((s.bounds().2 - 4096) as *mut u8, 2, 4096) };
            held.push(s);
        }
        assert!(!pool.trim_idle(100));
        for s in held {
            pool.release(s);
        }
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn mprotect_fallback_guards_too() {
        let mut pool = StackPool::new(config(10));
        pool.guard_kind = Some(GuardKind::Mprotect);
        let stack = pool.acquire().expect("stack");
        assert_eq!(pool.guard_kind, Some(GuardKind::Mprotect));
        let (guard, usable, top) = stack.bounds();
        // The usable part is writable right up to the guard.
        // SAFETY: the usable range of a stack we hold.
        unsafe { std::ptr::write_bytes(usable as *mut u8, 1, top - usable) };
        assert_eq!(
            sys::resident_pages(guard, usable - guard).expect("mincore"),
            0
        );
        pool.release(stack);
    }

    #[test]
    fn guard_page_is_inaccessible() {
        let mut pool = StackPool::new(config(10));
        let stack = pool.acquire().expect("stack");
        let (guard, usable, _) = stack.bounds();
        assert_eq!(usable - guard, 4096);
        // A guard page is not resident and cannot be made so by mincore's view;
        // the real check (a fault) is in tests/stack_overflow.rs.
        assert_eq!(sys::resident_pages(guard, 4096).expect("mincore"), 0);
        pool.release(stack);
    }
}
