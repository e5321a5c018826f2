//! The Linker: imports by name.
//!
//! A [`Linker`] maps `(module, name)` to a definition: an [`Extern`] of a
//! store, or a host function (`func_wrap`, `func_new`) that is not tied to
//! any store and is created in each store the first time an instance there
//! uses it. [`Linker::instantiate_pre`] resolves a module's imports once into
//! an [`InstancePre`], which can then instantiate the module many times
//! without name lookups (one per request, in the runtime).
//!
//! A later definition of the same `(module, name)` replaces the earlier one.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::externals::{Extern, ExternType};
use crate::func::{create_host_func_with_id, Caller, HostFn, IntoFunc};
use crate::instance::{instantiate, Instance};
use crate::module::Module;
use crate::module_info::ImportKind;
use crate::store::{AsContextMut, StoreInner};
use crate::trap::Trap;
use crate::types::{FuncType, Val};
use std::collections::HashMap;
use std::sync::Arc;

/// A host function defined in a linker, shared by every store.
struct HostFuncDef<T> {
    ty: FuncType,
    /// `ty`'s id in the linker's engine (interned once, not per store).
    type_id: u32,
    func: Arc<HostFn<T>>,
}

/// What a linker name resolves to.
enum Definition<T> {
    Extern(Extern),
    HostFunc(Arc<HostFuncDef<T>>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(*e),
            Definition::HostFunc(f) => Definition::HostFunc(f.clone()),
        }
    }
}

impl<T> Definition<T> {
    /// The extern this definition stands for in `store`, creating a linker
    /// host function there on first use.
    fn to_extern(&self, store: &mut StoreInner<T>) -> Extern {
        match self {
            Definition::Extern(e) => *e,
            Definition::HostFunc(def) => {
                let key = Arc::as_ptr(&def.func) as *const () as usize;
                if let Some(&index) = store.linker_funcs.get(&key) {
                    return Extern::Func(crate::func::Func::host(store.opaque.id(), index));
                }
                let func =
                    create_host_func_with_id(store, def.ty.clone(), def.type_id, def.func.clone());
                if let crate::func::FuncKind::Host(index) = func.kind() {
                    store.linker_funcs.insert(key, index);
                }
                Extern::Func(func)
            }
        }
    }
}

/// Resolves imports by `(module, name)`. See the module docs.
pub struct Linker<T> {
    engine: Engine,
    map: HashMap<String, HashMap<String, Definition<T>>>,
}

impl<T> Clone for Linker<T> {
    fn clone(&self) -> Self {
        Linker {
            engine: self.engine.clone(),
            map: self.map.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Linker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = self
            .map
            .iter()
            .flat_map(|(m, items)| items.keys().map(move |n| format!("{m}::{n}")))
            .collect();
        names.sort();
        f.debug_struct("Linker")
            .field("definitions", &names)
            .finish()
    }
}

impl<T> Linker<T> {
    pub fn new(engine: &Engine) -> Self {
        Linker {
            engine: engine.clone(),
            map: HashMap::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) {
        self.map
            .entry(module.to_string())
            .or_default()
            .insert(name.to_string(), def);
    }

    fn lookup(&self, module: &str, name: &str) -> Option<&Definition<T>> {
        self.map.get(module)?.get(name)
    }

    /// Defines `module::name` as `item` (which belongs to one store: only
    /// instantiations in that store can use it).
    pub fn define(
        &mut self,
        module: &str,
        name: &str,
        item: impl Into<Extern>,
    ) -> Result<&mut Self> {
        self.insert(module, name, Definition::Extern(item.into()));
        Ok(self)
    }

    /// Defines `module::name` as a typed host function (see
    /// [`Func::wrap`](crate::Func::wrap)); it is created in each store that
    /// uses it.
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, func) = f.into_host_func();
        self.insert(
            module,
            name,
            Definition::HostFunc(Arc::new(HostFuncDef {
                type_id: self.engine.signature_id(&ty),
                ty,
                func,
            })),
        );
        Ok(self)
    }

