//! Instance pools: where instances get their VMContext, linear memories and
//! tables, so that steady-state instantiation and teardown make no `mmap`,
//! `munmap` or `mprotect`.
//!
//! # The pieces
//!
//! - **One `Pools` per engine** (`Engine::pools`), shared by every thread:
//!   the engine-wide free lists of memory slots (one per size class, each
//!   behind its own lock), the mappings the slots live in, and the
//!   `Budget`s that enforce [`PoolingConfig`]'s limits.
//! - **A per-thread cache** in front of it (`LocalPool`, in a
//!   thread-local, one per engine the thread has used): a few *warm* memory
//!   slots per size class, *cold* ones (up to a run of fresh ones, see
//!   [`Pools::run_slots`]), and unused limit permissions.
//!   The hot path (instantiate, drop) touches only this cache; the shared
//!   lists are locked once per `BATCH` slots, never per instance.
//! - **Per-thread block caches** (`blocks.rs`) for VMContexts and table
//!   element buffers, which are plain heap blocks.
//!
//! # Linear memory slots
//!
//! - `Checked`: a memory whose maximum is `m` pages (capped by
//!   `Config::max_memory_pages`) takes a slot of class `k = ceil(log2(m))`,
//!   `64 KiB << k` bytes. Slots are carved from *slabs*: large mappings made
//!   once, readable and writable, `MAP_NORESERVE` (address space only), never
//!   `mprotect`ed afterwards; compiled code's bounds checks against
//!   `current_length` keep each instance inside its own slot. A memory
//!   never touched has no resident page, whatever its slot.
//! - `Guarded`: each slot is its own 8 GiB reservation (`PROT_NONE`) whose
//!   first `accessible` bytes are readable and writable. Compiled code does
//!   no bounds checks here, so a slot handed out must have exactly the new
//!   memory's initial size accessible: it is `mprotect`ed only if the last
//!   user's size differs (it grew, or another module used it). Slots whose
//!   `accessible` matches are preferred, so steady-state spawning of one
//!   module makes no `mprotect`.
//!
//! # The protocol
//!
//! 1. **Acquire** (instantiation, step 2). Take a permission from the
//!    thread's credits (refilled from the engine's `Budget` in batches;
//!    none left means the limit is reached: `Error::Resource`). Take a slot:
//!    a warm one from the thread's cache (for `Guarded`, one whose
//!    `accessible` matches if possible), else a cold one, else a batch from
//!    the engine-wide list, else a batch carved from the current slab (a new
//!    slab, or a new reservation, when it is used up). Every slot handed out
//!    reads as zeros: a warm slot's first `memory_keep_resident` bytes are
//!    zeroed here, by hand (see step 3), and the others already read as
//!    zeros.
//! 2. **Use.** `memory.grow` bumps `current_length` (`Checked`: nothing else
//!    to do; `Guarded`: `mprotect` of the new pages, the guest's request).
//! 3. **Release** (the store is dropped). The memory's *high-water mark* is
//!    its size when released (memories never shrink), so nothing beyond it
//!    was written. If the thread keeps fewer than
//!    `PoolingConfig::warm_memories_per_thread` warm slots of the class,
//!    the slot becomes warm: the part beyond its first
//!    `memory_keep_resident` bytes, up to the high-water mark, gets
//!    `madvise(MADV_DONTNEED)`, and those first bytes are reset by hand:
//!    every page that is not all zeros is zeroed with `memset` (pages never
//!    written are only read, so they stay unallocated or on the kernel's
//!    shared zero page, and the warm slot keeps resident only what its last
//!    instance wrote). That reset happens now while the thread has fewer
//!    than `ZEROED_AT_RELEASE` warm slots (a server releasing and taking
//!    slots in turn: the next instance finds its slot ready), and
//!    otherwise when the slot is next taken (step 1) or leaves the thread:
//!    a mass teardown then does not read the pages of slots that may not
//!    be taken again soon. Otherwise the whole used range is dropped with
//!    `madvise(MADV_DONTNEED)`, the slot becomes cold, and cold slots go
//!    back to the engine-wide list in batches. So a thread keeps at most a
//!    few warm slots resident, and mass teardown (a million parked
//!    instances finishing) returns their memory to the kernel.
//!
//!    For `Checked` slots up to `MAX_COALESCED_SLOT`, that `madvise` is
//!    made once per *run* of adjacent released slots, and not at once:
//!    - released slots extend the thread's current run of their class
//!      while they are adjacent to it, up to [`Pools::run_slots`];
//!    - a finished run waits, with its slots unusable, in the thread's
//!      *deferred* list, until [`discard_idle_memory`] (which a runtime
//!      calls when the thread is idle, e.g. a Shoal worker's idle hook)
//!      discards it, or the thread needs a slot of that class and has no
//!      cold one, or the deferred runs of the thread span more than
//!      [`DEFERRED_BYTES`] (the oldest go first).
//!
//!    Each `madvise` frees the pages and interrupts the process's other
//!    threads to flush their TLBs: about 0.65 µs per one-page instance in
//!    a burst of 10,000 finishing on one worker, a fifth of its teardown.
//!    Deferred, a burst ends that much sooner and the memory goes back
//!    once the burst is over.
//! 4. **Thread exit.** The thread's cache gives its slots and unused
//!    permissions back to the engine (if the engine still exists).
//! 5. **Engine drop.** `Pools` unmaps every slab and reservation it made.
//!    No memory of it is alive by then: stores hold their engine, and a
//!    store drops its memories before its engine handle (see
//!    `StoreOpaque`'s `Drop`). Thread caches that still name the dead pools
//!    hold only addresses; they are discarded without being touched.
//!
//! # Counting system calls
//!
//! Every `mmap`, `munmap`, `mprotect` and `madvise` for linear memories is
//! counted ([`OsCalls`]), per process and per thread, so that tests and
//! `shoal stress` can check the steady state.

