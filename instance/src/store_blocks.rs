//! The store's own blocks: values that compiled code and the runtime reach
//! through raw pointers (the runtime limits, each instance's record and
//! VMContext, each host function's record), and the arena that holds them
//! next to the store.
//!
//! # The arena
//!
//! A [`Store`](crate::Store) made with room for its blocks
//! ([`Store::with_arena`](crate::Store::with_arena)) has one heap block:
//! its `StoreInner<T>`, then an arena of that many bytes. Each block the
//! store then needs is carved from the arena, in order, while it has room,
//! and from the heap after that. So an instance that fits costs one
//! allocation and one free instead of one per block, and the state a
//! resume touches (the store, its limits, the VMContext, the host function
//! records) sits on adjacent cache lines.
//!
//! The protocol:
//!
//! 1. The store's owner sizes the arena. The runtime learns the size: a
//!    template's first store has none, and reports what it would have
//!    needed ([`StoreArena::wanted`]); the next stores get that.
//! 2. [`StoreArena::alloc`] bumps an offset; nothing is ever given back to
//!    the arena on its own. A block that does not fit comes from the heap.
//! 3. A block in the arena is owned like one on the heap: by a [`RawBox`]
//!    (or a VMContext allocation) held by the store, dropped in place when
//!    the store's state is dropped, before the store's heap block is freed.
//!
//! The arena lies outside the `StoreInner<T>` value, so a `&mut` to the
//! store does not cover it: compiled code may write an arena block through
//! a raw pointer while a host call holds `&mut StoreOpaque`, as it may a
//! separate heap block.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;

/// The most bytes a store's arena may have; blocks beyond come from the
/// heap. Keeps the store's own heap block among the allocator's small,
/// quickly reused sizes.
pub(crate) const MAX_ARENA_BYTES: usize = 2048;

/// Alignment of the arena's start (and the most any block in it gets).
pub(crate) const ARENA_ALIGN: usize = 16;

/// A bump arena in the store's heap block (see the module docs).
pub(crate) struct StoreArena {
    /// The arena's first byte (nothing is read or written through it
    /// when `capacity` is 0).
    base: NonNull<u8>,
    capacity: usize,
    used: Cell<usize>,
    /// Bytes every block asked for so far, with alignment, whether it got
    /// them from the arena or the heap.
    wanted: Cell<usize>,
}

impl StoreArena {
    /// An arena of `capacity` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be aligned to [`ARENA_ALIGN`], and `capacity` bytes from
    /// it valid for writes and owned by the new arena's store until every
    /// block from [`alloc`](Self::alloc) is dropped.
    pub(crate) unsafe fn new(base: NonNull<u8>, capacity: usize) -> StoreArena {
        StoreArena {
            base,
            capacity,
            used: Cell::new(0),
            wanted: Cell::new(0),
        }
    }

    /// The arena's size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// What an arena would need to have held every block asked for so far.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted.get()
    }

    /// Whether `addr` lies in the arena.
    #[cfg(test)]
    pub(crate) fn holds(&self, addr: usize) -> bool {
        let start = self.base.as_ptr() as usize;
        (start..start + self.capacity).contains(&addr)
    }

    /// Uninitialised room for `layout` in the arena, or `None` if it does
    /// not fit (or needs more than [`ARENA_ALIGN`]).
    pub(crate) fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        let align = layout.align();
        let start = self.wanted.get().checked_next_multiple_of(align)?;
        self.wanted.set(start.checked_add(layout.size())?);
        let start = self.used.get().checked_next_multiple_of(align)?;
        let end = start.checked_add(layout.size())?;
        if align > ARENA_ALIGN || end > self.capacity || layout.size() == 0 {
            return None;
        }
        self.used.set(end);
        // SAFETY: `start < end <= capacity`: inside the arena.
        Some(unsafe { self.base.add(start) })
    }
}

/// A value owned through a raw pointer, in the store's arena or on the
/// heap.
///
/// Unlike a `Box`, moving or borrowing the owner asserts nothing about
/// uniqueness, so compiled code and the runtime may keep raw pointers to the
/// value while its owner is moved around.
pub(crate) struct RawBox<T> {
    ptr: NonNull<T>,
    in_arena: bool,
}

