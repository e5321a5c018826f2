//! Handles to memories, tables and globals, and [`Extern`], the union of
//! everything an instance can import or export.
//!
//! Handles are `(store id, index)` pairs. Every method takes the store;
//! a handle used with another store is refused (`Err`) by the methods that
//! return `Result`, and reads as empty (size 0, empty slice, zero value) in
//! the others. No misuse by the host panics.

use crate::error::{Error, Result};
use crate::func::{func_type, Func};
use crate::memory::LinearMemory;
use crate::module_info::{ImportKind, ModuleInfo};
use crate::store::{
    AsContext, AsContextMut, StoreGlobal, StoreId, StoreMemory, StoreOpaque, StoreTable,
};
use crate::table::TableStorage;
use crate::types::{FuncType, GlobalType, MemoryType, TableType, Val, ValType};
use std::fmt;

/// Anything an instance imports or exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extern {
    Func(Func),
    Memory(Memory),
    Table(Table),
    Global(Global),
}

impl Extern {
    pub(crate) fn store_id(&self) -> StoreId {
        match self {
            Extern::Func(f) => f.store_id(),
            Extern::Memory(m) => m.store,
            Extern::Table(t) => t.store,
            Extern::Global(g) => g.store,
        }
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Extern::Func(_) => "function",
            Extern::Memory(_) => "memory",
            Extern::Table(_) => "table",
            Extern::Global(_) => "global",
        }
    }

    /// The item's type (tables and memories with their current size as
    /// the minimum). `None` for an item of another store.
    pub fn ty(&self, store: &impl AsContext) -> Option<ExternType> {
        let opaque = &store.store_inner().opaque;
        opaque.check(self.store_id(), "").ok()?;
        Some(ExternType::of_extern(opaque, self))
    }

    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self {
            Some(f)
        } else {
            None
        }
    }
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self {
            Some(m)
        } else {
            None
        }
    }
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self {
            Some(t)
        } else {
            None
        }
    }
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self {
            Some(g)
        } else {
            None
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}

/// The type of an [`Extern`] or of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternType {
    Func(FuncType),
    Memory(MemoryType),
    Table(TableType),
    Global(GlobalType),
}

impl ExternType {
    pub(crate) fn of_import(info: &ModuleInfo, kind: &ImportKind) -> ExternType {
        match kind {
            ImportKind::Func(t) => {
                ExternType::Func(info.types.get(*t as usize).cloned().unwrap_or_default())
            }
            ImportKind::Memory(m) => ExternType::Memory(*m),
            ImportKind::Table(t) => ExternType::Table(*t),
            ImportKind::Global(g) => ExternType::Global(*g),
        }
    }

    /// The type of `item`, which must belong to `store`.
    pub(crate) fn of_extern(store: &StoreOpaque, item: &Extern) -> ExternType {
        match item {
            Extern::Func(f) => ExternType::Func(func_type(store, *f).clone()),
            Extern::Memory(m) => {
                ExternType::Memory(store.memories[m.index as usize].memory.current_type())
            }
            Extern::Table(t) => {
                ExternType::Table(store.tables[t.index as usize].table.current_type())
            }
            Extern::Global(g) => ExternType::Global(store.globals[g.index as usize].ty),
        }
    }
}

impl fmt::Display for ExternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits = |f: &mut fmt::Formatter<'_>, min: u64, max: Option<u64>| match max {
            Some(max) => write!(f, "{min} {max}"),
            None => write!(f, "{min}"),
        };
        match self {
            ExternType::Func(t) => write!(f, "{t}"),
            ExternType::Memory(m) => {
                f.write_str("(memory ")?;
                limits(f, m.minimum, m.maximum)?;
                f.write_str(")")
            }
            ExternType::Table(t) => {
                f.write_str("(table ")?;
                limits(f, t.minimum.into(), t.maximum.map(Into::into))?;
                write!(f, " {})", t.element)
            }
            ExternType::Global(g) if g.mutable => write!(f, "(global (mut {}))", g.content),
            ExternType::Global(g) => write!(f, "(global {})", g.content),
        }
    }
}

/// A linear memory of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memory {
    store: StoreId,
    index: u32,
}

