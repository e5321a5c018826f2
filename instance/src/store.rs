//! The Store: the owner of instances, memories, tables, globals and host
//! functions, and of the host's data `T`.
//!
//! # Ownership and lifetimes
//!
//! Everything created in a store lives until the store is dropped. Handles
//! ([`Func`], [`Memory`](crate::Memory), [`Table`](crate::Table),
//! [`Global`](crate::Global), [`Instance`](crate::Instance)) are plain
//! `(store id, index)` pairs, checked against the store they are used with.
//! Because nothing is freed early, compiled code may keep raw pointers from
//! one instance's VMContext into another's (imported functions, memories,
//! tables, globals, funcrefs in tables) without reference counting.
//!
//! Memories, tables and VMContexts defined by instances come from the
//! engine's [`pool`](crate::pool)s and point back at them without keeping
//! them alive; dropping a store gives them back (reset) before the store's
//! engine handle goes (`StoreOpaque`'s `Drop`).
//!
//! # Addresses compiled code sees
//!
//! The store's state lives in one heap block ([`StoreInner`]) whose address
//! never changes, owned through a raw pointer so that moving the `Store<T>`
//! handle does not invalidate pointers held by compiled code:
//!
//! - every VMContext header points at the store (`VMOffsets::STORE`, the
//!   [`StoreOpaque`] at the start of `StoreInner<T>`) and at the store's one
//!   [`VMRuntimeLimits`] (`VMOffsets::RUNTIME_LIMITS`);
//! - VMContexts, host-function contexts and host-created definitions are
//!   blocks of their own, also owned through raw pointers ([`RawBox`]): in
//!   the arena after `StoreInner` in the same heap block while it has room,
//!   on the heap after that (see the `store_blocks` module).
//!
//! # Epoch deadlines
//!
//! Compiled with `Config::epoch_interruption`, wasm calls the
//! `EpochDeadlineReached` libcall when the engine's epoch reaches the
//! deadline in [`VMRuntimeLimits`]. The libcall runs the store's epoch
//! deadline callback, if any, through `StoreOpaque::epoch_shim` (a function
//! pointer monomorphised for `T`, like the host-call shim): the callback may
//! suspend the green thread, sets the next deadline, or returns a trap that
//! the libcall raises. See [`Store::epoch_deadline_callback`].
//!
//! # Resource limits
//!
//! [`Store::limiter`] sets [`StoreLimits`]: the most pages any memory and
//! the most elements any table of this store may have, on top of the
//! engine's [`Config`](crate::Config) limits (the lower one wins). They let
//! one engine run instances under different contracts. Instantiation
//! refuses a defined memory or table whose minimum is above them
//! ([`Error::Resource`] naming the limit); `memory.grow` and `table.grow`
//! past them fail (return -1), as the spec allows.
//!
//! # Host calls
//!
//! Compiled code reaches a host function through the `HostCall` libcall,
//! which only knows the function's context and the caller's VMContext.
//! Each host function's context records, when it is created, a function
//! pointer monomorphised for the store's `T` (`VMHostFuncContext::shim`)
//! that turns the type-erased store pointer back into a `StoreInner<T>` and
//! runs the closure; see [`crate::func`].

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::func::{Caller, Func, FuncKind, HostFn, HostFuncRecord};
use crate::instance::InstanceData;
use crate::memory::LinearMemory;
use crate::module::Module;
pub(crate) use crate::store_blocks::RawBox;
use crate::store_blocks::{StoreArena, ARENA_ALIGN};
use crate::table::TableStorage;
use crate::trap::Trap;
use crate::trap_handling::UnwindReason;
use crate::types::{ExternRef, GlobalType, Val, ValType};
use crate::vmcontext::{
    VMFuncRef, VMGlobalDefinition, VMMemoryDefinition, VMRuntimeLimits, VMTableDefinition, ValRaw,
};
use smallvec::SmallVec;
use std::alloc::Layout;
use std::cell::Cell;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Identifies a store, so that handles from one store are refused by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StoreId(NonZeroU64);

impl StoreId {
    /// A fresh id. Threads take ids in blocks, so that creating stores on
    /// many threads does not contend on one counter.
    fn next() -> StoreId {
        const BLOCK: u64 = 1024;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let id = RANGE
            .try_with(|range| {
                let (mut next, mut end) = range.get();
                if next == end {
                    next = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
                    end = next + BLOCK;
                }
                range.set((next + 1, end));
                next
            })
            .unwrap_or_else(|_| NEXT.fetch_add(1, Ordering::Relaxed));
        // The counter starts at 1 and would need 2^64 stores to wrap.
        StoreId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }
}

/// A map from addresses to indices, kept as a sorted small vector: one
/// entry inline (most maps of a store hold one or two), 16 bytes an entry
/// beyond, where a hash map or B-tree would take a hundred bytes or more.
#[derive(Debug, Default)]
pub(crate) struct AddrMap {
    entries: SmallVec<[(usize, u32); 1]>,
}

