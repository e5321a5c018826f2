//! Table storage: a growable array of 8-byte elements.
//!
//! Elements use the encoding of [`vmcontext`](crate::vmcontext): a funcref
//! is a `*const VMFuncRef` (null = 0), an externref its value plus one
//! (null = 0). Unlike a linear memory, a table's base may move when it grows;
//! compiled code reloads `base` from the table's [`VMTableDefinition`] at
//! every access, and the owner of the table copies
//! [`vmtable`](TableStorage::vmtable) into that definition after every grow.
//!
//! # Growing in steps
//!
//! Growing a large table writes every new element. The `table.grow` libcall
//! does it in steps ([`begin_grow`](TableStorage::begin_grow), then
//! [`continue_grow`](TableStorage::continue_grow) until it says done), so
//! that it can check the epoch between steps. The new elements are written
//! into the buffer's spare capacity, reserved up front: the table's size is
//! the old one until the last step, and a grow abandoned halfway (the epoch
//! callback ended the call with a trap) leaves the table as it was. While a
//! grow is in progress every other grow of the same table fails (returns
//! `None`, wasm's -1, which the spec allows at any time), so nothing moves
//! or reuses the reserved buffer under the steps.
//!
//! # Limits
//!
//! A table's maximum is its declared maximum capped by
//! [`Config::max_table_elements`] and by the store's
//! [`StoreLimits`](crate::store::StoreLimits) in force when it was created
//! (an error if its minimum is above either). The store's limit can be
//! lowered later ([`set_limit`](TableStorage::set_limit)); a grow past the
//! lower of the two fails.
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
    /// [`Config::max_table_elements`] and the store's limit at creation.
    max_elements: u32,
    /// The store's current limit (see [`set_limit`](Self::set_limit)).
    limit: u32,
    /// The size a grow in progress will reach, and how many elements of
    /// the buffer are written so far (see [`begin_grow`](Self::begin_grow)).
    pending_grow: Option<PendingGrow>,
    /// The pools this table is counted in (instance-defined tables). They
    /// outlive the table: see the pool's module docs (step 5).
    pool: Option<NonNull<Pools>>,
}

/// A grow in progress: elements `len..filled` of the buffer's spare
/// capacity are written, `filled..target` are not yet.
#[derive(Clone, Copy, Debug)]
struct PendingGrow {
    target: u32,
    filled: u32,
}

// SAFETY: the table owns its elements; the pools it points at are `Sync`
// and outlive it.
unsafe impl Send for TableStorage {}
// SAFETY: shared access only reads the elements.
unsafe impl Sync for TableStorage {}