mod blocks;
mod budget;
mod sys;

pub use sys::OsCalls;

pub(crate) use blocks::{
    alloc_vmctx, free_vmctx, give_table_buffer, take_table_buffer, vmctx_layout,
};
pub(crate) use budget::Resource;
pub(crate) use sys::{mmap_anonymous, mprotect, munmap, page_size};

use crate::config::{MemoryStrategy, PoolingConfig, WASM_PAGE_SIZE};
use crate::error::{Error, Result};
use crate::memory::{human_bytes, GUARDED_RESERVATION};
use budget::{Budget, BATCH};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

/// Size classes of `Checked` memory slots: `64 KiB << k` for `k` in
/// `0..CHECKED_CLASSES` (64 KiB to 4 GiB).
pub(crate) const CHECKED_CLASSES: usize = 17;

/// Slabs of slots smaller than a huge page are mapped without huge pages.
const HUGE_PAGE: usize = 2 << 20;

/// Cold releases of adjacent `Checked` slots up to this size are returned to
/// the kernel with one `madvise` per run (see [`Pools::run_slots`]).
const MAX_COALESCED_SLOT: usize = 16 << 20;

/// The most slots in one run.
const MAX_COALESCED: usize = 256;

/// Most address space a thread's deferred runs may span (see "The
/// protocol", step 3): beyond it, the oldest is discarded at once. What
/// stays resident is at most that (every page of every slot written), and
/// usually far less; 8,192 one-page memories fit.
pub const DEFERRED_BYTES: usize = 512 << 20;

/// While a thread keeps fewer warm slots of a class than this, a released
/// slot is zeroed at once (module docs, step 3).
const ZEROED_AT_RELEASE: usize = 8;

/// Deferred runs a thread has room for before its queue grows.
const DEFERRED_RUNS: usize = 64;

/// The bytes of one run, when that makes at least [`BATCH`] slots: fresh
/// slots are carved a run at a time, and a thread's released slots are
/// discarded a run at a time (one `madvise` each).
const RUN_BYTES: usize = 16 << 20;

/// A memory slot: its base address and, for `Guarded`, how many bytes from
/// the base are readable and writable (always 0 for `Checked`, whose slots
/// are entirely accessible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) base: usize,
    pub(crate) accessible: usize,
    /// Bytes from the base that its last instance may have written and
    /// that are not zeroed yet: only a warm slot has any (module docs,
    /// steps 1 and 3).
    pub(crate) dirty: usize,
}

/// The engine-wide part of one size class.
#[derive(Default)]
struct SharedClass {
    /// Free slots, all reading as zeros.
    free: Vec<Slot>,
    /// Every mapping made for this class (slabs or reservations), to unmap
    /// when the pools are dropped.
    mappings: Vec<(usize, usize)>,
    /// The part of the newest slab not carved into slots yet (`Checked`).
    carve_next: usize,
    carve_end: usize,
}

/// An engine's pools. See the module docs.
pub(crate) struct Pools {
    self_weak: Weak<Pools>,
    strategy: MemoryStrategy,
    config: PoolingConfig,
    budgets: [Budget; 3],
    /// `Checked`: one per class; `Guarded`: one.
    classes: Box<[Mutex<SharedClass>]>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("strategy", &self.strategy)
            .field("instances", &self.budgets[0].taken())
            .field("memories", &self.budgets[1].taken())
            .field("tables", &self.budgets[2].taken())
            .finish()
    }
}

impl Pools {
    /// Empty pools; nothing is mapped until the first instance needs it.
    pub(crate) fn new(strategy: MemoryStrategy, config: &PoolingConfig) -> Arc<Pools> {
        let mut config = config.clone();
        config.memory_keep_resident = config
            .memory_keep_resident
            .checked_next_multiple_of(page_size())
            .unwrap_or(usize::MAX - page_size() + 1);
        let classes = match strategy {
            MemoryStrategy::Checked => CHECKED_CLASSES,
            MemoryStrategy::Guarded => 1,
        };
        Arc::new_cyclic(|self_weak| Pools {
            self_weak: self_weak.clone(),
            strategy,
            budgets: [
                Budget::new(Resource::Instances, config.max_instances),
                Budget::new(Resource::Memories, config.max_memories),
                Budget::new(Resource::Tables, config.max_tables),
            ],
            config,
            classes: (0..classes).map(|_| Mutex::default()).collect(),
        })
    }

    pub(crate) fn config(&self) -> &PoolingConfig {
        &self.config
    }

    /// The slot class of a memory of at most `max_pages` pages, or `None`
    /// when it needs no slot (`Checked` with a maximum of 0 pages).
    pub(crate) fn memory_class(&self, max_pages: u64) -> Option<usize> {
        match self.strategy {
            MemoryStrategy::Guarded => Some(0),
            MemoryStrategy::Checked if max_pages == 0 => None,
            MemoryStrategy::Checked => {
                Some(max_pages.next_power_of_two().trailing_zeros() as usize)
            }
        }
    }

    /// The bytes of address space a slot of `class` spans.
    pub(crate) fn slot_bytes(&self, class: usize) -> usize {
        match self.strategy {
            MemoryStrategy::Guarded => GUARDED_RESERVATION,
            MemoryStrategy::Checked => (WASM_PAGE_SIZE as usize) << class,
        }
    }

    /// Slots in one run of `class`: carved at once, and discarded with one
    /// `madvise` when released together. [`RUN_BYTES`] worth, between
    /// [`BATCH`] and [`MAX_COALESCED`] slots; [`BATCH`] for slots too large
    /// to be discarded in runs.
    fn run_slots(&self, class: usize) -> usize {
        let slot_bytes = self.slot_bytes(class);
        if self.strategy == MemoryStrategy::Checked && slot_bytes <= MAX_COALESCED_SLOT {
            (RUN_BYTES / slot_bytes).clamp(BATCH, MAX_COALESCED)
        } else {
            BATCH
        }
    }