impl AddrMap {
    /// Inserts or replaces the entry for `key`; returns the old value.
    pub(crate) fn insert(&mut self, key: usize, value: u32) -> Option<u32> {
        match self.entries.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn get(&self, key: &usize) -> Option<&u32> {
        let i = self.entries.binary_search_by_key(key, |&(k, _)| k).ok()?;
        Some(&self.entries[i].1)
    }

    /// The entry with the greatest key at most `key`.
    pub(crate) fn last_at_or_below(&self, key: usize) -> Option<(usize, u32)> {
        let i = self.entries.partition_point(|&(k, _)| k <= key);
        i.checked_sub(1).map(|i| self.entries[i])
    }
}

/// A linear memory and the definition compiled code reads for it.
pub(crate) struct StoreMemory {
    pub(crate) memory: LinearMemory,
    /// Inline in the defining instance's VMContext, or `owned_def`.
    def: NonNull<VMMemoryDefinition>,
    _owned_def: Option<RawBox<VMMemoryDefinition>>,
}

impl StoreMemory {
    pub(crate) fn definition(&self) -> *mut VMMemoryDefinition {
        self.def.as_ptr()
    }

    /// Grows and updates the definition. Returns the old size in pages.
    pub(crate) fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.memory.grow(delta)?;
        // SAFETY: `def` points at this memory's definition, which lives as
        // long as the store; no Rust reference to it exists (compiled code
        // only reads it while no libcall runs).
        unsafe { self.def.as_ptr().write(self.memory.vmmemory()) };
        Some(old)
    }
}

/// A table and the definition compiled code reads for it.
pub(crate) struct StoreTable {
    pub(crate) table: TableStorage,
    def: NonNull<VMTableDefinition>,
    _owned_def: Option<RawBox<VMTableDefinition>>,
}

impl StoreTable {
    pub(crate) fn definition(&self) -> *mut VMTableDefinition {
        self.def.as_ptr()
    }

    /// Grows and updates the definition. Returns the old size.
    pub(crate) fn grow(&mut self, delta: u32, init: ValRaw) -> Option<u32> {
        let old = self.table.grow(delta, init)?;
        self.sync_definition();
        Some(old)
    }

    /// Copies the table's base and size into its definition (after a grow,
    /// or a step of one, that may have moved or resized the buffer).
    pub(crate) fn sync_definition(&mut self) {
        let vm = self.table.vmtable();
        // SAFETY: as in `StoreMemory::grow`.
        unsafe { self.def.as_ptr().write(vm) };
    }
}

/// A global's type and where its value lives.
pub(crate) struct StoreGlobal {
    pub(crate) ty: GlobalType,
    def: NonNull<VMGlobalDefinition>,
    _owned_def: Option<RawBox<VMGlobalDefinition>>,
}

impl StoreGlobal {
    pub(crate) fn definition(&self) -> *mut VMGlobalDefinition {
        self.def.as_ptr()
    }

    pub(crate) fn get_raw(&self) -> ValRaw {
        // SAFETY: `def` is valid for the store's life; wasm does not run
        // concurrently with the host on one store.
        unsafe { (*self.def.as_ptr()).value }
    }

    pub(crate) fn set_raw(&mut self, value: ValRaw) {
        // SAFETY: as in `get_raw`.
        unsafe { (*self.def.as_ptr()).value = value };
    }
}

/// Runs host function `index` of the store on a `ValRaw` array
/// (monomorphised for the store's `T`; see [`crate::func`]).
///
/// # Safety
///
/// `store` is the `StoreOpaque` inside a live `StoreInner<T>` of the `T`
/// the shim was made for, with no Rust reference to the store in use (wasm
/// is running on its behalf), and `values` is valid for `len` slots.
pub(crate) type HostCallShim = unsafe fn(
    store: NonNull<StoreOpaque>,
    index: u32,
    caller: Option<u32>,
    values: *mut ValRaw,
    len: usize,
) -> Result<(), UnwindReason>;

/// Runs the store's epoch deadline callback for the instance with index
/// `caller` (monomorphised for the store's `T`; see
/// [`Store::epoch_deadline_callback`]).
///
/// # Safety
///
/// As for [`HostCallShim`]: `store` is inside a live `StoreInner<T>` of the
/// shim's `T`, not otherwise borrowed.
pub(crate) type EpochShim =
    unsafe fn(store: NonNull<StoreOpaque>, caller: u32) -> Result<(), UnwindReason>;

/// What wasm does after its store's epoch deadline callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateDeadline {
    /// Go on running, with the deadline this many epochs after the current
    /// epoch (saturating: `u64::MAX` means never again).
    Continue(u64),
}

/// A store's epoch deadline callback (see
/// [`Store::epoch_deadline_callback`]).
pub(crate) type EpochCallback<T> = dyn FnMut(Caller<'_, T>) -> Result<UpdateDeadline, Trap> + Send;

/// Per-store resource limits (see [`Store::limiter`]). The default limits
/// nothing beyond the engine's [`Config`](crate::Config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreLimits {
    /// The most wasm pages any linear memory of the store may have.
    pub max_memory_pages: u64,
    /// The most elements any table of the store may have.
    pub max_table_elements: u32,
    /// The most bytes of native stack wasm of this store may use, counted
    /// from where the host calls into it (as
    /// [`Config::max_wasm_stack`](crate::Config), the lower one applies).
    /// Deeper recursion traps with `StackOverflow`.
    pub max_wasm_stack: usize,
}

