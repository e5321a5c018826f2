//! The compile driver: every defined function and every trampoline of a
//! module → machine code placed in one contiguous executable range.
//!
//! # Steps
//!
//! 1. Make the job list: defined function `i` is job `i`; the array-call
//!    trampoline of type `t` is job `n + t`; its host trampoline is job
//!    `n + T + t` (`n` defined functions, `T` types); with epoch
//!    interruption, job `n + 2T` is the epoch stub. Job `j` becomes the
//!    cranelift-jit `FuncId` `j`, which is also the name direct calls use
//!    (`UserExternalName { namespace: 0, index: defined_index }`).
//! 2. Compile the jobs: translate ([`crate::translate`]) and run Cranelift,
//!    on `available_parallelism` threads when the module is large and
//!    `Config::parallel_compilation` is on (each thread has its own
//!    `cranelift_codegen::Context` and translator state). Each job yields
//!    its bytes, relocations (already converted with
//!    `ModuleReloc::from_mach_reloc`) and trap sites.
//! 3. Place everything with a `JITModule` over an `ArenaMemoryProvider` that
//!    reserves enough address space for all of it up front, so the code is
//!    one contiguous range; `define_function_bytes` each job, then
//!    `finalize_definitions` applies relocations (direct calls are
//!    PC-relative) and makes the range executable.
//! 4. Record entry points, per-function code ranges and their trap sites
//!    (sorted by offset) for [`CompiledCode::lookup_pc`].
//!
//! Dropping a [`CompiledCode`] unmaps its code.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::module_info::ModuleInfo;
use crate::translate::env::FuncEnvironment;
use crate::translate::{trampolines, wasm_signature, FuncTranslator};
use crate::vmcontext::VMOffsets;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, TrapCode};
use cranelift_codegen::Context;
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{ArenaMemoryProvider, JITBuilder, JITModule};
use cranelift_module::{FuncId, Module as _, ModuleReloc};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The machine code of one module.
pub(crate) struct CompiledCode {
    /// Owns the executable memory; `None` only during drop.
    jit: Option<JITModule>,
    code_range: Range<usize>,
    /// Per defined function.
    functions: Vec<FunctionCode>,
    /// Defined-function indices sorted by start address.
    by_address: Vec<u32>,
    array_trampolines: Vec<usize>,
    host_trampolines: Vec<usize>,
    num_imported_funcs: u32,
}

/// Where one defined function's code lies, and its trap sites.
struct FunctionCode {
    start: usize,
    len: usize,
    /// `(offset from start, code)`, sorted by offset.
    traps: Vec<(u32, TrapCode)>,
}

// SAFETY: after `compile` returns, the `JITModule` is never used through a
// shared reference (only `free_memory` in `Drop`, which has `&mut self`), and
// everything else is plain data: addresses of immutable, executable code.
unsafe impl Send for CompiledCode {}
// SAFETY: see `Send`; no method of `CompiledCode` touches the `JITModule`.
unsafe impl Sync for CompiledCode {}

impl std::fmt::Debug for CompiledCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCode")
            .field("code_range", &format_args!("{:#x}..{:#x}", self.code_range.start, self.code_range.end))
            .field("functions", &self.functions.len())
            .field("types", &self.array_trampolines.len())
            .finish()
    }
}

impl Drop for CompiledCode {
    fn drop(&mut self) {
        if let Some(jit) = self.jit.take() {
            // SAFETY: the code is no longer running: whoever runs it (the
            // Module, its instances) holds this `CompiledCode` alive while
            // doing so, and no pointer into the code outlives it.
            unsafe { jit.free_memory() };
        }
    }
}

impl CompiledCode {
    /// The contiguous range holding all of the module's code.
    pub fn code_range(&self) -> Range<usize> {
        self.code_range.clone()
    }

    /// The wasm-ABI body of defined function `defined_index`.
    pub fn function(&self, defined_index: u32) -> *const u8 {
        self.functions[defined_index as usize].start as *const u8
    }

    /// The host→wasm array-call trampoline of type `type_index`.
    pub fn array_trampoline(&self, type_index: u32) -> *const u8 {
        self.array_trampolines[type_index as usize] as *const u8
    }

