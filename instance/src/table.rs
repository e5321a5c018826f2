//! Table storage: a growable array of 8-byte elements.
//!
//! Elements use the encoding of [`vmcontext`](crate::vmcontext): a funcref
//! is a `*const VMFuncRef` (null = 0), an externref its value plus one
//! (null = 0). Unlike a linear memory, a table's base may move when it grows;
//! compiled code reloads `base` from the table's [`VMTableDefinition`] at
//! every access, and the owner of the table copies
//! [`vmtable`](TableStorage::vmtable) into that definition after every grow.
//!
//! Tables defined by instances are counted against the engine's
//! `PoolingConfig::max_tables` and take their element buffer from the
//! thread's cache of freed ones (see [`pool`]); dropping them
//! gives both back. A reused buffer is refilled with the table's initial
//! value before use, so nothing of the previous instance remains.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::{self, Pools, Resource};
use crate::trap::TrapKind;
use crate::types::TableType;
use crate::vmcontext::{VMTableDefinition, ValRaw};
use std::ptr::NonNull;
use std::sync::Arc;

/// The elements of one table and its limits.
#[derive(Debug)]
pub(crate) struct TableStorage {
    elements: Vec<ValRaw>,
    ty: TableType,
    /// The most elements `grow` may reach: the declared maximum capped by
    /// [`Config::max_table_elements`].
    max_elements: u32,
    /// The pools this table is counted in (instance-defined tables). They
    /// outlive the table: see the pool's module docs (step 5).
    pool: Option<NonNull<Pools>>,
}

// SAFETY: the table owns its elements; the pools it points at are `Sync`
// and outlive it.
unsafe impl Send for TableStorage {}
// SAFETY: shared access only reads the elements.
unsafe impl Sync for TableStorage {}

impl TableStorage {
    /// A table of `ty.minimum` elements, each `init` (host-created tables).
    pub(crate) fn new(ty: &TableType, init: ValRaw, config: &Config) -> Result<TableStorage> {
        let max_elements = Self::max_elements(ty, config)?;
        let mut elements = Vec::new();
        elements
            .try_reserve_exact(ty.minimum as usize)
            .map_err(|e| {
                Error::Resource(format!(
                    "cannot allocate a table of {} elements: {e}",
                    ty.minimum
                ))
            })?;
        elements.resize(ty.minimum as usize, init);
        Ok(TableStorage {
            elements,
            ty: *ty,
            max_elements,
            pool: None,
        })
    }

    /// A table of `ty.minimum` elements, each `init`, counted in `pools`
    /// (tables defined by instances).
    pub(crate) fn from_pool(
        ty: &TableType,
        init: ValRaw,
        config: &Config,
        pools: &Arc<Pools>,
    ) -> Result<TableStorage> {
        let max_elements = Self::max_elements(ty, config)?;
        pools.acquire(Resource::Tables)?;
        let Some(mut elements) = pool::take_table_buffer(ty.minimum as usize) else {
            pools.release(Resource::Tables);
            return Err(Error::Resource(format!(
                "cannot allocate a table of {} elements",
                ty.minimum
            )));
        };
        elements.resize(ty.minimum as usize, init);
        Ok(TableStorage {
            elements,
            ty: *ty,
            max_elements,
            pool: Some(NonNull::from(&**pools)),
        })
    }

    /// The effective maximum of a table of type `ty`, or an error if its
    /// minimum is above it.
    fn max_elements(ty: &TableType, config: &Config) -> Result<u32> {
        let max_elements = ty
            .maximum
            .unwrap_or(u32::MAX)
            .min(config.max_table_elements);
        if ty.minimum > max_elements {
            return Err(Error::Resource(format!(
                "a table of {} elements needs more than the limit of {max_elements} elements \
                 (raise Config::max_table_elements, currently {})",
                ty.minimum, config.max_table_elements
            )));
        }
        Ok(max_elements)
    }

    pub(crate) fn size(&self) -> u32 {
        self.elements.len() as u32
    }

    /// The type as an import sees it: the current size as the minimum.
    pub(crate) fn current_type(&self) -> TableType {
        TableType {
            minimum: self.size(),
            ..self.ty
        }
    }

    pub(crate) fn get(&self, index: u32) -> Option<ValRaw> {
        self.elements.get(index as usize).copied()
    }

