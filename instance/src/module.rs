//! A compiled module: validated once, compiled once, shared by every
//! instance on every core.

use crate::code_registry::{self, CodeLookup, CodeRegistration};
use crate::compile::{self, CompiledCode};
use crate::engine::Engine;
use crate::error::Result;
use crate::memory_image::MemoryImages;
use crate::module_info::{ExportKind, ImportKind, ModuleInfo};
use crate::parse;
use crate::trap::FrameInfo;
use crate::vmcontext::VMOffsets;
use cranelift_codegen::ir::TrapCode;
use std::sync::{Arc, OnceLock};

/// A validated, compiled WebAssembly module.
///
/// Immutable, `Send + Sync`, and cheap to clone (an `Arc`): compile it once
/// and instantiate it as often as needed, from any thread.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    engine: Engine,
    info: Arc<ModuleInfo>,
    offsets: VMOffsets,
    code: Arc<CompiledCode>,
    /// The initial memory images, built on first instantiation (`None`
    /// inside: the data segments are applied one by one).
    memory_images: OnceLock<Option<MemoryImages>>,
    /// Keeps the code findable by the trap handler; removed on drop, before
    /// the code itself is freed.
    _registration: CodeRegistration,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.info.module_name)
            .field("functions", &self.inner.info.functions.len())
            .finish()
    }
}

impl Module {
    /// Validates and compiles `bytes`, a wasm binary or `.wat` text.
    ///
    /// Malformed or invalid input, and modules that use features beyond
    /// WebAssembly 2.0 (or SIMD), return an error naming the problem and its
    /// byte offset.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        let info = Arc::new(parse::parse(engine, bytes.as_ref())?);
        let offsets = VMOffsets::new(&info);
        let code = Arc::new(compile::compile(engine, &info, &offsets)?);
        let lookup = Arc::new(ModuleCode {
            info: info.clone(),
            code: code.clone(),
        });
        let registration = code_registry::register_code(code.code_range(), lookup);
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                info,
                offsets,
                code,
                memory_images: OnceLock::new(),
                _registration: registration,
            }),
        })
    }

    /// Checks that `bytes` would compile, without compiling it.
    pub fn validate(bytes: impl AsRef<[u8]>) -> Result<()> {
        parse::validate(&parse::to_binary(bytes.as_ref())?)
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Everything parsed from the binary.
    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// The VMContext layout of this module's instances.
    pub fn offsets(&self) -> &VMOffsets {
        &self.inner.offsets
    }

    /// The compiled code.
    pub(crate) fn code(&self) -> &CompiledCode {
        &self.inner.code
    }

    /// The prepared images of the defined memories' initial contents, if
    /// the data segments allow one (see [`crate::memory_image`]).
    pub(crate) fn memory_images(&self) -> Option<&MemoryImages> {
        self.inner
            .memory_images
            .get_or_init(|| MemoryImages::new(&self.inner.info))
            .as_ref()
    }

    /// The module's name from its name section, if any.
    pub fn name(&self) -> Option<&str> {
        self.inner.info.module_name.as_deref()
    }

    /// `(module, name, kind)` of every import, in order.
    pub fn imports(&self) -> impl Iterator<Item = (&str, &str, &ImportKind)> {
        self.inner
            .info
            .imports
            .iter()
            .map(|i| (i.module.as_str(), i.name.as_str(), &i.kind))
    }

    /// `(name, kind)` of every export, in order.
    pub fn exports(&self) -> impl Iterator<Item = (&str, ExportKind)> {
        self.inner
            .info
            .exports
            .iter()
            .map(|(n, k)| (n.as_str(), *k))
    }

    /// Whether two handles are the same compiled module.
    pub fn same(a: &Module, b: &Module) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

/// What the trap handler needs to know about one module's code.
struct ModuleCode {
    info: Arc<ModuleInfo>,
    code: Arc<CompiledCode>,
}

impl CodeLookup for ModuleCode {
    fn lookup(&self, pc: usize) -> Option<(FrameInfo, Option<TrapCode>)> {
        let (func_index, trap_code) = self.code.lookup_pc(pc)?;
        let frame = FrameInfo {
            func_index,
            func_name: self.info.func_names.get(&func_index).cloned(),
            module_name: self.info.module_name.clone(),
        };
        Some((frame, trap_code))
    }

    /// Allocation-free: the signal handler calls this.
    fn trap_code(&self, pc: usize) -> Option<Option<TrapCode>> {
        self.code.lookup_pc(pc).map(|(_, code)| code)
    }
}
