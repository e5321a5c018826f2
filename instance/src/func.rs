//! Functions: handles, host functions, calls from the host into wasm, and
//! calls from wasm into the host.
//!
//! # Host functions
//!
//! Every host function is stored in its store as a [`HostFuncRecord`] (its
//! type and the [`VMHostFuncContext`] and [`VMFuncRef`] compiled code sees)
//! plus a closure over a `ValRaw` array ([`HostFn`]). [`Func::wrap`] builds
//! that closure from a typed Rust closure through [`IntoFunc`] (no `Val`
//! conversions); [`Func::new`] from a dynamic closure over `&[Val]`.
//!
//! # The wasm-to-host path
//!
//! 1. Wasm calls an imported host function through the importing module's
//!    host trampoline, with `callee_vmctx` = the `VMHostFuncContext`.
//! 2. The trampoline spills the arguments to a `ValRaw` array and calls the
//!    `HostCall` libcall (`builtins::host_call`) with the context, its own
//!    `caller_vmctx`, and the array.
//! 3. The libcall reads the store and the caller's instance index from the
//!    caller's VMContext header, and the function's index and
//!    [`host_call_shim`] (monomorphised for the store's `T`) from the
//!    context; the shim runs the closure inside `catch_unwind` with a
//!    [`Caller`]. So a call reads the header line, which the wasm code just
//!    used, and the context's line, and not the store or the instance.
//! 4. On `Err(trap)` or a panic, everything Rust owns is dropped and the
//!    libcall calls `trap_handling::raise`, which unwinds the wasm frames
//!    to the `catch_traps` that entered wasm: a Rust panic never unwinds
//!    through compiled code.
//!
//! # The host-to-wasm path
//!
//! [`Func::call`] and [`TypedFunc::call`] write the arguments to a `ValRaw`
//! array and call the function's array-call trampoline inside
//! `trap_handling::catch_traps`; host functions are called directly.

use crate::error::{Error, Result};
use crate::externals::Extern;
use crate::instance::Instance;
use crate::store::{AsContext, AsContextMut, RawBox, StoreId, StoreInner, StoreOpaque};
use crate::trap::Trap;
use crate::trap_handling::{self, UnwindReason};
use crate::typed_func::{TypedFunc, WasmParams, WasmResults, WasmTy};
use crate::types::{FuncType, Val};
use crate::vmcontext::{VMContext, VMFuncRef, VMHostFuncContext, ValRaw};
use crate::Engine;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

/// A host function over the raw value array: params in, results out (the
/// array holds `max(params, results)` slots).
#[doc(hidden)]
pub type HostFn<T> = dyn Fn(Caller<'_, T>, &mut [ValRaw]) -> Result<(), Trap> + Send + Sync;

/// The signature of an array-call trampoline (see `vmcontext`).
type ArrayCallFn = unsafe extern "C" fn(*mut VMContext, *mut VMContext, *const u8, *mut ValRaw);

/// Marks a host function in [`Func`]'s `instance` field.
const HOST: u32 = u32::MAX;

/// A function of a store: a wasm function of an instance or a host function.
///
/// A `Func` names the function where it is defined: the same function
/// exported by two instances (one importing it from the other) is the same
/// `Func`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Func {
    store: StoreId,
    /// The defining instance, or [`HOST`].
    instance: u32,
    /// The function index in the instance's module, or the host function's
    /// index in the store.
    index: u32,
}

/// What a [`Func`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FuncKind {
    Host(u32),
    Wasm { instance: u32, index: u32 },
}

/// A host function as compiled code and the store see it.
#[repr(C)]
pub(crate) struct HostFuncRecord {
    /// What wasm passes as `callee_vmctx`.
    pub(crate) ctx: VMHostFuncContext,
    /// The function as a reference value (tables, globals, arguments).
    /// `wasm_call` is a host trampoline of some module instantiated in the
    /// store with this type (null until there is one: no wasm can call the
    /// reference before such a module exists).
    pub(crate) func_ref: VMFuncRef,
    pub(crate) ty: FuncType,
    pub(crate) type_id: u32,
}