    /// The wasm→host trampoline of type `type_index`.
    pub fn host_trampoline(&self, type_index: u32) -> *const u8 {
        self.host_trampolines[type_index as usize] as *const u8
    }

    /// The defined function containing `pc` (as a module-wide function
    /// index), and the trap code if `pc` is exactly one of its trap sites.
    /// Trampolines are not functions: a `pc` in one gives `None`.
    pub fn lookup_pc(&self, pc: usize) -> Option<(u32, Option<TrapCode>)> {
        if !self.code_range.contains(&pc) {
            return None;
        }
        let pos = self
            .by_address
            .partition_point(|&i| self.functions[i as usize].start <= pc);
        let defined = *self.by_address.get(pos.checked_sub(1)?)?;
        let f = &self.functions[defined as usize];
        if pc >= f.start + f.len {
            return None;
        }
        let offset = (pc - f.start) as u32;
        let trap = f
            .traps
            .binary_search_by_key(&offset, |&(o, _)| o)
            .ok()
            .map(|i| f.traps[i].1);
        Some((self.num_imported_funcs + defined, trap))
    }
}

/// What one job produced.
struct CompiledJob {
    bytes: Vec<u8>,
    align: u64,
    relocs: Vec<ModuleReloc>,
    traps: Vec<(u32, TrapCode)>,
}

#[derive(Clone, Copy, Debug)]
enum Job {
    Function(u32),
    ArrayTrampoline(u32),
    HostTrampoline(u32),
    EpochStub,
}

/// Per-thread compilation state.
struct Worker<'a> {
    engine: &'a Engine,
    env: FuncEnvironment<'a>,
    translator: FuncTranslator,
    trampoline_ctx: FunctionBuilderContext,
    ctx: Context,
    print_clif: bool,
}

impl<'a> Worker<'a> {
    fn new(engine: &'a Engine, info: &'a ModuleInfo, offsets: &'a VMOffsets, print_clif: bool) -> Self {
        Worker {
            engine,
            env: FuncEnvironment::new(info, offsets, engine.isa(), engine.config()),
            translator: FuncTranslator::new(),
            trampoline_ctx: FunctionBuilderContext::new(),
            ctx: Context::new(),
            print_clif,
        }
    }

    /// Compiles job `id`; panics inside Cranelift become errors.
    fn run(&mut self, id: usize, job: Job) -> Result<CompiledJob> {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.compile(id, job)));
        match result {
            Ok(r) => r,
            Err(panic) => {
                // The state may be half-updated: start afresh.
                self.translator = FuncTranslator::new();
                self.trampoline_ctx = FunctionBuilderContext::new();
                self.ctx = Context::new();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Err(job_error(self.env.info, job, format!("code generator panicked: {message}")))
            }
        }
    }

    fn compile(&mut self, id: usize, job: Job) -> Result<CompiledJob> {
        let info = self.env.info;
        let isa = self.engine.isa();
        self.ctx.clear();
        let built = match job {
            Job::Function(defined) => self.translator.translate(&mut self.env, defined, &mut self.ctx.func),
            Job::ArrayTrampoline(t) => {
                trampolines::array_trampoline(isa, &mut self.trampoline_ctx, t, &info.types[t as usize])
                    .map(|f| self.ctx.func = f)
            }
            Job::HostTrampoline(t) => {
                trampolines::host_trampoline(isa, &mut self.trampoline_ctx, t, &info.types[t as usize])
                    .map(|f| self.ctx.func = f)
            }
            Job::EpochStub => {
                trampolines::epoch_stub(isa, &mut self.trampoline_ctx).map(|f| self.ctx.func = f)
            }
        };
        built.map_err(|m| job_error(info, job, m))?;
        if self.print_clif {
            eprintln!("{}", self.ctx.func.display());
        }
        self.ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| job_error(info, job, format!("{:?}", e.inner)))?;
        let code = self
            .ctx
            .compiled_code()
            .ok_or_else(|| job_error(info, job, "no code after compilation".to_string()))?;
        let func_id = FuncId::from_u32(id as u32);
        let compiled = CompiledJob {
            bytes: code.code_buffer().to_vec(),
            align: u64::from(code.buffer.alignment),
            relocs: code
                .buffer
                .relocs()
                .iter()
                .map(|r| ModuleReloc::from_mach_reloc(r, &self.ctx.func, func_id))
                .collect(),
            traps: {
                let mut t: Vec<(u32, TrapCode)> =
                    code.buffer.traps().iter().map(|t| (t.offset, t.code)).collect();
                t.sort_by_key(|&(o, _)| o);
                t
            },
        };
        Ok(compiled)
    }
}