impl Memory {
    pub(crate) fn from_index(store: StoreId, index: u32) -> Memory {
        Memory { store, index }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    fn get<'a>(&self, store: &'a StoreOpaque) -> Result<&'a StoreMemory> {
        store.check(self.store, "the memory")?;
        store
            .memories
            .get(self.index as usize)
            .ok_or_else(|| stale("memory"))
    }

    /// A new memory of `ty.minimum` zeroed pages, in the engine's memory
    /// strategy, owned by the store (to be imported by instances).
    pub fn new(store: &mut impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let opaque = &mut store.store_inner_mut().opaque;
        let memory = LinearMemory::new(&ty, opaque.engine().config())?;
        let index = opaque.push_memory(memory, None);
        Ok(Memory {
            store: opaque.id(),
            index,
        })
    }

    /// The type: the current size as the minimum, and the declared maximum.
    pub fn ty(&self, store: &impl AsContext) -> MemoryType {
        match self.get(&store.store_inner().opaque) {
            Ok(m) => m.memory.current_type(),
            Err(_) => MemoryType {
                minimum: 0,
                maximum: Some(0),
            },
        }
    }

    /// The current size in wasm pages.
    pub fn size_pages(&self, store: &impl AsContext) -> u64 {
        self.get(&store.store_inner().opaque)
            .map_or(0, |m| m.memory.pages())
    }

    /// The current size in bytes.
    pub fn data_size(&self, store: &impl AsContext) -> usize {
        self.get(&store.store_inner().opaque)
            .map_or(0, |m| m.memory.byte_size())
    }

    /// The memory's bytes.
    pub fn data<'a, S: AsContext>(&self, store: &'a S) -> &'a [u8] {
        match self.get(&store.store_inner().opaque) {
            // SAFETY: wasm of this store cannot run while `store` is
            // borrowed for 'a (running wasm needs `&mut`), and the memory's
            // accessible prefix only grows.
            Ok(m) => unsafe { m.memory.bytes() },
            Err(_) => &[],
        }
    }

    /// The memory's bytes, mutably.
    pub fn data_mut<'a, S: AsContextMut>(&self, store: &'a mut S) -> &'a mut [u8] {
        self.data_and_store_mut(store).0
    }

    /// The memory's bytes and the store's host data, both mutably at once
    /// (the bytes are not part of the host data): for host functions that
    /// keep their state in the store and work on guest memory, such as
    /// WASI, without moving their state out of the store and back.
    #[inline]
    pub fn data_and_store_mut<'a, S: AsContextMut>(
        &self,
        store: &'a mut S,
    ) -> (&'a mut [u8], &'a mut S::Data) {
        let inner = store.store_inner_mut();
        let bytes = match self.get(&inner.opaque) {
            // SAFETY: as in `data`; the exclusive borrow of the store for
            // 'a excludes every other access to the bytes, which live in
            // the memory's own mapping, disjoint from `inner.data`.
            Ok(m) => unsafe { m.memory.bytes_mut() },
            Err(_) => &mut [],
        };
        (bytes, &mut inner.data)
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    pub fn read(&self, store: &impl AsContext, offset: usize, buf: &mut [u8]) -> Result<()> {
        let data = self.data(store);
        let src = offset
            .checked_add(buf.len())
            .and_then(|end| data.get(offset..end))
            .ok_or_else(|| out_of_bounds(offset, buf.len(), data.len()))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Copies `buf` into the memory at `offset`.
    pub fn write(&self, store: &mut impl AsContextMut, offset: usize, buf: &[u8]) -> Result<()> {
        let data = self.data_mut(store);
        let len = data.len();
        let dst = offset
            .checked_add(buf.len())
            .and_then(|end| data.get_mut(offset..end))
            .ok_or_else(|| out_of_bounds(offset, buf.len(), len))?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    /// Grows by `delta` pages; returns the old size in pages.
    pub fn grow(&self, store: &mut impl AsContextMut, delta: u64) -> Result<u64> {
        let opaque = &mut store.store_inner_mut().opaque;
        opaque.check(self.store, "the memory")?;
        let memory = opaque
            .memories
            .get_mut(self.index as usize)
            .ok_or_else(|| stale("memory"))?;
        let (pages, max) = (memory.memory.pages(), memory.memory.max_pages());
        memory.grow(delta).ok_or_else(|| {
            Error::Resource(format!(
                "cannot grow memory of {pages} pages by {delta} pages: the limit is {max} pages"
            ))
        })
    }
}

/// A table of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table {
    store: StoreId,
    index: u32,
}

impl Table {
    pub(crate) fn from_index(store: StoreId, index: u32) -> Table {
        Table { store, index }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    fn get_table<'a>(&self, store: &'a StoreOpaque) -> Result<&'a StoreTable> {
        store.check(self.store, "the table")?;
        store
            .tables
            .get(self.index as usize)
            .ok_or_else(|| stale("table"))
    }

    /// A new table of `ty.minimum` elements set to `init`.
    pub fn new(store: &mut impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let opaque = &mut store.store_inner_mut().opaque;
        let init = element_to_raw(opaque, ty.element, &init)?;
        let table = TableStorage::new(&ty, init, opaque.engine().config())?;
        let index = opaque.push_table(table, None);
        Ok(Table {
            store: opaque.id(),
            index,
        })
    }

    /// The type: the current size as the minimum, and the declared maximum.
    pub fn ty(&self, store: &impl AsContext) -> TableType {
        match self.get_table(&store.store_inner().opaque) {
            Ok(t) => t.table.current_type(),
            Err(_) => TableType {
                element: ValType::FuncRef,
                minimum: 0,
                maximum: Some(0),
            },
        }
    }

    pub fn size(&self, store: &impl AsContext) -> u32 {
        self.get_table(&store.store_inner().opaque)
            .map_or(0, |t| t.table.size())
    }

    /// Element `index`, or `None` past the end.
    pub fn get(&self, store: &impl AsContext, index: u32) -> Option<Val> {
        let opaque = &store.store_inner().opaque;
        let table = self.get_table(opaque).ok()?;
        let raw = table.table.get(index)?;
        Some(opaque.raw_to_val(raw, table.table.current_type().element))
    }

    /// Sets element `index` to `value` (of the table's element type).
    pub fn set(&self, store: &mut impl AsContextMut, index: u32, value: Val) -> Result<()> {
        let opaque = &mut store.store_inner_mut().opaque;
        let element = self.get_table(opaque)?.table.current_type().element;
        let raw = element_to_raw(opaque, element, &value)?;
        let table = &mut opaque.tables[self.index as usize].table;
        let size = table.size();
        table.set(index, raw).map_err(|_| {
            Error::Signature(format!(
                "table index {index} is out of bounds of a table of {size} elements"
            ))
        })
    }

    /// Grows by `delta` elements set to `init`; returns the old size.
    pub fn grow(&self, store: &mut impl AsContextMut, delta: u32, init: Val) -> Result<u32> {
        let opaque = &mut store.store_inner_mut().opaque;
        let element = self.get_table(opaque)?.table.current_type().element;
        let raw = element_to_raw(opaque, element, &init)?;
        let table = &mut opaque.tables[self.index as usize];
        let size = table.table.size();
        table.grow(delta, raw).ok_or_else(|| {
            Error::Resource(format!(
                "cannot grow table of {size} elements by {delta}: it would pass its maximum"
            ))
        })
    }
}

