//! The VMContext: the one block of memory per instance that compiled code
//! reads, and the one place its layout is defined.
//!
//! # Layout
//!
//! Every offset below is computed by [`VMOffsets`] from a [`ModuleInfo`];
//! the translator (which emits loads from `vmctx + offset`) and the runtime
//! (which fills the block in) both ask `VMOffsets`, never a literal.
//!
//! ```text
//! offset                          field
//! 0                               runtime_limits: *mut VMRuntimeLimits   (shared by the store)
//! 8                               epoch_counter:  *const AtomicU64       (the engine's epoch)
//! 16                              store:          *mut ()                (opaque, for host calls)
//! 24                              instance_index: u64                    (its index in the store)
//! imported_functions_begin        [VMFunctionImport; imported funcs]     16 bytes each
//! imported_tables_begin           [*mut VMTableDefinition; imported]     8 bytes each
//! imported_memories_begin         [*mut VMMemoryDefinition; imported]    8 bytes each
//! imported_globals_begin          [*mut VMGlobalDefinition; imported]    8 bytes each
//! defined_tables_begin            [VMTableDefinition; defined]           16 bytes each
//! defined_memories_begin          [VMMemoryDefinition; defined]          16 bytes each
//! defined_globals_begin           [VMGlobalDefinition; defined]          16 bytes each
//! func_refs_begin                 [VMFuncRef; all funcs]                 32 bytes each
//! size
//! ```
//!
//! `VMRuntimeLimits` is shared by all instances of one store: compiled code
//! reads `stack_limit` in every function prologue (Cranelift's stack-limit
//! check) and `epoch_deadline` at epoch checks.
//!
//! # Calling convention
//!
//! Every wasm function, defined or imported, host or wasm, is called with the
//! platform's default convention and the signature
//! `(callee_vmctx: i64, caller_vmctx: i64, params...) -> results`
//! (multiple results use Cranelift's implicit return area). For a host
//! function `callee_vmctx` points at its [`VMHostFuncContext`] instead.
//!
//! The host enters wasm through an *array-call trampoline*, one per function
//! type, compiled with the module:
//! `extern "C" fn(callee_vmctx, caller_vmctx, wasm_body: *const u8, values: *mut ValRaw)`;
//! it loads the params from `values[0..n]`, calls `wasm_body` with the wasm
//! convention, and stores the results into `values[0..m]` (the buffer holds
//! `max(n, m)` slots).
//!
//! # Table elements
//!
//! Every table element is 8 bytes: a `funcref` is a `*const VMFuncRef`
//! (null = 0); an `externref` is its [`ExternRef`](crate::ExternRef) value
//! plus one (null = 0).

use crate::module_info::ModuleInfo;
use std::sync::atomic::AtomicU64;

/// An untyped wasm value in memory: i32/f32 in the low 32 bits
/// (zero-extended), i64/f64 as 64 bits, references as described above.
pub type ValRaw = u64;

/// Limits shared by every instance of a store; compiled code reads them.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VMRuntimeLimits {
    /// Lowest stack address wasm may use; a prologue that would go below it
    /// traps with `STACK_OVERFLOW`.
    pub stack_limit: usize,
    /// Epoch at which the running instance must yield (or run out of budget).
    pub epoch_deadline: u64,
}

impl VMRuntimeLimits {
    pub const STACK_LIMIT: u32 = 0;
    pub const EPOCH_DEADLINE: u32 = 8;
}

/// An imported function: its code and the context to pass as `callee_vmctx`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFunctionImport {
    pub wasm_call: *const u8,
    pub vmctx: *mut VMContext,
}

impl VMFunctionImport {
    pub const WASM_CALL: u32 = 0;
    pub const VMCTX: u32 = 8;
}

/// A table's storage: `current_elements` 8-byte elements at `base`.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    pub base: *mut ValRaw,
    pub current_elements: u32,
}

impl VMTableDefinition {
    pub const BASE: u32 = 0;
    pub const CURRENT_ELEMENTS: u32 = 8;
}

/// A linear memory: `current_length` accessible bytes at `base`.
/// `base` never changes during the memory's life (both strategies reserve the
/// memory's maximum up front), so compiled code may hoist its load.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    pub base: *mut u8,
    pub current_length: usize,
}

