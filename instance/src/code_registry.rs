//! The process-wide registry of compiled code: which address ranges hold
//! wasm code, and who can say what a PC inside them means.
//!
//! Every [`Module`](crate::Module) registers the one contiguous range that
//! holds all its code (functions and trampolines) with [`register_code`],
//! giving a [`CodeLookup`] that maps a PC to its wasm function and trap code.
//! The returned [`CodeRegistration`] unregisters the range when dropped,
//! which must happen before the code memory is freed.
//!
//! Two kinds of readers:
//! - the signal handler ([`read_in_signal_handler`]), which must decide
//!   "is this PC a trap site in wasm code, and which one" without allocating:
//!   it only calls [`CodeLookup::trap_code`];
//! - everything else ([`read`]), e.g. symbolising a backtrace after the trap
//!   has unwound, which may call [`CodeLookup::lookup`] and allocate names.
//!
//! The registry is a `BTreeMap` keyed by range end behind a `std` `RwLock`
//! (futex-based on Linux: taking a read lock allocates nothing, so the
//! signal handler may take it, as Wasmtime's does). One hazard remains: a
//! thread that already holds the lock and faults (a stack overflow in host
//! code while symbolising or registering) would deadlock if its handler took
//! the lock again while a writer waits. Every non-handler holder therefore
//! marks its thread busy ([`REGISTRY_BUSY`]) and the handler does not look
//! up anything on a busy thread: its PC cannot be in wasm code anyway.

use crate::trap::FrameInfo;
use cranelift_codegen::ir::TrapCode;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Maps a PC inside one registered code range to what it means.
///
/// Implemented by the module for its compiled code.
pub(crate) trait CodeLookup: Send + Sync {
    /// The wasm function containing `pc`, and the trap code if `pc` is
    /// exactly a recorded trap site. `None` if `pc` is not inside a wasm
    /// function (e.g. inside a trampoline). May allocate.
    fn lookup(&self, pc: usize) -> Option<(FrameInfo, Option<TrapCode>)>;

    /// Like [`lookup`](CodeLookup::lookup) but without the frame info:
    /// `Some(code)` if `pc` is inside a wasm function, with its trap code.
    ///
    /// Called from the signal handler, so implementations should override
    /// it with one that neither allocates nor takes locks (e.g.
    /// `CompiledCode::lookup_pc(pc).map(|(_, code)| code)`); the default
    /// builds and drops a [`FrameInfo`], which allocates if it has names.
    fn trap_code(&self, pc: usize) -> Option<Option<TrapCode>> {
        self.lookup(pc).map(|(_, code)| code)
    }
}

struct Entry {
    start: usize,
    lookup: Arc<dyn CodeLookup>,
}

/// Registered ranges, keyed by their (exclusive) end address.
static REGISTRY: RwLock<BTreeMap<usize, Entry>> = RwLock::new(BTreeMap::new());

thread_local! {
    /// How many registry guards this thread holds outside the signal
    /// handler. See the module docs.
    static REGISTRY_BUSY: Cell<u32> = const { Cell::new(0) };
}

/// Keeps a code range registered; unregisters it when dropped.
///
/// Drop it before freeing the code. The registry holds a strong reference to
/// the [`CodeLookup`], so the lookup must not own this registration (that
/// would be a cycle that never unregisters).
#[derive(Debug)]
#[must_use = "the code range is unregistered when this is dropped"]
pub(crate) struct CodeRegistration {
    /// Key of the entry (range end); `None` for an empty range.
    end: Option<usize>,
}

/// Registers `range` as compiled wasm code described by `lookup`.
///
/// An empty range registers nothing. Ranges of live registrations never
/// overlap (they are distinct allocations); overlapping is a bug and panics.
pub(crate) fn register_code(range: Range<usize>, lookup: Arc<dyn CodeLookup>) -> CodeRegistration {
    if range.start >= range.end {
        return CodeRegistration { end: None };
    }
    let overlap = {
        let _busy = BusyMark::new();
        let mut map = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        match map.range(range.start + 1..).next() {
            Some((&end, entry)) if entry.start < range.end => Some(entry.start..end),
            _ => {
                map.insert(
                    range.end,
                    Entry {
                        start: range.start,
                        lookup,
                    },
                );
                None
            }
        }
    };
    // Panic with the lock released (it must never be poisoned).
    if let Some(other) = overlap {
        panic!(
            "code range {:#x}..{:#x} overlaps registered range {:#x}..{:#x}",
            range.start, range.end, other.start, other.end
        );
    }
    CodeRegistration {
        end: Some(range.end),
    }
}

impl Drop for CodeRegistration {
    fn drop(&mut self) {
        if let Some(end) = self.end {
            let _busy = BusyMark::new();
            let removed = REGISTRY
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&end);
            // Drop the lookup (possibly the last reference) with the lock released.
            drop(removed);
        }
    }
}

