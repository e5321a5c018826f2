//! The libcalls: runtime functions that compiled code calls for the
//! operators it does not inline. Their list and signatures are in
//! [`libcall`](crate::libcall).
//!
//! Every libcall receives the calling instance's VMContext and finds the
//! store (`VMOffsets::STORE`) and the instance's index in it
//! (`VMOffsets::INSTANCE_INDEX`) through its header; the instance's block,
//! when a libcall needs it, through the store's list. The work is done by
//! a plain Rust function that returns `Result<_, TrapKind>`; the
//! `extern "C"` wrapper returns its value or, once that function has
//! returned and dropped everything it owned, raises the trap. Bulk
//! operations check their whole range before writing anything (2.0
//! semantics: no partial writes), then work in chunks with an epoch check
//! between two chunks (see "bulk operations in chunks" below).

use crate::instance::{elem_items, memory_init_range, write_table_items, InstanceData};
use crate::libcall::Libcall;
use crate::module_info::ConstExpr;
use crate::store::{StoreOpaque, StoreTable};
use crate::trap::{Trap, TrapKind};
use crate::trap_handling::{raise, raise_trap, UnwindReason};
use crate::vmcontext::{VMContext, VMHostFuncContext, VMOffsets, VMRuntimeLimits, ValRaw};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The address of `libcall`'s implementation.
pub(crate) fn address_of(libcall: Libcall) -> usize {
    match libcall {
        Libcall::MemoryGrow => memory_grow as *const () as usize,
        Libcall::MemoryFill => memory_fill as *const () as usize,
        Libcall::MemoryCopy => memory_copy as *const () as usize,
        Libcall::MemoryInit => memory_init_libcall as *const () as usize,
        Libcall::DataDrop => data_drop as *const () as usize,
        Libcall::TableGet => table_get as *const () as usize,
        Libcall::TableSet => table_set as *const () as usize,
        Libcall::TableGrow => table_grow as *const () as usize,
        Libcall::TableFill => table_fill as *const () as usize,
        Libcall::TableCopy => table_copy as *const () as usize,
        Libcall::TableInit => table_init_libcall as *const () as usize,
        Libcall::ElemDrop => elem_drop as *const () as usize,
        Libcall::EpochDeadlineReached => epoch_deadline_reached as *const () as usize,
        Libcall::HostCall => host_call as *const () as usize,
    }
}

/// A pointer field of a VMContext's header, read without forming any
/// reference.
///
/// # Safety
///
/// `vmctx` must be a live instance's VMContext and `offset` one of the
/// header's pointer fields (`VMOffsets::STORE`, `RUNTIME_LIMITS`,
/// `EPOCH_COUNTER`), holding a `*mut P`.
unsafe fn header<P>(vmctx: *mut VMContext, offset: u32) -> *mut P {
    // SAFETY: in bounds and written at instantiation, per the contract.
    unsafe {
        vmctx
            .cast::<u8>()
            .add(offset as usize)
            .cast::<*mut P>()
            .read()
    }
}

/// The calling instance's index in its store, from the VMContext header.
///
/// # Safety
///
/// `vmctx` must be a live instance's VMContext.
unsafe fn caller_index(vmctx: *mut VMContext) -> u32 {
    // SAFETY: in bounds and written at instantiation (a `u64` holding the
    // instance's `u32` index), per the contract.
    let index = unsafe {
        vmctx
            .cast::<u8>()
            .add(VMOffsets::INSTANCE_INDEX as usize)
            .cast::<u64>()
            .read()
    };
    index as u32
}

/// The store and instance of a VMContext.
///
/// # Safety
///
/// `vmctx` must be the VMContext of a live instance whose store has no
/// Rust reference in use (wasm of that store is running). The two returned
/// references do not overlap: the instance is a separate heap block.
unsafe fn context<'a>(vmctx: *mut VMContext) -> (&'a mut StoreOpaque, &'a mut InstanceData) {
    // SAFETY: the header fields were written at instantiation with these
    // types and stay valid for the store's life (the caller's promise); the
    // instance was in the store's list before any of its code could run,
    // and its block (a `RawBox`) is not part of `*store`'s memory.
    unsafe {
        let store = &mut *header::<StoreOpaque>(vmctx, VMOffsets::STORE);
        let instance = store.instances[caller_index(vmctx) as usize].as_ptr();
        (store, &mut *instance)
    }
}