impl VMMemoryDefinition {
    pub const BASE: u32 = 0;
    pub const CURRENT_LENGTH: u32 = 8;
}

/// A global's storage: the value at offset 0 in `ValRaw` form (f32 bits in
/// the low 4 bytes, little-endian), 16 bytes reserved.
#[repr(C, align(16))]
#[derive(Debug, Default)]
pub struct VMGlobalDefinition {
    pub value: ValRaw,
    _reserved: u64,
}

impl VMGlobalDefinition {
    pub fn new(value: ValRaw) -> Self {
        VMGlobalDefinition {
            value,
            _reserved: 0,
        }
    }
}

/// Everything needed to call a function through a reference:
/// `call_indirect`, `ref.func`, exports and table elements point at one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFuncRef {
    /// Host-to-wasm entry (the array-call trampoline of the function's type).
    pub array_call: *const u8,
    /// The function's code, wasm calling convention.
    pub wasm_call: *const u8,
    /// The engine-wide id of the function's type.
    pub type_id: u32,
    /// The context to pass as `callee_vmctx`.
    pub vmctx: *mut VMContext,
}

impl VMFuncRef {
    pub const ARRAY_CALL: u32 = 0;
    pub const WASM_CALL: u32 = 8;
    pub const TYPE_ID: u32 = 16;
    pub const VMCTX: u32 = 24;
    pub const SIZE: u32 = 32;
}

/// The context of a host function; what wasm passes as `callee_vmctx` when it
/// calls one. Defined by the runtime; only its address travels through code.
#[repr(C)]
#[derive(Debug)]
pub struct VMHostFuncContext {
    /// Always [`VMHostFuncContext::MAGIC`], to catch misuse in debug builds.
    pub magic: u32,
    /// Index of the host function in its store.
    pub host_func: u32,
    /// The host-call shim monomorphised for the store's `T`,
    /// kept here so that a host call reads it from the line it already
    /// reads for `host_func`, not from the store.
    pub(crate) shim: crate::store::HostCallShim,
}

impl VMHostFuncContext {
    pub const MAGIC: u32 = u32::from_le_bytes(*b"host");
}

/// Opaque marker for the VMContext block; only pointers to it exist.
#[repr(C)]
#[derive(Debug)]
pub struct VMContext {
    _opaque: [u8; 0],
}

/// Offsets of every VMContext field for one module. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VMOffsets {
    num_imported_funcs: u32,
    num_imported_tables: u32,
    num_imported_memories: u32,
    num_imported_globals: u32,
    num_defined_tables: u32,
    num_defined_memories: u32,
    num_defined_globals: u32,
    num_funcs: u32,
    imported_functions_begin: u32,
    imported_tables_begin: u32,
    imported_memories_begin: u32,
    imported_globals_begin: u32,
    defined_tables_begin: u32,
    defined_memories_begin: u32,
    defined_globals_begin: u32,
    func_refs_begin: u32,
    size: u32,
}

impl VMOffsets {
    pub const RUNTIME_LIMITS: u32 = 0;
    pub const EPOCH_COUNTER: u32 = 8;
    pub const STORE: u32 = 16;
    /// The instance's index in its store, as a `u64`: host calls and the
    /// epoch callback name their caller from the header line they already
    /// read, instead of reading it from the instance's own block. (The
    /// header stays 32 bytes: with one imported function and one memory,
    /// the first line then holds everything a small module's code reads.)
    pub const INSTANCE_INDEX: u32 = 24;
    const HEADER_SIZE: u32 = 32;