fn job_error(info: &ModuleInfo, job: Job, message: String) -> Error {
    match job {
        Job::Function(defined) => Error::Compile { func_index: info.num_imported_funcs + defined, message },
        Job::ArrayTrampoline(t) => Error::Compile {
            func_index: u32::MAX,
            message: format!("array-call trampoline of type {t}: {message}"),
        },
        Job::HostTrampoline(t) => Error::Compile {
            func_index: u32::MAX,
            message: format!("host trampoline of type {t}: {message}"),
        },
        Job::EpochStub => Error::Compile { func_index: u32::MAX, message: format!("epoch stub: {message}") },
    }
}

/// Compiles every defined function of `info` and the trampolines of every
/// type, and places them in executable memory.
pub(crate) fn compile(engine: &Engine, info: &ModuleInfo, offsets: &VMOffsets) -> Result<CompiledCode> {
    let num_defined = info.num_defined_funcs() as usize;
    let num_types = info.types.len();
    if info.bodies.len() != num_defined {
        return Err(Error::Compile {
            func_index: info.num_imported_funcs,
            message: format!("{} function bodies for {} defined functions", info.bodies.len(), num_defined),
        });
    }
    let mut jobs = Vec::with_capacity(num_defined + 2 * num_types);
    jobs.extend((0..num_defined as u32).map(Job::Function));
    jobs.extend((0..num_types as u32).map(Job::ArrayTrampoline));
    jobs.extend((0..num_types as u32).map(Job::HostTrampoline));
    if engine.config().epoch_interruption {
        debug_assert_eq!(jobs.len() as u32, crate::translate::epoch_stub_id(info));
        jobs.push(Job::EpochStub);
    }
    let print_clif = std::env::var_os("SHOAL_PRINT_CLIF").is_some();

    let compiled = compile_jobs(engine, info, offsets, &jobs, print_clif)?;
    place(engine, info, &jobs, compiled)
}

