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

use crate::code_layout;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::module_info::ModuleInfo;
use crate::translate::env::FuncEnvironment;
use crate::translate::{trampolines, wasm_signature, FuncTranslator};
use crate::vmcontext::VMOffsets;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::TrapCode;
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
            .field(
                "code_range",
                &format_args!("{:#x}..{:#x}", self.code_range.start, self.code_range.end),
            )
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
    fn new(
        engine: &'a Engine,
        info: &'a ModuleInfo,
        offsets: &'a VMOffsets,
        print_clif: bool,
    ) -> Self {
        Worker {
            engine,
            env: FuncEnvironment::new(info, offsets, engine),
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
                Err(job_error(
                    self.env.info,
                    job,
                    format!("code generator panicked: {message}"),
                ))
            }
        }
    }

    fn compile(&mut self, id: usize, job: Job) -> Result<CompiledJob> {
        let info = self.env.info;
        let isa = self.engine.isa();
        self.ctx.clear();
        let built = match job {
            Job::Function(defined) => {
                self.translator
                    .translate(&mut self.env, defined, &mut self.ctx.func)
            }
            Job::ArrayTrampoline(t) => trampolines::array_trampoline(
                isa,
                &mut self.trampoline_ctx,
                t,
                &info.types[t as usize],
            )
            .map(|f| self.ctx.func = f),
            Job::HostTrampoline(t) => trampolines::host_trampoline(
                isa,
                &mut self.trampoline_ctx,
                t,
                &info.types[t as usize],
            )
            .map(|f| self.ctx.func = f),
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
        // Small loops placed inside one 64-byte line (`code_layout.rs`).
        let pad = match job {
            Job::Function(_) => code_layout::loop_padding(
                code.code_buffer(),
                &code.bb_starts,
                code.buffer.alignment,
            ),
            _ => None,
        };
        let shift = pad.unwrap_or(0);
        let mut bytes = code_layout::nop_padding(shift as usize);
        bytes.extend_from_slice(code.code_buffer());
        let compiled = CompiledJob {
            bytes,
            // Align function starts as Wasmtime does (32 bytes on x86-64):
            // at the buffer's minimum of 1 byte, hot loops straddle cache
            // lines by chance (sieve's counting loop ran 1.9x slower). A
            // function with small loops starts on a line, padded.
            align: u64::from(
                code.buffer
                    .alignment
                    .max(isa.function_alignment().preferred)
                    .max(if pad.is_some() { code_layout::LINE } else { 1 }),
            ),
            relocs: code
                .buffer
                .relocs()
                .iter()
                .map(|r| {
                    let mut reloc = ModuleReloc::from_mach_reloc(r, &self.ctx.func, func_id);
                    reloc.offset += shift;
                    reloc
                })
                .collect(),
            traps: {
                let mut t: Vec<(u32, TrapCode)> = code
                    .buffer
                    .traps()
                    .iter()
                    .map(|t| (t.offset + shift, t.code))
                    .collect();
                t.sort_by_key(|&(o, _)| o);
                t
            },
        };
        Ok(compiled)
    }
}

fn job_error(info: &ModuleInfo, job: Job, message: String) -> Error {
    match job {
        Job::Function(defined) => Error::Compile {
            func_index: info.num_imported_funcs + defined,
            message,
        },
        Job::ArrayTrampoline(t) => Error::Compile {
            func_index: u32::MAX,
            message: format!("array-call trampoline of type {t}: {message}"),
        },
        Job::HostTrampoline(t) => Error::Compile {
            func_index: u32::MAX,
            message: format!("host trampoline of type {t}: {message}"),
        },
        Job::EpochStub => Error::Compile {
            func_index: u32::MAX,
            message: format!("epoch stub: {message}"),
        },
    }
}