    /// Computes the layout for `info`.
    pub fn new(info: &ModuleInfo) -> Self {
        let num_imported_funcs = info.num_imported_funcs;
        let num_imported_tables = info.num_imported_tables;
        let num_imported_memories = info.num_imported_memories;
        let num_imported_globals = info.num_imported_globals;
        let num_defined_tables = info.num_defined_tables();
        let num_defined_memories = info.num_defined_memories();
        let num_defined_globals = info.num_defined_globals();
        let num_funcs = info.functions.len() as u32;

        let imported_functions_begin = Self::HEADER_SIZE;
        let imported_tables_begin = imported_functions_begin + 16 * num_imported_funcs;
        let imported_memories_begin = imported_tables_begin + 8 * num_imported_tables;
        let imported_globals_begin = imported_memories_begin + 8 * num_imported_memories;
        let defined_tables_begin = align16(imported_globals_begin + 8 * num_imported_globals);
        let defined_memories_begin = defined_tables_begin + 16 * num_defined_tables;
        let defined_globals_begin = defined_memories_begin + 16 * num_defined_memories;
        let func_refs_begin = defined_globals_begin + 16 * num_defined_globals;
        let size = func_refs_begin + VMFuncRef::SIZE * num_funcs;
        VMOffsets {
            num_imported_funcs,
            num_imported_tables,
            num_imported_memories,
            num_imported_globals,
            num_defined_tables,
            num_defined_memories,
            num_defined_globals,
            num_funcs,
            imported_functions_begin,
            imported_tables_begin,
            imported_memories_begin,
            imported_globals_begin,
            defined_tables_begin,
            defined_memories_begin,
            defined_globals_begin,
            func_refs_begin,
            size,
        }
    }

    /// Total size of the VMContext in bytes (16-byte aligned).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// `VMFunctionImport` of imported function `index`.
    pub fn imported_function(&self, index: u32) -> u32 {
        debug_assert!(index < self.num_imported_funcs);
        self.imported_functions_begin + 16 * index
    }
    /// Pointer to the `VMTableDefinition` of imported table `index`.
    pub fn imported_table(&self, index: u32) -> u32 {
        debug_assert!(index < self.num_imported_tables);
        self.imported_tables_begin + 8 * index
    }
    /// Pointer to the `VMMemoryDefinition` of imported memory `index`.
    pub fn imported_memory(&self, index: u32) -> u32 {
        debug_assert!(index < self.num_imported_memories);
        self.imported_memories_begin + 8 * index
    }
    /// Pointer to the `VMGlobalDefinition` of imported global `index`.
    pub fn imported_global(&self, index: u32) -> u32 {
        debug_assert!(index < self.num_imported_globals);
        self.imported_globals_begin + 8 * index
    }
    /// `VMTableDefinition` of defined table `index` (0 = first defined).
    pub fn defined_table(&self, defined_index: u32) -> u32 {
        debug_assert!(defined_index < self.num_defined_tables);
        self.defined_tables_begin + 16 * defined_index
    }
    /// `VMMemoryDefinition` of defined memory `index` (0 = first defined).
    pub fn defined_memory(&self, defined_index: u32) -> u32 {
        debug_assert!(defined_index < self.num_defined_memories);
        self.defined_memories_begin + 16 * defined_index
    }
    /// `VMGlobalDefinition` of defined global `index` (0 = first defined).
    pub fn defined_global(&self, defined_index: u32) -> u32 {
        debug_assert!(defined_index < self.num_defined_globals);
        self.defined_globals_begin + 16 * defined_index
    }
    /// `VMFuncRef` of function `func_index` (whole function index space).
    pub fn func_ref(&self, func_index: u32) -> u32 {
        debug_assert!(func_index < self.num_funcs);
        self.func_refs_begin + VMFuncRef::SIZE * func_index
    }
}

fn align16(x: u32) -> u32 {
    (x + 15) & !15
}

// The layout constants above must match the Rust structs.
const _: () = {
    assert!(std::mem::size_of::<VMFunctionImport>() == 16);
    assert!(std::mem::size_of::<VMTableDefinition>() == 16);
    assert!(std::mem::size_of::<VMMemoryDefinition>() == 16);
    assert!(std::mem::size_of::<VMGlobalDefinition>() == 16);
    assert!(std::mem::size_of::<VMFuncRef>() == VMFuncRef::SIZE as usize);
    assert!(std::mem::offset_of!(VMFuncRef, type_id) == VMFuncRef::TYPE_ID as usize);
    assert!(std::mem::offset_of!(VMFuncRef, vmctx) == VMFuncRef::VMCTX as usize);
    assert!(
        std::mem::offset_of!(VMRuntimeLimits, epoch_deadline)
            == VMRuntimeLimits::EPOCH_DEADLINE as usize
    );
    assert!(std::mem::size_of::<*const AtomicU64>() == 8);
};
