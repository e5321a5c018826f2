//! Engine configuration: how modules are compiled and how instances get memory.

/// How linear memory is laid out and bounds-checked.
///
/// Both strategies are spec-conformant; they trade address space for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryStrategy {
    /// A large virtual reservation (the whole 32-bit index space plus the
    /// largest static offset) with a guard region behind the accessible
    /// pages. Compiled code does no bounds checks: an out-of-bounds access
    /// hits the guard region and faults into a trap. Fastest; costs 8 GiB
    /// of address space per memory, so it suits up to about ten thousand
    /// live memories.
    Guarded,
    /// Explicit bounds checks in compiled code against the current length.
    /// Memories need no guard region, so they are packed densely in pooled
    /// slabs with few mappings: the strategy for very many small instances.
    Checked,
}

impl std::str::FromStr for MemoryStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "guarded" => Ok(Self::Guarded),
            "checked" => Ok(Self::Checked),
            other => Err(format!(
                "unknown memory strategy `{other}`: expected `guarded` or `checked`"
            )),
        }
    }
}

/// The size of a wasm page.
pub const WASM_PAGE_SIZE: u64 = 65536;

/// Settings shared by every module compiled and instance created with an
/// [`Engine`](crate::Engine).
#[derive(Clone, Debug)]
pub struct Config {
    /// Linear memory strategy. Default: [`MemoryStrategy::Guarded`].
    pub memory_strategy: MemoryStrategy,
    /// Upper bound on any linear memory, in wasm pages, whatever the module
    /// declares. `memory.grow` beyond it fails (returns -1) as the spec allows.
    /// Default: 65536 (4 GiB, the whole 32-bit space).
    pub max_memory_pages: u64,
    /// Upper bound on any table, in elements. Default: 10,000,000.
    pub max_table_elements: u32,
    /// How much native stack wasm code may use below the point where the
    /// host first called into it, in bytes. Deeper recursion traps with
    /// [`TrapKind::StackOverflow`](crate::TrapKind). Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// Emit epoch checks at function entries and on the branches back to
    /// loop headers (preemption; used by the runtime). Default: false here;
    /// the runtime turns it on.
    pub epoch_interruption: bool,
    /// Compile large modules on several threads. Default: true.
    pub parallel_compilation: bool,
    /// Cranelift optimisation level: "none", "speed" or "speed_and_size".
    /// Default: "speed".
    pub opt_level: &'static str,
    /// Limits and tuning of the pools instances take their VMContexts,
    /// linear memories and tables from. See [`PoolingConfig`].
    pub pooling: PoolingConfig,
}

/// Limits and tuning of the engine's instance pools (see
/// [`pool`](crate::pool)): every instance created by instantiation takes its
/// VMContext, its defined linear memories and its defined tables from them,
/// and gives them back, reset, when its store is dropped. In steady state
/// this makes instantiation and teardown free of `mmap`, `munmap` and
/// `mprotect`.
///
/// Memories and tables created by the host (`Memory::new`, `Table::new`)
/// are not pooled and not counted.
///
/// The `max_*` limits count objects alive in all stores of the engine. Each
/// thread takes permission for new objects in batches of up to 16 and keeps
/// up to 32 unused permissions, so near a limit an allocation may fail while
/// a few permissions sit unused in other threads' caches. Reaching a limit
/// makes instantiation fail with [`Error::Resource`](crate::Error) naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolingConfig {
    /// Most instances alive at once. Default: 4,194,304.
    pub max_instances: usize,
    /// Most instance-defined linear memories alive at once. With
    /// [`MemoryStrategy::Guarded`] each one keeps an 8 GiB reservation of
    /// address space, so about 15,000 fit in a 47-bit address space whatever
    /// this says. Default: 4,194,304.
    pub max_memories: usize,
    /// Most instance-defined tables alive at once. Default: 4,194,304.
    pub max_tables: usize,
    /// Bytes at the start of a released linear memory that are reset by
    /// hand and stay resident, so that the next instance using the memory
    /// does not page-fault them in again: each page that is not all zeros is
    /// zeroed with `memset` (pages the instance never wrote are only read,
    /// and stay clean). The rest of what the memory used is returned to the
    /// kernel with `madvise(MADV_DONTNEED)`. Rounded up to the OS page size.
    /// Only memories kept warm in a thread's cache (see
    /// `warm_memories_per_thread`) keep pages resident. Default: 64 KiB.
    pub memory_keep_resident: usize,
    /// How many released memories of each size class a thread keeps warm
    /// (reset by hand, with the pages their last instance wrote, up to
    /// `memory_keep_resident` bytes, still resident) for its next instances.
    /// Memories released beyond this are returned to the kernel entirely
    /// (`madvise`) and go to the engine-wide free list; small `Checked` ones
    /// in runs of adjacent slots, once the thread is idle
    /// ([`pool::discard_idle_memory`](crate::pool::discard_idle_memory),
    /// which Shoal's runtime calls on its idle workers), when the thread
    /// needs their slots, or when more than
    /// [`pool::DEFERRED_BYTES`](crate::pool::DEFERRED_BYTES) wait.
    /// Default: 64.
    pub warm_memories_per_thread: usize,
    /// Size of each slab mapping that [`MemoryStrategy::Checked`] memories are
    /// carved from (address space only: `MAP_NORESERVE`, nothing resident
    /// until touched). A slab holds slots of one size class (a power of two
    /// of wasm pages at least the memory's maximum); a slab is never smaller
    /// than one slot. Default: 16 GiB (262,144 one-page memories).
    pub memory_slab_size: usize,
    /// Tables whose element buffer is larger than this many bytes free it
    /// when released instead of keeping it in the thread's cache. Default:
    /// 1 MiB.
    pub table_keep_resident: usize,
}

impl Default for PoolingConfig {
    fn default() -> Self {
        PoolingConfig {
            max_instances: 1 << 22,
            max_memories: 1 << 22,
            max_tables: 1 << 22,
            memory_keep_resident: 64 * 1024,
            warm_memories_per_thread: 64,
            memory_slab_size: 16 << 30,
            table_keep_resident: 1 << 20,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            memory_strategy: MemoryStrategy::Guarded,
            max_memory_pages: 65536,
            max_table_elements: 10_000_000,
            max_wasm_stack: 512 * 1024,
            epoch_interruption: false,
            parallel_compilation: true,
            opt_level: "speed",
            pooling: PoolingConfig::default(),
        }
    }
}