impl Func {
    pub(crate) fn host(store: StoreId, index: u32) -> Func {
        Func {
            store,
            instance: HOST,
            index,
        }
    }

    pub(crate) fn wasm(store: StoreId, instance: u32, index: u32) -> Func {
        Func {
            store,
            instance,
            index,
        }
    }

    pub(crate) fn store_id(&self) -> StoreId {
        self.store
    }

    pub(crate) fn kind(&self) -> FuncKind {
        if self.instance == HOST {
            FuncKind::Host(self.index)
        } else {
            FuncKind::Wasm {
                instance: self.instance,
                index: self.index,
            }
        }
    }

    /// A host function with a dynamic signature: `f` receives the arguments
    /// as [`Val`]s and writes `ty.results.len()` results of the right types.
    pub fn new<T: 'static>(
        store: &mut impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    ) -> Func {
        let host = dynamic_host_fn(ty.clone(), f);
        create_host_func(store.store_inner_mut(), ty, host)
    }

    /// A host function from a Rust closure with typed parameters and
    /// results, optionally taking a [`Caller`] first:
    /// `Func::wrap(&mut store, |a: i32, b: i32| a + b)`.
    pub fn wrap<T, Params, Results>(
        store: &mut impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let (ty, host) = f.into_host_func();
        create_host_func(store.store_inner_mut(), ty, host)
    }

    /// The function's type. (A handle from another store has the empty
    /// type.)
    pub fn ty(&self, store: &impl AsContext) -> FuncType {
        let opaque = &store.store_inner().opaque;
        if opaque.check(self.store, "").is_err() {
            return FuncType::default();
        }
        func_type(opaque, *self).clone()
    }

    /// Calls the function with `params`, checked against its type; returns
    /// its results. A trap returns `Err(Error::Trap(..))`.
    pub fn call(&self, store: &mut impl AsContextMut, params: &[Val]) -> Result<Vec<Val>> {
        let inner = store.store_inner_mut();
        inner.opaque.check(self.store, "the function")?;
        let ty = func_type(&inner.opaque, *self).clone();
        if params.len() != ty.params.len() {
            return Err(Error::Signature(format!(
                "{ty} takes {} arguments, {} given",
                ty.params.len(),
                params.len()
            )));
        }
        let mut values = vec![0 as ValRaw; ty.params.len().max(ty.results.len()).max(1)];
        for (i, (val, &expected)) in params.iter().zip(&ty.params).enumerate() {
            if val.ty() != expected {
                return Err(Error::Signature(format!(
                    "argument {i} of {ty} must be {expected}, not {}",
                    val.ty()
                )));
            }
            values[i] = inner.opaque.val_to_raw(val)?;
        }
        call_raw(inner, *self, &mut values)?;
        Ok(ty
            .results
            .iter()
            .zip(&values)
            .map(|(&t, &raw)| inner.opaque.raw_to_val(raw, t))
            .collect())
    }

    /// This function with static types, if they match its type.
    pub fn typed<P: WasmParams, R: WasmResults>(
        &self,
        store: &impl AsContext,
    ) -> Result<TypedFunc<P, R>> {
        let opaque = &store.store_inner().opaque;
        opaque.check(self.store, "the function")?;
        let ty = func_type(opaque, *self);
        if !P::matches(&ty.params) || !R::matches(&ty.results) {
            let wanted = FuncType::new(P::valtypes(), R::valtypes());
            return Err(Error::Signature(format!(
                "the function has type {ty}, not the requested {wanted}"
            )));
        }
        Ok(TypedFunc::new_unchecked(*self))
    }
}

/// The type of a function of `store` (checked by the caller).
pub(crate) fn func_type(store: &StoreOpaque, func: Func) -> &FuncType {
    match func.kind() {
        FuncKind::Host(index) => &store.host_funcs[index as usize].ty,
        FuncKind::Wasm { instance, index } => {
            store.instance(instance).module().info().func_type(index)
        }
    }
}