/// Runs every job, in parallel when worthwhile; results in job order.
fn compile_jobs(
    engine: &Engine,
    info: &ModuleInfo,
    offsets: &VMOffsets,
    jobs: &[Job],
    print_clif: bool,
) -> Result<Vec<CompiledJob>> {
    let body_bytes: usize = info.bodies.iter().map(|b| b.range.len()).sum();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = threads.min(jobs.len() / 4).max(1);
    let parallel = engine.config().parallel_compilation && threads > 1 && (body_bytes > 16 * 1024 || jobs.len() > 64);

    if !parallel {
        let mut worker = Worker::new(engine, info, offsets, print_clif);
        return jobs.iter().enumerate().map(|(id, &job)| worker.run(id, job)).collect();
    }

    let next = AtomicUsize::new(0);
    let per_thread: Vec<Vec<(usize, Result<CompiledJob>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut worker = Worker::new(engine, info, offsets, print_clif);
                    let mut out = Vec::new();
                    loop {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&job) = jobs.get(id) else { break };
                        let r = worker.run(id, job);
                        let failed = r.is_err();
                        out.push((id, r));
                        if failed {
                            // Make the other threads stop soon too.
                            next.store(jobs.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(0, Err(Error::Compile { func_index: u32::MAX, message: "compiler thread panicked".into() }))]
                })
            })
            .collect()
    });

    let mut slots: Vec<Option<CompiledJob>> = (0..jobs.len()).map(|_| None).collect();
    let mut first_error: Option<(usize, Error)> = None;
    for (id, r) in per_thread.into_iter().flatten() {
        match r {
            Ok(c) => slots[id] = Some(c),
            Err(e) => {
                if first_error.as_ref().is_none_or(|(i, _)| id < *i) {
                    first_error = Some((id, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    slots
        .into_iter()
        .map(|s| s.ok_or_else(|| Error::Compile { func_index: u32::MAX, message: "a compile job did not run".into() }))
        .collect()
}

/// Places the compiled jobs in one arena and records where everything is.
fn place(engine: &Engine, info: &ModuleInfo, jobs: &[Job], compiled: Vec<CompiledJob>) -> Result<CompiledCode> {
    let jit_error = |e: &dyn std::fmt::Display| Error::Resource(format!("cannot place compiled code: {e}"));

    // Reserve enough for every job even with worst-case padding; the arena
    // only reserves address space until code is written.
    let page = 4096usize;
    let total: usize = compiled.iter().map(|c| c.bytes.len() + c.align as usize).sum();
    let largest = compiled.iter().map(|c| c.bytes.len()).max().unwrap_or(0);
    let reserve = (2 * (total + largest) + 16 * page).next_multiple_of(page);
    let arena = ArenaMemoryProvider::new_with_size(reserve).map_err(|e| jit_error(&e))?;
    let mut builder = JITBuilder::with_isa(engine.isa_arc(), cranelift_module::default_libcall_names());
    builder.memory_provider(Box::new(arena));
    let mut jit = JITModule::new(builder);

    let call_conv = engine.isa().default_call_conv();
    let array_sig = trampolines::array_call_signature(engine.isa());
    let mut ids = Vec::with_capacity(jobs.len());
    for (j, &job) in jobs.iter().enumerate() {
        let sig = match job {
            Job::Function(defined) => wasm_signature(call_conv, info.func_type(info.num_imported_funcs + defined)),
            Job::ArrayTrampoline(_) => array_sig.clone(),
            Job::HostTrampoline(t) => wasm_signature(call_conv, &info.types[t as usize]),
            Job::EpochStub => trampolines::epoch_stub_signature(),
        };
        let id = jit.declare_anonymous_function(&sig).map_err(|e| jit_error(&e))?;
        if id.as_u32() as usize != j {
            return Err(Error::Compile {
                func_index: u32::MAX,
                message: format!("internal error: job {j} declared as {id}"),
            });
        }
        ids.push(id);
    }
    for (c, &id) in compiled.iter().zip(&ids) {
        jit.define_function_bytes(id, c.align, &c.bytes, &c.relocs).map_err(|e| jit_error(&e))?;
    }
    jit.finalize_definitions().map_err(|e| jit_error(&e))?;

    let mut functions = Vec::with_capacity(info.num_defined_funcs() as usize);
    let mut array_trampolines = Vec::with_capacity(info.types.len());
    let mut host_trampolines = Vec::with_capacity(info.types.len());
    let mut lo = usize::MAX;
    let mut hi = 0usize;
    for ((c, &id), &job) in compiled.into_iter().zip(&ids).zip(jobs) {
        let start = jit.get_finalized_function(id) as usize;
        lo = lo.min(start);
        hi = hi.max(start + c.bytes.len());
        match job {
            Job::Function(_) => functions.push(FunctionCode { start, len: c.bytes.len(), traps: c.traps }),
            Job::ArrayTrampoline(_) => array_trampolines.push(start),
            Job::HostTrampoline(_) => host_trampolines.push(start),
            Job::EpochStub => {}
        }
    }
    let code_range = if lo <= hi { lo..hi } else { 0..0 };
    let mut by_address: Vec<u32> = (0..functions.len() as u32).collect();
    by_address.sort_by_key(|&i| functions[i as usize].start);

    Ok(CompiledCode {
        jit: Some(jit),
        code_range,
        functions,
        by_address,
        array_trampolines,
        host_trampolines,
        num_imported_funcs: info.num_imported_funcs,
    })
}

/// Shorthand used by tests and debugging: the CLIF of one defined function.
#[allow(dead_code)]
pub(crate) fn function_clif(engine: &Engine, info: &ModuleInfo, offsets: &VMOffsets, defined: u32) -> Result<String> {
    let mut env = FuncEnvironment::new(info, offsets, engine.isa(), engine.config());
    let mut func = ir::Function::new();
    FuncTranslator::new()
        .translate(&mut env, defined, &mut func)
        .map_err(|m| job_error(info, Job::Function(defined), m))?;
    Ok(func.display().to_string())
}