impl StoreLimits {
    /// No limit beyond the engine's configuration.
    pub const UNLIMITED: StoreLimits = StoreLimits {
        max_memory_pages: u64::MAX,
        max_table_elements: u32::MAX,
        max_wasm_stack: usize::MAX,
    };
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits::UNLIMITED
    }
}

/// The part of a store that does not depend on `T`: what libcalls and the
/// host-call path see.
///
/// Its lists, and the host closures and address maps of [`StoreInner`], are
/// small vectors with room for the usual case inline (one instance, one
/// memory, a host function or two): a store then allocates nothing for
/// them, which made a `yield.wat` instance's `malloc`s 12 instead of 21, a
/// parked instance 190 bytes smaller (5,984 -> 5,794 bytes in `shoal stress
/// idle -n 10000`), and the teardown of 10,000 parked instances 2-17%
/// faster (`shoal stress yield -k 1`, four alternating pairs). Nothing
/// points into the lists themselves: what compiled code and the runtime
/// point at (instance data, host function records, definitions) is boxed.
#[doc(hidden)]
pub struct StoreOpaque {
    pub(crate) id: StoreId,
    pub(crate) engine: Engine,
    /// The stack limit and epoch deadline compiled code reads. A block of
    /// its own, not a field: compiled code, and the runtime's switch hook
    /// while the store's green thread is suspended, write the deadline
    /// through raw pointers while a `&mut` to the store may be live in a
    /// host call's frame; a field would sit inside that borrow.
    limits: RawBox<VMRuntimeLimits>,
    /// Room for the store's own blocks, after `StoreInner` in its heap
    /// block (see [`crate::store_blocks`]).
    pub(crate) arena: StoreArena,
    pub(crate) instances: SmallVec<[RawBox<InstanceData>; 1]>,
    /// VMContext start address → instance index, to map funcref pointers
    /// back to functions.
    vmctx_ranges: AddrMap,
    pub(crate) memories: SmallVec<[StoreMemory; 1]>,
    pub(crate) tables: SmallVec<[StoreTable; 1]>,
    pub(crate) globals: SmallVec<[StoreGlobal; 1]>,
    pub(crate) host_funcs: SmallVec<[RawBox<HostFuncRecord>; 2]>,
    /// `&HostFuncRecord::func_ref` address → host function index.
    host_func_refs: AddrMap,
    /// Host functions whose funcref has no `wasm_call` yet: no module with
    /// their type has been instantiated in this store.
    unpatched_host_funcs: SmallVec<[u32; 2]>,
    /// For every distinct module instantiated here, the index of its first
    /// instance (which holds the module): where host functions find their
    /// wasm-to-host trampolines.
    modules: SmallVec<[u32; 2]>,
    /// Set while the store has an epoch deadline callback.
    pub(crate) epoch_shim: Option<EpochShim>,
    /// See [`Store::limiter`].
    resource_limits: StoreLimits,
}

impl Drop for StoreOpaque {
    fn drop(&mut self) {
        // Pooled memories, tables and VMContexts point at the engine's pools
        // without keeping them alive: give them back while `self.engine`
        // (dropped after this body) still does.
        self.memories.clear();
        self.tables.clear();
        self.instances.clear();
    }
}

/// The heap block behind a [`Store`]. `opaque` must stay the first field:
/// the host-call shim casts a `*mut StoreOpaque` back to `*mut StoreInner<T>`.
#[doc(hidden)]
#[repr(C)]
pub struct StoreInner<T> {
    pub(crate) opaque: StoreOpaque,
    /// Host closures, parallel to `opaque.host_funcs`.
    pub(crate) host_closures: SmallVec<[Arc<HostFn<T>>; 2]>,
    /// Linker-defined host functions already created in this store, by the
    /// address of their shared closure (kept alive by `host_closures`).
    pub(crate) linker_funcs: AddrMap,
    /// Called when wasm reaches the epoch deadline (see `opaque.epoch_shim`).
    epoch_callback: Option<Box<EpochCallback<T>>>,
    pub(crate) data: T,
}

/// Owns everything instances need at run time. See the module docs.
///
/// `Store<T>` is `Send` when `T` is: a store (with its instances) may move
/// to another thread between calls.
pub struct Store<T> {
    inner: NonNull<StoreInner<T>>,
    _owns: PhantomData<StoreInner<T>>,
}

// SAFETY: the store exclusively owns its state (instances, memories, host
// closures, which are Send + Sync), and raw pointers in it only point inside
// that state or into `Arc<Module>` code; nothing is tied to a thread.
unsafe impl<T: Send> Send for Store<T> {}