    /// Takes one permission for `resource` (see [`Budget`]).
    pub(crate) fn acquire(&self, resource: Resource) -> Result<()> {
        self.with_local(|local| local.take_credit(self, resource))
    }

    /// Gives back a permission taken with [`acquire`](Self::acquire).
    pub(crate) fn release(&self, resource: Resource) {
        self.with_local(|local| local.return_credit(self, resource));
    }

    /// A zeroed slot of `class` with `initial` bytes accessible, counted
    /// against `max_memories`.
    pub(crate) fn acquire_memory(&self, class: usize, initial: usize) -> Result<Slot> {
        // `Checked` slots are entirely accessible: any one will do.
        let wanted = match self.strategy {
            MemoryStrategy::Guarded => initial,
            MemoryStrategy::Checked => 0,
        };
        self.with_local(|local| {
            local.take_credit(self, Resource::Memories)?;
            let slot = local.pop_slot(self, class, wanted);
            match slot.and_then(|slot| self.set_accessible(local, class, slot, initial)) {
                Ok(slot) => Ok(slot),
                Err(e) => {
                    local.return_credit(self, Resource::Memories);
                    Err(e)
                }
            }
        })
    }

    /// Gives back a slot from [`acquire_memory`](Self::acquire_memory),
    /// of which at most the first `used` bytes were written.
    ///
    /// # Safety
    ///
    /// The slot must come from these pools and nothing may use it
    /// afterwards; for `Guarded`, `slot.accessible` must be its current
    /// accessible size.
    pub(crate) unsafe fn release_memory(&self, class: usize, slot: Slot, used: usize) {
        self.with_local(|local| {
            let warm = &mut local.warm[class];
            if warm.len() < self.config.warm_memories_per_thread {
                let keep = self.config.memory_keep_resident.min(used);
                // SAFETY: the slot is ours and unused (the caller's promise);
                // `used` bytes of it are mapped.
                unsafe { discard_beyond(slot.base as *mut u8, used, keep) };
                let slot = Slot {
                    dirty: keep,
                    ..slot
                };
                // A few warm slots are zeroed now, off the next instance's
                // way; in a burst of releases the rest wait until they are
                // taken again (`pop_slot`).
                let slot = if warm.len() < ZEROED_AT_RELEASE {
                    zeroed(slot)
                } else {
                    slot
                };
                warm.push(slot);
            } else if self.strategy == MemoryStrategy::Checked
                && self.slot_bytes(class) <= MAX_COALESCED_SLOT
            {
                local.discard_later(self, class, slot);
            } else {
                // SAFETY: as above.
                unsafe { discard_beyond(slot.base as *mut u8, used, 0) };
                local.push_cold(self, class, slot);
            }
            local.return_credit(self, Resource::Memories);
        })
    }

