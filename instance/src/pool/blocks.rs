//! Per-thread caches of plain heap blocks: VMContexts and table element
//! buffers.
//!
//! These are ordinary heap allocations, not tied to an engine, so a thread
//! simply keeps a few freed ones of each size class for its next instances
//! (up to [`VMCTX_CACHE`] VMContexts and [`TABLE_CACHE`] table buffers per
//! class) and frees the rest. Reuse saves the allocator's work and, for
//! large tables, the `mmap` and `munmap` the system allocator would do for
//! each one.

use crate::vmcontext::ValRaw;
use std::alloc::Layout;
use std::cell::RefCell;
use std::ptr::NonNull;

/// VMContext sizes are rounded up to a multiple of this.
const VMCTX_GRAIN: usize = 64;
/// VMContexts up to `VMCTX_GRAIN * VMCTX_CLASSES` bytes (4 KiB) are cached.
const VMCTX_CLASSES: usize = 64;
/// Cached VMContexts per size class and thread.
const VMCTX_CACHE: usize = 64;
/// Table buffers of up to `1 << (TABLE_CLASSES - 1)` elements are cached.
const TABLE_CLASSES: usize = 18;
/// Cached table buffers per size class and thread.
const TABLE_CACHE: usize = 8;

struct Blocks {
    /// Free VMContext blocks, by class (`size / VMCTX_GRAIN - 1`).
    vmctx: Vec<Vec<NonNull<u8>>>,
    /// Empty element buffers by class (`floor(log2(capacity))`).
    tables: Vec<Vec<Vec<ValRaw>>>,
}

impl Blocks {
    fn new() -> Blocks {
        Blocks {
            vmctx: (0..VMCTX_CLASSES).map(|_| Vec::new()).collect(),
            tables: (0..TABLE_CLASSES).map(|_| Vec::new()).collect(),
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for (class, blocks) in self.vmctx.iter_mut().enumerate() {
            let layout = class_layout(class);
            for block in blocks.drain(..) {
                // SAFETY: every cached block of this class was allocated with
                // this layout and is owned by the cache alone.
                unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
            }
        }
    }
}

thread_local! {
    static BLOCKS: RefCell<Blocks> = RefCell::new(Blocks::new());
}

/// Runs `f` on this thread's cache, or returns `None` while the cache is
/// unavailable (being torn down at thread exit, or already borrowed).
fn with_blocks<R>(f: impl FnOnce(&mut Blocks) -> R) -> Option<R> {
    BLOCKS
        .try_with(|b| b.try_borrow_mut().ok().map(|mut b| f(&mut b)))
        .ok()
        .flatten()
}

fn class_layout(class: usize) -> Layout {
    // Non-zero, a multiple of the alignment, far below isize::MAX.
    Layout::from_size_align((class + 1) * VMCTX_GRAIN, 16).unwrap_or(Layout::new::<[u128; 4]>())
}

/// The layout a VMContext of `size` bytes is allocated with.
pub(crate) fn vmctx_layout(size: usize) -> Option<Layout> {
    let rounded = size.max(1).checked_next_multiple_of(VMCTX_GRAIN)?;
    Layout::from_size_align(rounded, 16).ok()
}

fn vmctx_class(layout: Layout) -> Option<usize> {
    let class = layout.size() / VMCTX_GRAIN - 1;
    (class < VMCTX_CLASSES).then_some(class)
}

/// A zeroed block for `layout` (from [`vmctx_layout`]), from this thread's
/// cache when it has one.
pub(crate) fn alloc_vmctx(layout: Layout) -> Option<NonNull<u8>> {
    if let Some(class) = vmctx_class(layout) {
        if let Some(Some(block)) = with_blocks(|b| b.vmctx[class].pop()) {
            // SAFETY: the block has `layout.size()` bytes and is ours alone.
            unsafe { std::ptr::write_bytes(block.as_ptr(), 0, layout.size()) };
            return Some(block);
        }
    }
    // SAFETY: the layout has a non-zero size.
    NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
}

/// Returns a block from [`alloc_vmctx`] to this thread's cache, or frees it.
///
/// # Safety
///
/// `block` must come from `alloc_vmctx(layout)` and not be used afterwards.
pub(crate) unsafe fn free_vmctx(block: NonNull<u8>, layout: Layout) {
    if let Some(class) = vmctx_class(layout) {
        let kept = with_blocks(|b| {
            let cache = &mut b.vmctx[class];
            if cache.len() < VMCTX_CACHE {
                cache.push(block);
                true
            } else {
                false
            }
        });
        if kept == Some(true) {
            return;
        }
    }
    // SAFETY: allocated with this layout (the caller's promise).
    unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
}

/// An empty element buffer with room for at least `min` elements (a cached
/// one when possible), or `None` if the allocation fails.
pub(crate) fn take_table_buffer(min: usize) -> Option<Vec<ValRaw>> {
    let class = min.max(1).next_power_of_two().trailing_zeros() as usize;
    let mut buffer = Vec::new();
    if class < TABLE_CLASSES {
        if let Some(Some(cached)) = with_blocks(|b| b.tables[class].pop()) {
            return Some(cached);
        }
        // Allocate the whole class so the buffer can be cached later.
        buffer.try_reserve_exact(1 << class).ok()?;
    } else {
        buffer.try_reserve_exact(min).ok()?;
    }
    Some(buffer)
}

/// Keeps `buffer` for a later [`take_table_buffer`] if it is at most
/// `keep_bytes` large and the cache has room; frees it otherwise.
pub(crate) fn give_table_buffer(mut buffer: Vec<ValRaw>, keep_bytes: usize) {
    let capacity = buffer.capacity();
    if capacity == 0 || capacity * std::mem::size_of::<ValRaw>() > keep_bytes {
        return;
    }
    let class = capacity.ilog2() as usize;
    if class >= TABLE_CLASSES {
        return;
    }
    buffer.clear();
    with_blocks(move |b| {
        let cache = &mut b.tables[class];
        if cache.len() < TABLE_CACHE {
            cache.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmctx_blocks_are_reused_zeroed() {
        let layout = vmctx_layout(100).expect("layout");
        assert_eq!(layout.size(), 128);
        let a = alloc_vmctx(layout).expect("block");
        // SAFETY: `a` has 128 bytes.
        unsafe { std::ptr::write_bytes(a.as_ptr(), 0xAB, 128) };
        // SAFETY: from alloc_vmctx with this layout; not used afterwards.
        unsafe { free_vmctx(a, layout) };
        let b = alloc_vmctx(layout).expect("block");
        assert_eq!(a, b, "the freed block is reused");
        // SAFETY: `b` has 128 initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(b.as_ptr(), 128) };
        assert!(bytes.iter().all(|&x| x == 0));
        // SAFETY: as above.
        unsafe { free_vmctx(b, layout) };
    }

    #[test]
    fn table_buffers_are_reused_empty() {
        let mut t = take_table_buffer(5).expect("buffer");
        assert!(t.capacity() >= 8);
        t.resize(5, 7);
        let ptr = t.as_ptr();
        give_table_buffer(t, 1 << 20);
        let t = take_table_buffer(6).expect("buffer");
        assert_eq!(t.as_ptr(), ptr);
        assert!(t.is_empty());
    }
}
