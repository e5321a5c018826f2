//! The libcalls: runtime functions that compiled code calls for the
//! operators it does not inline. Their list and signatures are in
//! [`libcall`](crate::libcall).
//!
//! Every libcall receives the calling instance's VMContext and finds the
//! store (`VMOffsets::STORE`) and the instance (`VMOffsets::INSTANCE`)
//! through its header. The work is done by a plain Rust function that
//! returns `Result<_, TrapKind>`; the `extern "C"` wrapper returns its value
//! or, once that function has returned and dropped everything it owned,
//! raises the trap. Bulk operations check their whole range before writing
//! anything (2.0 semantics: no partial writes).

use crate::instance::{memory_init, table_init, InstanceData};
use crate::libcall::Libcall;
use crate::store::StoreOpaque;
use crate::trap::TrapKind;
use crate::trap_handling::{raise, raise_trap};
use crate::vmcontext::{VMContext, VMHostFuncContext, VMOffsets, ValRaw};
use std::ptr::NonNull;

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

/// The store and instance of a VMContext.
///
/// # Safety
///
/// `vmctx` must be the VMContext of a live instance whose store has no
/// Rust reference in use (wasm of that store is running). The two returned
/// references do not overlap: the instance is a separate heap block.
unsafe fn context<'a>(vmctx: *mut VMContext) -> (&'a mut StoreOpaque, &'a mut InstanceData) {
    let base = vmctx.cast::<u8>();
    // SAFETY: the header fields were written at instantiation with these
    // types and stay valid for the store's life (the caller's promise).
    unsafe {
        let store = base
            .add(VMOffsets::STORE as usize)
            .cast::<*mut StoreOpaque>()
            .read();
        let instance = base
            .add(VMOffsets::INSTANCE as usize)
            .cast::<*mut InstanceData>()
            .read();
        (&mut *store, &mut *instance)
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

// ---- memory -----------------------------------------------------------------

/// `memory.grow`: the old size in pages, or `u32::MAX` (-1).
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

/// # Safety
///
/// `vmctx` must be the VMContext of the calling instance (see [`context`]).
unsafe fn memory_fill_impl(
    vmctx: *mut VMContext,
    memory: u32,
    dst: u32,
    byte: u32,
    len: u32,
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let memory = instance
        .memories
        .get(memory as usize)
        .and_then(|&m| store.memories.get(m as usize))
        .ok_or(TrapKind::MemoryOutOfBounds)?;
    if !in_bounds(dst, len, memory.memory.byte_size() as u64) {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    // SAFETY: `dst..dst+len` is inside the accessible part (checked above).
    unsafe {
        std::ptr::write_bytes(
            memory.memory.base().add(dst as usize),
            byte as u8,
            len as usize,
        )
    };
    Ok(())
}

/// `memory.fill`.
unsafe extern "C" fn memory_fill(
    vmctx: *mut VMContext,
    memory: u32,
    dst: u32,
    byte: u32,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { memory_fill_impl(vmctx, memory, dst, byte, len) };
    // SAFETY: entered from wasm; `memory_fill_impl` dropped its state.
    unsafe { value_or_trap(result) }
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
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let lookup = |index: u32| {
        instance
            .memories
            .get(index as usize)
            .and_then(|&m| store.memories.get(m as usize))
            .ok_or(TrapKind::MemoryOutOfBounds)
    };
    let dst_mem = lookup(dst_memory)?;
    let src_mem = lookup(src_memory)?;
    if !in_bounds(src, len, src_mem.memory.byte_size() as u64)
        || !in_bounds(dst, len, dst_mem.memory.byte_size() as u64)
    {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    // SAFETY: both ranges are inside accessible memory (checked above);
    // `copy` allows them to overlap.
    unsafe {
        std::ptr::copy(
            src_mem.memory.base().add(src as usize),
            dst_mem.memory.base().add(dst as usize),
            len as usize,
        )
    };
    Ok(())
}

/// `memory.copy`.
unsafe extern "C" fn memory_copy(
    vmctx: *mut VMContext,
    dst_memory: u32,
    src_memory: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { memory_copy_impl(vmctx, dst_memory, src_memory, dst, src, len) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
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
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let m = *instance
        .memories
        .get(memory as usize)
        .ok_or(TrapKind::MemoryOutOfBounds)?;
    memory_init(store, instance, m, data, dst, src, len)
}

/// `memory.init`.
unsafe extern "C" fn memory_init_libcall(
    vmctx: *mut VMContext,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { memory_init_impl(vmctx, memory, data, dst, src, len) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
}

/// `data.drop`.
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

/// `table.get`.
unsafe extern "C" fn table_get(vmctx: *mut VMContext, table: u32, index: u32) -> ValRaw {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { table_get_impl(vmctx, table, index) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
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

/// `table.set`.
unsafe extern "C" fn table_set(vmctx: *mut VMContext, table: u32, index: u32, value: ValRaw) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { table_set_impl(vmctx, table, index, value) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
}

/// `table.grow`: the old size, or `u32::MAX` (-1).
unsafe extern "C" fn table_grow(
    vmctx: *mut VMContext,
    table: u32,
    init: ValRaw,
    delta: u32,
) -> u32 {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let Ok(t) = table_index(instance, table) else {
        return u32::MAX;
    };
    store
        .tables
        .get_mut(t)
        .and_then(|t| t.grow(delta, init))
        .unwrap_or(u32::MAX)
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
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let t = table_index(instance, table)?;
    store
        .tables
        .get_mut(t)
        .ok_or(TrapKind::TableOutOfBounds)?
        .table
        .fill(dst, value, len)
}

/// `table.fill`.
unsafe extern "C" fn table_fill(
    vmctx: *mut VMContext,
    table: u32,
    dst: u32,
    value: ValRaw,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { table_fill_impl(vmctx, table, dst, value, len) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
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
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let d = table_index(instance, dst_table)?;
    let s = table_index(instance, src_table)?;
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

/// `table.copy`.
unsafe extern "C" fn table_copy(
    vmctx: *mut VMContext,
    dst_table: u32,
    src_table: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { table_copy_impl(vmctx, dst_table, src_table, dst, src, len) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
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
) -> Result<(), TrapKind> {
    // SAFETY: the caller passes the calling instance's VMContext.
    let (store, instance) = unsafe { context(vmctx) };
    let t = table_index(instance, table)? as u32;
    table_init(store, instance, t, elem, dst, src, len)
}

/// `table.init`.
unsafe extern "C" fn table_init_libcall(
    vmctx: *mut VMContext,
    table: u32,
    elem: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    // SAFETY: compiled code passes its own VMContext.
    let result = unsafe { table_init_impl(vmctx, table, elem, dst, src, len) };
    // SAFETY: entered from wasm; the impl dropped its state.
    unsafe { value_or_trap(result) }
}

/// `elem.drop`.
unsafe extern "C" fn elem_drop(vmctx: *mut VMContext, elem: u32) {
    // SAFETY: called by compiled code with its own VMContext.
    let (_, instance) = unsafe { context(vmctx) };
    if let Some(dropped) = instance.dropped_elems.get_mut(elem as usize) {
        *dropped = true;
    }
}

// ---- epochs and host calls --------------------------------------------------

/// The engine's epoch reached the store's deadline: run the store's epoch
/// deadline callback if it has one (which may suspend the green thread, set
/// a new deadline, or end the call with a trap), else move the deadline one
/// epoch ahead and continue.
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
unsafe fn epoch_deadline_impl(
    vmctx: *mut VMContext,
) -> Result<(), crate::trap_handling::UnwindReason> {
    let base = vmctx.cast::<u8>();
    // SAFETY: the header fields were written at instantiation; reading the
    // store's fields through the raw pointer creates no reference.
    let (store, caller, shim) = unsafe {
        let store = base
            .add(VMOffsets::STORE as usize)
            .cast::<*mut StoreOpaque>()
            .read();
        let instance = base
            .add(VMOffsets::INSTANCE as usize)
            .cast::<*const InstanceData>()
            .read();
        (store, (*instance).index, (*store).epoch_shim)
    };
    let Some(store) = NonNull::new(store) else {
        return Ok(());
    };
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
) -> Result<(), crate::trap_handling::UnwindReason> {
    let base = caller_vmctx.cast::<u8>();
    // SAFETY: the header fields were written at instantiation; reading the
    // store's fields through the raw pointer creates no reference.
    let (store, caller, shim, index) = unsafe {
        let store = base
            .add(VMOffsets::STORE as usize)
            .cast::<*mut StoreOpaque>()
            .read();
        let instance = base
            .add(VMOffsets::INSTANCE as usize)
            .cast::<*const InstanceData>()
            .read();
        debug_assert_eq!((*host_ctx).magic, VMHostFuncContext::MAGIC);
        (
            store,
            (*instance).index,
            (*store).host_call,
            (*host_ctx).host_func,
        )
    };
    let store = NonNull::new(store).ok_or_else(|| {
        crate::trap_handling::UnwindReason::Trap(crate::trap::Trap::host(
            "host call without a store",
        ))
    })?;
    // SAFETY: `shim` was installed for the store's `T`; wasm is running on
    // the store's behalf so no Rust reference to it is in use.
    unsafe { shim(store, index, Some(caller), values, len as usize) }
}