    /// Makes exactly `initial` bytes of a `Guarded` slot accessible. On
    /// failure the slot goes back to the thread's cold list.
    fn set_accessible(
        &self,
        local: &mut LocalPool,
        class: usize,
        mut slot: Slot,
        initial: usize,
    ) -> Result<Slot> {
        if self.strategy != MemoryStrategy::Guarded || slot.accessible == initial {
            return Ok(slot);
        }
        let base = slot.base as *mut u8;
        let result = if initial > slot.accessible {
            // SAFETY: the range lies in the slot's reservation (initial is
            // at most 4 GiB), which the pools own; nothing refers to it.
            unsafe {
                mprotect(
                    base.add(slot.accessible),
                    initial - slot.accessible,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            }
        } else {
            // SAFETY: as above; no reference points into the free slot.
            unsafe {
                mprotect(
                    base.add(initial),
                    slot.accessible - initial,
                    libc::PROT_NONE,
                )
            }
        };
        match result {
            Ok(()) => {
                slot.accessible = initial;
                Ok(slot)
            }
            Err(err) => {
                local.cold[class].push(slot);
                Err(Error::Resource(format!(
                    "cannot make {} of linear memory accessible: {err}{}",
                    human_bytes(initial),
                    map_count_hint(),
                )))
            }
        }
    }

    /// Moves free slots of `class` into `out`: up to [`BATCH`] from the
    /// engine-wide list, else new ones, a run of them
    /// ([`run_slots`](Self::run_slots)) carved from a slab, or a new
    /// reservation.
    fn refill(&self, class: usize, out: &mut Vec<Slot>) -> Result<()> {
        let mut shared = self.classes[class].lock();
        let n = shared.free.len().min(BATCH);
        if n > 0 {
            let start = shared.free.len() - n;
            out.extend(shared.free.drain(start..));
            return Ok(());
        }
        let slot_bytes = self.slot_bytes(class);
        match self.strategy {
            MemoryStrategy::Guarded => {
                let base = mmap_anonymous(slot_bytes, libc::PROT_NONE).map_err(|err| {
                    Error::Resource(format!(
                        "cannot reserve {} of address space for a linear memory: {err} \
                         (each Guarded memory reserves 8 GiB: check `ulimit -v`, or use \
                         MemoryStrategy::Checked, which packs memories in slabs of only their \
                         maximum size){}",
                        human_bytes(slot_bytes),
                        map_count_hint(),
                    ))
                })? as usize;
                shared.mappings.push((base, slot_bytes));
                out.push(Slot {
                    base,
                    accessible: 0,
                    dirty: 0,
                });
            }
            MemoryStrategy::Checked => {
                if shared.carve_next == shared.carve_end {
                    let slab = slot_bytes * (self.config.memory_slab_size / slot_bytes).max(1);
                    let base =
                        mmap_anonymous(slab, libc::PROT_READ | libc::PROT_WRITE).map_err(|err| {
                            Error::Resource(format!(
                                "cannot map a slab of {} for linear memories of up to {} pages: \
                                 {err} (the address space may be exhausted: give memories a \
                                 smaller maximum, lower Config::max_memory_pages or \
                                 Config::pooling.memory_slab_size; with vm.overcommit_memory=2 \
                                 the kernel charges MAP_NORESERVE mappings in full)",
                                human_bytes(slab),
                                slot_bytes as u64 / WASM_PAGE_SIZE
                            ))
                        })? as usize;
                    if slot_bytes < HUGE_PAGE {
                        // SAFETY: the slab was just mapped by us.
                        unsafe { sys::no_huge_pages(base as *mut u8, slab) };
                    }
                    shared.mappings.push((base, slab));
                    shared.carve_next = base;
                    shared.carve_end = base + slab;
                }
                // Pushed in descending order so that they are popped in
                // ascending order: instances created one after the other get
                // adjacent slots, whose releases coalesce (`discard_later`).
                //
                // A whole run at a time: with several threads carving 16
                // slots at a time in turn, a thread's slots were adjacent
                // mostly 16 by 16 only, and so were the runs its releases
                // were discarded in. The teardown of 10,000 one-page
                // instances on two workers made 459 `madvise` calls that
                // way, and 82 with runs of 256 (each call interrupts the
                // other workers to flush their TLBs, which costs tens of
                // microseconds on a VM).
                let first = out.len();
                let batch = self.run_slots(class);
                while out.len() - first < batch && shared.carve_next < shared.carve_end {
                    out.push(Slot {
                        base: shared.carve_next,
                        accessible: 0,
                        dirty: 0,
                    });
                    shared.carve_next += slot_bytes;
                }
                out[first..].reverse();
            }
        }
        Ok(())
    }

    /// Runs `f` on this thread's cache for these pools. While thread-local
    /// storage is unavailable (a store dropped by another thread-local's
    /// destructor at thread exit), on a temporary cache that is flushed back
    /// at once.
    fn with_local<R>(&self, f: impl FnOnce(&mut LocalPool) -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        let _ = LOCAL.try_with(|state| {
            if let Ok(mut state) = state.try_borrow_mut() {
                if let Some(f) = f.take() {
                    out = Some(f(state.pool_for(self)));
                }
            }
        });
        if let Some(f) = f {
            let mut temporary = LocalPool::new(self.self_weak.clone(), self.classes.len());
            out = Some(f(&mut temporary));
        }
        match out {
            Some(out) => out,
            // `f` ran in exactly one of the two branches above.
            None => unreachable!("with_local ran nothing"),
        }
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        for class in self.classes.iter_mut() {
            for &(base, len) in &class.get_mut().mappings {
                // SAFETY: the pools made this mapping and own it; no memory of
                // them is alive (module docs, step 5), and thread caches that
                // still hold its addresses never touch them again.
                let result = unsafe { munmap(base as *mut u8, len) };
                debug_assert!(result.is_ok(), "munmap of a memory pool mapping failed");
            }
        }
    }
}

/// For errors of `mmap` and `mprotect` on `Guarded` reservations: each
/// live one takes two mappings (its accessible prefix and the rest), and the
/// kernel caps the mappings of a process.
fn map_count_hint() -> String {
    match std::fs::read_to_string("/proc/sys/vm/max_map_count") {
        Ok(limit) => format!(
            "; each Guarded memory also takes two of the process's mappings, which the \
             kernel limits to vm.max_map_count = {} (raise it with \
             `sysctl vm.max_map_count=N`)",
            limit.trim()
        ),
        Err(_) => String::new(),
    }
}

/// Makes `[base + keep, base + used)` read as zeros with
/// `madvise(DONTNEED)`, or by hand if that fails. (The first `keep` bytes
/// of a warm slot are zeroed by [`zeroed`].)
///
/// # Safety
///
/// `base..base + used` must be mapped, writable, private and anonymous,
/// owned by the caller and unused; `keep` a multiple of the page size.
unsafe fn discard_beyond(base: *mut u8, used: usize, keep: usize) {
    if used > keep {
        // SAFETY: the caller's promise; `keep` is page-aligned and `used` a
        // multiple of the wasm page size.
        let discarded = unsafe { sys::discard(base.add(keep), used - keep) };
        if discarded.is_err() {
            // SAFETY: as above. Correctness first: zero by hand.
            unsafe { std::ptr::write_bytes(base.add(keep), 0, used - keep) };
        }
    }
}

/// `slot` with the bytes its last instance may have written (`dirty`)
/// zeroed: what a warm slot needs before it is used again or leaves the
/// thread (module docs, step 1).
fn zeroed(slot: Slot) -> Slot {
    if slot.dirty > 0 {
        // SAFETY: a free slot of this thread, released or in its lists:
        // mapped, writable (its first `dirty` bytes lie within its
        // accessible prefix, which has not changed since its release),
        // page-aligned and unused.
        unsafe { zero_dirty_pages(slot.base as *mut u8, slot.dirty) };
    }
    Slot { dirty: 0, ..slot }
}

/// Zeroes the pages of `[base, base + len)` that are not all zeros already.
///
/// Most pages of a small memory are never written by its instance: they
/// are not present, or map the kernel's shared zero page (after a read, or
/// after an earlier reset read them). Reading them is much cheaper than
/// writing them, and leaves them as they are instead of making them
/// resident and dirty.
///
/// # Safety
///
/// The range must be mapped readable and writable, page-aligned, owned by
/// the caller and unused.
unsafe fn zero_dirty_pages(base: *mut u8, len: usize) {
    let page = page_size();
    let mut offset = 0;
    while offset < len {
        let n = page.min(len - offset);
        // SAFETY: the caller's promise; `base` is page-aligned, so the words
        // are aligned.
        let words = unsafe { std::slice::from_raw_parts(base.add(offset).cast::<u64>(), n / 8) };
        if !is_zero(words) {
            // SAFETY: the caller's promise.
            unsafe { std::ptr::write_bytes(base.add(offset), 0, n) };
        }
        offset += n;
    }
}

/// Whether every word is zero, with the widest vectors the CPU has (the
/// scan is bound by load throughput).
fn is_zero(words: &[u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not probed yet, 1: SSE2 only, 2: AVX2, 3: AVX-512.
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        let mut level = LEVEL.load(Ordering::Relaxed);
        if level == 0 {
            level = if std::arch::is_x86_feature_detected!("avx512f") {
                3
            } else if std::arch::is_x86_feature_detected!("avx2") {
                2
            } else {
                1
            };
            LEVEL.store(level, Ordering::Relaxed);
        }
        match level {
            // SAFETY: the CPU has AVX-512F (probed above).
            3 => return unsafe { is_zero_avx512(words) },
            // SAFETY: the CPU has AVX2 (probed above).
            2 => return unsafe { is_zero_avx2(words) },
            _ => {}
        }
    }
    is_zero_portable(words)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn is_zero_avx512(words: &[u64]) -> bool {
    is_zero_portable(words)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn is_zero_avx2(words: &[u64]) -> bool {
    is_zero_portable(words)
}

/// All words OR-ed together (which vectorises, with several accumulators).
/// No early exit: the caller passes one page, and a page that is not all
/// zeros gets written anyway.
#[inline(always)]
fn is_zero_portable(words: &[u64]) -> bool {
    words.iter().fold(0, |acc, &w| acc | w) == 0
}

/// One thread's cache for one engine's pools. See the module docs.
struct LocalPool {
    owner: Weak<Pools>,
    /// Unused permissions, by [`Resource`].
    credits: [usize; 3],
    /// Warm slots by class: the first `memory_keep_resident` bytes possibly
    /// resident, and their `dirty` bytes still to be zeroed; the rest reads
    /// as zeros.
    warm: Box<[Vec<Slot>]>,
    /// Cold slots by class: nothing resident.
    cold: Box<[Vec<Slot>]>,
    /// By class: a run of adjacent released `Checked` slots whose pages are
    /// still to be discarded (`madvise` once for the run, not per slot).
    pending: Box<[Run]>,
    /// Finished runs waiting to be discarded, oldest first, with their
    /// class.
    deferred: VecDeque<(usize, Run)>,
    /// The bytes of address space the deferred runs span.
    deferred_bytes: usize,
}

/// `count` adjacent slots from `start`.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    start: usize,
    count: usize,
}

impl LocalPool {
    fn new(owner: Weak<Pools>, classes: usize) -> LocalPool {
        LocalPool {
            owner,
            credits: [0; 3],
            warm: (0..classes).map(|_| Vec::new()).collect(),
            cold: (0..classes).map(|_| Vec::new()).collect(),
            pending: vec![Run::default(); classes].into_boxed_slice(),
            // Room for the runs of thousands of slots released at once (a
            // run has up to MAX_COALESCED slots), so that a mass teardown
            // does not grow the queue, and run the allocator's
            // consolidation of everything it freed so far, as it goes.
            deferred: VecDeque::with_capacity(DEFERRED_RUNS),
            deferred_bytes: 0,
        }
    }

    /// Adds a cold slot; moves a batch to the engine-wide list when the
    /// thread has many.
    fn push_cold(&mut self, pools: &Pools, class: usize, slot: Slot) {
        let cold = &mut self.cold[class];
        cold.push(slot);
        if cold.len() >= 2 * BATCH {
            let mut shared = pools.classes[class].lock();
            shared.free.extend(cold.drain(..BATCH));
        }
    }

    /// Queues a released `Checked` slot for discarding with its neighbours.
    fn discard_later(&mut self, pools: &Pools, class: usize, slot: Slot) {
        let size = pools.slot_bytes(class);
        let run = &mut self.pending[class];
        if run.count > 0 && slot.base == run.start + run.count * size {
            run.count += 1;
        } else if run.count > 0 && slot.base + size == run.start {
            run.start = slot.base;
            run.count += 1;
        } else {
            self.defer_pending(pools, class);
            self.pending[class] = Run {
                start: slot.base,
                count: 1,
            };
        }
        if self.pending[class].count >= pools.run_slots(class) {
            self.defer_pending(pools, class);
        }
    }

    /// Moves the pending run of `class` to the deferred list, discarding
    /// the oldest deferred runs if they now span too much.
    fn defer_pending(&mut self, pools: &Pools, class: usize) {
        let run = std::mem::take(&mut self.pending[class]);
        if run.count == 0 {
            return;
        }
        self.deferred_bytes += run.count * pools.slot_bytes(class);
        self.deferred.push_back((class, run));
        while self.deferred_bytes > DEFERRED_BYTES && self.discard_deferred(pools, |_| true) {}
    }

    /// Discards the oldest deferred run whose class passes `which`;
    /// returns whether there was one.
    fn discard_deferred(&mut self, pools: &Pools, which: impl Fn(usize) -> bool) -> bool {
        let Some(at) = self.deferred.iter().position(|&(class, _)| which(class)) else {
            return false;
        };
        if let Some((class, run)) = self.deferred.remove(at) {
            self.deferred_bytes -= run.count * pools.slot_bytes(class);
            self.discard_run(pools, class, run);
        }
        true
    }

    /// Discards up to `budget` runs, deferred ones first, then the pending
    /// ones; returns whether any remain.
    fn discard_idle(&mut self, pools: &Pools, budget: usize) -> bool {
        for _ in 0..budget {
            if self.discard_deferred(pools, |_| true) {
                continue;
            }
            match self.pending.iter().position(|run| run.count > 0) {
                Some(class) => self.flush_pending(pools, class),
                None => return false,
            }
        }
        !self.deferred.is_empty() || self.pending.iter().any(|run| run.count > 0)
    }

    /// Discards the pending run of `class` and makes its slots cold.
    fn flush_pending(&mut self, pools: &Pools, class: usize) {
        let run = std::mem::take(&mut self.pending[class]);
        self.discard_run(pools, class, run);
    }

    /// Discards `run`'s pages and makes its slots cold.
    fn discard_run(&mut self, pools: &Pools, class: usize, run: Run) {
        if run.count == 0 {
            return;
        }
        let size = pools.slot_bytes(class);
        // SAFETY: the run's slots are adjacent slots of one slab, released
        // and unused; slabs are private, anonymous and writable.
        unsafe { discard_beyond(run.start as *mut u8, run.count * size, 0) };
        for i in 0..run.count {
            self.push_cold(
                pools,
                class,
                Slot {
                    base: run.start + i * size,
                    accessible: 0,
                    dirty: 0,
                },
            );
        }
    }

    fn take_credit(&mut self, pools: &Pools, resource: Resource) -> Result<()> {
        let credits = &mut self.credits[resource as usize];
        if *credits == 0 {
            let budget = &pools.budgets[resource as usize];
            *credits = budget.take(BATCH);
            if *credits == 0 {
                return Err(budget.exhausted());
            }
        }
        *credits -= 1;
        Ok(())
    }

    fn return_credit(&mut self, pools: &Pools, resource: Resource) {
        let credits = &mut self.credits[resource as usize];
        *credits += 1;
        if *credits > 2 * BATCH {
            pools.budgets[resource as usize].give(BATCH);
            *credits -= BATCH;
        }
    }

    /// A free slot of `class`, zeroed, preferring warm ones and ones with
    /// `initial` bytes accessible (`Guarded`).
    fn pop_slot(&mut self, pools: &Pools, class: usize, initial: usize) -> Result<Slot> {
        for list in [&mut self.warm[class], &mut self.cold[class]] {
            if let Some(i) = list.iter().rposition(|s| s.accessible == initial) {
                return Ok(zeroed(list.swap_remove(i)));
            }
        }
        if let Some(slot) = self.warm[class].pop() {
            return Ok(zeroed(slot));
        }
        // A non-empty cold list was searched above; only slots that
        // arrive now need searching.
        if self.cold[class].is_empty() {
            self.flush_pending(pools, class);
            if self.cold[class].is_empty() {
                self.discard_deferred(pools, |c| c == class);
            }
            if self.cold[class].is_empty() {
                pools.refill(class, &mut self.cold[class])?;
            }
            let cold = &mut self.cold[class];
            if let Some(i) = cold.iter().rposition(|s| s.accessible == initial) {
                return Ok(cold.swap_remove(i));
            }
        }
        self.cold[class]
            .pop()
            .ok_or_else(|| Error::Resource("internal error: no memory slot after a refill".into()))
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        let Some(pools) = self.owner.upgrade() else {
            return;
        };
        for (resource, &credits) in Resource::ALL.iter().zip(&self.credits) {
            pools.budgets[*resource as usize].give(credits);
        }
        self.discard_idle(&pools, usize::MAX);
        for (class, shared) in pools.classes.iter().enumerate() {
            for slot in self.warm[class].iter_mut() {
                *slot = zeroed(*slot);
            }
            let mut shared = shared.lock();
            shared.free.append(&mut self.warm[class]);
            shared.free.append(&mut self.cold[class]);
        }
    }
}

/// This thread's caches, one per engine it used.
#[derive(Default)]
struct LocalState {
    pools: Vec<LocalPool>,
}

impl LocalState {
    fn pool_for(&mut self, pools: &Pools) -> &mut LocalPool {
        let key: *const Pools = pools;
        let index = match self
            .pools
            .iter()
            .position(|p| std::ptr::eq(p.owner.as_ptr(), key))
        {
            Some(index) => index,
            None => {
                // Forget the caches of engines that are gone.
                self.pools.retain(|p| p.owner.strong_count() > 0);
                self.pools
                    .push(LocalPool::new(pools.self_weak.clone(), pools.classes.len()));
                self.pools.len() - 1
            }
        };
        &mut self.pools[index]
    }
}

/// Returns to the kernel the memory of linear memories this thread
/// released and has not discarded yet (see "The protocol", step 3): at
/// most `budget` runs of adjacent slots, one `madvise` each. Returns
/// whether any remain. Meant for an idle thread: Shoal's runtime installs
/// it as its workers' idle hook.
pub fn discard_idle_memory(budget: usize) -> bool {
    LOCAL
        .try_with(|state| {
            let Ok(mut state) = state.try_borrow_mut() else {
                return false;
            };
            let mut more = false;
            for local in &mut state.pools {
                // The pools of a dropped engine are unmapped: nothing to do.
                if let Some(pools) = local.owner.upgrade() {
                    more |= local.discard_idle(&pools, budget);
                }
            }
            more
        })
        .unwrap_or(false)
}

thread_local! {
    static LOCAL: RefCell<LocalState> = RefCell::new(LocalState::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(strategy: MemoryStrategy, max_memories: usize) -> Arc<Pools> {
        Pools::new(
            strategy,
            &PoolingConfig {
                max_memories,
                memory_slab_size: 1 << 20,
                ..PoolingConfig::default()
            },
        )
    }

    #[test]
    fn checked_slots_are_reused_zeroed() {
        let pools = pools(MemoryStrategy::Checked, 100);
        let class = pools.memory_class(1).expect("class");
        assert_eq!((class, pools.slot_bytes(class)), (0, 65536));
        assert_eq!(pools.memory_class(3), Some(2));
        assert_eq!(pools.memory_class(0), None);
        let slot = pools.acquire_memory(class, 65536).expect("slot");
        // SAFETY: the slot is 64 KiB of readable, writable memory owned here.
        unsafe { std::ptr::write_bytes(slot.base as *mut u8, 0xFF, 65536) };
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(class, slot, 65536) };
        let again = pools.acquire_memory(class, 65536).expect("slot");
        assert_eq!(again, slot, "the warm slot is reused first");
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(again.base as *const u8, 65536) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: as above.
        unsafe { pools.release_memory(class, again, 0) };
    }

    /// Takes `n` slots of class 0, fills them with `byte` and releases
    /// them in order; returns them.
    fn release_filled(pools: &Pools, n: usize, byte: u8) -> Vec<Slot> {
        let slots: Vec<Slot> = (0..n)
            .map(|_| pools.acquire_memory(0, 65536).expect("slot"))
            .collect();
        for &slot in &slots {
            // SAFETY: 64 KiB of readable, writable memory owned here.
            unsafe { std::ptr::write_bytes(slot.base as *mut u8, byte, 65536) };
            // SAFETY: from these pools, unused afterwards.
            unsafe { pools.release_memory(0, slot, 65536) };
        }
        slots
    }

    fn reads_as_zeros(slot: Slot) -> bool {
        // SAFETY: a slot of live pools: 64 KiB mapped; only read here.
        let bytes = unsafe { std::slice::from_raw_parts(slot.base as *const u8, 65536) };
        bytes.iter().all(|&b| b == 0)
    }

    #[test]
    fn warm_slots_past_the_first_few_are_zeroed_when_taken_again() {
        let pools = pools(MemoryStrategy::Checked, 100);
        let released = release_filled(&pools, ZEROED_AT_RELEASE + 1, 0xAB);
        let warm = pools.with_local(|local| local.warm[0].clone());
        let dirty: Vec<usize> = warm.iter().map(|s| s.dirty).collect();
        let mut expected = vec![0; ZEROED_AT_RELEASE];
        expected.push(65536);
        assert_eq!(
            dirty, expected,
            "the first few zeroed at once, the last not yet"
        );
        assert!(reads_as_zeros(released[0]));
        assert!(!reads_as_zeros(released[ZEROED_AT_RELEASE]));
        let again = pools.acquire_memory(0, 65536).expect("slot");
        assert_eq!(
            again.base, released[ZEROED_AT_RELEASE].base,
            "the last released first"
        );
        assert_eq!(again.dirty, 0);
        assert!(reads_as_zeros(again), "zeroed as it was taken");
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(0, again, 65536) };
    }

    #[test]
    fn warm_slots_leaving_a_thread_are_zeroed() {
        let pools = pools(MemoryStrategy::Checked, 100);
        let released = std::thread::scope(|s| {
            s.spawn(|| {
                let slots = release_filled(&pools, ZEROED_AT_RELEASE + 2, 0x5A);
                let dirty =
                    pools.with_local(|local| local.warm[0].iter().filter(|s| s.dirty > 0).count());
                assert_eq!(dirty, 2);
                slots
                // The thread's cache goes back to the engine-wide list here.
            })
            .join()
            .expect("thread")
        });
        let shared = pools.classes[0].lock();
        for slot in released {
            let free = shared.free.iter().find(|s| s.base == slot.base).copied();
            assert_eq!(free.map(|s| s.dirty), Some(0));
            assert!(reads_as_zeros(slot));
        }
    }

    /// `Checked` pools that keep no slot warm: every release is discarded.
    fn pools_without_warm_slots() -> Arc<Pools> {
        Pools::new(
            MemoryStrategy::Checked,
            &PoolingConfig {
                warm_memories_per_thread: 0,
                memory_slab_size: 1 << 30,
                ..PoolingConfig::default()
            },
        )
    }

    #[test]
    fn cold_releases_are_discarded_in_runs() {
        let pools = pools_without_warm_slots();
        let slots: Vec<Slot> = (0..200)
            .map(|_| pools.acquire_memory(0, 65536).expect("slot"))
            .collect();
        for slot in &slots {
            // SAFETY: each slot is 64 KiB of writable memory owned here.
            unsafe { std::ptr::write_bytes(slot.base as *mut u8, 0x5A, 65536) };
        }
        let before = OsCalls::thread();
        for slot in slots.iter().rev() {
            // SAFETY: from these pools, unused afterwards.
            unsafe { pools.release_memory(0, *slot, 65536) };
        }
        // Taking slots again discards the run still pending.
        let again: Vec<Slot> = (0..200)
            .map(|_| pools.acquire_memory(0, 65536).expect("slot"))
            .collect();
        let discards = OsCalls::thread().since(&before).madvise;
        assert!(
            (1..=4).contains(&discards),
            "{discards} madvise calls for 200 adjacent slots"
        );
        for slot in &again {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(slot.base as *const u8, 65536) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "a reused slot reads as zeros"
            );
        }
        for slot in again {
            // SAFETY: as above.
            unsafe { pools.release_memory(0, slot, 65536) };
        }
    }