/// The engine-wide type id of a function of `store`.
pub(crate) fn func_type_id(store: &StoreOpaque, func: Func) -> u32 {
    match func.kind() {
        FuncKind::Host(index) => store.host_funcs[index as usize].type_id,
        FuncKind::Wasm { instance, index } => {
            let info = store.instance(instance).module().info();
            info.type_ids[info.functions[index as usize] as usize]
        }
    }
}

/// Adds a host function to the store.
pub(crate) fn create_host_func<T>(
    inner: &mut StoreInner<T>,
    ty: FuncType,
    host: Arc<HostFn<T>>,
) -> Func {
    let type_id = inner.opaque.engine().signature_id(&ty);
    create_host_func_with_id(inner, ty, type_id, host)
}

/// Adds a host function whose engine-wide type id (in the store's engine)
/// is already known.
pub(crate) fn create_host_func_with_id<T>(
    inner: &mut StoreInner<T>,
    ty: FuncType,
    type_id: u32,
    host: Arc<HostFn<T>>,
) -> Func {
    // SAFETY: the record is owned by the store (`push_host_func` below).
    let record = unsafe {
        RawBox::new_in(
            &inner.opaque.arena,
            HostFuncRecord {
                ctx: VMHostFuncContext {
                    magic: VMHostFuncContext::MAGIC,
                    host_func: 0,
                    shim: host_call_shim::<T>,
                },
                func_ref: VMFuncRef {
                    array_call: std::ptr::null(),
                    wasm_call: std::ptr::null(),
                    type_id,
                    vmctx: std::ptr::null_mut(),
                },
                ty,
                type_id,
            },
        )
    };
    let index = inner.opaque.push_host_func(record);
    inner.host_closures.push(host);
    Func::host(inner.opaque.id(), index)
}

/// Calls `func` on `values` (params in, results out; at least
/// `max(params, results)` slots, and at least one).
pub(crate) fn call_raw<T>(
    inner: &mut StoreInner<T>,
    func: Func,
    values: &mut [ValRaw],
) -> Result<()> {
    match func.kind() {
        FuncKind::Host(index) => {
            let host = inner.host_closures[index as usize].clone();
            host(
                Caller {
                    store: inner,
                    caller: None,
                },
                values,
            )
            .map_err(Error::Trap)
        }
        FuncKind::Wasm { .. } => {
            let func_ref = inner.opaque.func_ref(func);
            // SAFETY: `func_ref` is the VMFuncRef of a wasm function of this
            // store: its trampoline and body belong to a module the store
            // keeps alive, and `values` has room for params and results.
            unsafe { invoke_wasm(&inner.opaque, func_ref, values.as_mut_ptr()) }
        }
    }
}

/// Enters wasm through `func_ref`'s array-call trampoline.
///
/// # Safety
///
/// `func_ref` must point at the VMFuncRef of a wasm function (not a host
/// function) owned by `store`, and `values` must hold
/// `max(params, results)` slots with the arguments in place.
pub(crate) unsafe fn invoke_wasm(
    store: &StoreOpaque,
    func_ref: *const VMFuncRef,
    values: *mut ValRaw,
) -> Result<()> {
    // SAFETY: the caller guarantees `func_ref` is valid.
    let VMFuncRef {
        array_call,
        wasm_call,
        vmctx,
        ..
    } = unsafe { *func_ref };
    // SAFETY: `array_call` is an array-call trampoline compiled for the
    // function's type with exactly this signature.
    let array_call: ArrayCallFn =
        unsafe { std::mem::transmute::<*const u8, ArrayCallFn>(array_call) };
    let limits = store.limits();
    let max_stack = store
        .engine()
        .config()
        .max_wasm_stack
        .min(store.resource_limits().max_wasm_stack);
    trap_handling::catch_traps(limits, max_stack, || {
        // SAFETY: `vmctx` is the function's own instance (so it serves as
        // the caller's too), `wasm_call` its body, and `values` is valid
        // per this function's contract. Traps unwind to `catch_traps`.
        unsafe { array_call(vmctx, vmctx, wasm_call, values) }
    })
    .map_err(Error::Trap)
}

