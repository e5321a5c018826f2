//! Instance templates: a module, linked and checked once, ready to spawn
//! many times.
//!
//! An [`InstanceTemplate`] is built once per (module, linker, entry export,
//! contract) by [`Runtime::template`](super::Runtime::template). Building it
//! does every check and all the linking a spawn would otherwise repeat:
//!
//! 1. the module was compiled by the runtime's engine (so its code checks
//!    the runtime's epoch and can be preempted);
//! 2. the contract allows every import and the module's memories and
//!    tables (`Contract::check`: a forbidden import is refused with its
//!    name), and the runtime can enforce the contract's limits (memory and
//!    table limits are set on each instance's store; the stack limit is
//!    the runtime's);
//! 3. the linker resolves every import (`Linker::instantiate_pre`), with
//!    host function types checked;
//! 4. the entry export exists and is a function (its type is kept, and
//!    checked against static types once by [`InstanceTemplate::typed`]).
//!
//! A template is cheap to clone (an `Arc`), `Send + Sync`, and can spawn
//! from any thread, including from inside the runtime's green threads (an
//! accept loop spawning one instance per connection).

use super::error::{RunError, SpawnError};
use super::instance_limit::{InstanceLimit, Permit};
use super::join::JoinHandle;
use super::preemption::Policy;
use super::spawn::{live, live_then, spawn_green, DynamicCall, EntryCall, Finished, TypedCall};
use super::{cpu_clock, Runtime};
use crate::contract::Contract;
use shoal_instance::module_info::ExportKind;
use shoal_instance::{
    Engine, FuncType, InstancePre, Linker, Module, StoreLimits, Val, WasmParams, WasmResults,
};
use std::marker::PhantomData;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// What every spawn of a template shares.
pub(crate) struct TemplateShared<T> {
    pub(crate) engine: Engine,
    pub(crate) executor: shoal_scheduler::Handle,
    pub(crate) pre: InstancePre<T>,
    pub(crate) export: Box<str>,
    pub(crate) export_type: FuncType,
    pub(crate) policy: Policy,
    /// The contract's memory and table limits, when stricter than the
    /// engine's (set on each instance's store before instantiation).
    pub(crate) store_limits: Option<StoreLimits>,
    pub(crate) limit: Arc<InstanceLimit>,
    pub(crate) contract: Contract,
    /// The arena an instance's store needs for its own blocks, learnt from
    /// the instances so far (see `shoal_instance::Store::with_arena`): 0
    /// until the first is created.
    pub(crate) arena_bytes: AtomicUsize,
}

/// A module linked and checked once, ready to spawn many instances of,
/// calling one export with `Val`s. See the module docs; typed spawns go
/// through [`typed`](Self::typed).
pub struct InstanceTemplate<T> {
    shared: Arc<TemplateShared<T>>,
}

impl<T> Clone for InstanceTemplate<T> {
    fn clone(&self) -> Self {
        InstanceTemplate {
            shared: self.shared.clone(),
        }
    }
}