/// A global of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Global {
    store: StoreId,
    index: u32,
}

impl Global {
    pub(crate) fn from_index(store: StoreId, index: u32) -> Global {
        Global { store, index }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    fn get_global<'a>(&self, store: &'a StoreOpaque) -> Result<&'a StoreGlobal> {
        store.check(self.store, "the global")?;
        store
            .globals
            .get(self.index as usize)
            .ok_or_else(|| stale("global"))
    }

    /// A new global of type `ty` holding `value`.
    pub fn new(store: &mut impl AsContextMut, ty: GlobalType, value: Val) -> Result<Global> {
        let opaque = &mut store.store_inner_mut().opaque;
        let raw = element_to_raw(opaque, ty.content, &value)?;
        let index = opaque.push_global(ty, None, raw);
        Ok(Global {
            store: opaque.id(),
            index,
        })
    }

    pub fn ty(&self, store: &impl AsContext) -> GlobalType {
        match self.get_global(&store.store_inner().opaque) {
            Ok(g) => g.ty,
            Err(_) => GlobalType {
                content: ValType::I32,
                mutable: false,
            },
        }
    }

    /// The current value (`I32(0)` for a handle of another store).
    pub fn get(&self, store: &impl AsContext) -> Val {
        let opaque = &store.store_inner().opaque;
        match self.get_global(opaque) {
            Ok(g) => opaque.raw_to_val(g.get_raw(), g.ty.content),
            Err(_) => Val::I32(0),
        }
    }

    /// Sets the value; the global must be mutable and `value` of its type.
    pub fn set(&self, store: &mut impl AsContextMut, value: Val) -> Result<()> {
        let opaque = &mut store.store_inner_mut().opaque;
        let ty = self.get_global(opaque)?.ty;
        if !ty.mutable {
            return Err(Error::Signature("cannot set an immutable global".into()));
        }
        let raw = element_to_raw(opaque, ty.content, &value)?;
        opaque.globals[self.index as usize].set_raw(raw);
        Ok(())
    }
}

/// `value` in raw form after checking it has type `ty` and this store.
fn element_to_raw(store: &StoreOpaque, ty: ValType, value: &Val) -> Result<u64> {
    if value.ty() != ty {
        return Err(Error::Signature(format!(
            "expected a value of type {ty}, got {}",
            value.ty()
        )));
    }
    store.val_to_raw(value)
}

fn out_of_bounds(offset: usize, len: usize, size: usize) -> Error {
    Error::Signature(format!(
        "memory access of {len} bytes at offset {offset} is out of bounds of a memory of {size} bytes"
    ))
}

fn stale(what: &str) -> Error {
    Error::Signature(format!(
        "the {what} handle does not name a {what} of this store"
    ))
}