/// Returns `result`'s value or raises its trap.
///
/// # Safety
///
/// Must be called from a libcall entered from wasm (inside `catch_traps`),
/// with nothing owned left to drop.
#[inline]
unsafe fn value_or_trap<T>(result: Result<T, TrapKind>) -> T {
    match result {
        Ok(value) => value,
        // SAFETY: the caller's promise; `result` holds no destructors.
        Err(kind) => unsafe { raise_trap(kind) },
    }
}

/// `[start, start + len)` if it lies within `size` bytes or elements.
fn in_bounds(start: u32, len: u32, size: u64) -> bool {
    u64::from(start) + u64::from(len) <= size
}

// ---- bulk operations in chunks ---------------------------------------------
//
// A bulk operation on a large range (`memory.fill` of 4 GiB, `table.grow` by
// ten million elements) must not run past a timeslice unchecked. After
// checking the whole range up front (no partial writes on a trap), the
// libcalls below work in chunks of `MEMORY_CHUNK` bytes or `TABLE_CHUNK`
// elements (`for_each_chunk`) and, between two chunks, do what compiled
// code's epoch check does (`epoch_point`): if the engine's epoch reached
// the store's deadline, run the `EpochDeadlineReached` path, whose callback
// may suspend the green thread, move the deadline, or end the call with a
// trap (raised once the libcall has returned from its Rust frames).
//
// The callback receives the whole store, so no Rust reference into the
// store may live across `epoch_point`: every chunk looks the store up again
// from the VMContext. What a chunk relies on from before stays true across
// the callback, whatever it does (suspend and let other green threads run,
// or even call back into wasm of this store):
//
// - a linear memory's base never moves and its size never shrinks, so a
//   checked range and a raw pointer into it stay valid; data segments live
//   in the module, which the instance keeps alive (`data.drop` only marks);
// - a table's size never shrinks, so a checked range stays in bounds; its
//   base may move when it grows, so chunks go through the table (by store
//   index) every time, never through a saved pointer;
// - other green threads run instances of other stores, which cannot reach
//   this store's memories and tables at all.
//
// If the callback ends the call with a trap, what earlier chunks wrote stays
// written, like the effects of any instruction before a trap (an abandoned
// `table.grow` leaves the table at its old size: see `table.rs`).

/// Bytes a memory operation writes between two epoch checks.
const MEMORY_CHUNK: usize = 1 << 20;

/// Elements a table operation writes between two epoch checks.
const TABLE_CHUNK: u32 = 1 << 16;

/// The reason to unwind with for a trap of kind `kind`.
fn trap(kind: TrapKind) -> UnwindReason {
    UnwindReason::Trap(Trap::new(kind))
}

/// Returns `result`'s value or raises its reason to unwind.
///
/// # Safety
///
/// As for [`value_or_trap`].
#[inline]
unsafe fn value_or_unwind<T>(result: Result<T, UnwindReason>) -> T {
    match result {
        Ok(value) => value,
        // SAFETY: the caller's promise; `reason` moves into `raise`.
        Err(reason) => unsafe { raise(reason) },
    }
}

/// Between two chunks of a bulk operation: if compiled code has epoch
/// checks and the engine's epoch reached the store's deadline, runs the
/// deadline path (as compiled code's check would at the next loop back edge).
///
/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]),
/// and no Rust reference into its store may be live: the callback gets the
/// whole store.
unsafe fn epoch_point(vmctx: *mut VMContext) -> Result<(), UnwindReason> {
    // SAFETY: the header fields were written at instantiation with these
    // types and stay valid for the store's life; only plain fields are
    // read, through raw pointers, and no reference outlives this block.
    let reached = unsafe {
        let store = header::<StoreOpaque>(vmctx, VMOffsets::STORE);
        let limits = header::<VMRuntimeLimits>(vmctx, VMOffsets::RUNTIME_LIMITS);
        let epoch = header::<AtomicU64>(vmctx, VMOffsets::EPOCH_COUNTER);
        !store.is_null()
            && (*store).engine.config().epoch_interruption
            && (*epoch).load(Ordering::Relaxed) >= (*limits).epoch_deadline
    };
    if !reached {
        return Ok(());
    }
    // SAFETY: forwarded; nothing refers to the store here.
    unsafe { epoch_deadline_impl(vmctx) }
}