    /// Defines `module::name` as a dynamic host function (see
    /// [`Func::new`](crate::Func::new)).
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    ) -> Result<&mut Self>
    where
        T: 'static,
    {
        let func = crate::func::dynamic_host_fn(ty.clone(), f);
        self.insert(
            module,
            name,
            Definition::HostFunc(Arc::new(HostFuncDef {
                type_id: self.engine.signature_id(&ty),
                ty,
                func,
            })),
        );
        Ok(self)
    }

    /// Defines every export of `instance` under `module_name` (the spec
    /// suite's `register`).
    pub fn instance(
        &mut self,
        store: &mut impl AsContextMut<Data = T>,
        module_name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        if instance.module(store).is_none() {
            return Err(Error::Signature(
                "the instance belongs to another store".into(),
            ));
        }
        for (name, item) in instance.exports(store) {
            self.insert(module_name, &name, Definition::Extern(item));
        }
        Ok(self)
    }

    /// Instantiates `module` in `store` with this linker's definitions.
    pub fn instantiate(
        &self,
        store: &mut impl AsContextMut<Data = T>,
        module: &Module,
    ) -> Result<Instance> {
        self.instantiate_pre(module)?.instantiate(store)
    }

    /// Resolves `module`'s imports once. Host function types are checked
    /// here; store items are checked when instantiating (their sizes may
    /// change until then).
    pub fn instantiate_pre(&self, module: &Module) -> Result<InstancePre<T>> {
        if !Engine::same(&self.engine, module.engine()) {
            return Err(Error::Signature(
                "the module was compiled by another engine than the linker's".into(),
            ));
        }
        let info = module.info();
        let mut items = Vec::with_capacity(info.imports.len());
        for import in &info.imports {
            let link_error = |message: String| Error::Link {
                module: import.module.clone(),
                name: import.name.clone(),
                message,
            };
            let def = self
                .lookup(&import.module, &import.name)
                .ok_or_else(|| link_error("the linker has no definition by this name".into()))?;
            if let Definition::HostFunc(f) = def {
                let expected = ExternType::of_import(info, &import.kind);
                let matches = matches!(&import.kind, ImportKind::Func(t)
                    if info.types.get(*t as usize) == Some(&f.ty));
                if !matches {
                    return Err(link_error(format!(
                        "incompatible import type: the module expects {expected}, the import is {}",
                        ExternType::Func(f.ty.clone())
                    )));
                }
            }
            items.push(def.clone());
        }
        Ok(InstancePre {
            module: module.clone(),
            items: items.into(),
        })
    }
}

/// A module with its imports resolved by a [`Linker`]: instantiates without
/// name lookups. Cheap to clone, `Send + Sync`.
pub struct InstancePre<T> {
    module: Module,
    items: Arc<[Definition<T>]>,
}

impl<T> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre {
            module: self.module.clone(),
            items: self.items.clone(),
        }
    }
}

impl<T> std::fmt::Debug for InstancePre<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePre")
            .field("module", &self.module)
            .finish()
    }
}

impl<T> InstancePre<T> {
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Instantiates the module in `store`.
    pub fn instantiate(&self, store: &mut impl AsContextMut<Data = T>) -> Result<Instance> {
        let inner = store.store_inner_mut();
        // Before creating host functions with the linker engine's type ids.
        if !Engine::same(self.module.engine(), inner.opaque.engine()) {
            return Err(Error::Signature(
                "the module was compiled by another engine than the store's".into(),
            ));
        }
        // No allocation for the common case of a few imports.
        const INLINE: usize = 16;
        if self.items.len() <= INLINE {
            let placeholder = Extern::Func(crate::func::Func::host(inner.opaque.id(), 0));
            let mut imports = [placeholder; INLINE];
            for (slot, def) in imports.iter_mut().zip(self.items.iter()) {
                *slot = def.to_extern(inner);
            }
            instantiate(inner, &self.module, &imports[..self.items.len()])
        } else {
            let imports: Vec<Extern> = self.items.iter().map(|d| d.to_extern(inner)).collect();
            instantiate(inner, &self.module, &imports)
        }
    }
}
