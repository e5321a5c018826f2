//! WebAssembly → Cranelift IR.
//!
//! One defined function at a time, one operator at a time:
//!
//! - [`func_translator`] sets up the function (signature, entry block,
//!   locals as SSA [`Variable`](cranelift_frontend::Variable)s, hoisted
//!   VMContext loads, the entry epoch check) and runs the operator loop,
//!   switching between [`operators::translate_operator`] for reachable code and a
//!   skipping mode for code after `br`/`return`/`unreachable`.
//! - [`operators`] holds `translate_operator`: the wasm value stack is a
//!   `Vec` of Cranelift `Value`s, so every operator becomes a few
//!   instructions on those values.
//! - [`control`] holds the control stack: one frame per `block`/`loop`/`if`,
//!   with the Cranelift blocks that branches to it jump to.
//! - [`env`](mod@env) decides how the module's things are reached from compiled code:
//!   globals, memories (per [`MemoryStrategy`](crate::MemoryStrategy)),
//!   tables, calls (direct, imported, indirect), libcalls and epoch checks,
//!   all through the VMContext offsets that [`VMOffsets`](crate::vmcontext::VMOffsets)
//!   computes.
//! - [`trampolines`] builds the host↔wasm adapters for each function type.
//!
//! The module has been validated before translation, so the translator relies
//! on validity (stack heights, types, indices) but never panics on a broken
//! invariant: it returns an error message instead, which the compile driver
//! turns into [`Error::Compile`](crate::Error::Compile).

pub(crate) mod control;
pub(crate) mod env;
pub(crate) mod func_translator;
pub(crate) mod operators;
pub(crate) mod trampolines;

pub(crate) use func_translator::FuncTranslator;

use crate::types::{FuncType, ValType};
use cranelift_codegen::ir::{self, types, AbiParam, ArgumentPurpose, Signature};
use cranelift_codegen::isa::CallConv;

/// Translation errors are messages; the driver adds the function index.
pub(crate) type TResult<T> = Result<T, String>;

/// The Cranelift type of a wasm value type. References are 64-bit words
/// (see the table-element encoding in [`vmcontext`](crate::vmcontext)).
pub(crate) fn ir_type(ty: ValType) -> ir::Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::FuncRef | ValType::ExternRef => types::I64,
    }
}

/// The Cranelift type of a wasmparser value type (SIMD is refused).
pub(crate) fn parser_ir_type(ty: wasmparser::ValType) -> TResult<ir::Type> {
    Ok(match ty {
        wasmparser::ValType::I32 => types::I32,
        wasmparser::ValType::I64 => types::I64,
        wasmparser::ValType::F32 => types::F32,
        wasmparser::ValType::F64 => types::F64,
        wasmparser::ValType::Ref(_) => types::I64,
        wasmparser::ValType::V128 => return Err("SIMD (v128) is not supported".to_string()),
    })
}

/// The cranelift-jit `FuncId` (and direct-call name index) of the module's
/// epoch stub: after the defined functions and both trampolines of every
/// type (see the job order in [`compile`](crate::compile)).
pub(crate) fn epoch_stub_id(info: &crate::module_info::ModuleInfo) -> u32 {
    info.num_defined_funcs() + 2 * info.types.len() as u32
}

/// The signature every wasm function has (see the calling convention in
/// [`vmcontext`](crate::vmcontext)):
/// `(callee_vmctx, caller_vmctx, params...) -> results`.
pub(crate) fn wasm_signature(call_conv: CallConv, ty: &FuncType) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig.params
        .extend(ty.params.iter().map(|&t| AbiParam::new(ir_type(t))));
    sig.returns
        .extend(ty.results.iter().map(|&t| AbiParam::new(ir_type(t))));
    sig
}
