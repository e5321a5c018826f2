//! Instances: instantiation (WebAssembly 2.0 semantics), the per-instance
//! runtime state, and export lookup.
//!
//! # Instantiation, step by step
//!
//! 1. Check the imports: one per module import, from this store, of a
//!    matching type (function types equal, table and memory limits
//!    subtyping on their *current* sizes, global types equal). Any mismatch
//!    is an [`Error::Link`] naming `module::name`.
//! 2. Allocate everything that can fail for lack of resources — defined
//!    memories, defined tables, the VMContext — before the store is touched,
//!    so a resource error leaves no trace. A defined memory or table whose
//!    minimum is above the engine's or the store's limit
//!    ([`StoreLimits`](crate::store::StoreLimits)) is an
//!    [`Error::Resource`] naming that limit. All three come from the engine's
//!    [`pool`]s and count against its `PoolingConfig` limits;
//!    in steady state this makes no system call.
//! 3. Commit to the store: memories, tables and globals get store entries
//!    whose definitions live inline in the VMContext; the VMContext header,
//!    imports and every function's `VMFuncRef` are written; defined globals
//!    are initialised from their constant expressions, in order.
//! 4. Active element segments, in order (`table.init` + `elem.drop`), then
//!    active data segments (`memory.init` + `data.drop`); declared element
//!    segments are dropped. An out-of-bounds segment traps; what earlier
//!    segments wrote stays written (2.0 semantics). When every active data
//!    segment has a constant offset inside a defined memory's initial size,
//!    the module's prepared `memory_image` is copied
//!    instead (the same result on the zeroed memories the pools hand out).
//! 5. The start function, if any.
//!
//! From step 3 on the instance belongs to the store even if a later step
//! traps: its functions may already be referenced from imported tables. Only
//! a successful instantiation returns an [`Instance`] handle.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::externals::{Extern, ExternType, Global, Memory, Table};
use crate::func::{call_raw, func_type_id, Func, FuncKind};
use crate::memory::LinearMemory;
use crate::memory_image::MemoryImages;
use crate::module::Module;
use crate::module_info::{ConstExpr, DataMode, ElemMode, ExportKind, ImportKind, ModuleInfo};
use crate::pool::{self, Pools, Resource};
use crate::store::{
    AsContext, AsContextMut, RawBox, StoreGlobal, StoreId, StoreInner, StoreOpaque,
};
use crate::store_blocks::StoreArena;
use crate::table::TableStorage;
use crate::trap::{Trap, TrapKind};
use crate::typed_func::{TypedFunc, WasmParams, WasmResults};
use crate::vmcontext::{
    VMContext, VMFuncRef, VMFunctionImport, VMGlobalDefinition, VMMemoryDefinition, VMOffsets,
    VMTableDefinition, ValRaw,
};
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

/// An instantiated module in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    store: StoreId,
    index: u32,
}

impl Instance {
    /// Instantiates `module` with `imports` given in the order of the
    /// module's imports.
    pub fn new<T>(
        store: &mut impl AsContextMut<Data = T>,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        instantiate(store.store_inner_mut(), module, imports)
    }

    pub(crate) fn from_index(store: StoreId, index: u32) -> Instance {
        Instance { store, index }
    }

