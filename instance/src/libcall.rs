//! The runtime functions compiled code calls ("libcalls"): their list, their
//! signatures, and their addresses.
//!
//! Compiled code calls a libcall indirectly through its absolute address
//! (`iconst` + `call_indirect`), so the JIT needs no relocations for them.
//! Every libcall is `extern "C"`, takes the caller's `vmctx` first, and, when
//! it must trap, never returns: it raises the trap through
//! [`raise_trap`](crate::trap_handling::raise_trap) after dropping everything
//! it owns. The implementations live in [`builtins`](crate::builtins).
//!
//! Memory and table indices, offsets and lengths are wasm `i32` values
//! passed as Cranelift `i32`; reference values are `i64` ([`ValRaw`](crate::vmcontext::ValRaw)).

use cranelift_codegen::ir::{types, AbiParam, Signature, Type};
use cranelift_codegen::isa::CallConv;

/// A runtime function callable from compiled code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Libcall {
    /// `(vmctx, mem, delta_pages) -> old_pages` (`-1` on failure).
    MemoryGrow,
    /// `(vmctx, mem, dst, byte, len)`.
    MemoryFill,
    /// `(vmctx, dst_mem, src_mem, dst, src, len)`.
    MemoryCopy,
    /// `(vmctx, mem, data_index, dst, src, len)`.
    MemoryInit,
    /// `(vmctx, data_index)`.
    DataDrop,
    /// `(vmctx, table, index) -> ref`.
    TableGet,
    /// `(vmctx, table, index, ref)`.
    TableSet,
    /// `(vmctx, table, init_ref, delta) -> old_size` (`-1` on failure).
    TableGrow,
    /// `(vmctx, table, dst, ref, len)`.
    TableFill,
    /// `(vmctx, dst_table, src_table, dst, src, len)`.
    TableCopy,
    /// `(vmctx, table, elem_index, dst, src, len)`.
    TableInit,
    /// `(vmctx, elem_index)`.
    ElemDrop,
    /// `(vmctx)`: the epoch passed the deadline; yield or trap, then return.
    EpochDeadlineReached,
    /// `(host_ctx, caller_vmctx, values, len)`: run a host function on the
    /// `values` array (params in, results out). Used by the wasm-to-host
    /// trampolines.
    HostCall,
}

impl Libcall {
    /// Whether the call can reach an epoch point (the deadline callback,
    /// between the chunks of a bulk operation, or a host function), and so
    /// change the store's epoch deadline: compiled code reloads its cached
    /// deadline after these calls only. The ones excluded must never call
    /// `epoch_point`, a host function or the epoch deadline callback.
    pub(crate) fn may_reach_epoch_point(self) -> bool {
        !matches!(
            self,
            Libcall::MemoryGrow
                | Libcall::DataDrop
                | Libcall::TableGet
                | Libcall::TableSet
                | Libcall::ElemDrop
        )
    }

    /// Every libcall, for tables indexed by `Libcall as usize`.
    pub const ALL: [Libcall; 14] = [
        Libcall::MemoryGrow,
        Libcall::MemoryFill,
        Libcall::MemoryCopy,
        Libcall::MemoryInit,
        Libcall::DataDrop,
        Libcall::TableGet,
        Libcall::TableSet,
        Libcall::TableGrow,
        Libcall::TableFill,
        Libcall::TableCopy,
        Libcall::TableInit,
        Libcall::ElemDrop,
        Libcall::EpochDeadlineReached,
        Libcall::HostCall,
    ];

    /// Parameter and result types, `vmctx` (or `host_ctx`) included.
    pub fn types(self) -> (&'static [Type], &'static [Type]) {
        use types::{I32, I64};
        match self {
            Libcall::MemoryGrow => (&[I64, I32, I32], &[I32]),
            Libcall::MemoryFill => (&[I64, I32, I32, I32, I32], &[]),
            Libcall::MemoryCopy => (&[I64, I32, I32, I32, I32, I32], &[]),
            Libcall::MemoryInit => (&[I64, I32, I32, I32, I32, I32], &[]),
            Libcall::DataDrop => (&[I64, I32], &[]),
            Libcall::TableGet => (&[I64, I32, I32], &[I64]),
            Libcall::TableSet => (&[I64, I32, I32, I64], &[]),
            Libcall::TableGrow => (&[I64, I32, I64, I32], &[I32]),
            Libcall::TableFill => (&[I64, I32, I32, I64, I32], &[]),
            Libcall::TableCopy => (&[I64, I32, I32, I32, I32, I32], &[]),
            Libcall::TableInit => (&[I64, I32, I32, I32, I32, I32], &[]),
            Libcall::ElemDrop => (&[I64, I32], &[]),
            Libcall::EpochDeadlineReached => (&[I64], &[]),
            Libcall::HostCall => (&[I64, I64, I64, I32], &[]),
        }
    }

    /// The Cranelift signature, in the platform's C convention.
    pub fn signature(self, call_conv: CallConv) -> Signature {
        let (params, results) = self.types();
        let mut sig = Signature::new(call_conv);
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns
            .extend(results.iter().map(|&t| AbiParam::new(t)));
        sig
    }

    /// The function's address in this process.
    pub fn address(self) -> usize {
        crate::builtins::address_of(self)
    }
}