impl<T> Store<T> {
    /// A new, empty store for `engine`, holding `data` for host functions.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        Store::with_arena(engine, data, 0)
    }

    /// A new, empty store with room for `arena_bytes` of its own blocks
    /// (its limits, and each instance's record and VMContext and each host
    /// function's record) in its own heap block, so that an instance that
    /// fits costs one allocation (see the `store_blocks` module). At most
    /// 2 KiB; what does not fit goes to the heap.
    /// [`arena_bytes_wanted`](Self::arena_bytes_wanted) says how much a
    /// store needed: stores of the same module and host functions need the
    /// same.
    pub fn with_arena(engine: &Engine, data: T, arena_bytes: usize) -> Store<T> {
        let capacity = arena_bytes
            .min(crate::store_blocks::MAX_ARENA_BYTES)
            .next_multiple_of(ARENA_ALIGN);
        let (layout, arena_offset) = Self::block_layout(capacity);
        // SAFETY: the layout's size is not zero (it holds a StoreInner).
        let block = unsafe { std::alloc::alloc(layout) };
        let Some(block) = NonNull::new(block) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `arena_offset` is aligned to ARENA_ALIGN within the block
        // (`block_layout`), and the block lives until `Drop for Store`,
        // which drops the store's state (every arena block's owner) first.
        let arena = unsafe { StoreArena::new(block.add(arena_offset), capacity) };
        // SAFETY: owned by the store's state, as above.
        let limits = unsafe {
            RawBox::new_in(
                &arena,
                VMRuntimeLimits {
                    stack_limit: 0,
                    epoch_deadline: u64::MAX,
                },
            )
        };
        let inner = StoreInner {
            opaque: StoreOpaque {
                id: StoreId::next(),
                engine: engine.clone(),
                limits,
                arena,
                instances: SmallVec::new(),
                vmctx_ranges: AddrMap::default(),
                memories: SmallVec::new(),
                tables: SmallVec::new(),
                globals: SmallVec::new(),
                host_funcs: SmallVec::new(),
                host_func_refs: AddrMap::default(),
                unpatched_host_funcs: SmallVec::new(),
                modules: SmallVec::new(),
                epoch_shim: None,
                resource_limits: StoreLimits::UNLIMITED,
            },
            host_closures: SmallVec::new(),
            linker_funcs: AddrMap::default(),
            epoch_callback: None,
            data,
        };
        let inner_ptr = block.cast::<StoreInner<T>>();
        // SAFETY: the block starts with room for a StoreInner<T>, aligned
        // (`block_layout`).
        unsafe { inner_ptr.write(inner) };
        Store {
            inner: inner_ptr,
            _owns: PhantomData,
        }
    }

    /// The layout of a store's heap block with an arena of `arena_bytes`
    /// (a multiple of ARENA_ALIGN), and the arena's offset in it.
    fn block_layout(arena_bytes: usize) -> (Layout, usize) {
        let arena = Layout::from_size_align(arena_bytes, ARENA_ALIGN)
            .expect("the arena is at most MAX_ARENA_BYTES");
        Layout::new::<StoreInner<T>>()
            .extend(arena)
            .expect("a StoreInner and a small arena fit in isize")
    }

    /// What an arena would need to hold every block this store has
    /// allocated so far (see [`with_arena`](Self::with_arena)).
    pub fn arena_bytes_wanted(&self) -> usize {
        self.inner().opaque.arena.wanted()
    }

    pub fn engine(&self) -> &Engine {
        &self.inner().opaque.engine
    }

    pub fn data(&self) -> &T {
        &self.inner().data
    }

    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner_mut().data
    }

    /// Sets the epoch deadline `ticks` epochs after the engine's current
    /// epoch (saturating: `u64::MAX` means never). Compiled with
    /// [`Config::epoch_interruption`](crate::Config), wasm calls the runtime
    /// when the engine's epoch reaches the deadline.
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        self.inner_mut().opaque.set_epoch_deadline(ticks);
    }

    /// The current epoch deadline (absolute epoch).
    pub fn epoch_deadline(&self) -> u64 {
        self.inner().opaque.epoch_deadline()
    }

    /// Where the store keeps its epoch deadline (an absolute epoch, read
    /// by compiled code at every epoch check), for a scheduler that moves
    /// the deadline of a suspended instance without holding its store: for
    /// example forward when the instance is resumed after a host call
    /// parked it, so that its next check does not call the epoch callback
    /// only to continue.
    ///
    /// The pointer is valid, and stable even if the `Store` value moves,
    /// until the store is dropped. Writing through it is sound only while
    /// no code of the store runs on another thread and the store is not
    /// borrowed: between two runs of the green thread that owns the store,
    /// on that green thread's OS thread. Compiled code reloads the deadline
    /// after every call out of wasm that can reach an epoch point (calls of
    /// wasm or host functions, and the libcalls that
    /// `Libcall::may_reach_epoch_point` names), so a value written while
    /// wasm is suspended in a host call takes effect when the call returns.
    pub fn epoch_deadline_ptr(&self) -> *mut u64 {
        self.inner().opaque.epoch_deadline_ptr()
    }

    /// Addresses of what a host call of this store touches on its way back
    /// to wasm, for a scheduler to prefetch before it resumes a green
    /// thread parked in one (`shoal_scheduler::set_resume_hints`): the
    /// runtime limits (the epoch deadline, which compiled code reloads
    /// after the call), the store's table of host closures, that table's
    /// entries when they have moved out of the store (more than two; up to
    /// two sit inside the table itself, already hinted), and the start of
    /// the store's first memory (where a guest keeps what it reads first,
    /// its stack pointer or its loop's state). Zero where there is nothing
    /// to add. A snapshot: host functions added later may move the table
    /// (ask again). Only addresses: reading through them is not allowed.
    pub fn resume_hints(&self) -> [usize; 4] {
        let inner = self.inner();
        [
            inner.opaque.epoch_deadline_ptr() as usize,
            std::ptr::addr_of!(inner.host_closures) as usize,
            if inner.host_closures.spilled() {
                inner.host_closures.as_ptr() as usize
            } else {
                0
            },
            inner
                .opaque
                .memories
                .first()
                .map_or(0, |m| m.memory.base() as usize),
        ]
    }

    /// Calls `callback` whenever wasm of this store reaches the epoch
    /// deadline (compiled with
    /// [`Config::epoch_interruption`](crate::Config)). It runs inside the
    /// `EpochDeadlineReached` libcall, on the stack of the wasm code that
    /// reached the deadline, with a [`Caller`] for the running instance, and
    /// decides what happens next:
    ///
    /// - `Ok(UpdateDeadline::Continue(delta))`: wasm goes on, with the
    ///   deadline `delta` epochs after the current epoch;
    /// - `Err(trap)`: the call into wasm ends with that trap (for example
    ///   [`TrapKind::Timeout`](crate::TrapKind) for a spent CPU budget, or
    ///   [`TrapKind::Cancelled`](crate::TrapKind)), as if wasm had trapped
    ///   there.
    ///
    /// The callback may suspend the green thread it runs on (a scheduler's
    /// `yield_now`: a stack switch) and be resumed later, on the same OS
    /// thread or, if the runtime moves suspended green threads, another.
    ///
    /// It must not panic: a panic cannot unwind through wasm frames, so it
    /// is caught, the wasm frames are discarded as for a trap, and the panic
    /// resumes in the host at the call into wasm.
    ///
    /// Without a callback (the default), reaching the deadline moves it one
    /// epoch ahead and wasm goes on.
    pub fn epoch_deadline_callback(
        &mut self,
        callback: impl FnMut(Caller<'_, T>) -> Result<UpdateDeadline, Trap> + Send + 'static,
    ) {
        let inner = self.inner_mut();
        inner.epoch_callback = Some(Box::new(callback));
        inner.opaque.epoch_shim = Some(epoch_callback_shim::<T>);
    }

    /// Limits every linear memory and table of this store, on top of the
    /// engine's [`Config`](crate::Config) limits (the lower one applies):
    ///
    /// - instantiation fails with [`Error::Resource`], naming the limit, if
    ///   a memory or table the module defines has a minimum above it;
    /// - `memory.grow` / `table.grow` (from wasm, or the host's
    ///   [`Memory::grow`](crate::Memory::grow) /
    ///   [`Table::grow`](crate::Table::grow)) past it fail: wasm sees -1,
    ///   as the spec allows;
    /// - wasm recursion deeper than `max_wasm_stack` bytes traps with
    ///   `StackOverflow` (from the next call into wasm on).
    ///
    /// Set the limits before instantiating: the maximum of a memory also
    /// picks the size of its slot (`Checked` memories), so a memory created
    /// under a limit never grows past it, even if a later call raises the
    /// limit. A later call that lowers it applies to existing memories and
    /// tables too (their next grow); ones already larger keep their size.
    /// Memories and tables the host creates (`Memory::new`, `Table::new`)
    /// are not refused for their minimum, but cannot grow past the limit.
    pub fn limiter(&mut self, limits: StoreLimits) {
        let opaque = &mut self.inner_mut().opaque;
        opaque.resource_limits = limits;
        for memory in &mut opaque.memories {
            memory.memory.set_limit(limits.max_memory_pages);
        }
        for table in &mut opaque.tables {
            table.table.set_limit(limits.max_table_elements);
        }
    }

    /// The limits set by [`limiter`](Self::limiter) (unlimited by default).
    pub fn limits(&self) -> StoreLimits {
        self.inner().opaque.resource_limits
    }

    /// Removes the epoch deadline callback: the default behaviour again.
    pub fn clear_epoch_deadline_callback(&mut self) {
        let inner = self.inner_mut();
        inner.epoch_callback = None;
        inner.opaque.epoch_shim = None;
    }

    fn inner(&self) -> &StoreInner<T> {
        // SAFETY: `inner` came from `Box::leak` and lives until drop.
        unsafe { self.inner.as_ref() }
    }

    fn inner_mut(&mut self) -> &mut StoreInner<T> {
        // SAFETY: as in `inner`; `&mut self` gives exclusive access.
        unsafe { self.inner.as_mut() }
    }
}