impl<T> std::fmt::Debug for InstanceTemplate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceTemplate")
            .field("module", self.shared.pre.module())
            .field("export", &self.shared.export)
            .field("type", &self.shared.export_type)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> InstanceTemplate<T> {
    /// Builds a template (see the module docs). `contract` is `None` for
    /// the runtime's default contract, whose instance limit is shared by
    /// every spawn made under it.
    pub(crate) fn new(
        runtime: &Runtime,
        module: &Module,
        linker: &Linker<T>,
        export: &str,
        contract: Option<Contract>,
    ) -> Result<Self, SpawnError> {
        if !Engine::same(module.engine(), runtime.engine()) {
            return Err(SpawnError::ForeignModule);
        }
        let (contract, limit) = match contract {
            None => (runtime.contract().clone(), runtime.default_limit().clone()),
            Some(c) => {
                let limit = InstanceLimit::new(c.max_instances);
                (c, limit)
            }
        };
        contract.check(module).map_err(SpawnError::Contract)?;
        check_enforceable(runtime, &contract)?;
        let pre = linker.instantiate_pre(module).map_err(SpawnError::Link)?;
        let export_type = entry_type(module, export)?;
        let policy = Policy {
            timeslice_ticks: runtime.timeslice_ticks(),
            budget_ticks: contract.cpu_budget_epochs,
        };
        let config = runtime.engine().config();
        let store_limits = (contract.max_memory_pages < config.max_memory_pages
            || contract.max_table_elements < config.max_table_elements
            || contract.stack_size < config.max_wasm_stack)
            .then_some(StoreLimits {
                max_memory_pages: contract.max_memory_pages,
                max_table_elements: contract.max_table_elements,
                max_wasm_stack: contract.stack_size,
            });
        Ok(InstanceTemplate {
            shared: Arc::new(TemplateShared {
                engine: runtime.engine().clone(),
                executor: runtime.executor().clone(),
                pre,
                export: export.into(),
                export_type,
                policy,
                store_limits,
                limit,
                contract,
                arena_bytes: AtomicUsize::new(0),
            }),
        })
    }

    /// The module.
    pub fn module(&self) -> &Module {
        self.shared.pre.module()
    }

    /// The entry export's name.
    pub fn export(&self) -> &str {
        &self.shared.export
    }

    /// The entry export's type.
    pub fn export_type(&self) -> &FuncType {
        &self.shared.export_type
    }

    /// The contract its instances run under.
    pub fn contract(&self) -> &Contract {
        &self.shared.contract
    }

    /// Instances alive under this template's contract (for the runtime's
    /// default contract: all of them).
    pub fn live_instances(&self) -> usize {
        self.shared.limit.live()
    }

    /// The same template with static parameter and result types, checked
    /// against the export's type here, once.
    pub fn typed<P: WasmParams, R: WasmResults>(
        &self,
    ) -> Result<TypedTemplate<T, P, R>, SpawnError> {
        let ty = &self.shared.export_type;
        if !P::matches(&ty.params) || !R::matches(&ty.results) {
            return Err(SpawnError::Export(format!(
                "export `{}` has type {ty}, not the requested {}",
                self.shared.export,
                FuncType::new(P::valtypes(), R::valtypes())
            )));
        }
        Ok(TypedTemplate {
            template: self.clone(),
            _types: PhantomData,
        })
    }

    /// Spawns an instance with default host data; see
    /// [`spawn_with`](Self::spawn_with).
    pub fn spawn(&self, args: Vec<Val>) -> Result<JoinHandle<Vec<Val>>, SpawnError>
    where
        T: Default,
    {
        self.spawn_with(T::default(), args)
    }

    /// Spawns an instance on its own green thread, with `data` as its
    /// store's host data, calling the export with `args`. The instance is
    /// created on the worker that runs it; see `spawn.rs` for its life.
    pub fn spawn_with(&self, data: T, args: Vec<Val>) -> Result<JoinHandle<Vec<Val>>, SpawnError> {
        self.spawn_call(data, DynamicCall(args))
    }

    /// Spawns an instance like [`spawn_with`](Self::spawn_with), then runs
    /// `inspect` on its green thread once the call has ended (returned or
    /// trapped), with the store still alive — to read linear memory after a
    /// trap, say — and its timeslice statistics. The handle yields what
    /// `inspect` returns.
    pub fn spawn_then<U: Send + 'static>(
        &self,
        data: T,
        args: Vec<Val>,
        inspect: impl FnOnce(Finished<'_, T, Vec<Val>>) -> U + Send + 'static,
    ) -> Result<JoinHandle<U>, SpawnError> {
        self.spawn_call_then(data, DynamicCall(args), inspect)
    }

    /// Runs an instance on the calling thread: a green thread of this
    /// runtime's executor (one the embedder spawned with
    /// [`Runtime::executor`]), or a plain OS thread. Same life as a spawned
    /// instance (budget, preemption: on an OS thread a "yield" is
    /// `std::thread::yield_now`), without a new green thread.
    ///
    /// Refused with [`RunError::NotOnRuntime`] on a green thread of an
    /// executor that a runtime did not build: traps there could not be
    /// caught safely.
    pub fn run_here(&self, data: T, args: Vec<Val>) -> Result<Vec<Val>, RunError> {
        self.run_call(data, DynamicCall(args))
    }

    /// [`run_here`](Self::run_here), then `inspect` on the finished
    /// instance (see [`spawn_then`](Self::spawn_then)).
    pub fn run_here_then<U>(
        &self,
        data: T,
        args: Vec<Val>,
        inspect: impl FnOnce(Finished<'_, T, Vec<Val>>) -> U,
    ) -> Result<U, RunError> {
        self.run_call_then(data, DynamicCall(args), inspect)
    }

    pub(crate) fn spawn_call<C: EntryCall<T>>(
        &self,
        data: T,
        call: C,
    ) -> Result<JoinHandle<C::Output>, SpawnError> {
        let permit = self.shared.limit.acquire()?;
        let shared = self.shared.clone();
        spawn_green(&self.shared, move || live(&shared, data, call, permit))
    }

    pub(crate) fn spawn_call_then<C: EntryCall<T>, U: Send + 'static>(
        &self,
        data: T,
        call: C,
        inspect: impl FnOnce(Finished<'_, T, C::Output>) -> U + Send + 'static,
    ) -> Result<JoinHandle<U>, SpawnError> {
        let permit = self.shared.limit.acquire()?;
        let shared = self.shared.clone();
        spawn_green(&self.shared, move || {
            Ok(live_then(&shared, data, call, permit, inspect))
        })
    }

    /// Checks that the calling thread may run an instance and takes a
    /// permit for it.
    fn here(&self) -> Result<Permit, RunError> {
        if shoal_scheduler::is_green_thread() && !cpu_clock::on_runtime_green_thread() {
            return Err(RunError::NotOnRuntime);
        }
        self.shared.limit.acquire().map_err(RunError::Refused)
    }

    pub(crate) fn run_call<C: EntryCall<T>>(
        &self,
        data: T,
        call: C,
    ) -> Result<C::Output, RunError> {
        let permit = self.here()?;
        live(&self.shared, data, call, permit)
    }

    pub(crate) fn run_call_then<C: EntryCall<T>, U>(
        &self,
        data: T,
        call: C,
        inspect: impl FnOnce(Finished<'_, T, C::Output>) -> U,
    ) -> Result<U, RunError> {
        let permit = self.here()?;
        Ok(live_then(&self.shared, data, call, permit, inspect))
    }
}

/// An [`InstanceTemplate`] whose entry export takes `P` and returns `R`
/// (checked once). Spawns pass and return plain Rust values.
pub struct TypedTemplate<T, P, R> {
    template: InstanceTemplate<T>,
    _types: PhantomData<fn(P) -> R>,
}

impl<T, P, R> Clone for TypedTemplate<T, P, R> {
    fn clone(&self) -> Self {
        TypedTemplate {
            template: self.template.clone(),
            _types: PhantomData,
        }
    }
}

impl<T, P, R> std::fmt::Debug for TypedTemplate<T, P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedTemplate")
            .field(&self.template)
            .finish()
    }
}