    /// The instance's data, if it belongs to `store`.
    fn data<'a>(&self, store: &'a StoreOpaque) -> Option<&'a InstanceData> {
        store.check(self.store, "").ok()?;
        store.instances.get(self.index as usize).map(|i| &**i)
    }

    /// The module this instance was created from (`None` for a handle of
    /// another store).
    pub fn module(&self, store: &impl AsContext) -> Option<Module> {
        Some(self.data(&store.store_inner().opaque)?.module.clone())
    }

    /// The export `name`, if there is one.
    pub fn get_export(&self, store: &impl AsContext, name: &str) -> Option<Extern> {
        let data = self.data(&store.store_inner().opaque)?;
        let kind = *data.module.info().export_map.get(name)?;
        Some(data.export(kind))
    }

    pub fn get_func(&self, store: &impl AsContext, name: &str) -> Option<Func> {
        match self.get_export(store, name)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }

    pub fn get_memory(&self, store: &impl AsContext, name: &str) -> Option<Memory> {
        match self.get_export(store, name)? {
            Extern::Memory(m) => Some(m),
            _ => None,
        }
    }

    pub fn get_table(&self, store: &impl AsContext, name: &str) -> Option<Table> {
        match self.get_export(store, name)? {
            Extern::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn get_global(&self, store: &impl AsContext, name: &str) -> Option<Global> {
        match self.get_export(store, name)? {
            Extern::Global(g) => Some(g),
            _ => None,
        }
    }

    /// The exported function `name` with static types, checked once here.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        store: &impl AsContext,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        let func = match self.get_export(store, name) {
            Some(Extern::Func(f)) => f,
            Some(other) => {
                return Err(Error::Export {
                    name: name.into(),
                    message: format!("is a {}, not a function", other.kind_name()),
                })
            }
            None => {
                return Err(Error::Export {
                    name: name.into(),
                    message: "the instance has no export by this name".into(),
                })
            }
        };
        func.typed(store).map_err(|e| Error::Export {
            name: name.into(),
            message: e.to_string(),
        })
    }

    /// Every export, in the module's order.
    pub fn exports(&self, store: &impl AsContext) -> Vec<(String, Extern)> {
        let Some(data) = self.data(&store.store_inner().opaque) else {
            return Vec::new();
        };
        data.module
            .info()
            .exports
            .iter()
            .map(|(name, kind)| (name.clone(), data.export(*kind)))
            .collect()
    }
}

/// A VMContext allocation: zeroed, 16-byte aligned, counted against the
/// engine's `PoolingConfig::max_instances`, and carved from the store's
/// arena if it fits (see [`crate::store_blocks`]), else taken from (and
/// given back to) the thread's cache of VMContext blocks (see
/// [`pool`](crate::pool)).
pub(crate) struct VMContextAlloc {
    ptr: NonNull<u8>,
    size: usize,
    /// The cache's layout; `None` for a block in the store's arena.
    layout: Option<Layout>,
    /// The pools this instance is counted in. They outlive it: see the
    /// pool's module docs (step 5).
    pools: NonNull<Pools>,
}