/// The length of the next chunk: at most `chunk` of what is left of `len`
/// after `done`.
fn next_chunk<N: Copy + Ord + std::ops::Sub<Output = N>>(len: N, done: N, chunk: N) -> N {
    (len - done).min(chunk)
}

/// Works through `len` bytes or elements in chunks of at most `chunk`:
/// calls `f(at, n)` for the `n` of them at offset `at` (from the start of
/// the range), with an [`epoch_point`] between two chunks. The chunks go
/// forwards, or backwards from the end if `backwards`. An empty range is
/// one empty chunk.
///
/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]),
/// and no Rust reference into its store may be live across the call: the
/// caller holds none, and `f` looks the store up again in every chunk and
/// keeps no reference into it once it returns.
unsafe fn for_each_chunk<N>(
    vmctx: *mut VMContext,
    len: N,
    chunk: N,
    backwards: bool,
    mut f: impl FnMut(N, N) -> Result<(), UnwindReason>,
) -> Result<(), UnwindReason>
where
    N: Copy + Ord + From<u8> + std::ops::Add<Output = N> + std::ops::Sub<Output = N>,
{
    let mut done = N::from(0);
    loop {
        let n = next_chunk(len, done, chunk);
        let at = if backwards { len - done - n } else { done };
        f(at, n)?;
        done = done + n;
        if done == len {
            return Ok(());
        }
        // SAFETY: forwarded; no reference into the store is live.
        unsafe { epoch_point(vmctx) }?;
    }
}