impl<T: Send + 'static, P: WasmParams, R: WasmResults> TypedTemplate<T, P, R> {
    /// The untyped template.
    pub fn untyped(&self) -> &InstanceTemplate<T> {
        &self.template
    }

    /// Spawns an instance with default host data.
    pub fn spawn(&self, params: P) -> Result<JoinHandle<R>, SpawnError>
    where
        T: Default,
    {
        self.spawn_with(T::default(), params)
    }

    /// Spawns an instance with `data` as its host data (see
    /// [`InstanceTemplate::spawn_with`]).
    pub fn spawn_with(&self, data: T, params: P) -> Result<JoinHandle<R>, SpawnError> {
        self.template
            .spawn_call(data, TypedCall(params, PhantomData))
    }

    /// See [`InstanceTemplate::spawn_then`].
    pub fn spawn_then<U: Send + 'static>(
        &self,
        data: T,
        params: P,
        inspect: impl FnOnce(Finished<'_, T, R>) -> U + Send + 'static,
    ) -> Result<JoinHandle<U>, SpawnError> {
        self.template
            .spawn_call_then(data, TypedCall(params, PhantomData), inspect)
    }

    /// See [`InstanceTemplate::run_here`].
    pub fn run_here(&self, data: T, params: P) -> Result<R, RunError> {
        self.template.run_call(data, TypedCall(params, PhantomData))
    }

    /// See [`InstanceTemplate::run_here_then`].
    pub fn run_here_then<U>(
        &self,
        data: T,
        params: P,
        inspect: impl FnOnce(Finished<'_, T, R>) -> U,
    ) -> Result<U, RunError> {
        self.template
            .run_call_then(data, TypedCall(params, PhantomData), inspect)
    }
}

