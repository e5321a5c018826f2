//! Linear memories: one virtual reservation per memory whose base never
//! moves, in either of the two [`MemoryStrategy`]s.
//!
//! # Layout
//!
//! ```text
//! Guarded:  base ─┬─ accessible (RW) ─┬──────── PROT_NONE ───────────────┐
//!                 0             current_length                   8 GiB + 64 KiB
//! Checked:  base ─┬─ accessible ──────┬─ beyond the bounds checks ─┐
//!                 0             current_length              slot or maximum
//! ```
//!
//! - `Guarded` reserves 8 GiB + 64 KiB, so that any `u32` index plus any
//!   `u32` static offset plus the widest access (8 bytes) lands inside the
//!   reservation: compiled code needs no bounds check, and an access past
//!   `current_length` faults into a trap. Exactly `current_length` bytes are
//!   readable and writable.
//! - `Checked` compiled code compares every address with `current_length`,
//!   so nothing past it needs protecting.
//!
//! The base address never changes, so compiled code may keep it in a
//! register across calls; only `current_length` changes, and the owner of
//! the memory copies it into the memory's [`VMMemoryDefinition`] after every
//! grow.
//!
//! # Limits
//!
//! A memory's maximum is its declared maximum capped by
//! [`Config::max_memory_pages`], by the 32-bit index space, and (for
//! memories defined by instances) by the store's
//! [`StoreLimits`](crate::store::StoreLimits) in force when it was created:
//! an error naming the limit if its minimum is above one of them. The
//! maximum picks the size class of a `Checked` memory's slot, so a store
//! limit set before instantiation also makes its memories denser. The
//! store's limit can be lowered later ([`set_limit`](LinearMemory::set_limit));
//! a grow past the lower of the two fails.
//!
//! # Why growing needs no epoch checks
//!
//! Growing never writes the new pages: a `Checked` slot is accessible (and
//! zero) throughout already, and a `Guarded` memory or a host-created one
//! only changes the protection of the new range (one `mprotect`, whose cost
//! does not depend on how many pages it covers being touched). The kernel
//! zero-fills pages when wasm first touches them. So unlike the bulk
//! operations, `memory.grow` cannot run past a timeslice, whatever its size.
//!
//! # Where the address space comes from
//!
//! - Memories defined by instances come from the engine's
//!   [`Pools`](crate::pool): a `Checked` memory is a slot in a slab that is
//!   readable and writable once and for all (growing it makes no system
//!   call); a `Guarded` one is a pooled 8 GiB reservation (growing it
//!   `mprotect`s the new pages). Dropping the memory resets the slot and
//!   gives it back (see the pool's docs).
//! - Memories created by the host (`Memory::new`) get their own `Mmap`:
//!   `PROT_NONE` + `MAP_NORESERVE`, of 8 GiB + 64 KiB (`Guarded`) or exactly
//!   the memory's effective maximum (`Checked`), made accessible page by
//!   page with `mprotect` as the memory grows.

use crate::config::{Config, MemoryStrategy, WASM_PAGE_SIZE};
use crate::error::{Error, Result};
use crate::pool::{self, Pools, Slot};
use crate::types::MemoryType;
use crate::vmcontext::VMMemoryDefinition;
use std::ptr::NonNull;
use std::sync::Arc;

/// The most pages a 32-bit memory can have (4 GiB).
pub(crate) const MAX_WASM_PAGES: u64 = 1 << 16;

/// Size of a `Guarded` reservation: 4 GiB of index space, 4 GiB of static
/// offset, and one more wasm page that covers the width of the access.
pub(crate) const GUARDED_RESERVATION: usize = (8 << 30) + WASM_PAGE_SIZE as usize;