impl<T> Drop for Store<T> {
    fn drop(&mut self) {
        /// Frees the store's heap block, also if a destructor in the
        /// store's state panics.
        struct FreeBlock(*mut u8, Layout);
        impl Drop for FreeBlock {
            fn drop(&mut self) {
                // SAFETY: allocated in `with_arena` with this layout, freed
                // only here, after the state in it was dropped.
                unsafe { std::alloc::dealloc(self.0, self.1) };
            }
        }
        let (layout, _) = Self::block_layout(self.inner().opaque.arena.capacity());
        let _free = FreeBlock(self.inner.as_ptr().cast(), layout);
        // SAFETY: `inner` was written in `with_arena` and is dropped only
        // here; no wasm of this store runs (that would need a borrow of the
        // store). Its arena blocks are owned by the state and dropped with
        // it, before `_free` frees the block.
        unsafe { std::ptr::drop_in_place(self.inner.as_ptr()) };
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opaque = &self.inner().opaque;
        f.debug_struct("Store")
            .field("id", &opaque.id)
            .field("instances", &opaque.instances.len())
            .field("memories", &opaque.memories.len())
            .field("data", self.data())
            .finish()
    }
}

impl<T> StoreInner<T> {
    pub(crate) fn data(&self) -> &T {
        &self.data
    }
    pub(crate) fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

/// Runs the epoch deadline callback of the `StoreInner<T>` at `store` for
/// the instance with index `caller`, and applies its result. A trap or a
/// panic comes back as the reason to unwind with; the libcall raises it
/// once this function has returned and dropped everything.
///
/// # Safety
///
/// `store` must point at the `StoreOpaque` of a live `StoreInner<T>` (the
/// `T` this shim was instantiated with) that no Rust reference is in use
/// for: wasm of that store is running and called the libcall.
pub(crate) unsafe fn epoch_callback_shim<T>(
    store: NonNull<StoreOpaque>,
    caller: u32,
) -> Result<(), UnwindReason> {
    // SAFETY: `StoreOpaque` is the first field of the `repr(C)`
    // `StoreInner<T>` it belongs to (the caller's promise), and nothing else
    // refers to the store while this runs.
    let inner = unsafe { &mut *store.as_ptr().cast::<StoreInner<T>>() };
    // Taken out while it runs, so that it can have the whole store.
    let Some(mut callback) = inner.epoch_callback.take() else {
        inner.opaque.set_epoch_deadline(1);
        return Ok(());
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        callback(Caller {
            store: &mut *inner,
            caller: Some(caller),
        })
    }));
    if inner.epoch_callback.is_none() {
        inner.epoch_callback = Some(callback);
    }
    match outcome {
        Ok(Ok(UpdateDeadline::Continue(delta))) => {
            inner.opaque.set_epoch_deadline(delta);
            Ok(())
        }
        Ok(Err(trap)) => Err(UnwindReason::Trap(trap)),
        Err(payload) => Err(UnwindReason::Panic(payload)),
    }
}

