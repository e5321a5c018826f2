//! The parsed, validated shape of a module: everything but function bodies'
//! machine code. Produced by [`parse`](crate::parse), read by the translator,
//! the VMContext layout and instantiation.
//!
//! Index spaces follow the spec: imported functions (tables, memories,
//! globals) come first, then the module's own definitions. `num_imported_*`
//! tell where the defined ones start.

use crate::types::{FuncType, GlobalType, MemoryType, TableType, ValType};
use std::collections::HashMap;
use std::ops::Range;

/// What an import brings in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// A function of this type index.
    Func(u32),
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
}

/// One import, in declaration order.
#[derive(Clone, Debug)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub kind: ImportKind,
}

/// What an export refers to: a kind and an index in that kind's index space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportKind {
    Func(u32),
    Table(u32),
    Memory(u32),
    Global(u32),
}

/// A constant expression (global initialisers, segment offsets, element items).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConstExpr {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    /// `ref.null` of the given reference type.
    RefNull(ValType),
    /// `ref.func idx`.
    RefFunc(u32),
    /// `global.get idx` (an imported global, or, per 2.0 relaxations, any
    /// earlier immutable global).
    GlobalGet(u32),
}

/// An element segment's mode.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemMode {
    Passive,
    Declared,
    Active { table: u32, offset: ConstExpr },
}

/// An element segment.
#[derive(Clone, Debug)]
pub struct ElemSegment {
    /// `FuncRef` or `ExternRef`.
    pub element_type: ValType,
    pub mode: ElemMode,
    /// One constant expression per element (function indices are stored as
    /// `ConstExpr::RefFunc`).
    pub items: Vec<ConstExpr>,
}

/// A data segment's mode.
#[derive(Clone, Debug, PartialEq)]
pub enum DataMode {
    Passive,
    Active { memory: u32, offset: ConstExpr },
}

/// A data segment: its bytes are `ModuleInfo::data_bytes[range]`.
#[derive(Clone, Debug)]
pub struct DataSegment {
    pub mode: DataMode,
    pub range: Range<usize>,
}

/// A defined function's body, located in the original wasm bytes.
#[derive(Clone, Debug)]
pub struct FunctionBody {
    /// Byte range of the body (locals + code) in `ModuleInfo::wasm`.
    pub range: Range<usize>,
}

/// Everything known about a module before code generation.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    /// The module binary (the `.wat` text is converted first).
    pub wasm: Vec<u8>,
    /// The type section.
    pub types: Vec<FuncType>,
    /// Engine-wide signature ids, parallel to `types` (for `call_indirect`).
    pub type_ids: Vec<u32>,
    pub imports: Vec<Import>,
    /// The type index of every function, imported first.
    pub functions: Vec<u32>,
    pub tables: Vec<TableType>,
    pub memories: Vec<MemoryType>,
    pub globals: Vec<GlobalType>,
    /// Initialisers of the defined globals (index = global index − imported).
    pub global_inits: Vec<ConstExpr>,
    pub exports: Vec<(String, ExportKind)>,
    pub export_map: HashMap<String, ExportKind>,
    pub start: Option<u32>,
    pub elems: Vec<ElemSegment>,
    pub data: Vec<DataSegment>,
    /// All data segment bytes, concatenated.
    pub data_bytes: Vec<u8>,
    /// Bodies of the defined functions (index = func index − imported).
    pub bodies: Vec<FunctionBody>,
    /// Functions that may be referenced (`ref.func`, elements, exports):
    /// the spec's "declared" set; only these need a funcref slot to be valid.
    pub num_imported_funcs: u32,
    pub num_imported_tables: u32,
    pub num_imported_memories: u32,
    pub num_imported_globals: u32,
    /// From the name section.
    pub module_name: Option<String>,
    pub func_names: HashMap<u32, String>,
}

impl ModuleInfo {
    /// The signature of function `func_index`.
    pub fn func_type(&self, func_index: u32) -> &FuncType {
        &self.types[self.functions[func_index as usize] as usize]
    }
    pub fn is_imported_func(&self, func_index: u32) -> bool {
        func_index < self.num_imported_funcs
    }
    pub fn is_imported_table(&self, index: u32) -> bool {
        index < self.num_imported_tables
    }
    pub fn is_imported_memory(&self, index: u32) -> bool {
        index < self.num_imported_memories
    }
    pub fn is_imported_global(&self, index: u32) -> bool {
        index < self.num_imported_globals
    }
    pub fn num_defined_funcs(&self) -> u32 {
        self.functions.len() as u32 - self.num_imported_funcs
    }
    pub fn num_defined_tables(&self) -> u32 {
        self.tables.len() as u32 - self.num_imported_tables
    }
    pub fn num_defined_memories(&self) -> u32 {
        self.memories.len() as u32 - self.num_imported_memories
    }
    pub fn num_defined_globals(&self) -> u32 {
        self.globals.len() as u32 - self.num_imported_globals
    }
    /// The bytes of data segment `index`.
    pub fn data_segment_bytes(&self, index: u32) -> &[u8] {
        &self.data_bytes[self.data[index as usize].range.clone()]
    }
}