/// Runs host function `index` of the store at `store` (whose `T` this
/// shim was instantiated with) on the `len` values at `values`.
///
/// # Safety
///
/// `store` must point at the `StoreOpaque` of a live `StoreInner<T>` that no
/// Rust reference is in use for (wasm is running on its behalf), and
/// `values` must be valid for `len` slots.
pub(crate) unsafe fn host_call_shim<T>(
    store: NonNull<StoreOpaque>,
    index: u32,
    caller: Option<u32>,
    values: *mut ValRaw,
    len: usize,
) -> Result<(), UnwindReason> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `StoreOpaque` is the first field of the `repr(C)`
        // `StoreInner<T>` it was taken from (the caller's promise), and no
        // other reference to the store is in use.
        let inner = unsafe { &mut *store.as_ptr().cast::<StoreInner<T>>() };
        let host: *const HostFn<T> = match inner.host_closures.get(index as usize) {
            Some(host) => Arc::as_ptr(host),
            None => {
                return Err(Trap::host(format!(
                    "no host function {index} in this store"
                )))
            }
        };
        let values: &mut [ValRaw] = if len == 0 {
            &mut []
        } else {
            // SAFETY: the caller guarantees `values` is valid for `len`.
            unsafe { std::slice::from_raw_parts_mut(values, len) }
        };
        // SAFETY: the closure is kept alive by `host_closures`, which only
        // grows while the store lives; it is not part of `*inner`'s memory.
        let host = unsafe { &*host };
        host(
            Caller {
                store: inner,
                caller,
            },
            values,
        )
    }));
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(trap)) => Err(UnwindReason::Trap(trap)),
        Err(payload) => Err(UnwindReason::Panic(payload)),
    }
}

/// Wraps a dynamic closure over `Val`s as a [`HostFn`].
pub(crate) fn dynamic_host_fn<T: 'static>(
    ty: FuncType,
    f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
) -> Arc<HostFn<T>> {
    Arc::new(move |caller: Caller<'_, T>, raw: &mut [ValRaw]| {
        let Caller { store, caller } = caller;
        let params: Vec<Val> = ty
            .params
            .iter()
            .zip(raw.iter())
            .map(|(&t, &r)| store.opaque.raw_to_val(r, t))
            .collect();
        let mut results: Vec<Val> = ty.results.iter().map(|&t| Val::default_for(t)).collect();
        f(
            Caller {
                store: &mut *store,
                caller,
            },
            &params,
            &mut results,
        )?;
        for (i, (val, &expected)) in results.iter().zip(&ty.results).enumerate() {
            if val.ty() != expected {
                return Err(Trap::host(format!(
                    "host function result {i} is {}, but its type {ty} says {expected}",
                    val.ty()
                )));
            }
            let slot = raw
                .get_mut(i)
                .ok_or_else(|| Trap::host("host function result buffer too short"))?;
            *slot = store
                .opaque
                .val_to_raw(val)
                .map_err(|e| Trap::host(e.to_string()))?;
        }
        Ok(())
    })
}

/// What a host function knows about its call: the store (its data, and
/// access to memories and other functions) and the calling instance.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut StoreInner<T>,
    /// The calling instance, when called from wasm.
    pub(crate) caller: Option<u32>,
}

impl<T> Caller<'_, T> {
    pub fn data(&self) -> &T {
        self.store.data()
    }

    pub fn data_mut(&mut self) -> &mut T {
        self.store.data_mut()
    }

    pub fn engine(&self) -> &Engine {
        self.store.opaque.engine()
    }

    /// The calling instance, or `None` when the host called the function
    /// directly. Cheap (no lookup): host functions can key per-instance
    /// caches on it.
    pub fn instance(&self) -> Option<Instance> {
        Some(Instance::from_index(self.store.opaque.id(), self.caller?))
    }

    /// The export `name` of the calling instance (e.g. its `"memory"`), or
    /// `None` when there is none or the host called the function directly.
    pub fn get_export(&self, name: &str) -> Option<Extern> {
        let index = self.caller?;
        Instance::from_index(self.store.opaque.id(), index).get_export(self, name)
    }

    /// Sets the store's epoch deadline `ticks` epochs from now.
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        self.store.opaque.set_epoch_deadline(ticks);
    }
}