    #[test]
    fn a_thread_carves_a_whole_discard_run_while_others_carve_too() {
        let pools = pools_without_warm_slots();
        let run = pools.run_slots(0);
        assert_eq!(run, MAX_COALESCED, "one-page slots: a whole 16 MiB run");
        let mut mine = vec![pools.acquire_memory(0, 65536).expect("slot")];
        let (carved, carved_rx) = std::sync::mpsc::channel();
        let (done, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            // Another thread carves its own slots after this one's first
            // and holds them (its cache) until this one has taken the rest.
            let pools = &pools;
            scope.spawn(move || {
                let slot = pools.acquire_memory(0, 65536).expect("slot");
                carved.send(()).expect("send");
                let _ = done_rx.recv();
                // SAFETY: from these pools, unused afterwards.
                unsafe { pools.release_memory(0, slot, 0) };
            });
            carved_rx.recv().expect("the other thread carved");
            mine.extend((1..run).map(|_| pools.acquire_memory(0, 65536).expect("slot")));
            done.send(()).expect("send");
        });
        let mut bases: Vec<usize> = mine.iter().map(|s| s.base).collect();
        bases.sort_unstable();
        assert!(
            bases.windows(2).all(|w| w[1] == w[0] + 65536),
            "this thread's {run} slots are not adjacent: {bases:x?}"
        );
        for slot in &mine {
            // SAFETY: each slot is 64 KiB of writable memory owned here.
            unsafe { *(slot.base as *mut u8) = 1 };
        }
        let before = OsCalls::thread();
        for slot in &mine {
            // SAFETY: from these pools, unused afterwards.
            unsafe { pools.release_memory(0, *slot, 65536) };
        }
        let released = OsCalls::thread().since(&before).madvise;
        assert_eq!(released, 0, "the finished run waits for an idle moment");
        assert!(!discard_idle_memory(usize::MAX), "nothing left after");
        let discards = OsCalls::thread().since(&before).madvise;
        assert_eq!(
            discards, 1,
            "{discards} madvise calls for the {run} slots one thread took in a row"
        );
        for slot in &mine {
            // SAFETY: the slot's first page, written above, is readable.
            assert_eq!(unsafe { *(slot.base as *const u8) }, 0, "discarded");
        }
    }

    #[test]
    fn deferred_discards_are_bounded_and_taken_oldest_first() {
        let pools = pools_without_warm_slots();
        let run = pools.run_slots(0);
        let runs_in_bound = DEFERRED_BYTES / (run * 65536);
        // One run more than the bound allows, written and released.
        let slots: Vec<Slot> = (0..run * (runs_in_bound + 1))
            .map(|_| pools.acquire_memory(0, 65536).expect("slot"))
            .collect();
        for slot in &slots {
            // SAFETY: each slot is 64 KiB of writable memory owned here.
            unsafe { *(slot.base as *mut u8) = 7 };
        }
        let before = OsCalls::thread();
        for slot in &slots {
            // SAFETY: from these pools, unused afterwards.
            unsafe { pools.release_memory(0, *slot, 65536) };
        }
        assert_eq!(
            OsCalls::thread().since(&before).madvise,
            1,
            "only the run beyond {DEFERRED_BYTES} bytes is discarded at once"
        );
        // SAFETY: the first page of each slot is readable.
        let first = |slot: &Slot| unsafe { *(slot.base as *const u8) };
        assert_eq!(first(&slots[0]), 0, "the oldest run went first");
        assert_eq!(first(&slots[run]), 7, "the next one still waits");
        // An idle pass takes them a budget at a time.
        assert!(discard_idle_memory(1));
        assert_eq!(OsCalls::thread().since(&before).madvise, 2);
        assert!(!discard_idle_memory(usize::MAX));
        assert!(slots.iter().all(|s| first(s) == 0));
        // Their slots are reused, reading as zeros.
        let again = pools.acquire_memory(0, 65536).expect("slot");
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(again.base as *const u8, 65536) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(0, again, 0) };
    }

    #[test]
    fn a_thread_short_of_slots_takes_its_deferred_runs_before_new_ones() {
        let pools = pools_without_warm_slots();
        let run = pools.run_slots(0);
        let slots: Vec<Slot> = (0..run)
            .map(|_| pools.acquire_memory(0, 65536).expect("slot"))
            .collect();
        for slot in &slots {
            // SAFETY: from these pools, unused afterwards.
            unsafe { pools.release_memory(0, *slot, 65536) };
        }
        // The run is deferred; the next slot comes from it, not from a new
        // carving, and reads as zeros.
        let again = pools.acquire_memory(0, 65536).expect("slot");
        assert!(slots.contains(&again), "{again:?} is not a released slot");
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(0, again, 0) };
        discard_idle_memory(usize::MAX);
    }

    #[test]
    fn the_memory_limit_is_enforced() {
        let pools = pools(MemoryStrategy::Checked, 2);
        let a = pools.acquire_memory(0, 0).expect("first");
        let b = pools.acquire_memory(0, 0).expect("second");
        let err = pools.acquire_memory(0, 0).expect_err("third");
        assert!(err.to_string().contains("max_memories"), "{err}");
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(0, a, 0) };
        let c = pools.acquire_memory(0, 0).expect("after a release");
        // SAFETY: as above.
        unsafe {
            pools.release_memory(0, b, 0);
            pools.release_memory(0, c, 0);
        }
    }

    #[test]
    fn guarded_slots_keep_their_accessible_prefix() {
        let pools = pools(MemoryStrategy::Guarded, 10);
        let before = OsCalls::thread();
        let slot = pools.acquire_memory(0, 65536).expect("slot");
        assert_eq!(slot.accessible, 65536);
        // SAFETY: the first 64 KiB are accessible and owned here.
        unsafe { *(slot.base as *mut u8) = 1 };
        // SAFETY: from these pools, unused afterwards.
        unsafe { pools.release_memory(0, slot, 65536) };
        let mid = OsCalls::thread();
        let again = pools.acquire_memory(0, 65536).expect("slot");
        assert_eq!(again, slot);
        // SAFETY: as above.
        assert_eq!(unsafe { *(again.base as *const u8) }, 0);
        let after = OsCalls::thread();
        assert_eq!(after.since(&mid), OsCalls::default(), "reuse is free");
        assert_eq!(mid.since(&before).mmap, 1);
        // A different initial size re-protects.
        // SAFETY: as above.
        unsafe { pools.release_memory(0, again, 65536) };
        let bigger = pools.acquire_memory(0, 2 * 65536).expect("slot");
        assert_eq!(bigger.accessible, 2 * 65536);
        assert_eq!(OsCalls::thread().since(&after).mprotect, 1);
        // SAFETY: as above.
        unsafe { pools.release_memory(0, bigger, 2 * 65536) };
    }
}