/// Something that gives shared access to a store: a [`Store`] or a
/// [`Caller`](crate::Caller). API functions take `&impl AsContext`.
pub trait AsContext {
    /// The store's host data type.
    type Data;
    #[doc(hidden)]
    fn store_inner(&self) -> &StoreInner<Self::Data>;
}

/// Something that gives exclusive access to a store: a [`Store`] or a
/// [`Caller`](crate::Caller). API functions take `&mut impl AsContextMut`.
pub trait AsContextMut: AsContext {
    #[doc(hidden)]
    fn store_inner_mut(&mut self) -> &mut StoreInner<Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn store_inner(&self) -> &StoreInner<T> {
        self.inner()
    }
}

impl<T> AsContextMut for Store<T> {
    fn store_inner_mut(&mut self) -> &mut StoreInner<T> {
        self.inner_mut()
    }
}

impl StoreOpaque {
    pub(crate) fn id(&self) -> StoreId {
        self.id
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits compiled code reads (shared by all instances).
    pub(crate) fn limits(&self) -> *mut VMRuntimeLimits {
        self.limits.as_ptr()
    }

    pub(crate) fn set_epoch_deadline(&mut self, ticks: u64) {
        let now = self.engine.epoch_counter().load(Ordering::Relaxed);
        // SAFETY: `limits` is valid for the store's life; no wasm of this
        // store runs while the host holds `&mut StoreOpaque` outside a
        // libcall, and inside one wasm is suspended.
        unsafe { (*self.limits.as_ptr()).epoch_deadline = now.saturating_add(ticks) };
    }

    pub(crate) fn epoch_deadline(&self) -> u64 {
        // SAFETY: as in `set_epoch_deadline`.
        unsafe { (*self.limits.as_ptr()).epoch_deadline }
    }

    pub(crate) fn epoch_deadline_ptr(&self) -> *mut u64 {
        // SAFETY: `limits` is valid for the store's life; this only forms
        // the field's address, reading and writing nothing.
        unsafe { std::ptr::addr_of_mut!((*self.limits.as_ptr()).epoch_deadline) }
    }

    /// Errors unless a handle of `what` with store id `id` belongs here.
    pub(crate) fn check(&self, id: StoreId, what: &str) -> Result<()> {
        if id == self.id {
            Ok(())
        } else {
            Err(Error::Signature(format!("{what} belongs to another store")))
        }
    }

    pub(crate) fn instance(&self, index: u32) -> &InstanceData {
        &self.instances[index as usize]
    }

    // ---- memories, tables, globals --------------------------------------

    /// The store's resource limits (see [`Store::limiter`]).
    pub(crate) fn resource_limits(&self) -> StoreLimits {
        self.resource_limits
    }

    /// Adds a memory whose definition lives at `def` (inside a VMContext),
    /// or in a new heap block if `def` is `None`. Writes the definition.
    /// The memory grows no further than the store's limit.
    pub(crate) fn push_memory(
        &mut self,
        mut memory: LinearMemory,
        def: Option<NonNull<VMMemoryDefinition>>,
    ) -> u32 {
        memory.set_limit(self.resource_limits.max_memory_pages);
        let vm = memory.vmmemory();
        let (def, owned) = match def {
            Some(def) => (def, None),
            None => {
                let owned = RawBox::new(VMMemoryDefinition {
                    base: std::ptr::null_mut(),
                    current_length: 0,
                });
                // SAFETY: `as_ptr` of a RawBox is never null.
                (
                    unsafe { NonNull::new_unchecked(owned.as_ptr()) },
                    Some(owned),
                )
            }
        };
        // SAFETY: `def` points at a definition slot that lives as long as
        // the store (a VMContext or the RawBox just made).
        unsafe { def.as_ptr().write(vm) };
        self.memories.push(StoreMemory {
            memory,
            def,
            _owned_def: owned,
        });
        (self.memories.len() - 1) as u32
    }

    /// Adds a table, as [`push_memory`](Self::push_memory) does.
    pub(crate) fn push_table(
        &mut self,
        mut table: TableStorage,
        def: Option<NonNull<VMTableDefinition>>,
    ) -> u32 {
        table.set_limit(self.resource_limits.max_table_elements);
        let vm = table.vmtable();
        let (def, owned) = match def {
            Some(def) => (def, None),
            None => {
                let owned = RawBox::new(VMTableDefinition {
                    base: std::ptr::null_mut(),
                    current_elements: 0,
                });
                // SAFETY: `as_ptr` of a RawBox is never null.
                (
                    unsafe { NonNull::new_unchecked(owned.as_ptr()) },
                    Some(owned),
                )
            }
        };
        // SAFETY: as in `push_memory`.
        unsafe { def.as_ptr().write(vm) };
        self.tables.push(StoreTable {
            table,
            def,
            _owned_def: owned,
        });
        (self.tables.len() - 1) as u32
    }

    /// Adds a global whose value lives at `def`, or in a new heap block
    /// holding `value` if `def` is `None`.
    pub(crate) fn push_global(
        &mut self,
        ty: GlobalType,
        def: Option<NonNull<VMGlobalDefinition>>,
        value: ValRaw,
    ) -> u32 {
        let (def, owned) = match def {
            Some(def) => (def, None),
            None => {
                let owned = RawBox::new(VMGlobalDefinition::new(value));
                // SAFETY: `as_ptr` of a RawBox is never null.
                (
                    unsafe { NonNull::new_unchecked(owned.as_ptr()) },
                    Some(owned),
                )
            }
        };
        self.globals.push(StoreGlobal {
            ty,
            def,
            _owned_def: owned,
        });
        (self.globals.len() - 1) as u32
    }

    // ---- instances -------------------------------------------------------

    /// Adds an instance (already laid out) and returns its index.
    pub(crate) fn push_instance(&mut self, data: RawBox<InstanceData>) -> u32 {
        let index = self.instances.len() as u32;
        self.vmctx_ranges.insert(data.vmctx_addr(), index);
        self.instances.push(data);
        index
    }

    /// Records that `module` has an instance here, about to be pushed as
    /// instance `index`, and gives host functions of its types the module's
    /// wasm-to-host trampolines.
    pub(crate) fn register_module(&mut self, module: &Module, index: u32) {
        let known = self
            .modules
            .iter()
            .any(|&i| Module::same(self.instances[i as usize].module(), module));
        if !known {
            self.modules.push(index);
        }
        if self.unpatched_host_funcs.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.unpatched_host_funcs.len() {
            let index = self.unpatched_host_funcs[i];
            let record = &mut self.host_funcs[index as usize];
            if let Some(tramp) = host_trampoline_in(module, record.type_id) {
                record.func_ref.wasm_call = tramp;
                self.unpatched_host_funcs.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if self.unpatched_host_funcs.is_empty() {
            self.unpatched_host_funcs = SmallVec::new();
        }
    }

    // ---- host functions --------------------------------------------------

    /// Adds a host function record; the caller pushes the closure to the
    /// parallel `StoreInner::host_closures`.
    pub(crate) fn push_host_func(&mut self, mut record: RawBox<HostFuncRecord>) -> u32 {
        let index = self.host_funcs.len() as u32;
        record.ctx.host_func = index;
        let ctx_ptr = std::ptr::addr_of_mut!(record.ctx).cast();
        record.func_ref.vmctx = ctx_ptr;
        let type_id = record.type_id;
        match self
            .modules
            .iter()
            .find_map(|&i| host_trampoline_in(self.instances[i as usize].module(), type_id))
        {
            Some(tramp) => record.func_ref.wasm_call = tramp,
            None => self.unpatched_host_funcs.push(index),
        }
        let func_ref_addr = std::ptr::addr_of!(record.func_ref) as usize;
        self.host_func_refs.insert(func_ref_addr, index);
        self.host_funcs.push(record);
        index
    }

    // ---- function references ---------------------------------------------

    /// The `VMFuncRef` of `func` (which must belong to this store).
    pub(crate) fn func_ref(&self, func: Func) -> *const VMFuncRef {
        match func.kind() {
            FuncKind::Host(index) => std::ptr::addr_of!(self.host_funcs[index as usize].func_ref),
            FuncKind::Wasm { instance, index } => self.instance(instance).func_ref(index),
        }
    }

    /// The function a funcref element points at.
    pub(crate) fn func_from_raw(&self, raw: ValRaw) -> Option<Func> {
        if raw == 0 {
            return None;
        }
        let addr = raw as usize;
        if let Some((_, index)) = self.vmctx_ranges.last_at_or_below(addr) {
            let instance = self.instance(index);
            if let Some(func_index) = instance.func_index_of_ref(addr) {
                return Some(instance.func(func_index));
            }
        }
        let index = *self.host_func_refs.get(&addr)?;
        Some(Func::host(self.id, index))
    }

    /// `val` in its raw form, after checking it belongs to this store.
    pub(crate) fn val_to_raw(&self, val: &Val) -> Result<ValRaw> {
        Ok(match *val {
            Val::I32(v) => u64::from(v as u32),
            Val::I64(v) => v as u64,
            Val::F32(bits) => u64::from(bits),
            Val::F64(bits) => bits,
            Val::FuncRef(None) | Val::ExternRef(None) => 0,
            Val::FuncRef(Some(func)) => {
                self.check(func.store_id(), "a funcref value")?;
                self.func_ref(func) as ValRaw
            }
            Val::ExternRef(Some(r)) => externref_to_raw(r)?,
        })
    }

    /// The value of type `ty` stored as `raw`.
    pub(crate) fn raw_to_val(&self, raw: ValRaw, ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(raw as u32 as i32),
            ValType::I64 => Val::I64(raw as i64),
            ValType::F32 => Val::F32(raw as u32),
            ValType::F64 => Val::F64(raw),
            ValType::FuncRef => Val::FuncRef(self.func_from_raw(raw)),
            ValType::ExternRef => Val::ExternRef(externref_from_raw(raw)),
        }
    }
}

/// An externref in table/global encoding: its value plus one (0 = null).
pub(crate) fn externref_to_raw(r: ExternRef) -> Result<ValRaw> {
    r.0.checked_add(1).ok_or_else(|| {
        Error::Signature("ExternRef(u64::MAX) is reserved and cannot be passed to wasm".into())
    })
}

pub(crate) fn externref_from_raw(raw: ValRaw) -> Option<ExternRef> {
    raw.checked_sub(1).map(ExternRef)
}

/// The wasm-to-host trampoline of `module` for engine type id `type_id`.
fn host_trampoline_in(module: &Module, type_id: u32) -> Option<*const u8> {
    let t = module
        .info()
        .type_ids
        .iter()
        .position(|&id| id == type_id)?;
    Some(module.code().host_trampoline(t as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_that_fits_lives_in_its_stores_heap_block() {
        let engine = Engine::new(crate::Config::default()).expect("engine");
        let module = Module::new(
            &engine,
            r#"(module (import "env" "f" (func)) (memory 1) (func (export "g") (call 0)))"#,
        )
        .expect("module");
        let mut linker = crate::Linker::new(&engine);
        linker.func_wrap("env", "f", || {}).expect("define");
        let mut store = Store::with_arena(&engine, (), 1024);
        let instance = linker
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let opaque = &store.inner().opaque;
        let arena = &opaque.arena;
        let record = &opaque.instances[0];
        assert!(arena.holds(opaque.epoch_deadline_ptr() as usize), "limits");
        assert!(arena.holds(record.as_ptr() as usize), "instance record");
        assert!(arena.holds(record.vmctx_addr()), "VMContext");
        assert!(
            arena.holds(opaque.host_funcs[0].as_ptr() as usize),
            "host function record"
        );
        assert!(arena.wanted() <= 1024);
        let g = instance.get_typed_func::<(), ()>(&store, "g").expect("g");
        g.call(&mut store, ()).expect("call");

        // Without an arena, the same blocks are on the heap.
        let mut store = Store::new(&engine, ());
        linker
            .instantiate(&mut store, &module)
            .expect("instantiate");
        let opaque = &store.inner().opaque;
        assert!(!opaque.arena.holds(opaque.instances[0].vmctx_addr()));
        assert_eq!(opaque.arena.capacity(), 0);
    }

    #[test]
    fn addr_map_is_a_sorted_map() {
        let mut map = AddrMap::default();
        assert_eq!(map.last_at_or_below(5), None);
        assert_eq!(map.insert(30, 3), None);
        assert_eq!(map.insert(10, 1), None);
        assert_eq!(map.insert(20, 2), None);
        assert_eq!(map.insert(20, 4), Some(2));
        assert_eq!(map.get(&20), Some(&4));
        assert_eq!(map.get(&25), None);
        assert_eq!(map.last_at_or_below(9), None);
        assert_eq!(map.last_at_or_below(10), Some((10, 1)));
        assert_eq!(map.last_at_or_below(29), Some((20, 4)));
        assert_eq!(map.last_at_or_below(usize::MAX), Some((30, 3)));
    }

    #[test]
    fn store_ids_are_unique_across_threads() {
        let ids: Vec<StoreId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..3000).map(|_| StoreId::next()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