/// Defines `extern "C"` libcalls that call their `*_impl` function with
/// the same arguments and then return its value or raise its error with
/// `$finish` ([`value_or_trap`] or [`value_or_unwind`]).
macro_rules! libcall_shims {
    ($(
        $(#[$attr:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $imp:ident, $finish:ident;
    )*) => {$(
        $(#[$attr])*
        ///
        /// # Safety
        ///
        /// Only compiled code calls it, passing the calling instance's
        /// VMContext (see [`context`]), from inside `catch_traps`, with no
        /// Rust reference into the store live.
        unsafe extern "C" fn $name(vmctx: *mut VMContext, $($arg: $ty),*) $(-> $ret)? {
            // SAFETY: compiled code passes its own VMContext.
            let result = unsafe { $imp(vmctx, $($arg),*) };
            // SAFETY: entered from wasm; the impl returned and dropped its
            // state, and `result` holds no destructors left to run here.
            unsafe { $finish(result) }
        }
    )*};
}

// ---- memory -----------------------------------------------------------------

/// `memory.grow`: the old size in pages, or `u32::MAX` (-1).
///
/// It needs no epoch checks: growing never writes the new pages (see
/// [`memory`](crate::memory)). The maximum includes the store's limits.
///
/// # Safety
///
/// Only compiled code calls it, passing the calling instance's VMContext
/// (see [`context`]), from inside `catch_traps`, with no Rust reference
/// into the store live.
unsafe extern "C" fn memory_grow(vmctx: *mut VMContext, memory: u32, delta: u32) -> u32 {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let Some(&m) = instance.memories.get(memory as usize) else {
        return u32::MAX;
    };
    match store
        .memories
        .get_mut(m as usize)
        .and_then(|m| m.grow(u64::from(delta)))
    {
        Some(old) => old as u32,
        None => u32::MAX,
    }
}

/// The base address of memory `memory` of the calling instance, if the
/// `len` bytes at `start` lie inside it (the pointer stays valid: see the
/// notes on chunks above).
///
/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn memory_range(
    vmctx: *mut VMContext,
    memory: u32,
    start: u32,
    len: u32,
) -> Result<*mut u8, TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let memory = instance
        .memories
        .get(memory as usize)
        .and_then(|&m| store.memories.get(m as usize))
        .ok_or(TrapKind::MemoryOutOfBounds)?;
    if !in_bounds(start, len, memory.memory.byte_size() as u64) {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    Ok(memory.memory.base())
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn memory_fill_impl(
    vmctx: *mut VMContext,
    memory: u32,
    dst: u32,
    byte: u32,
    len: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let base = unsafe { memory_range(vmctx, memory, dst, len) }.map_err(trap)?;
    let dst = dst as usize;
    let each = |at: usize, n: usize| {
        // SAFETY: `dst..dst+len` is inside the accessible part (checked
        // above; it stays so, see the notes on chunks), and this chunk
        // is part of it.
        unsafe { std::ptr::write_bytes(base.add(dst + at), byte as u8, n) };
        Ok(())
    };
    // SAFETY: forwarded; no reference into the store is live.
    unsafe { for_each_chunk(vmctx, len as usize, MEMORY_CHUNK, false, each) }
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn memory_copy_impl(
    vmctx: *mut VMContext,
    dst_memory: u32,
    src_memory: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: the caller passes the calling instance's VMContext (both
    // lookups end before the copy).
    let (src_base, dst_base) = unsafe {
        (
            memory_range(vmctx, src_memory, src, len),
            memory_range(vmctx, dst_memory, dst, len),
        )
    };
    let (src_base, dst_base) = (src_base.map_err(trap)?, dst_base.map_err(trap)?);
    let len = len as usize;
    let from = src_base.wrapping_add(src as usize);
    let to = dst_base.wrapping_add(dst as usize);
    // Chunk by chunk, in the direction that reads every byte of an
    // overlapping source before a chunk overwrites it: forwards when the
    // destination is below the source (a chunk writes only below what later
    // chunks read), backwards when it is above. Ranges in two memories
    // never overlap; either direction does.
    let backwards = (to as usize) > (from as usize);
    let each = |at: usize, n: usize| {
        // SAFETY: both ranges are inside accessible memory (checked
        // above; they stay so, see the notes on chunks) and this chunk
        // is part of them; `copy` allows the chunk's two ranges to
        // overlap.
        unsafe { std::ptr::copy(from.add(at), to.add(at), n) };
        Ok(())
    };
    // SAFETY: forwarded; no reference into the store is live.
    unsafe { for_each_chunk(vmctx, len, MEMORY_CHUNK, backwards, each) }
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn memory_init_impl(
    vmctx: *mut VMContext,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), UnwindReason> {
    let (from, to) = {
        // SAFETY: the caller passes the calling instance's VMContext; the
        // references end with this block.
        let (store, instance) = unsafe { context(vmctx) };
        let m = *instance
            .memories
            .get(memory as usize)
            .ok_or_else(|| trap(TrapKind::MemoryOutOfBounds))?;
        memory_init_range(store, instance, m, data, dst, src, len).map_err(trap)?
    };
    let each = |at: usize, n: usize| {
        // SAFETY: `memory_init_range` checked both ranges, which stay
        // valid (see its docs); the segment is never inside a linear
        // memory.
        unsafe { std::ptr::copy_nonoverlapping(from.add(at), to.add(at), n) };
        Ok(())
    };
    // SAFETY: forwarded; no reference into the store is live (the block
    // above ended them).
    unsafe { for_each_chunk(vmctx, len as usize, MEMORY_CHUNK, false, each) }
}

/// `data.drop`.
///
/// # Safety
///
/// Only compiled code calls it, passing the calling instance's VMContext
/// (see [`context`]), from inside `catch_traps`, with no Rust reference
/// into the store live.
unsafe extern "C" fn data_drop(vmctx: *mut VMContext, data: u32) {
    // SAFETY: called by compiled code with its own VMContext.
    let (_, instance) = unsafe { context(vmctx) };
    if let Some(dropped) = instance.dropped_data.get_mut(data as usize) {
        *dropped = true;
    }
}

// ---- tables -----------------------------------------------------------------

/// The store index of table `table` of the instance.
fn table_index(instance: &InstanceData, table: u32) -> Result<usize, TrapKind> {
    instance
        .tables
        .get(table as usize)
        .map(|&t| t as usize)
        .ok_or(TrapKind::TableOutOfBounds)
}

/// The store index of table `table` of the calling instance, if the `len`
/// elements at `start` lie inside it.
///
/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_range(
    vmctx: *mut VMContext,
    table: u32,
    start: u32,
    len: u32,
) -> Result<usize, TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let t = table_index(instance, table)?;
    let size = store
        .tables
        .get(t)
        .ok_or(TrapKind::TableOutOfBounds)?
        .table
        .size();
    if !in_bounds(start, len, size.into()) {
        return Err(TrapKind::TableOutOfBounds);
    }
    Ok(t)
}

/// Table `t` (a store index) of the calling instance's store.
///
/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]);
/// the reference must be gone before the next [`epoch_point`].
unsafe fn store_table<'a>(vmctx: *mut VMContext, t: usize) -> Result<&'a mut StoreTable, TrapKind> {
    // SAFETY: forwarded.
    let (store, _) = unsafe { context(vmctx) };
    store.tables.get_mut(t).ok_or(TrapKind::TableOutOfBounds)
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_get_impl(
    vmctx: *mut VMContext,
    table: u32,
    index: u32,
) -> Result<ValRaw, TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let t = table_index(instance, table)?;
    store
        .tables
        .get(t)
        .and_then(|t| t.table.get(index))
        .ok_or(TrapKind::TableOutOfBounds)
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_set_impl(
    vmctx: *mut VMContext,
    table: u32,
    index: u32,
    value: ValRaw,
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let t = table_index(instance, table)?;
    store
        .tables
        .get_mut(t)
        .ok_or(TrapKind::TableOutOfBounds)?
        .table
        .set(index, value)
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_grow_impl(
    vmctx: *mut VMContext,
    table: u32,
    init: ValRaw,
    delta: u32,
) -> Result<u32, UnwindReason> {
    let (t, old) = {
        // SAFETY: the caller passes the calling instance's VMContext; the
        // references end with this block.
        let (store, instance) = unsafe { context(vmctx) };
        let Some(t) = table_index(instance, table)
            .ok()
            .filter(|&t| t < store.tables.len())
        else {
            return Ok(u32::MAX);
        };
        let st = &mut store.tables[t];
        let Some(old) = st.table.begin_grow(delta) else {
            return Ok(u32::MAX);
        };
        // Reserving may have moved the buffer (the size is still the old).
        st.sync_definition();
        (t, old)
    };
    // The new elements are written in steps into reserved room; the size
    // changes with the last step (see `table.rs`).
    loop {
        // SAFETY: forwarded; the reference ends with this statement.
        let done = match unsafe { store_table(vmctx, t) } {
            Ok(st) => {
                let done = st.table.continue_grow(init, TABLE_CHUNK);
                if done {
                    st.sync_definition();
                }
                done
            }
            Err(_) => true,
        };
        if done {
            return Ok(old);
        }
        // SAFETY: forwarded; no reference into the store is live.
        if let Err(reason) = unsafe { epoch_point(vmctx) } {
            // SAFETY: forwarded; the reference ends with this statement.
            if let Ok(st) = unsafe { store_table(vmctx, t) } {
                st.table.abort_grow();
            }
            return Err(reason);
        }
    }
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_fill_impl(
    vmctx: *mut VMContext,
    table: u32,
    dst: u32,
    value: ValRaw,
    len: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let t = unsafe { table_range(vmctx, table, dst, len) }.map_err(trap)?;
    let each = |at: u32, n: u32| {
        // SAFETY: forwarded; the reference ends with this statement.
        // The chunk is in bounds (checked above; tables never shrink).
        unsafe { store_table(vmctx, t) }
            .and_then(|st| st.table.fill(dst + at, value, n))
            .map_err(trap)
    };
    // SAFETY: forwarded; no reference into the store is live.
    unsafe { for_each_chunk(vmctx, len, TABLE_CHUNK, false, each) }
}

/// Copies `len` elements from table `s` at `src` to table `d` at `dst`
/// (store indices; the same table or two).
fn copy_table_elements(
    store: &mut StoreOpaque,
    d: usize,
    s: usize,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), TrapKind> {
    if d >= store.tables.len() || s >= store.tables.len() {
        return Err(TrapKind::TableOutOfBounds);
    }
    if d == s {
        return store.tables[d].table.copy_within(dst, src, len);
    }
    // Two distinct tables: split the vector to borrow both.
    let (dst_t, src_t) = if d < s {
        let (low, high) = store.tables.split_at_mut(s);
        (&mut low[d], &high[0])
    } else {
        let (low, high) = store.tables.split_at_mut(d);
        (&mut high[0], &low[s])
    };
    dst_t.table.copy_from(&src_t.table, dst, src, len)
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_copy_impl(
    vmctx: *mut VMContext,
    dst_table: u32,
    src_table: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: the caller passes the calling instance's VMContext (both
    // lookups end before the copy).
    let (s, d) = unsafe {
        (
            table_range(vmctx, src_table, src, len),
            table_range(vmctx, dst_table, dst, len),
        )
    };
    let (s, d) = (s.map_err(trap)?, d.map_err(trap)?);
    // In the direction that reads every overlapping element before it is
    // overwritten (as for `memory.copy`): backwards only within one table
    // with the destination above the source.
    let backwards = s == d && dst > src;
    let each = |at: u32, n: u32| {
        // SAFETY: forwarded; the reference ends with this chunk.
        let (store, _) = unsafe { context(vmctx) };
        // In bounds: checked above, and tables never shrink.
        copy_table_elements(store, d, s, dst + at, src + at, n).map_err(trap)
    };
    // SAFETY: forwarded; no reference into the store is live.
    unsafe { for_each_chunk(vmctx, len, TABLE_CHUNK, backwards, each) }
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn table_init_impl(
    vmctx: *mut VMContext,
    table: u32,
    elem: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), UnwindReason> {
    // The segment's items, checked once: they live in the instance's
    // module, which the store keeps alive, and stay valid even if the
    // callback drops the segment (`elem.drop` only marks it).
    let (t, items) = {
        // SAFETY: the caller passes the calling instance's VMContext; the
        // references end with this block.
        let (store, instance) = unsafe { context(vmctx) };
        let items = elem_items(instance, elem);
        let src_end = u64::from(src) + u64::from(len);
        if src_end > items.len() as u64 {
            return Err(trap(TrapKind::TableOutOfBounds));
        }
        let t = table_index(instance, table).map_err(trap)?;
        let size = store.tables.get(t).map_or(0, |st| st.table.size());
        if !in_bounds(dst, len, size.into()) {
            return Err(trap(TrapKind::TableOutOfBounds));
        }
        let items: *const [ConstExpr] = &items[src as usize..src_end as usize];
        (t as u32, items)
    };
    let each = |at: u32, n: u32| {
        // SAFETY: forwarded; the references end with this chunk.
        let (store, instance) = unsafe { context(vmctx) };
        // SAFETY: the items live in the module (see above).
        let items = unsafe { &*items };
        let chunk = &items[at as usize..(at + n) as usize];
        write_table_items(store, instance, t, dst + at, chunk).map_err(trap)
    };
    // SAFETY: forwarded; no reference into the store is live (the block
    // above ended them).
    unsafe { for_each_chunk(vmctx, len, TABLE_CHUNK, false, each) }
}

/// `elem.drop`.
///
/// # Safety
///
/// Only compiled code calls it, passing the calling instance's VMContext
/// (see [`context`]), from inside `catch_traps`, with no Rust reference
/// into the store live.
unsafe extern "C" fn elem_drop(vmctx: *mut VMContext, elem: u32) {
    // SAFETY: called by compiled code with its own VMContext.
    let (_, instance) = unsafe { context(vmctx) };
    if let Some(dropped) = instance.dropped_elems.get_mut(elem as usize) {
        *dropped = true;
    }
}

// ---- entry points -----------------------------------------------------------

libcall_shims! {
    /// `memory.fill`.
    fn memory_fill(memory: u32, dst: u32, byte: u32, len: u32) = memory_fill_impl, value_or_unwind;
    /// `memory.copy`.
    fn memory_copy(dst_memory: u32, src_memory: u32, dst: u32, src: u32, len: u32)
        = memory_copy_impl, value_or_unwind;
    /// `memory.init`.
    fn memory_init_libcall(memory: u32, data: u32, dst: u32, src: u32, len: u32)
        = memory_init_impl, value_or_unwind;
    /// `table.get`.
    fn table_get(table: u32, index: u32) -> ValRaw = table_get_impl, value_or_trap;
    /// `table.set`.
    fn table_set(table: u32, index: u32, value: ValRaw) = table_set_impl, value_or_trap;
    /// `table.grow`: the old size, or `u32::MAX` (-1).
    fn table_grow(table: u32, init: ValRaw, delta: u32) -> u32 = table_grow_impl, value_or_unwind;
    /// `table.fill`.
    fn table_fill(table: u32, dst: u32, value: ValRaw, len: u32) = table_fill_impl, value_or_unwind;
    /// `table.copy`.
    fn table_copy(dst_table: u32, src_table: u32, dst: u32, src: u32, len: u32)
        = table_copy_impl, value_or_unwind;
    /// `table.init`.
    fn table_init_libcall(table: u32, elem: u32, dst: u32, src: u32, len: u32)
        = table_init_impl, value_or_unwind;
}

// ---- epochs and host calls --------------------------------------------------

/// The engine's epoch reached the store's deadline: run the store's epoch
/// deadline callback if it has one (which may suspend the green thread, set
/// a new deadline, or end the call with a trap), else move the deadline one
/// epoch ahead and continue.
///
/// # Safety
///
/// Only compiled code calls it, passing the calling instance's VMContext
/// (see [`context`]), from inside `catch_traps`, with no Rust reference
/// into the store live.
unsafe extern "C" fn epoch_deadline_reached(vmctx: *mut VMContext) {
    // SAFETY: called by compiled code with its own VMContext.
    let result = unsafe { epoch_deadline_impl(vmctx) };
    if let Err(reason) = result {
        // SAFETY: entered from wasm inside `catch_traps`; nothing is left to
        // drop here (`reason` moves into `raise`).
        unsafe { raise(reason) }
    }
}

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn epoch_deadline_impl(vmctx: *mut VMContext) -> Result<(), UnwindReason> {
    // SAFETY: the header fields were written at instantiation.
    let store = unsafe { header::<StoreOpaque>(vmctx, VMOffsets::STORE) };
    let Some(store) = NonNull::new(store) else {
        return Ok(());
    };
    // SAFETY: as above; the store is live (non-null, the caller's promise)
    // and its fields are read through the raw pointer, with no reference.
    let (caller, shim) = unsafe { (caller_index(vmctx), (*store.as_ptr()).epoch_shim) };
    match shim {
        // SAFETY: the shim was installed for the store's `T`; wasm is running
        // on the store's behalf so no Rust reference to it is in use.
        Some(shim) => unsafe { shim(store, caller) },
        None => {
            // SAFETY: as above; this is the only reference while it lives.
            unsafe { (*store.as_ptr()).set_epoch_deadline(1) };
            Ok(())
        }
    }
}

/// Runs a host function for wasm: `values` holds `len` slots, the
/// arguments on entry and the results on return.
///
/// # Safety
///
/// Only compiled code calls it (through a host trampoline), with the host
/// function's context, the calling instance's VMContext and `values` valid
/// for `len` slots, from inside `catch_traps`.
unsafe extern "C" fn host_call(
    host_ctx: *mut VMHostFuncContext,
    caller_vmctx: *mut VMContext,
    values: *mut ValRaw,
    len: u32,
) {
    // SAFETY: compiled code passes the host function's context and its own
    // VMContext; see `host_call_impl`.
    let result = unsafe { host_call_impl(host_ctx, caller_vmctx, values, len) };
    if let Err(reason) = result {
        // SAFETY: entered from wasm inside `catch_traps`; nothing is left to
        // drop here (`reason` moves into `raise`).
        unsafe { raise(reason) }
    }
}

/// # Safety
///
/// `host_ctx` must be a host function's context and `caller_vmctx` the
/// calling instance's VMContext, with `values` valid for `len` slots.
unsafe fn host_call_impl(
    host_ctx: *mut VMHostFuncContext,
    caller_vmctx: *mut VMContext,
    values: *mut ValRaw,
    len: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: the header fields were written at instantiation.
    let store = unsafe { header::<StoreOpaque>(caller_vmctx, VMOffsets::STORE) };
    let store = NonNull::new(store)
        .ok_or_else(|| UnwindReason::Trap(crate::trap::Trap::host("host call without a store")))?;
    // SAFETY: as above; the store is live (non-null, the caller's promise)
    // and its fields are read through the raw pointer, with no reference;
    // `host_ctx` is the called host function's context.
    let (caller, shim, index) = unsafe {
        debug_assert_eq!((*host_ctx).magic, VMHostFuncContext::MAGIC);
        (
            caller_index(caller_vmctx),
            (*host_ctx).shim,
            (*host_ctx).host_func,
        )
    };
    // SAFETY: `shim` was installed for the store's `T`; wasm is running on
    // the store's behalf so no Rust reference to it is in use.
    unsafe { shim(store, index, Some(caller), values, len as usize) }
}