/// An anonymous private mapping, unmapped on drop.
///
/// A zero-length mapping owns nothing and has a dangling, well-aligned base.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing in it is
// tied to the thread that created it.
unsafe impl Send for Mmap {}
// SAFETY: `&Mmap` only exposes the base address and length.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Reserves `len` bytes of address space, inaccessible and without
    /// committing memory (`PROT_NONE`, `MAP_NORESERVE`).
    pub(crate) fn reserve(len: usize) -> Result<Mmap> {
        if len == 0 {
            return Ok(Mmap {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        let ptr = pool::mmap_anonymous(len, libc::PROT_NONE).map_err(|err| {
            Error::Resource(format!(
                "cannot reserve {} of address space for a linear memory: {err} \
                 (check `ulimit -v`, or use MemoryStrategy::Checked, which reserves only each memory's maximum)",
                human_bytes(len)
            ))
        })?;
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Mmap { ptr, len }),
            None => Err(Error::Resource("mmap returned a null mapping".into())),
        }
    }

    /// Makes `[start, start + len)` readable and writable. Both must be
    /// multiples of the OS page size (wasm pages are).
    pub(crate) fn make_accessible(&mut self, start: usize, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = start.checked_add(len).filter(|&end| end <= self.len);
        if end.is_none() {
            return Err(Error::Resource(format!(
                "cannot make {len} bytes at offset {start} accessible: the reservation has only {} bytes",
                self.len
            )));
        }
        // SAFETY: the range lies inside this mapping (checked above), which
        // this value owns; changing its protection affects no other object.
        unsafe {
            pool::mprotect(
                self.ptr.as_ptr().add(start),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        }
        .map_err(|err| {
            Error::Resource(format!(
                "cannot commit {} of linear memory: {err}",
                human_bytes(len)
            ))
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `ptr..ptr+len` is a mapping this value created and owns;
        // nothing refers to it any more (its owner is being dropped).
        let result = unsafe { pool::munmap(self.ptr.as_ptr(), self.len) };
        debug_assert!(result.is_ok(), "munmap of a linear memory failed");
    }
}

/// Where a memory's address space comes from.
#[derive(Debug)]
enum Backing {
    /// Its own mapping (host-created memories).
    Owned(Mmap),
    /// A slot of an engine's pools, given back on drop.
    Pooled {
        /// The pools the slot belongs to. They outlive the memory: see the
        /// pool's module docs (step 5) and `StoreOpaque`'s `Drop`.
        pools: NonNull<Pools>,
        class: usize,
        base: NonNull<u8>,
    },
    /// A `Checked` memory whose maximum is 0 pages: no address space.
    Empty,
}

/// One linear memory: a reservation, its accessible prefix and its limits.
#[derive(Debug)]
pub(crate) struct LinearMemory {
    backing: Backing,
    strategy: MemoryStrategy,
    /// Accessible bytes (a multiple of the wasm page size).
    byte_size: usize,
    /// The declared type (its minimum is the initial size).
    ty: MemoryType,
    /// The most pages `grow` may reach: the declared maximum, capped by
    /// the configuration, the 32-bit index space and the store's limit at
    /// creation.
    max_pages: u64,
    /// The store's current limit (see [`set_limit`](Self::set_limit)).
    limit: u64,
}

// SAFETY: the memory exclusively owns its slot or mapping; the pools it
// points at are `Sync` and outlive it (see `Backing::Pooled`).
unsafe impl Send for LinearMemory {}
// SAFETY: shared access only reads addresses and sizes.
unsafe impl Sync for LinearMemory {}

impl LinearMemory {
    /// The effective maximum of a memory of type `ty`, or an error naming
    /// the limit its minimum is above.
    pub(crate) fn effective_max_pages(
        ty: &MemoryType,
        config: &Config,
        store_limit: u64,
    ) -> Result<u64> {
        let engine_limit = config.max_memory_pages.min(MAX_WASM_PAGES);
        if ty.minimum > engine_limit {
            return Err(Error::Resource(format!(
                "a memory of {} pages needs more than the limit of {engine_limit} pages \
                 (raise Config::max_memory_pages, currently {})",
                ty.minimum, config.max_memory_pages
            )));
        }
        if ty.minimum > store_limit {
            return Err(Error::Resource(format!(
                "a memory of {} pages needs more than the store's limit of {store_limit} pages \
                 (StoreLimits::max_memory_pages)",
                ty.minimum
            )));
        }
        Ok(ty
            .maximum
            .unwrap_or(MAX_WASM_PAGES)
            .min(engine_limit)
            .min(store_limit))
    }

    /// A memory of `ty.minimum` zeroed pages with its own mapping, laid out
    /// for `config`'s strategy (host-created memories).
    pub(crate) fn new(ty: &MemoryType, config: &Config) -> Result<LinearMemory> {
        let max_pages = Self::effective_max_pages(ty, config, u64::MAX)?;
        let reservation = match config.memory_strategy {
            MemoryStrategy::Guarded => GUARDED_RESERVATION,
            // `max_pages <= 65536`, so this cannot overflow.
            MemoryStrategy::Checked => (max_pages * WASM_PAGE_SIZE) as usize,
        };
        let mut mmap = Mmap::reserve(reservation)?;
        let byte_size = (ty.minimum * WASM_PAGE_SIZE) as usize;
        mmap.make_accessible(0, byte_size)?;
        Ok(LinearMemory {
            backing: Backing::Owned(mmap),
            strategy: config.memory_strategy,
            byte_size,
            ty: *ty,
            max_pages,
            limit: u64::MAX,
        })
    }

    /// A memory of `ty.minimum` zeroed pages in a slot of `pools` (memories
    /// defined by instances), whose maximum is also capped by `store_limit`
    /// (the store's [`StoreLimits`](crate::store::StoreLimits)). `pools`
    /// must be `config`'s engine's.
    pub(crate) fn from_pool(
        ty: &MemoryType,
        config: &Config,
        store_limit: u64,
        pools: &Arc<Pools>,
    ) -> Result<LinearMemory> {
        let max_pages = Self::effective_max_pages(ty, config, store_limit)?;
        let byte_size = (ty.minimum * WASM_PAGE_SIZE) as usize;
        let backing = match pools.memory_class(max_pages) {
            None => Backing::Empty,
            Some(class) => {
                let slot = pools.acquire_memory(class, byte_size)?;
                Backing::Pooled {
                    pools: NonNull::from(&**pools),
                    class,
                    // Slot addresses come from mmap and are never null.
                    base: NonNull::new(slot.base as *mut u8).ok_or_else(|| {
                        Error::Resource("internal error: a null memory slot".into())
                    })?,
                }
            }
        };
        Ok(LinearMemory {
            backing,
            strategy: config.memory_strategy,
            byte_size,
            ty: *ty,
            max_pages,
            limit: u64::MAX,
        })
    }

    /// The base address; never changes.
    pub(crate) fn base(&self) -> *mut u8 {
        match &self.backing {
            Backing::Owned(mmap) => mmap.as_ptr(),
            Backing::Pooled { base, .. } => base.as_ptr(),
            Backing::Empty => NonNull::dangling().as_ptr(),
        }
    }

    /// Accessible bytes.
    pub(crate) fn byte_size(&self) -> usize {
        self.byte_size
    }

    /// Current size in wasm pages.
    pub(crate) fn pages(&self) -> u64 {
        self.byte_size as u64 / WASM_PAGE_SIZE
    }

    /// The most pages this memory may grow to now.
    pub(crate) fn max_pages(&self) -> u64 {
        self.max_pages.min(self.limit)
    }

    /// Caps growth at `pages` (the store's current limit).
    pub(crate) fn set_limit(&mut self, pages: u64) {
        self.limit = pages;
    }

    /// The memory's type as an import sees it: the current size as the
    /// minimum, and the declared maximum.
    pub(crate) fn current_type(&self) -> MemoryType {
        MemoryType {
            minimum: self.pages(),
            maximum: self.ty.maximum,
        }
    }

    /// Grows by `delta` pages. Returns the old size in pages, or `None`
    /// (wasm's `-1`) if the result would pass the maximum or the OS refuses.
    /// The caller must copy [`vmmemory`](Self::vmmemory) into the memory's
    /// definition afterwards.
    pub(crate) fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new = old.checked_add(delta)?;
        // Growing by 0 succeeds even above a limit lowered since.
        if delta > 0 && new > self.max_pages() {
            return None;
        }
        let new_bytes = (new * WASM_PAGE_SIZE) as usize;
        match &mut self.backing {
            Backing::Owned(mmap) => {
                if new_bytes > mmap.len() {
                    return None;
                }
                mmap.make_accessible(self.byte_size, new_bytes - self.byte_size)
                    .ok()?;
            }
            // A `Checked` slot (at least `max_pages` large) is accessible
            // throughout; a `Guarded` one has exactly `byte_size` bytes
            // accessible in a reservation that covers any 32-bit memory.
            Backing::Pooled { base, .. } => {
                if self.strategy == MemoryStrategy::Guarded && new_bytes > self.byte_size {
                    // SAFETY: the range lies in the reservation this memory
                    // owns; no Rust reference points into it.
                    unsafe {
                        pool::mprotect(
                            base.as_ptr().add(self.byte_size),
                            new_bytes - self.byte_size,
                            libc::PROT_READ | libc::PROT_WRITE,
                        )
                    }
                    .ok()?;
                }
            }
            Backing::Empty => {
                if new_bytes > 0 {
                    return None;
                }
            }
        }
        self.byte_size = new_bytes;
        Some(old)
    }

    /// The definition compiled code reads.
    pub(crate) fn vmmemory(&self) -> VMMemoryDefinition {
        VMMemoryDefinition {
            base: self.base(),
            current_length: self.byte_size,
        }
    }

    /// The accessible bytes.
    ///
    /// # Safety
    ///
    /// No wasm code may run, and no other reference to the memory's bytes may
    /// be live, while the returned slice is used.
    pub(crate) unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base+byte_size` is mapped readable and writable (or
        // empty with a dangling, aligned base), and the caller guarantees no
        // concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.base(), self.byte_size) }
    }

    /// The accessible bytes, mutably.
    ///
    /// # Safety
    ///
    /// As for [`bytes`](Self::bytes).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: as in `bytes`; exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.base(), self.byte_size) }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        if let Backing::Pooled { pools, class, base } = self.backing {
            let accessible = match self.strategy {
                MemoryStrategy::Guarded => self.byte_size,
                MemoryStrategy::Checked => 0,
            };
            let slot = Slot {
                base: base.as_ptr() as usize,
                accessible,
                dirty: 0,
            };
            // SAFETY: the pools outlive their memories (see
            // `Backing::Pooled`); the slot is theirs, nothing uses it after
            // this drop, and only its first `byte_size` bytes (the
            // high-water mark: memories never shrink) were ever accessible.
            unsafe { pools.as_ref().release_memory(class, slot, self.byte_size) };
        }
    }
}

pub(crate) fn human_bytes(n: usize) -> String {
    const GIB: usize = 1 << 30;
    const MIB: usize = 1 << 20;
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(strategy: MemoryStrategy, max_pages: u64) -> Config {
        Config {
            memory_strategy: strategy,
            max_memory_pages: max_pages,
            ..Config::default()
        }
    }

    #[test]
    fn grow_respects_module_and_config_maximum() {
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            let mut mem = LinearMemory::new(
                &MemoryType {
                    minimum: 1,
                    maximum: Some(3),
                },
                &config(strategy, 100),
            )
            .expect("memory");
            assert_eq!(mem.grow(1), Some(1));
            assert_eq!(mem.grow(2), None);
            assert_eq!(mem.grow(1), Some(2));
            assert_eq!(mem.grow(0), Some(3));
            assert_eq!(mem.pages(), 3);

            let mut mem = LinearMemory::new(
                &MemoryType {
                    minimum: 0,
                    maximum: None,
                },
                &config(strategy, 2),
            )
            .expect("memory");
            assert_eq!(mem.byte_size(), 0);
            assert_eq!(mem.grow(2), Some(0));
            assert_eq!(mem.grow(1), None);
            // SAFETY: no wasm runs; this is the only reference.
            let bytes = unsafe { mem.bytes_mut() };
            bytes[2 * WASM_PAGE_SIZE as usize - 1] = 7;
        }
    }

    #[test]
    fn pooled_memories_grow_in_their_slot() {
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            let config = config(strategy, 100);
            let pools = Pools::new(strategy, &config.pooling);
            let ty = MemoryType {
                minimum: 1,
                maximum: Some(3),
            };
            let mut mem = LinearMemory::from_pool(&ty, &config, u64::MAX, &pools).expect("memory");
            let base = mem.base();
            let before = pool::OsCalls::thread();
            assert_eq!(mem.grow(2), Some(1));
            assert_eq!(mem.grow(1), None);
            assert_eq!(mem.base(), base, "the base never moves");
            let calls = pool::OsCalls::thread().since(&before);
            let expected = match strategy {
                MemoryStrategy::Guarded => 1,
                MemoryStrategy::Checked => 0,
            };
            assert_eq!(calls.mprotect, expected, "{strategy:?}");
            // SAFETY: no wasm runs; this is the only reference.
            let bytes = unsafe { mem.bytes_mut() };
            assert_eq!(bytes.len(), 3 * WASM_PAGE_SIZE as usize);
            bytes[3 * WASM_PAGE_SIZE as usize - 1] = 7;
            drop(mem);
            // The slot comes back zeroed, with the initial size accessible.
            let mem = LinearMemory::from_pool(&ty, &config, u64::MAX, &pools).expect("memory");
            assert_eq!(mem.base(), base, "the warm slot is reused");
            assert_eq!(mem.byte_size(), WASM_PAGE_SIZE as usize);
        }
        // A `Checked` memory that can never have a page needs no slot.
        let config = config(MemoryStrategy::Checked, 100);
        let pools = Pools::new(MemoryStrategy::Checked, &config.pooling);
        let ty = MemoryType {
            minimum: 0,
            maximum: Some(0),
        };
        let mut mem = LinearMemory::from_pool(&ty, &config, u64::MAX, &pools).expect("memory");
        assert_eq!(mem.grow(0), Some(0));
        assert_eq!(mem.grow(1), None);
    }

    #[test]
    fn minimum_above_limit_is_a_resource_error() {
        let err = LinearMemory::new(
            &MemoryType {
                minimum: 10,
                maximum: None,
            },
            &config(MemoryStrategy::Checked, 5),
        )
        .expect_err("too big");
        assert!(
            err.to_string().contains("Config::max_memory_pages"),
            "{err}"
        );
    }

    #[test]
    fn store_limit_caps_the_maximum_and_growth() {
        let config = config(MemoryStrategy::Checked, 100);
        let ty = |minimum, maximum| MemoryType { minimum, maximum };
        let err = LinearMemory::effective_max_pages(&ty(6, None), &config, 5).expect_err("big");
        assert!(
            err.to_string().contains("StoreLimits::max_memory_pages"),
            "{err}"
        );
        let max = |t: MemoryType, limit| LinearMemory::effective_max_pages(&t, &config, limit).ok();
        assert_eq!(max(ty(5, None), 5), Some(5));
        assert_eq!(max(ty(5, Some(7)), 50), Some(7));
        assert_eq!(max(ty(5, None), 500), Some(100));

        let pools = Pools::new(MemoryStrategy::Checked, &config.pooling);
        let mut mem = LinearMemory::from_pool(&ty(1, None), &config, 3, &pools).expect("memory");
        assert_eq!(mem.max_pages(), 3);
        assert_eq!(mem.grow(3), None);
        assert_eq!(mem.grow(1), Some(1));
        mem.set_limit(2);
        assert_eq!(mem.grow(1), None);
        assert_eq!(mem.grow(0), Some(2));
        mem.set_limit(u64::MAX);
        assert_eq!(mem.grow(1), Some(2), "the limit at creation still holds");
        assert_eq!(mem.grow(1), None);
    }
}