/// Compiles every defined function of `info` and the trampolines of every
/// type, and places them in executable memory.
pub(crate) fn compile(
    engine: &Engine,
    info: &ModuleInfo,
    offsets: &VMOffsets,
) -> Result<CompiledCode> {
    let num_defined = info.num_defined_funcs() as usize;
    let num_types = info.types.len();
    if info.bodies.len() != num_defined {
        return Err(Error::Compile {
            func_index: info.num_imported_funcs,
            message: format!(
                "{} function bodies for {} defined functions",
                info.bodies.len(),
                num_defined
            ),
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
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = threads.min(jobs.len() / 4).max(1);
    let parallel = engine.config().parallel_compilation
        && threads > 1
        && (body_bytes > 16 * 1024 || jobs.len() > 64);

    if !parallel {
        let mut worker = Worker::new(engine, info, offsets, print_clif);
        return jobs
            .iter()
            .enumerate()
            .map(|(id, &job)| worker.run(id, job))
            .collect();
    }

    // Largest bodies first, so that a big function does not start last and
    // leave the other threads idle at the end.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&id| {
        std::cmp::Reverse(match jobs[id] {
            Job::Function(defined) => info.bodies[defined as usize].range.len(),
            _ => 0,
        })
    });
    let order = &order;
    let next = AtomicUsize::new(0);
    let per_thread: Vec<Vec<(usize, Result<CompiledJob>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut worker = Worker::new(engine, info, offsets, print_clif);
                    let mut out = Vec::new();
                    while let Some(&id) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let job = jobs[id];
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
                    vec![(
                        0,
                        Err(Error::Compile {
                            func_index: u32::MAX,
                            message: "compiler thread panicked".into(),
                        }),
                    )]
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
        .map(|s| {
            s.ok_or_else(|| Error::Compile {
                func_index: u32::MAX,
                message: "a compile job did not run".into(),
            })
        })
        .collect()
}

/// Places the compiled jobs in one arena and records where everything is.
fn place(
    engine: &Engine,
    info: &ModuleInfo,
    jobs: &[Job],
    compiled: Vec<CompiledJob>,
) -> Result<CompiledCode> {
    let jit_error =
        |e: &dyn std::fmt::Display| Error::Resource(format!("cannot place compiled code: {e}"));

    // Reserve enough for every job even with worst-case padding; the arena
    // only reserves address space until code is written.
    let page = 4096usize;
    let total: usize = compiled
        .iter()
        .map(|c| c.bytes.len() + c.align as usize)
        .sum();
    let largest = compiled.iter().map(|c| c.bytes.len()).max().unwrap_or(0);
    let reserve = (2 * (total + largest) + 16 * page).next_multiple_of(page);
    let arena = ArenaMemoryProvider::new_with_size(reserve).map_err(|e| jit_error(&e))?;
    let mut builder =
        JITBuilder::with_isa(engine.isa_arc(), cranelift_module::default_libcall_names());
    builder.memory_provider(Box::new(arena));
    let mut jit = JITModule::new(builder);

    let call_conv = engine.isa().default_call_conv();
    let array_sig = trampolines::array_call_signature(engine.isa());
    let mut ids = Vec::with_capacity(jobs.len());
    for (j, &job) in jobs.iter().enumerate() {
        let sig = match job {
            Job::Function(defined) => {
                wasm_signature(call_conv, info.func_type(info.num_imported_funcs + defined))
            }
            Job::ArrayTrampoline(_) => array_sig.clone(),
            Job::HostTrampoline(t) => wasm_signature(call_conv, &info.types[t as usize]),
            Job::EpochStub => trampolines::epoch_stub_signature(),
        };
        let id = jit
            .declare_anonymous_function(&sig)
            .map_err(|e| jit_error(&e))?;
        if id.as_u32() as usize != j {
            return Err(Error::Compile {
                func_index: u32::MAX,
                message: format!("internal error: job {j} declared as {id}"),
            });
        }
        ids.push(id);
    }
    for (c, &id) in compiled.iter().zip(&ids) {
        jit.define_function_bytes(id, c.align, &c.bytes, &c.relocs)
            .map_err(|e| jit_error(&e))?;
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
            Job::Function(_) => functions.push(FunctionCode {
                start,
                len: c.bytes.len(),
                traps: c.traps,
            }),
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

/// The CLIF of one defined function (for tests).
#[cfg(test)]
pub(crate) fn function_clif(
    engine: &Engine,
    info: &ModuleInfo,
    offsets: &VMOffsets,
    defined: u32,
) -> Result<String> {
    let mut env = FuncEnvironment::new(info, offsets, engine);
    let mut func = cranelift_codegen::ir::Function::new();
    FuncTranslator::new()
        .translate(&mut env, defined, &mut func)
        .map_err(|m| job_error(info, Job::Function(defined), m))?;
    Ok(func.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trap::codes;
    use crate::{Config, Linker, MemoryStrategy, Module, Store};

    fn engine(strategy: MemoryStrategy, epoch: bool, parallel: bool) -> Engine {
        Engine::new(Config {
            memory_strategy: strategy,
            epoch_interruption: epoch,
            parallel_compilation: parallel,
            ..Config::default()
        })
        .unwrap()
    }

    fn info_of(engine: &Engine, wat: &str) -> (ModuleInfo, VMOffsets) {
        let info = crate::parse::parse(engine, wat.as_bytes()).unwrap();
        let offsets = VMOffsets::new(&info);
        (info, offsets)
    }

    const TRAPS: &str = r#"
        (module
          (import "env" "f" (func (param i32) (result i32)))
          (memory 1)
          (table 2 funcref)
          (func (export "unreachable") unreachable)
          (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
          (func (export "trunc") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
          (func (export "load") (param i32) (result i32) (i32.load offset=4 (local.get 0)))
          (func (export "indirect") (param i32) (result i32)
            (call_indirect (param i32) (result i32) (i32.const 7) (local.get 0))))
    "#;

    fn trap_codes_of(code: &CompiledCode, defined: u32) -> Vec<TrapCode> {
        code.functions[defined as usize]
            .traps
            .iter()
            .map(|&(_, c)| c)
            .collect()
    }

    #[test]
    fn records_trap_sites_and_finds_functions() {
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            let engine = engine(strategy, false, false);
            let (info, offsets) = info_of(&engine, TRAPS);
            let code = compile(&engine, &info, &offsets).unwrap();
            assert!(trap_codes_of(&code, 0).contains(&codes::UNREACHABLE));
            assert!(trap_codes_of(&code, 1).contains(&TrapCode::INTEGER_DIVISION_BY_ZERO));
            assert!(trap_codes_of(&code, 1).contains(&TrapCode::INTEGER_OVERFLOW));
            assert!(trap_codes_of(&code, 2).contains(&TrapCode::BAD_CONVERSION_TO_INTEGER));
            assert!(trap_codes_of(&code, 2).contains(&TrapCode::INTEGER_OVERFLOW));
            assert!(trap_codes_of(&code, 3).contains(&TrapCode::HEAP_OUT_OF_BOUNDS));
            let indirect = trap_codes_of(&code, 4);
            for c in [
                codes::TABLE_OUT_OF_BOUNDS,
                codes::INDIRECT_CALL_TO_NULL,
                codes::BAD_SIGNATURE,
            ] {
                assert!(indirect.contains(&c), "{c:?} missing from {indirect:?}");
            }
            // The prologue of a function with a frame checks the stack limit.
            assert!(indirect.contains(&TrapCode::STACK_OVERFLOW));

            let range = code.code_range();
            for (defined, f) in code.functions.iter().enumerate() {
                let func_index = info.num_imported_funcs + defined as u32;
                assert!(range.contains(&f.start) && f.start + f.len <= range.end);
                assert_eq!(code.function(defined as u32) as usize, f.start);
                assert_eq!(
                    code.lookup_pc(f.start),
                    Some((func_index, None)).filter(|_| !f.traps.iter().any(|t| t.0 == 0))
                );
                assert_eq!(
                    code.lookup_pc(f.start + f.len - 1).map(|r| r.0),
                    Some(func_index)
                );
                for &(offset, trap) in &f.traps {
                    assert_eq!(
                        code.lookup_pc(f.start + offset as usize),
                        Some((func_index, Some(trap)))
                    );
                }
            }
            for t in 0..info.types.len() as u32 {
                for p in [code.array_trampoline(t), code.host_trampoline(t)] {
                    assert!(range.contains(&(p as usize)));
                    assert_eq!(code.lookup_pc(p as usize), None);
                }
            }
            assert_eq!(code.lookup_pc(range.end), None);
            assert_eq!(code.lookup_pc(range.start.wrapping_sub(1)), None);
        }
    }

    #[test]
    fn parallel_compilation_matches_serial() {
        let mut wat = String::from("(module (memory 1)\n");
        for i in 0..200 {
            wat.push_str(&format!(
                "(func (export \"f{i}\") (param i32) (result i32)
                   (local i32)
                   (loop $l
                     (local.set 1 (i32.add (local.get 1) (i32.load (local.get 0))))
                     (br_if $l (i32.lt_u (local.get 1) (i32.const {i}))))
                   (local.get 1))\n"
            ));
        }
        wat.push(')');
        let serial = engine(MemoryStrategy::Guarded, true, false);
        let parallel = engine(MemoryStrategy::Guarded, true, true);
        let (info, offsets) = info_of(&serial, &wat);
        let a = compile(&serial, &info, &offsets).unwrap();
        let b = compile(&parallel, &info, &offsets).unwrap();
        assert_eq!(a.functions.len(), b.functions.len());
        for (x, y) in a.functions.iter().zip(&b.functions) {
            assert_eq!(x.len, y.len);
            assert_eq!(x.traps, y.traps);
        }
    }

    #[test]
    fn epoch_checks_at_entry_and_loop_back_edges() {
        let wat = r#"(module (func (param i32) (result i32)
            (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
            (local.get 0)))"#;
        let engine_on = engine(MemoryStrategy::Guarded, true, false);
        let (info, offsets) = info_of(&engine_on, wat);
        let clif = function_clif(&engine_on, &info, &offsets, 0).unwrap();
        // One stub call at entry (in a cold block), one on the loop's
        // `br_if` back edge.
        assert_eq!(clif.matches("call fn").count(), 2, "{clif}");
        assert!(clif.contains("preserve_all"), "{clif}");
        assert!(clif.contains("cold"), "{clif}");
        compile(&engine_on, &info, &offsets).unwrap();

        let engine_off = engine(MemoryStrategy::Guarded, false, false);
        let clif = function_clif(&engine_off, &info, &offsets, 0).unwrap();
        assert!(!clif.contains("call"), "{clif}");
    }

    /// `compute.wat` of the shared workloads (fib, sieve, matmul).
    const KERNELS: &str = r#";; compute.wat -- CPU kernels, to see what epoch-interruption checks cost.
;;
;; Shape:   160 pages (10 MiB) of linear memory, no imports.
;; Exports:
;;   fib(n: i32) -> i64
;;       naive doubly recursive Fibonacci; fib(30) == 832040
;;       (2,692,537 calls: stresses calls and function-entry checks).
;;   sieve(n: i32) -> i32
;;       sieve of Eratosthenes over bytes mem8[0..=n] (one byte per number);
;;       returns the number of primes <= n; sieve(10000000) == 664579.
;;       Needs n+1 <= 10,485,760 bytes (the 160 pages).
;;   matmul_init(n: i32)
;;       fills A (at 0) and B (at 8*n*n) with n x n row-major f64 matrices:
;;       A[i][j] = ((i + j) mod 7) - 3,  B[i][j] = ((i * j) mod 5) - 2.
;;   matmul(n: i32) -> f64
;;       C (at 16*n*n) = A x B with the naive i-j-k loop; returns the sum of
;;       all elements of C; matmul(200) == 2000.0 (exact in f64).
;;       n = 200 needs 3 * 8 * 200 * 200 = 960,000 bytes.
;; Used by: `compute` (each kernel timed with epoch interruption on and off).
(module
  (memory (export "memory") 160 160)

  (func $fib (export "fib") (param $n i32) (result i64)
    (if (result i64) (i32.lt_u (local.get $n) (i32.const 2))
      (then (i64.extend_i32_u (local.get $n)))
      (else
        (i64.add
          (call $fib (i32.sub (local.get $n) (i32.const 1)))
          (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  (func (export "sieve") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $count i32)
    ;; mem8[0..=n] = 1, then 0 and 1 are not prime
    (memory.fill (i32.const 0) (i32.const 1)
      (i32.add (local.get $n) (i32.const 1)))
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store8 (i32.const 1) (i32.const 0))
    (local.set $i (i32.const 2))
    (block $outer_done
      (loop $outer
        (br_if $outer_done
          (i32.gt_u (i32.mul (local.get $i) (local.get $i)) (local.get $n)))
        (if (i32.load8_u (local.get $i))
          (then
            (local.set $j (i32.mul (local.get $i) (local.get $i)))
            (block $inner_done
              (loop $inner
                (br_if $inner_done (i32.gt_u (local.get $j) (local.get $n)))
                (i32.store8 (local.get $j) (i32.const 0))
                (local.set $j (i32.add (local.get $j) (local.get $i)))
                (br $inner)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    ;; count the survivors
    (local.set $i (i32.const 0))
    (block $count_done
      (loop $count_loop
        (br_if $count_done (i32.gt_u (local.get $i) (local.get $n)))
        (local.set $count
          (i32.add (local.get $count) (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $count_loop)))
    (local.get $count))

  (func (export "matmul_init") (param $n i32)
    (local $i i32) (local $j i32) (local $a i32) (local $b i32)
    (local.set $b (i32.mul (i32.const 8) (i32.mul (local.get $n) (local.get $n))))
    (local.set $i (i32.const 0))
    (block $i_done
      (loop $i_loop
        (br_if $i_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $j_done
          (loop $j_loop
            (br_if $j_done (i32.ge_u (local.get $j) (local.get $n)))
            ;; a = 8 * (i*n + j)
            (local.set $a (i32.shl
              (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))
              (i32.const 3)))
            (f64.store (local.get $a)
              (f64.convert_i32_s (i32.sub
                (i32.rem_u (i32.add (local.get $i) (local.get $j)) (i32.const 7))
                (i32.const 3))))
            (f64.store (i32.add (local.get $b) (local.get $a))
              (f64.convert_i32_s (i32.sub
                (i32.rem_u (i32.mul (local.get $i) (local.get $j)) (i32.const 5))
                (i32.const 2))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $j_loop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $i_loop))))

  (func (export "matmul") (param $n i32) (result f64)
    (local $i i32) (local $j i32) (local $k i32)
    (local $b i32) (local $c i32) (local $acc f64) (local $total f64)
    (local.set $b (i32.mul (i32.const 8) (i32.mul (local.get $n) (local.get $n))))
    (local.set $c (i32.shl (local.get $b) (i32.const 1)))
    (local.set $i (i32.const 0))
    (block $i_done
      (loop $i_loop
        (br_if $i_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $j_done
          (loop $j_loop
            (br_if $j_done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $acc (f64.const 0))
            (local.set $k (i32.const 0))
            (block $k_done
              (loop $k_loop
                (br_if $k_done (i32.ge_u (local.get $k) (local.get $n)))
                ;; acc += A[i][k] * B[k][j]
                (local.set $acc (f64.add (local.get $acc)
                  (f64.mul
                    (f64.load (i32.shl
                      (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $k))
                      (i32.const 3)))
                    (f64.load (i32.add (local.get $b) (i32.shl
                      (i32.add (i32.mul (local.get $k) (local.get $n)) (local.get $j))
                      (i32.const 3)))))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $k_loop)))
            (f64.store
              (i32.add (local.get $c) (i32.shl
                (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))
                (i32.const 3)))
              (local.get $acc))
            (local.set $total (f64.add (local.get $total) (local.get $acc)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $j_loop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $i_loop)))
    (local.get $total)))"#;

    #[test]
    fn runs_compute_kernels_under_every_configuration() {
        for strategy in [MemoryStrategy::Guarded, MemoryStrategy::Checked] {
            for epoch in [false, true] {
                let engine = engine(strategy, epoch, true);
                let module = Module::new(&engine, KERNELS).unwrap();
                let mut store = Store::new(&engine, ());
                let instance = Linker::new(&engine)
                    .instantiate(&mut store, &module)
                    .unwrap();
                let fib = instance.get_typed_func::<i32, i64>(&store, "fib").unwrap();
                assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
                let sieve = instance
                    .get_typed_func::<i32, i32>(&store, "sieve")
                    .unwrap();
                assert_eq!(sieve.call(&mut store, 100_000).unwrap(), 9592);
                let init = instance
                    .get_typed_func::<i32, ()>(&store, "matmul_init")
                    .unwrap();
                init.call(&mut store, 30).unwrap();
                let matmul = instance
                    .get_typed_func::<i32, f64>(&store, "matmul")
                    .unwrap();
                let n = 30usize;
                let expected: f64 = (0..n)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        (0..n)
                            .map(|k| (((i + k) % 7) as f64 - 3.0) * (((k * j) % 5) as f64 - 2.0))
                            .sum::<f64>()
                    })
                    .sum();
                assert_eq!(matmul.call(&mut store, 30).unwrap(), expected);
            }
        }
    }

    #[test]
    fn control_flow_with_values() {
        let wat = r#"(module
          (type $pair (func (result i32 i64)))
          (table 1 funcref)
          (elem (i32.const 0) $two)
          (func $two (type $pair) (i32.const 7) (i64.const 9))
          ;; br_table carrying a value out of nested blocks
          (func (export "pick") (param i32) (result i32)
            (block $a (result i32)
              (block $b (result i32)
                (block $c (result i32)
                  (i32.const 100)
                  (local.get 0)
                  (br_table $a $b $c))
                (i32.add (i32.const 1)))
              (i32.add (i32.const 10))))
          ;; if without else, with a param that is also its result
          (func (export "inc_if") (param i32 i32) (result i32)
            (local.get 0)
            (if (param i32) (result i32) (local.get 1) (then (i32.add (i32.const 1)))))
          ;; loop with params: sum 1..n
          (func (export "sum") (param i32) (result i32)
            (i32.const 0) (local.get 0)
            (loop $l (param i32 i32) (result i32)
              (local.set 0)
              (i32.add (local.get 0))
              (i32.sub (local.get 0) (i32.const 1))
              (local.tee 0)
              (local.get 0)
              (br_if $l)
              (drop)))
          ;; multi-value through call and call_indirect, dead code after br
          (func (export "multi") (result i64) (local $a i64)
            (block $out (result i64)
              (call $two) (local.set $a) (i64.extend_i32_u) (local.get $a) (i64.add)
              (call_indirect (type $pair) (i32.const 0))
              (local.set $a) (i64.extend_i32_u) (local.get $a) (i64.add)
              (i64.add)
              (br $out)
              (unreachable)
              (i32.const 1)
              (if (then (unreachable)) (else (br 0)))))
          (func (export "select_f") (param i32) (result f64)
            (select (f64.const 1.5) (f64.const -2.5) (local.get 0))))"#;
        let engine = engine(MemoryStrategy::Guarded, false, false);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &module)
            .unwrap();
        let pick = instance.get_typed_func::<i32, i32>(&store, "pick").unwrap();
        assert_eq!(pick.call(&mut store, 0).unwrap(), 100);
        assert_eq!(pick.call(&mut store, 1).unwrap(), 110);
        assert_eq!(pick.call(&mut store, 2).unwrap(), 111);
        assert_eq!(pick.call(&mut store, 9).unwrap(), 111);
        let inc_if = instance
            .get_typed_func::<(i32, i32), i32>(&store, "inc_if")
            .unwrap();
        assert_eq!(inc_if.call(&mut store, (5, 1)).unwrap(), 6);
        assert_eq!(inc_if.call(&mut store, (5, 0)).unwrap(), 5);
        let sum = instance.get_typed_func::<i32, i32>(&store, "sum").unwrap();
        assert_eq!(sum.call(&mut store, 10).unwrap(), 55);
        let multi = instance.get_typed_func::<(), i64>(&store, "multi").unwrap();
        assert_eq!(multi.call(&mut store, ()).unwrap(), 7 + 9 + 7 + 9);
        let select_f = instance
            .get_typed_func::<i32, f64>(&store, "select_f")
            .unwrap();
        assert_eq!(select_f.call(&mut store, 1).unwrap(), 1.5);
        assert_eq!(select_f.call(&mut store, 0).unwrap(), -2.5);
    }

    #[test]
    fn host_trampolines_pass_values_both_ways() {
        let wat = r#"(module
          (import "env" "mix" (func $mix (param i32 i64 f32 f64) (result f64 i32)))
          (func (export "run") (result f64 i32)
            (call $mix (i32.const -1) (i64.const -2) (f32.const 0.5) (f64.const 0.25))))"#;
        let engine = engine(MemoryStrategy::Guarded, false, false);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                "env",
                "mix",
                |a: i32, b: i64, c: f32, d: f64| -> (f64, i32) {
                    (a as f64 + b as f64 + c as f64 + d, a.wrapping_mul(3))
                },
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let run = instance
            .get_typed_func::<(), (f64, i32)>(&store, "run")
            .unwrap();
        assert_eq!(run.call(&mut store, ()).unwrap(), (-2.25, -3));
    }

    #[test]
    fn compile_errors_are_errors_not_panics() {
        let engine = engine(MemoryStrategy::Guarded, false, false);
        let (mut info, offsets) = info_of(&engine, "(module (func (result i32) (i32.const 1)))");
        // A corrupted body must fail cleanly.
        let r = info.bodies[0].range.clone();
        info.wasm[r.end - 1] = 0x6a; // `end` → `i32.add`: stack underflow, no `end`
        assert!(matches!(
            compile(&engine, &info, &offsets),
            Err(Error::Compile { func_index: 0, .. })
        ));
    }
}
