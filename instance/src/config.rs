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
    /// Emit epoch checks at function entries and loop headers (preemption;
    /// used by the runtime). Default: false here; the runtime turns it on.
    pub epoch_interruption: bool,
    /// Compile large modules on several threads. Default: true.
    pub parallel_compilation: bool,
    /// Cranelift optimisation level: "none", "speed" or "speed_and_size".
    /// Default: "speed".
    pub opt_level: &'static str,
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
        }
    }
}
