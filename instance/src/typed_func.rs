//! Statically typed calls: the Rust types that stand for wasm values
//! ([`WasmTy`]), lists of them ([`WasmParams`], [`WasmResults`]), and
//! [`TypedFunc`], whose `call` moves values through a stack array of
//! `ValRaw` without allocating.

use crate::error::{Error, Result};
use crate::func::{call_raw, Func};
use crate::store::{externref_from_raw, externref_to_raw, AsContextMut, StoreOpaque};
use crate::types::{ExternRef, ValType};
use crate::vmcontext::ValRaw;
use std::marker::PhantomData;

/// A Rust type that is a wasm value: `i32`, `u32` (as `i32`), `i64`, `u64`
/// (as `i64`), `f32`, `f64`, `Option<Func>` (funcref) and
/// `Option<ExternRef>` (externref).
pub trait WasmTy: Send + Sized + 'static {
    #[doc(hidden)]
    fn valtype() -> ValType;
    #[doc(hidden)]
    fn into_raw(self, store: &StoreOpaque) -> Result<ValRaw>;
    #[doc(hidden)]
    fn from_raw(raw: ValRaw, store: &StoreOpaque) -> Self;
}

macro_rules! wasm_ty_int {
    ($($t:ty => $vt:ident, $to:expr, $from:expr;)*) => {$(
        impl WasmTy for $t {
            #[inline]
            fn valtype() -> ValType {
                ValType::$vt
            }
            #[inline]
            fn into_raw(self, _store: &StoreOpaque) -> Result<ValRaw> {
                let to: fn($t) -> ValRaw = $to;
                Ok(to(self))
            }
            #[inline]
            fn from_raw(raw: ValRaw, _store: &StoreOpaque) -> Self {
                let from: fn(ValRaw) -> $t = $from;
                from(raw)
            }
        }
    )*};
}

wasm_ty_int! {
    i32 => I32, |v| u64::from(v as u32), |r| r as u32 as i32;
    u32 => I32, u64::from, |r| r as u32;
    i64 => I64, |v| v as u64, |r| r as i64;
    u64 => I64, |v| v, |r| r;
    f32 => F32, |v| u64::from(v.to_bits()), |r| f32::from_bits(r as u32);
    f64 => F64, f64::to_bits, f64::from_bits;
}

impl WasmTy for Option<Func> {
    fn valtype() -> ValType {
        ValType::FuncRef
    }
    fn into_raw(self, store: &StoreOpaque) -> Result<ValRaw> {
        match self {
            None => Ok(0),
            Some(func) => {
                store.check(func.store_id(), "a funcref value")?;
                Ok(store.func_ref(func) as ValRaw)
            }
        }
    }
    fn from_raw(raw: ValRaw, store: &StoreOpaque) -> Self {
        store.func_from_raw(raw)
    }
}

impl WasmTy for Option<ExternRef> {
    fn valtype() -> ValType {
        ValType::ExternRef
    }
    fn into_raw(self, _store: &StoreOpaque) -> Result<ValRaw> {
        match self {
            None => Ok(0),
            Some(r) => externref_to_raw(r),
        }
    }
    fn from_raw(raw: ValRaw, _store: &StoreOpaque) -> Self {
        externref_from_raw(raw)
    }
}

/// A list of wasm values: `()`, a single [`WasmTy`], or a tuple of up to
/// eight of them.
pub trait WasmParams: Send + Sized + 'static {
    #[doc(hidden)]
    const COUNT: usize;
    #[doc(hidden)]
    fn valtypes() -> Vec<ValType>;
    #[doc(hidden)]
    fn matches(types: &[ValType]) -> bool;
    /// Writes the values to `out[..COUNT]` (`out` is at least that long).
    #[doc(hidden)]
    fn store_raw(self, store: &StoreOpaque, out: &mut [ValRaw]) -> Result<()>;
    /// Reads the values from `raw[..COUNT]`.
    #[doc(hidden)]
    fn load_raw(store: &StoreOpaque, raw: &[ValRaw]) -> Self;
}

/// A list of wasm results; the same types as [`WasmParams`].
pub trait WasmResults: WasmParams {}
impl<P: WasmParams> WasmResults for P {}