impl<T> AsContext for Caller<'_, T> {
    type Data = T;
    fn store_inner(&self) -> &StoreInner<T> {
        self.store
    }
}

impl<T> AsContextMut for Caller<'_, T> {
    fn store_inner_mut(&mut self) -> &mut StoreInner<T> {
        self.store
    }
}

/// What a typed host closure may return: `()`, a [`WasmTy`], a tuple of
/// them, or a `Result` of those with a [`Trap`].
pub trait WasmRet {
    #[doc(hidden)]
    type Results: WasmResults;
    #[doc(hidden)]
    fn into_result(self) -> Result<Self::Results, Trap>;
}

impl<R: WasmResults> WasmRet for R {
    type Results = R;
    #[inline]
    fn into_result(self) -> Result<R, Trap> {
        Ok(self)
    }
}

impl<R: WasmResults> WasmRet for Result<R, Trap> {
    type Results = R;
    #[inline]
    fn into_result(self) -> Result<R, Trap> {
        self
    }
}

/// A Rust closure usable as a host function: `Fn(A1, .., An) -> R` or
/// `Fn(Caller<'_, T>, A1, .., An) -> R` with up to eight [`WasmTy`]
/// arguments and a [`WasmRet`] result.
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_host_func(self) -> (FuncType, Arc<HostFn<T>>);
}

macro_rules! impl_into_func {
    ($($arg:ident)*) => {
        #[allow(non_snake_case)]
        impl<T, F, $($arg,)* R> IntoFunc<T, ($($arg,)*), R> for F
        where
            F: Fn($($arg),*) -> R + Send + Sync + 'static,
            $($arg: WasmTy,)*
            R: WasmRet,
        {
            fn into_host_func(self) -> (FuncType, Arc<HostFn<T>>) {
                let f = move |_: Caller<'_, T>, $($arg: $arg),*| self($($arg),*);
                <_ as IntoFunc<T, (Caller<'_, T>, $($arg,)*), R>>::into_host_func(f)
            }
        }

        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<T, F, $($arg,)* R> IntoFunc<T, (Caller<'_, T>, $($arg,)*), R> for F
        where
            F: Fn(Caller<'_, T>, $($arg),*) -> R + Send + Sync + 'static,
            $($arg: WasmTy,)*
            R: WasmRet,
        {
            fn into_host_func(self) -> (FuncType, Arc<HostFn<T>>) {
                let ty = FuncType::new(
                    [$($arg::valtype()),*],
                    <R::Results as WasmParams>::valtypes(),
                );
                let host = move |caller: Caller<'_, T>, raw: &mut [ValRaw]| -> Result<(), Trap> {
                    let Caller { store, caller } = caller;
                    let mut i = 0;
                    $(
                        let $arg = $arg::from_raw(raw.get(i).copied().unwrap_or(0), &store.opaque);
                        i += 1;
                    )*
                    let results = self(Caller { store: &mut *store, caller }, $($arg),*).into_result()?;
                    results.store_raw(&store.opaque, raw).map_err(|e| Trap::host(e.to_string()))
                };
                (ty, Arc::new(host))
            }
        }
    };
}

impl_into_func!();
impl_into_func!(A1);
impl_into_func!(A1 A2);
impl_into_func!(A1 A2 A3);
impl_into_func!(A1 A2 A3 A4);
impl_into_func!(A1 A2 A3 A4 A5);
impl_into_func!(A1 A2 A3 A4 A5 A6);
impl_into_func!(A1 A2 A3 A4 A5 A6 A7);
impl_into_func!(A1 A2 A3 A4 A5 A6 A7 A8);