impl<T> RawBox<T> {
    /// `value` in a heap block of its own.
    pub(crate) fn new(value: T) -> RawBox<T> {
        RawBox {
            ptr: NonNull::from(Box::leak(Box::new(value))),
            in_arena: false,
        }
    }

    /// `value` in `arena` if it fits, else on the heap.
    ///
    /// # Safety
    ///
    /// The box must be dropped before `arena`'s memory is freed: it must be
    /// owned by the arena's store.
    pub(crate) unsafe fn new_in(arena: &StoreArena, value: T) -> RawBox<T> {
        match arena.alloc(Layout::new::<T>()) {
            Some(at) => {
                let ptr = at.cast::<T>();
                // SAFETY: fresh room for a `T`, aligned (`alloc` honours
                // the layout), owned by nothing else.
                unsafe { ptr.write(value) };
                RawBox {
                    ptr,
                    in_arena: true,
                }
            }
            None => RawBox::new(value),
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> std::ops::Deref for RawBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer stays valid until this value drops (for an
        // arena block, `new_in`'s contract); shared access follows `&self`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> std::ops::DerefMut for RawBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; exclusive access follows `&mut self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for RawBox<T> {
    fn drop(&mut self) {
        if self.in_arena {
            // SAFETY: a value written by `new_in` and dropped only here; the
            // arena's memory is still there (`new_in`'s contract) and is
            // not reused.
            unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        } else {
            // SAFETY: the pointer came from `Box::leak` and is freed only
            // here.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

// SAFETY: the arena owns its bytes alone, like a `Box<[u8]>` (its store
// moves between threads as a whole).
unsafe impl Send for StoreArena {}

// SAFETY: a RawBox owns its value like a Box does.
unsafe impl<T: Send> Send for RawBox<T> {}
// SAFETY: shared access only hands out `&T`.
unsafe impl<T: Sync> Sync for RawBox<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// An arena over a local buffer.
    fn arena(buf: &mut [u128]) -> StoreArena {
        let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: a 16-byte aligned buffer that outlives the arena's boxes
        // in each test.
        unsafe { StoreArena::new(base, std::mem::size_of_val(buf)) }
    }

    #[test]
    fn blocks_are_carved_in_order_aligned_until_the_arena_is_full() {
        let mut buf = [0u128; 4];
        let arena = arena(&mut buf);
        let a = arena.alloc(Layout::new::<u8>()).unwrap();
        let b = arena.alloc(Layout::new::<u64>()).unwrap();
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 8);
        let c = arena.alloc(Layout::from_size_align(40, 16).unwrap());
        assert_eq!(c.unwrap().as_ptr() as usize - a.as_ptr() as usize, 16);
        assert!(
            arena.alloc(Layout::new::<u64>()).is_some(),
            "56..64 is free"
        );
        assert!(
            arena.alloc(Layout::new::<u8>()).is_none(),
            "the arena is full"
        );
        assert!(arena
            .alloc(Layout::from_size_align(8, 64).unwrap())
            .is_none());
        // What a big enough arena would have needed: 64 bytes, then 1 more,
        // then 8 at offset 128 (the 64-byte aligned block).
        assert_eq!(arena.wanted(), 136);
    }

    #[test]
    fn a_box_in_the_arena_drops_its_value_in_place_and_one_that_does_not_fit_goes_to_the_heap() {
        let mut buf = [0u128; 2];
        let arena = arena(&mut buf);
        let counted = Rc::new(());
        // SAFETY: the boxes are dropped before `buf`.
        let (inside, outside) = unsafe {
            (
                RawBox::new_in(&arena, (counted.clone(), 1u64)),
                RawBox::new_in(&arena, [counted.clone(), counted.clone(), counted.clone()]),
            )
        };
        assert!(inside.in_arena && !outside.in_arena);
        assert!(arena.holds(inside.as_ptr() as usize));
        assert!(!arena.holds(outside.as_ptr() as usize));
        assert_eq!(inside.1, 1);
        assert_eq!(Rc::strong_count(&counted), 5);
        drop(inside);
        drop(outside);
        assert_eq!(Rc::strong_count(&counted), 1, "every value was dropped");
    }
}