impl TableStorage {
    /// A table of `ty.minimum` elements, each `init` (host-created tables).
    pub(crate) fn new(ty: &TableType, init: ValRaw, config: &Config) -> Result<TableStorage> {
        let max_elements = Self::max_elements(ty, config, u32::MAX)?;
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
            limit: u32::MAX,
            pending_grow: None,
            pool: None,
        })
    }

    /// A table of `ty.minimum` elements, each `init`, counted in `pools`
    /// (tables defined by instances), whose maximum is also capped by
    /// `store_limit` (the store's [`StoreLimits`](crate::store::StoreLimits)).
    pub(crate) fn from_pool(
        ty: &TableType,
        init: ValRaw,
        config: &Config,
        store_limit: u32,
        pools: &Arc<Pools>,
    ) -> Result<TableStorage> {
        let max_elements = Self::max_elements(ty, config, store_limit)?;
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
            limit: u32::MAX,
            pending_grow: None,
            pool: Some(NonNull::from(&**pools)),
        })
    }

    /// The effective maximum of a table of type `ty`, or an error, naming
    /// the limit, if its minimum is above it.
    pub(crate) fn max_elements(ty: &TableType, config: &Config, store_limit: u32) -> Result<u32> {
        if ty.minimum > config.max_table_elements {
            return Err(Error::Resource(format!(
                "a table of {} elements needs more than the limit of {} elements \
                 (raise Config::max_table_elements)",
                ty.minimum, config.max_table_elements
            )));
        }
        if ty.minimum > store_limit {
            return Err(Error::Resource(format!(
                "a table of {} elements needs more than the store's limit of {store_limit} \
                 elements (StoreLimits::max_table_elements)",
                ty.minimum
            )));
        }
        Ok(ty
            .maximum
            .unwrap_or(u32::MAX)
            .min(config.max_table_elements)
            .min(store_limit))
    }

    /// The most elements this table may grow to now.
    pub(crate) fn max_size(&self) -> u32 {
        self.max_elements.min(self.limit)
    }

    /// Caps growth at `limit` elements (the store's current limit).
    pub(crate) fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
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
    /// `None` (wasm's `-1`) past the maximum, when allocation fails, or
    /// while a grow in steps is in progress. The caller must copy
    /// [`vmtable`](Self::vmtable) into the definition.
    pub(crate) fn grow(&mut self, delta: u32, init: ValRaw) -> Option<u32> {
        let old = self.begin_grow(delta)?;
        let done = self.continue_grow(init, u32::MAX);
        debug_assert!(done);
        Some(old)
    }

    /// Starts a grow by `delta` elements (see the module docs): checks the
    /// limits and reserves the buffer, which may move it (the caller must
    /// copy [`vmtable`](Self::vmtable) into the definition). Returns the old
    /// size, or `None` as [`grow`](Self::grow) does, changing nothing.
    pub(crate) fn begin_grow(&mut self, delta: u32) -> Option<u32> {
        if self.pending_grow.is_some() {
            return None;
        }
        let old = self.size();
        let new = old.checked_add(delta)?;
        // Growing by 0 succeeds even above a limit lowered since.
        if delta > 0 && new > self.max_size() {
            return None;
        }
        self.elements.try_reserve(delta as usize).ok()?;
        self.pending_grow = Some(PendingGrow {
            target: new,
            filled: old,
        });
        Some(old)
    }

    /// Writes up to `step` more new elements of the grow in progress;
    /// returns `true` once the grow is done (the table has its new size;
    /// the buffer does not move) or if there is none.
    pub(crate) fn continue_grow(&mut self, init: ValRaw, step: u32) -> bool {
        let Some(pending) = self.pending_grow.as_mut() else {
            return true;
        };
        let len = self.elements.len() as u32;
        let end = pending.target.min(pending.filled.saturating_add(step));
        // Nothing but a grow changes the length or the capacity, and grows
        // are refused while this one is pending: the reserved spare capacity
        // still holds `target - len` elements.
        let spare = self.elements.spare_capacity_mut();
        for slot in &mut spare[(pending.filled - len) as usize..(end - len) as usize] {
            slot.write(init);
        }
        pending.filled = end;
        if end < pending.target {
            return false;
        }
        let target = pending.target;
        self.pending_grow = None;
        // SAFETY: `begin_grow` reserved room for `target` elements, and the
        // loop above (over this and earlier steps) initialised every element
        // from the old length up to `target`.
        unsafe { self.elements.set_len(target as usize) };
        true
    }

    /// Abandons the grow in progress: the table keeps its old size.
    pub(crate) fn abort_grow(&mut self) {
        self.pending_grow = None;
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
        assert_eq!(t.max_size(), 6);
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

    #[test]
    fn grow_in_steps_and_abort() {
        let config = Config::default();
        let ty = TableType {
            element: ValType::ExternRef,
            minimum: 3,
            maximum: Some(100),
        };
        let mut t = TableStorage::new(&ty, 1, &config).expect("table");
        assert_eq!(t.begin_grow(10), Some(3));
        assert_eq!(t.begin_grow(1), None, "one grow at a time");
        assert_eq!(t.grow(1, 5), None, "one grow at a time");
        assert!(!t.continue_grow(7, 4));
        assert_eq!(t.size(), 3, "the size changes at the last step");
        assert!(!t.continue_grow(7, 4));
        assert!(t.continue_grow(7, 4));
        assert_eq!(t.size(), 13);
        assert_eq!(
            (0..13).map(|i| t.get(i).unwrap_or(99)).collect::<Vec<_>>(),
            [1, 1, 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]
        );
        assert_eq!(t.begin_grow(20), Some(13));
        assert!(!t.continue_grow(2, 5));
        t.abort_grow();
        assert_eq!(t.size(), 13, "an abandoned grow changes nothing");
        assert_eq!(t.grow(2, 3), Some(13));
        assert_eq!(t.get(13), Some(3));
        assert_eq!(t.get(14), Some(3));
        assert_eq!(t.get(15), None);
        t.set_limit(16);
        assert_eq!(t.max_size(), 16);
        assert_eq!(t.grow(2, 0), None);
        assert_eq!(t.grow(1, 0), Some(15));
    }

    #[test]
    fn minimum_above_a_limit_names_it() {
        let config = Config {
            max_table_elements: 10,
            ..Config::default()
        };
        let ty = |minimum| TableType {
            element: ValType::FuncRef,
            minimum,
            maximum: None,
        };
        let err = TableStorage::max_elements(&ty(11), &config, 100).expect_err("too big");
        assert!(
            err.to_string().contains("Config::max_table_elements"),
            "{err}"
        );
        let err = TableStorage::max_elements(&ty(6), &config, 5).expect_err("too big");
        assert!(
            err.to_string().contains("StoreLimits::max_table_elements"),
            "{err}"
        );
        assert_eq!(TableStorage::max_elements(&ty(5), &config, 5).ok(), Some(5));
        assert_eq!(
            TableStorage::max_elements(&ty(5), &config, 50).ok(),
            Some(10)
        );
    }
}