/// Marks this thread as holding the registry lock (see the module docs).
struct BusyMark;

impl BusyMark {
    fn new() -> Self {
        REGISTRY_BUSY.with(|b| b.set(b.get() + 1));
        BusyMark
    }
}

impl Drop for BusyMark {
    fn drop(&mut self) {
        REGISTRY_BUSY.with(|b| b.set(b.get() - 1));
    }
}

/// A read view of the registry.
pub(crate) struct RegistryReader {
    map: RwLockReadGuard<'static, BTreeMap<usize, Entry>>,
    _busy: Option<BusyMark>,
}

/// Reads the registry from ordinary (non-signal-handler) code.
pub(crate) fn read() -> RegistryReader {
    let busy = BusyMark::new();
    RegistryReader {
        map: REGISTRY.read().unwrap_or_else(|e| e.into_inner()),
        _busy: Some(busy),
    }
}

/// Reads the registry from the signal handler; `None` if this thread
/// already holds the registry lock (its PC is then in registry code, not in
/// wasm). Allocates nothing.
pub(crate) fn read_in_signal_handler() -> Option<RegistryReader> {
    if REGISTRY_BUSY.with(|b| b.get()) != 0 {
        return None;
    }
    Some(RegistryReader {
        map: REGISTRY.read().unwrap_or_else(|e| e.into_inner()),
        _busy: None,
    })
}

impl RegistryReader {
    fn entry(&self, pc: usize) -> Option<&Entry> {
        let (_, entry) = self.map.range(pc.checked_add(1)?..).next()?;
        (entry.start <= pc).then_some(entry)
    }

    /// Whether `pc` is inside any registered code range (a wasm function or
    /// a trampoline).
    pub(crate) fn contains(&self, pc: usize) -> bool {
        self.entry(pc).is_some()
    }

    /// `Some(trap code at pc)` if `pc` is inside a wasm function. Allocates
    /// nothing (given a conforming [`CodeLookup::trap_code`]).
    pub(crate) fn trap_code(&self, pc: usize) -> Option<Option<TrapCode>> {
        self.entry(pc)?.lookup.trap_code(pc)
    }

    /// The wasm function containing `pc`, if any. May allocate.
    pub(crate) fn frame_info(&self, pc: usize) -> Option<FrameInfo> {
        self.entry(pc)?.lookup.lookup(pc).map(|(frame, _)| frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Range<usize>, u32);
    impl CodeLookup for Fixed {
        fn lookup(&self, pc: usize) -> Option<(FrameInfo, Option<TrapCode>)> {
            self.0.contains(&pc).then(|| {
                let frame = FrameInfo {
                    func_index: self.1,
                    func_name: None,
                    module_name: None,
                };
                (
                    frame,
                    (pc == self.0.start).then_some(TrapCode::HEAP_OUT_OF_BOUNDS),
                )
            })
        }
    }

    #[test]
    fn register_lookup_unregister() {
        // Addresses that are never code: this test only exercises the map.
        let base = 0x7ff0_0000_0000usize;
        let a = register_code(
            base..base + 0x100,
            Arc::new(Fixed(base + 0x10..base + 0x80, 7)),
        );
        let b = register_code(
            base + 0x100..base + 0x200,
            Arc::new(Fixed(base + 0x100..base + 0x200, 9)),
        );
        let empty = register_code(5..5, Arc::new(Fixed(0..0, 0)));
        {
            let r = read();
            assert!(!r.contains(base - 1));
            assert!(r.contains(base));
            assert!(r.contains(base + 0x8));
            assert_eq!(
                r.trap_code(base + 0x8),
                None,
                "trampoline area: not a function"
            );
            assert_eq!(
                r.trap_code(base + 0x10),
                Some(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
            );
            assert_eq!(r.trap_code(base + 0x11), Some(None));
            assert_eq!(r.frame_info(base + 0x100).map(|f| f.func_index), Some(9));
            assert!(!r.contains(base + 0x200));
        }
        assert!(read_in_signal_handler().is_some());
        {
            let _r = read();
            assert!(
                read_in_signal_handler().is_none(),
                "busy while holding a reader"
            );
        }
        drop(a);
        assert!(!read().contains(base + 0x10));
        assert!(read().contains(base + 0x100));
        drop(b);
        drop(empty);
        assert!(!read().contains(base + 0x100));
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlapping_ranges_are_refused() {
        let base = 0x7fe0_0000_0000usize;
        let _a = register_code(base..base + 0x100, Arc::new(Fixed(0..0, 0)));
        let _b = register_code(base + 0x80..base + 0x180, Arc::new(Fixed(0..0, 0)));
    }
}