impl VMContextAlloc {
    /// A zeroed VMContext of `size` bytes for an instance of the store
    /// that owns `arena`.
    ///
    /// # Safety
    ///
    /// The allocation must be owned by that store (dropped with its state,
    /// before the arena's memory is freed).
    pub(crate) unsafe fn new(
        size: usize,
        pools: &Arc<Pools>,
        arena: &StoreArena,
    ) -> Result<VMContextAlloc> {
        let layout = pool::vmctx_layout(size)
            .ok_or_else(|| Error::Resource(format!("a VMContext of {size} bytes is too large")))?;
        pools.acquire(Resource::Instances)?;
        let exact = Layout::from_size_align(size.max(1), layout.align()).ok();
        let (ptr, layout) = match exact.and_then(|exact| arena.alloc(exact)) {
            Some(ptr) => {
                // SAFETY: fresh room for `size` bytes in the arena.
                unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, size) };
                (ptr, None)
            }
            None => match pool::alloc_vmctx(layout) {
                Some(ptr) => (ptr, Some(layout)),
                None => {
                    pools.release(Resource::Instances);
                    return Err(Error::Resource(format!(
                        "cannot allocate a VMContext of {size} bytes"
                    )));
                }
            },
        };
        Ok(VMContextAlloc {
            ptr,
            size,
            layout,
            pools: NonNull::from(&**pools),
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

impl Drop for VMContextAlloc {
    fn drop(&mut self) {
        // SAFETY: a heap block was allocated by `alloc_vmctx` with this
        // layout and is given back only here (an arena block goes with its
        // store); the pools outlive their instances.
        unsafe {
            if let Some(layout) = self.layout {
                pool::free_vmctx(self.ptr, layout);
            }
            self.pools.as_ref().release(Resource::Instances);
        }
    }
}

// SAFETY: plain owned memory, and a pointer to the `Sync` pools.
unsafe impl Send for VMContextAlloc {}

/// The runtime state of one instance (what libcalls reach through the
/// VMContext header's `INSTANCE_INDEX` field and the store's list).
pub(crate) struct InstanceData {
    /// Index in the store's instance list.
    pub(crate) index: u32,
    store: StoreId,
    module: Module,
    vmctx: VMContextAlloc,
    /// What each imported function resolved to (canonical handles).
    imported_funcs: Box<[Func]>,
    /// Store indices of the memories, tables and globals, imported first.
    pub(crate) memories: Box<[u32]>,
    pub(crate) tables: Box<[u32]>,
    pub(crate) globals: Box<[u32]>,
    /// Dropped element and data segments (`elem.drop`, `data.drop`, and
    /// active segments once applied).
    pub(crate) dropped_elems: Box<[bool]>,
    pub(crate) dropped_data: Box<[bool]>,
}

impl InstanceData {
    pub(crate) fn module(&self) -> &Module {
        &self.module
    }

    pub(crate) fn vmctx(&self) -> *mut VMContext {
        self.vmctx.as_ptr().cast()
    }

    pub(crate) fn vmctx_addr(&self) -> usize {
        self.vmctx.as_ptr() as usize
    }

    /// The canonical handle of function `index` of the module.
    pub(crate) fn func(&self, index: u32) -> Func {
        match self.imported_funcs.get(index as usize) {
            Some(&f) => f,
            None => Func::wasm(self.store, self.index, index),
        }
    }

    /// This instance's `VMFuncRef` of function `index`.
    pub(crate) fn func_ref(&self, index: u32) -> *const VMFuncRef {
        let offset = self.module.offsets().func_ref(index);
        self.vmctx.as_ptr().wrapping_add(offset as usize).cast()
    }

    /// The function whose `VMFuncRef` in this VMContext is at `addr`.
    pub(crate) fn func_index_of_ref(&self, addr: usize) -> Option<u32> {
        let n = self.module.info().functions.len();
        if n == 0 {
            return None;
        }
        let begin = self.vmctx_addr() + self.module.offsets().func_ref(0) as usize;
        let rel = addr.checked_sub(begin)?;
        let size = VMFuncRef::SIZE as usize;
        if rel % size != 0 || rel / size >= n {
            return None;
        }
        Some((rel / size) as u32)
    }

    fn export(&self, kind: ExportKind) -> Extern {
        match kind {
            ExportKind::Func(i) => Extern::Func(self.func(i)),
            ExportKind::Memory(i) => {
                Extern::Memory(Memory::from_index(self.store, self.memories[i as usize]))
            }
            ExportKind::Table(i) => {
                Extern::Table(Table::from_index(self.store, self.tables[i as usize]))
            }
            ExportKind::Global(i) => {
                Extern::Global(Global::from_index(self.store, self.globals[i as usize]))
            }
        }
    }

    /// Writes `value` at `offset` in the VMContext.
    ///
    /// # Safety
    ///
    /// `offset` must be a field of type `V` in this module's layout.
    unsafe fn write<V>(&self, offset: u32, value: V) {
        debug_assert!(offset as usize + std::mem::size_of::<V>() <= self.vmctx.size());
        // SAFETY: in bounds and aligned per the caller's promise.
        unsafe {
            self.vmctx
                .as_ptr()
                .add(offset as usize)
                .cast::<V>()
                .write(value)
        }
    }

    fn field_ptr<V>(&self, offset: u32) -> NonNull<V> {
        // SAFETY: a VMContext pointer plus an offset inside it is non-null.
        unsafe { NonNull::new_unchecked(self.vmctx.as_ptr().wrapping_add(offset as usize).cast()) }
    }
}

/// Evaluates a constant expression in `instance`.
pub(crate) fn eval_const(
    globals: &[StoreGlobal],
    instance: &InstanceData,
    expr: &ConstExpr,
) -> ValRaw {
    match *expr {
        ConstExpr::I32(v) => u64::from(v as u32),
        ConstExpr::I64(v) => v as u64,
        ConstExpr::F32(bits) => u64::from(bits),
        ConstExpr::F64(bits) => bits,
        ConstExpr::RefNull(_) => 0,
        ConstExpr::RefFunc(index) => instance.func_ref(index) as ValRaw,
        ConstExpr::GlobalGet(index) => instance
            .globals
            .get(index as usize)
            .and_then(|&g| globals.get(g as usize))
            .map_or(0, StoreGlobal::get_raw),
    }
}

/// The items of element segment `elem` of `instance`: none once dropped
/// (or if there is no such segment).
pub(crate) fn elem_items(instance: &InstanceData, elem: u32) -> &[ConstExpr] {
    let dropped = instance
        .dropped_elems
        .get(elem as usize)
        .copied()
        .unwrap_or(true);
    match instance.module.info().elems.get(elem as usize) {
        Some(seg) if !dropped => &seg.items,
        _ => &[],
    }
}

/// The bytes of data segment `data` of `instance`: none once dropped (or
/// if there is no such segment).
pub(crate) fn data_bytes(instance: &InstanceData, data: u32) -> &[u8] {
    let dropped = instance
        .dropped_data
        .get(data as usize)
        .copied()
        .unwrap_or(true);
    if dropped {
        return &[];
    }
    let info = instance.module.info();
    info.data
        .get(data as usize)
        .and_then(|seg| info.data_bytes.get(seg.range.clone()))
        .unwrap_or(&[])
}

/// Writes `items`, evaluated in `instance`, to table `table` (a store index)
/// at `dst`; a bounds trap, before any write, if they do not fit.
pub(crate) fn write_table_items(
    store: &mut StoreOpaque,
    instance: &InstanceData,
    table: u32,
    dst: u32,
    items: &[ConstExpr],
) -> Result<(), TrapKind> {
    let StoreOpaque {
        tables, globals, ..
    } = store;
    let table = tables
        .get_mut(table as usize)
        .ok_or(TrapKind::TableOutOfBounds)?;
    let len = u32::try_from(items.len()).map_err(|_| TrapKind::TableOutOfBounds)?;
    let slots = table.table.slice_mut(dst, len)?;
    for (slot, item) in slots.iter_mut().zip(items) {
        *slot = eval_const(globals, instance, item);
    }
    Ok(())
}

/// `table.init`: copies `len` items of element segment `elem` from `src`
/// to table `table` (a store index) at `dst`, after checking both ranges.
pub(crate) fn table_init(
    store: &mut StoreOpaque,
    instance: &InstanceData,
    table: u32,
    elem: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), TrapKind> {
    let items = elem_items(instance, elem);
    let src_end = u64::from(src) + u64::from(len);
    if src_end > items.len() as u64 {
        return Err(TrapKind::TableOutOfBounds);
    }
    write_table_items(
        store,
        instance,
        table,
        dst,
        &items[src as usize..src_end as usize],
    )
}

/// The bounds check of `memory.init`: the source, `len` bytes of data
/// segment `data` at `src`, and the destination, `len` bytes of memory
/// `memory` (a store index) at `dst`, as raw pointers, if both ranges are
/// in bounds.
///
/// The source lives in the instance's module and the destination in a
/// linear memory, whose base never moves and whose size never shrinks:
/// both pointers stay valid, and the ranges in bounds, as long as the store
/// lives, even across an epoch callback (which may `data.drop` the segment
/// or grow the memory, neither of which frees or moves anything).
pub(crate) fn memory_init_range(
    store: &StoreOpaque,
    instance: &InstanceData,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(*const u8, *mut u8), TrapKind> {
    let bytes = data_bytes(instance, data);
    let src_end = u64::from(src) + u64::from(len);
    if src_end > bytes.len() as u64 {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    let memory = store
        .memories
        .get(memory as usize)
        .ok_or(TrapKind::MemoryOutOfBounds)?;
    let dst_end = u64::from(dst) + u64::from(len);
    if dst_end > memory.memory.byte_size() as u64 {
        return Err(TrapKind::MemoryOutOfBounds);
    }
    // `src` and `dst` are in bounds of the segment and of the memory.
    Ok((
        bytes[src as usize..].as_ptr(),
        memory.memory.base().wrapping_add(dst as usize),
    ))
}

/// `memory.init`: copies `len` bytes of data segment `data` from `src` to
/// memory `memory` (a store index) at `dst`, after checking both ranges.
pub(crate) fn memory_init(
    store: &StoreOpaque,
    instance: &InstanceData,
    memory: u32,
    data: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> Result<(), TrapKind> {
    let (from, to) = memory_init_range(store, instance, memory, data, dst, src, len)?;
    // SAFETY: `memory_init_range` checked that `len` bytes at `from` lie in
    // the segment and at `to` in the accessible part of the memory; the
    // segment lives in the module, never inside a linear memory.
    unsafe { std::ptr::copy_nonoverlapping(from, to, len as usize) };
    Ok(())
}

/// What one import resolved to, per kind, in import order.
struct ResolvedImports {
    funcs: Vec<Func>,
    tables: Vec<u32>,
    memories: Vec<u32>,
    globals: Vec<u32>,
}

/// Instantiates `module` in `inner` with positional `imports`.
pub(crate) fn instantiate<T>(
    inner: &mut StoreInner<T>,
    module: &Module,
    imports: &[Extern],
) -> Result<Instance> {
    let store = &mut inner.opaque;
    if !Engine::same(module.engine(), store.engine()) {
        return Err(Error::Signature(
            "the module was compiled by another engine than the store's".into(),
        ));
    }
    let info = module.info();
    let offsets = module.offsets();
    let resolved = check_imports(store, info, imports)?;

    // Step 2: everything that can fail for lack of resources, from the
    // engine's pools (given back by their destructors if a later one fails).
    // Their maxima are capped by the engine's configuration and the store's
    // limits; a minimum above either is an error naming it.
    let config = store.engine().config();
    let pools = store.engine().pools();
    let limits = store.resource_limits();
    let defined_memories = take_each(
        &info.memories[info.num_imported_memories as usize..],
        |ty| LinearMemory::from_pool(ty, config, limits.max_memory_pages, pools),
    )?;
    let defined_tables = take_each(&info.tables[info.num_imported_tables as usize..], |ty| {
        TableStorage::from_pool(ty, 0, config, limits.max_table_elements, pools)
    })?;
    // SAFETY: the VMContext goes into the instance's record, which the
    // store owns (`push_instance` below), or is dropped on an error here.
    let vmctx = unsafe { VMContextAlloc::new(offsets.size() as usize, pools, &store.arena)? };

    // Step 3: commit.
    let index = store.instances.len() as u32;
    let mut instance = InstanceData {
        index,
        store: store.id(),
        module: module.clone(),
        vmctx,
        imported_funcs: resolved.funcs.into_boxed_slice(),
        memories: Box::new([]),
        tables: Box::new([]),
        globals: Box::new([]),
        dropped_elems: vec![false; info.elems.len()].into_boxed_slice(),
        dropped_data: vec![false; info.data.len()].into_boxed_slice(),
    };
    let mut memories = resolved.memories;
    memories.reserve_exact(defined_memories.len());
    for (i, memory) in defined_memories.into_iter().enumerate() {
        let def = instance.field_ptr::<VMMemoryDefinition>(offsets.defined_memory(i as u32));
        memories.push(store.push_memory(memory, Some(def)));
    }
    let mut tables = resolved.tables;
    tables.reserve_exact(defined_tables.len());
    for (i, table) in defined_tables.into_iter().enumerate() {
        let def = instance.field_ptr::<VMTableDefinition>(offsets.defined_table(i as u32));
        tables.push(store.push_table(table, Some(def)));
    }
    let mut globals = resolved.globals;
    globals.reserve_exact(info.num_defined_globals() as usize);
    for (i, ty) in info.globals[info.num_imported_globals as usize..]
        .iter()
        .enumerate()
    {
        let def = instance.field_ptr::<VMGlobalDefinition>(offsets.defined_global(i as u32));
        globals.push(store.push_global(*ty, Some(def), 0));
    }
    instance.memories = memories.into_boxed_slice();
    instance.tables = tables.into_boxed_slice();
    instance.globals = globals.into_boxed_slice();

    // SAFETY: the record is owned by the store (`push_instance` below).
    let instance = unsafe { RawBox::new_in(&store.arena, instance) };
    let store_ptr: *mut StoreOpaque = store;
    write_vmctx(store, store_ptr, &instance);
    // Defined globals, in order (each may read imported and earlier ones).
    for (i, init) in info.global_inits.iter().enumerate() {
        let global_index = info.num_imported_globals as usize + i;
        let value = eval_const(&store.globals, &instance, init);
        if let Some(&g) = instance.globals.get(global_index) {
            store.globals[g as usize].set_raw(value);
        }
    }
    store.register_module(module, index);
    let pushed = store.push_instance(instance);
    debug_assert_eq!(pushed, index);

    // Step 4: segments.
    initialize_segments(store, index, module).map_err(|kind| Error::Trap(Trap::new(kind)))?;

    // Step 5: start.
    if let Some(start) = info.start {
        let func = store.instance(index).func(start);
        call_raw(inner, func, &mut [0])?;
    }
    Ok(Instance {
        store: inner.opaque.id(),
        index,
    })
}

/// Takes one pooled resource for each of `types` (the module's defined
/// memories or tables), stopping at the first failure.
///
/// A plain loop out of line, where a `collect::<Result<Vec<_>>>()` inlined
/// into `instantiate` used about 900 bytes of stack in adapter frames: this
/// is the deepest point of a spawn on a green thread's stack, and every
/// byte above 4 KiB there costs a parked instance a second stack page.
#[inline(never)]
fn take_each<Ty, R>(types: &[Ty], take: impl Fn(&Ty) -> Result<R>) -> Result<Vec<R>> {
    let mut taken = Vec::with_capacity(types.len());
    for ty in types {
        taken.push(take(ty)?);
    }
    Ok(taken)
}

/// Writes, for each imported entity of one kind (`handles`: their indices
/// in the store), its definition pointer into the VMContext slot of its
/// import index.
///
/// # Safety
///
/// `slot(i)` must be the offset of a field of type `D` in `instance`'s
/// VMContext layout, for every import index `i` of `handles`.
unsafe fn write_imported<D>(
    instance: &InstanceData,
    handles: &[u32],
    slot: impl Fn(u32) -> u32,
    definition: impl Fn(u32) -> D,
) {
    for (i, &handle) in handles.iter().enumerate() {
        // SAFETY: per the contract, `slot(i)` holds a `D`.
        unsafe { instance.write(slot(i as u32), definition(handle)) };
    }
}

/// Fills the VMContext header, imports and function references.
fn write_vmctx(store: &StoreOpaque, store_ptr: *mut StoreOpaque, instance: &InstanceData) {
    let module = &instance.module;
    let info = module.info();
    let offsets = module.offsets();
    let code = module.code();
    let vmctx = instance.vmctx();
    // SAFETY: (for every `write` below) each offset comes from this module's
    // `VMOffsets` for a field of the written type, inside the allocation.
    unsafe {
        instance.write(VMOffsets::RUNTIME_LIMITS, store.limits());
        instance.write(
            VMOffsets::EPOCH_COUNTER,
            store.engine().epoch_counter() as *const _,
        );
        instance.write(VMOffsets::STORE, store_ptr);
        instance.write(VMOffsets::INSTANCE_INDEX, u64::from(instance.index));
    }
    for (i, &func) in instance.imported_funcs.iter().enumerate() {
        let i = i as u32;
        let ty = info.functions[i as usize];
        let func_ref = match func.kind() {
            FuncKind::Host(h) => {
                let ctx = std::ptr::addr_of!(store.host_funcs[h as usize].ctx);
                let wasm_call = code.host_trampoline(ty);
                VMFuncRef {
                    array_call: code.array_trampoline(ty),
                    wasm_call,
                    type_id: info.type_ids[ty as usize],
                    vmctx: ctx as *mut VMContext,
                }
            }
            // SAFETY: a wasm function's VMFuncRef lives in its instance's
            // VMContext, which the store keeps alive.
            FuncKind::Wasm { .. } => unsafe { *store.func_ref(func) },
        };
        // SAFETY: see above.
        unsafe {
            instance.write(
                offsets.imported_function(i),
                VMFunctionImport {
                    wasm_call: func_ref.wasm_call,
                    vmctx: func_ref.vmctx,
                },
            );
            instance.write(offsets.func_ref(i), func_ref);
        }
    }
    // SAFETY: (the three calls) each offset function is the layout's slot
    // for the imported table, memory or global of that index, which holds
    // a pointer to its definition, the type `definition()` returns.
    unsafe {
        write_imported(
            instance,
            &instance.tables[..info.num_imported_tables as usize],
            |i| offsets.imported_table(i),
            |t| store.tables[t as usize].definition(),
        );
        write_imported(
            instance,
            &instance.memories[..info.num_imported_memories as usize],
            |i| offsets.imported_memory(i),
            |m| store.memories[m as usize].definition(),
        );
        write_imported(
            instance,
            &instance.globals[..info.num_imported_globals as usize],
            |i| offsets.imported_global(i),
            |g| store.globals[g as usize].definition(),
        );
    }
    for index in info.num_imported_funcs..info.functions.len() as u32 {
        let ty = info.functions[index as usize];
        let func_ref = VMFuncRef {
            array_call: code.array_trampoline(ty),
            wasm_call: code.function(index - info.num_imported_funcs),
            type_id: info.type_ids[ty as usize],
            vmctx,
        };
        // SAFETY: see above.
        unsafe { instance.write(offsets.func_ref(index), func_ref) };
    }
}

/// Step 4 of instantiation: active and declared element segments, then
/// active data segments.
fn initialize_segments(
    store: &mut StoreOpaque,
    index: u32,
    module: &Module,
) -> Result<(), TrapKind> {
    let info = module.info();
    let instance_ptr: *mut InstanceData = store.instances[index as usize].as_ptr();
    // SAFETY: the instance is owned by the store through a RawBox (its
    // memory is separate from `*store`) and lives as long as the store;
    // nothing else refers to it during instantiation.
    let instance = unsafe { &mut *instance_ptr };
    for (i, seg) in info.elems.iter().enumerate() {
        match &seg.mode {
            ElemMode::Active { table, offset } => {
                let dst = eval_const(&store.globals, instance, offset) as u32;
                let table = instance.tables[*table as usize];
                let len = seg.items.len() as u32;
                table_init(store, instance, table, i as u32, dst, 0, len)?;
                instance.dropped_elems[i] = true;
            }
            ElemMode::Declared => instance.dropped_elems[i] = true,
            ElemMode::Passive => {}
        }
    }
    if let Some(images) = module.memory_images() {
        apply_memory_images(store, instance, info, images)?;
        return Ok(());
    }
    for (i, seg) in info.data.iter().enumerate() {
        if let DataMode::Active { memory, offset } = &seg.mode {
            let dst = eval_const(&store.globals, instance, offset) as u32;
            let memory = instance.memories[*memory as usize];
            let len = (seg.range.end - seg.range.start) as u32;
            memory_init(store, instance, memory, i as u32, dst, 0, len)?;
            instance.dropped_data[i] = true;
        }
    }
    Ok(())
}

/// The data-segment half of step 4 from prepared images: every active
/// segment targets a defined memory, at a constant offset, inside its
/// initial size (see [`crate::memory_image`]), and the memories are fresh
/// from the pool, so all zeros: copying each image's chunks gives what
/// applying the segments in order would.
fn apply_memory_images(
    store: &StoreOpaque,
    instance: &mut InstanceData,
    info: &ModuleInfo,
    images: &MemoryImages,
) -> Result<(), TrapKind> {
    let imported = info.num_imported_memories as usize;
    for defined in 0..info.num_defined_memories() as usize {
        let Some(image) = images.memory(defined) else {
            continue;
        };
        let memory = instance
            .memories
            .get(imported + defined)
            .and_then(|&m| store.memories.get(m as usize))
            .ok_or(TrapKind::MemoryOutOfBounds)?;
        let size = memory.memory.byte_size();
        for (offset, bytes) in image.chunks() {
            if offset.checked_add(bytes.len()).is_none_or(|end| end > size) {
                return Err(TrapKind::MemoryOutOfBounds);
            }
            // SAFETY: `offset..offset+len` is inside the accessible part of
            // the memory (checked above); the image lives in the module.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    memory.memory.base().add(offset),
                    bytes.len(),
                )
            };
        }
    }
    for (i, seg) in info.data.iter().enumerate() {
        if matches!(seg.mode, DataMode::Active { .. }) {
            instance.dropped_data[i] = true;
        }
    }
    Ok(())
}

/// Step 1: resolves and type-checks positional imports.
fn check_imports(
    store: &StoreOpaque,
    info: &ModuleInfo,
    imports: &[Extern],
) -> Result<ResolvedImports> {
    if imports.len() != info.imports.len() {
        let (module, name) = match info.imports.get(imports.len()) {
            Some(import) => (import.module.clone(), import.name.clone()),
            None => (String::new(), String::new()),
        };
        return Err(Error::Link {
            module,
            name,
            message: format!(
                "the module has {} imports but {} were provided",
                info.imports.len(),
                imports.len()
            ),
        });
    }
    let mut resolved = ResolvedImports {
        funcs: Vec::with_capacity(info.num_imported_funcs as usize),
        tables: Vec::with_capacity(info.num_imported_tables as usize),
        memories: Vec::with_capacity(info.num_imported_memories as usize),
        globals: Vec::with_capacity(info.num_imported_globals as usize),
    };
    for (import, item) in info.imports.iter().zip(imports) {
        let link_error = |message: String| Error::Link {
            module: import.module.clone(),
            name: import.name.clone(),
            message,
        };
        if item.store_id() != store.id() {
            return Err(link_error(
                "the provided item belongs to another store".into(),
            ));
        }
        let ok = match (&import.kind, item) {
            (ImportKind::Func(t), Extern::Func(f)) => {
                let ok = info.type_ids.get(*t as usize) == Some(&func_type_id(store, *f));
                resolved.funcs.push(*f);
                ok
            }
            (ImportKind::Table(want), Extern::Table(t)) => {
                let have = store.tables[t.index() as usize].table.current_type();
                resolved.tables.push(t.index());
                have.element == want.element
                    && limits_match(
                        have.minimum.into(),
                        have.maximum.map(Into::into),
                        want.minimum.into(),
                        want.maximum.map(Into::into),
                    )
            }
            (ImportKind::Memory(want), Extern::Memory(m)) => {
                let have = store.memories[m.index() as usize].memory.current_type();
                resolved.memories.push(m.index());
                limits_match(have.minimum, have.maximum, want.minimum, want.maximum)
            }
            (ImportKind::Global(want), Extern::Global(g)) => {
                resolved.globals.push(g.index());
                store.globals[g.index() as usize].ty == *want
            }
            _ => false,
        };
        if !ok {
            return Err(link_error(format!(
                "incompatible import type: the module expects {}, the import is {}",
                ExternType::of_import(info, &import.kind),
                ExternType::of_extern(store, item),
            )));
        }
    }
    Ok(resolved)
}

/// Import limits subtyping: `have` (current size, declared max) fits `want`.
fn limits_match(
    have_min: u64,
    have_max: Option<u64>,
    want_min: u64,
    want_max: Option<u64>,
) -> bool {
    have_min >= want_min
        && match want_max {
            None => true,
            Some(want_max) => matches!(have_max, Some(have_max) if have_max <= want_max),
        }
}