/// The type of `module`'s function export `name`.
fn entry_type(module: &Module, name: &str) -> Result<FuncType, SpawnError> {
    match module.exports().find(|(n, _)| *n == name) {
        Some((_, ExportKind::Func(index))) => Ok(module.info().func_type(index).clone()),
        Some((_, other)) => Err(SpawnError::Export(format!(
            "export `{name}` is a {}, not a function",
            match other {
                ExportKind::Func(_) => "function",
                ExportKind::Table(_) => "table",
                ExportKind::Memory(_) => "memory",
                ExportKind::Global(_) => "global",
            }
        ))),
        None => {
            let funcs: Vec<&str> = module
                .exports()
                .filter(|(_, k)| matches!(k, ExportKind::Func(_)))
                .map(|(n, _)| n)
                .collect();
            Err(SpawnError::Export(format!(
                "the module has no export `{name}` (its function exports: {})",
                if funcs.is_empty() {
                    "none".to_string()
                } else {
                    funcs.join(", ")
                }
            )))
        }
    }
}

/// Refuses a contract whose limits this runtime cannot hold instances to.
///
/// Memory, table and wasm stack limits are set per store
/// ([`StoreLimits`]), so a contract may ask for less than the runtime's
/// default contract. It may not ask for more stack: every green thread's
/// stack has the runtime's size (`Config::max_wasm_stack`), which no
/// instance can exceed.
fn check_enforceable(runtime: &Runtime, contract: &Contract) -> Result<(), SpawnError> {
    let max_wasm_stack = runtime.engine().config().max_wasm_stack;
    if contract.stack_size > max_wasm_stack {
        return Err(SpawnError::UnenforceableContract(format!(
            "the contract promises {} bytes of stack, but this runtime's green threads give wasm \
             at most {} bytes: build the runtime with this stack size in its default contract",
            contract.stack_size, max_wasm_stack
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::runtime::Runtime;
    use shoal_instance::{Linker, Val};
    use std::sync::atomic::Ordering;

    #[test]
    fn a_template_learns_the_arena_its_stores_need_from_its_first_instance() {
        // The scheduler's default tick, which the other tests of this
        // binary (the stress crowd's) run under: one ticker per process.
        let rt = Runtime::builder()
            .workers(1)
            .epoch_tick(std::time::Duration::from_millis(1))
            .build()
            .expect("runtime");
        let module = rt
            .compile(
                r#"(module (memory 1) (func (export "f") (param i32) (result i32)
                (i32.store (i32.const 8) (local.get 0))
                (i32.add (i32.load (i32.const 8)) (i32.const 1))))"#,
            )
            .expect("compile");
        let template = rt
            .template(&module, &Linker::<()>::new(rt.engine()), "f")
            .expect("template");
        assert_eq!(template.shared.arena_bytes.load(Ordering::Relaxed), 0);
        for x in 0..3 {
            let h = template.spawn(vec![Val::I32(x)]).expect("spawn");
            assert_eq!(h.join().expect("ok"), vec![Val::I32(x + 1)]);
            // The first store had no arena and reported what it wanted.
            assert!(template.shared.arena_bytes.load(Ordering::Relaxed) > 0);
        }
    }
}