    /// Sets one element; `Err` if `index` is out of bounds.
    pub(crate) fn set(&mut self, index: u32, value: ValRaw) -> Result<(), TrapKind> {
        match self.elements.get_mut(index as usize) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(TrapKind::TableOutOfBounds),
        }
    }

    /// Grows by `delta` elements set to `init`. Returns the old size, or
    /// `None` (wasm's `-1`) past the maximum or when allocation fails. The
    /// caller must copy [`vmtable`](Self::vmtable) into the definition.
    pub(crate) fn grow(&mut self, delta: u32, init: ValRaw) -> Option<u32> {
        let old = self.size();
        let new = old.checked_add(delta)?;
        if new > self.max_elements {
            return None;
        }
        self.elements.try_reserve(delta as usize).ok()?;
        self.elements.resize(new as usize, init);
        Some(old)
    }

    /// `table.fill`: bounds-checked before any write.
    pub(crate) fn fill(&mut self, dst: u32, value: ValRaw, len: u32) -> Result<(), TrapKind> {
        let range = range(dst, len, self.size())?;
        self.elements[range].fill(value);
        Ok(())
    }

    /// `table.copy` within this table (ranges may overlap).
    pub(crate) fn copy_within(&mut self, dst: u32, src: u32, len: u32) -> Result<(), TrapKind> {
        let size = self.size();
        let src_range = range(src, len, size)?;
        range(dst, len, size)?;
        self.elements.copy_within(src_range, dst as usize);
        Ok(())
    }

    /// `table.copy` from another table.
    pub(crate) fn copy_from(
        &mut self,
        src_table: &TableStorage,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), TrapKind> {
        let src_range = range(src, len, src_table.size())?;
        let dst_range = range(dst, len, self.size())?;
        self.elements[dst_range].copy_from_slice(&src_table.elements[src_range]);
        Ok(())
    }

    /// The elements `[dst, dst + len)`, for writing, after a bounds check.
    pub(crate) fn slice_mut(&mut self, dst: u32, len: u32) -> Result<&mut [ValRaw], TrapKind> {
        let range = range(dst, len, self.size())?;
        Ok(&mut self.elements[range])
    }

    /// The definition compiled code reads.
    pub(crate) fn vmtable(&mut self) -> VMTableDefinition {
        VMTableDefinition {
            base: self.elements.as_mut_ptr(),
            current_elements: self.elements.len() as u32,
        }
    }
}

impl Drop for TableStorage {
    fn drop(&mut self) {
        if let Some(pools) = self.pool {
            // SAFETY: the pools outlive their tables (see `pool`).
            let pools = unsafe { pools.as_ref() };
            pool::give_table_buffer(
                std::mem::take(&mut self.elements),
                pools.config().table_keep_resident,
            );
            pools.release(Resource::Tables);
        }
    }
}

/// `start..start+len` if it fits in `size`, else a table bounds trap.
fn range(start: u32, len: u32, size: u32) -> Result<std::ops::Range<usize>, TrapKind> {
    let end = u64::from(start) + u64::from(len);
    if end > u64::from(size) {
        return Err(TrapKind::TableOutOfBounds);
    }
    Ok(start as usize..end as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ValType;

    #[test]
    fn grow_fill_copy() {
        let config = Config {
            max_table_elements: 6,
            ..Config::default()
        };
        let ty = TableType {
            element: ValType::ExternRef,
            minimum: 2,
            maximum: None,
        };
        let mut t = TableStorage::new(&ty, 0, &config).expect("table");
        assert_eq!(t.grow(3, 9), Some(2));
        assert_eq!(t.grow(2, 9), None);
        assert_eq!(t.size(), 5);
        assert_eq!(t.fill(4, 1, 2), Err(TrapKind::TableOutOfBounds));
        assert_eq!(t.get(4), Some(9), "no partial write");
        t.fill(0, 5, 1).expect("fill");
        t.copy_within(1, 0, 4).expect("copy");
        assert_eq!(
            (0..5).map(|i| t.get(i).unwrap_or(99)).collect::<Vec<_>>(),
            [5, 5, 0, 9, 9]
        );
        assert_eq!(t.copy_within(5, 0, 0), Ok(()));
        assert_eq!(t.copy_within(6, 0, 0), Err(TrapKind::TableOutOfBounds));
        let def = t.vmtable();
        assert_eq!(def.current_elements, 5);
    }
}