impl WasmParams for () {
    const COUNT: usize = 0;
    fn valtypes() -> Vec<ValType> {
        Vec::new()
    }
    fn matches(types: &[ValType]) -> bool {
        types.is_empty()
    }
    fn store_raw(self, _store: &StoreOpaque, _out: &mut [ValRaw]) -> Result<()> {
        Ok(())
    }
    fn load_raw(_store: &StoreOpaque, _raw: &[ValRaw]) -> Self {}
}

impl<A: WasmTy> WasmParams for A {
    const COUNT: usize = 1;
    fn valtypes() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn matches(types: &[ValType]) -> bool {
        types == [A::valtype()]
    }
    #[inline]
    fn store_raw(self, store: &StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
        if let Some(slot) = out.first_mut() {
            *slot = self.into_raw(store)?;
        }
        Ok(())
    }
    #[inline]
    fn load_raw(store: &StoreOpaque, raw: &[ValRaw]) -> Self {
        A::from_raw(raw.first().copied().unwrap_or(0), store)
    }
}

macro_rules! wasm_params_tuple {
    ($n:expr; $($t:ident $i:tt)*) => {
        impl<$($t: WasmTy),*> WasmParams for ($($t,)*) {
            const COUNT: usize = $n;
            fn valtypes() -> Vec<ValType> {
                vec![$($t::valtype()),*]
            }
            fn matches(types: &[ValType]) -> bool {
                types.len() == $n $(&& types[$i] == $t::valtype())*
            }
            #[inline]
            fn store_raw(self, store: &StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
                if out.len() < $n {
                    return Err(Error::Signature("value buffer too short".into()));
                }
                $(out[$i] = self.$i.into_raw(store)?;)*
                Ok(())
            }
            #[inline]
            fn load_raw(store: &StoreOpaque, raw: &[ValRaw]) -> Self {
                ($($t::from_raw(raw.get($i).copied().unwrap_or(0), store),)*)
            }
        }
    };
}

wasm_params_tuple!(1; A 0);
wasm_params_tuple!(2; A 0 B 1);
wasm_params_tuple!(3; A 0 B 1 C 2);
wasm_params_tuple!(4; A 0 B 1 C 2 D 3);
wasm_params_tuple!(5; A 0 B 1 C 2 D 3 E 4);
wasm_params_tuple!(6; A 0 B 1 C 2 D 3 E 4 F 5);
wasm_params_tuple!(7; A 0 B 1 C 2 D 3 E 4 F 5 G 6);
wasm_params_tuple!(8; A 0 B 1 C 2 D 3 E 4 F 5 G 6 H 7);

/// Slots of the stack array a typed call uses; longer lists go to the heap.
const INLINE_VALUES: usize = 16;

/// A function whose type was checked once, called with Rust values.
///
/// `Params` and `Results` are `()`, a [`WasmTy`] or a tuple of them:
/// `TypedFunc<(i32, i32), i64>`.
pub struct TypedFunc<Params, Results> {
    func: Func,
    _types: PhantomData<fn(Params) -> Results>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

impl<P, R> std::fmt::Debug for TypedFunc<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFunc")
            .field("func", &self.func)
            .finish()
    }
}

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    /// Wraps `func` after the caller checked its type.
    pub(crate) fn new_unchecked(func: Func) -> Self {
        TypedFunc {
            func,
            _types: PhantomData,
        }
    }

    /// The untyped function.
    pub fn func(&self) -> Func {
        self.func
    }

    /// Calls the function. A trap returns `Err(Error::Trap(..))`.
    pub fn call(&self, store: &mut impl AsContextMut, params: P) -> Result<R> {
        let inner = store.store_inner_mut();
        inner.opaque.check(self.func.store_id(), "the function")?;
        let n = P::COUNT.max(R::COUNT);
        if n <= INLINE_VALUES {
            let mut values = [0 as ValRaw; INLINE_VALUES];
            params.store_raw(&inner.opaque, &mut values)?;
            call_raw(inner, self.func, &mut values[..n.max(1)])?;
            Ok(R::load_raw(&inner.opaque, &values))
        } else {
            let mut values = vec![0 as ValRaw; n];
            params.store_raw(&inner.opaque, &mut values)?;
            call_raw(inner, self.func, &mut values)?;
            Ok(R::load_raw(&inner.opaque, &values))
        }
    }
}
