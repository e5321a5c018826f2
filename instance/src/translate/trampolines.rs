//! Adapters between the host's array calling convention and the wasm one,
//! one pair per function type (see "Calling convention" in
//! [`vmcontext`](crate::vmcontext)).
//!
//! - The *array-call trampoline* lets the host call wasm:
//!   `extern "C" fn(callee_vmctx, caller_vmctx, wasm_call, values: *mut ValRaw)`
//!   loads the params from `values[i]`, calls `wasm_call` with the wasm
//!   convention and stores the results back into `values[i]`.
//! - The *host trampoline* lets wasm call the host: it has the wasm
//!   signature `(host_ctx, caller_vmctx, params...) -> results`, spills the
//!   params into a stack array of `max(params, results)` slots, calls
//!   [`Libcall::HostCall`] on it and reloads the results.
//!
//! Every slot is a [`ValRaw`](crate::vmcontext::ValRaw): 8 bytes, i32 and
//! f32 in the low 4 bytes, zero-extended when written.

use super::{ir_type, wasm_signature, TResult};
use crate::libcall::Libcall;
use crate::types::FuncType;
use cranelift_codegen::ir::types::{F32, F64, I32, I64};
use cranelift_codegen::ir::{
    self, AbiParam, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind,
    UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

/// Namespaces of trampoline names (`UserFuncName::user(ns, type_index)`),
/// for debugging output; defined functions use namespace 0.
pub(crate) const ARRAY_TRAMPOLINE_NAMESPACE: u32 = 1;
pub(crate) const HOST_TRAMPOLINE_NAMESPACE: u32 = 2;
pub(crate) const EPOCH_STUB_NAMESPACE: u32 = 3;

/// The signature of the epoch stub: `(vmctx)`, in the `preserve_all`
/// convention.
pub(crate) fn epoch_stub_signature() -> Signature {
    let mut sig = Signature::new(CallConv::PreserveAll);
    sig.params.push(AbiParam::new(I64));
    sig
}

/// Builds the module's epoch stub: a `preserve_all` function that calls
/// [`Libcall::EpochDeadlineReached`]. Epoch checks call it from their cold
/// path; since the call clobbers no register, values live across a loop
/// stay in registers instead of being spilled around the (rare) call. The
/// stub saves whatever the libcall may clobber in its own prologue.
pub(crate) fn epoch_stub(
    isa: &dyn TargetIsa,
    builder_ctx: &mut FunctionBuilderContext,
) -> TResult<ir::Function> {
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(EPOCH_STUB_NAMESPACE, 0),
        epoch_stub_signature(),
    );
    let mut builder = FunctionBuilder::new(&mut func, builder_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let vmctx = builder.block_params(entry)[0];
    let libcall = Libcall::EpochDeadlineReached;
    let sig = builder.import_signature(libcall.signature(isa.default_call_conv()));
    let addr = builder.ins().iconst(I64, libcall.address() as i64);
    builder.ins().call_indirect(sig, addr, &[vmctx]);
    builder.ins().return_(&[]);
    builder.finalize(isa.frontend_config());
    Ok(func)
}

/// The signature of an array-call trampoline.
pub(crate) fn array_call_signature(isa: &dyn TargetIsa) -> Signature {
    let mut sig = Signature::new(isa.default_call_conv());
    for _ in 0..4 {
        sig.params.push(AbiParam::new(I64));
    }
    sig
}

/// Builds the host→wasm trampoline of type `ty` (type index `type_index`).
pub(crate) fn array_trampoline(
    isa: &dyn TargetIsa,
    builder_ctx: &mut FunctionBuilderContext,
    type_index: u32,
    ty: &FuncType,
) -> TResult<ir::Function> {
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(ARRAY_TRAMPOLINE_NAMESPACE, type_index),
        array_call_signature(isa),
    );
    let mut builder = FunctionBuilder::new(&mut func, builder_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let p = builder.block_params(entry).to_vec();
    let (callee_vmctx, caller_vmctx, wasm_call, values) = (p[0], p[1], p[2], p[3]);

    let flags = MemFlagsData::trusted();
    let mut args = vec![callee_vmctx, caller_vmctx];
    for (i, &t) in ty.params.iter().enumerate() {
        let v = builder
            .ins()
            .load(ir_type(t), flags, values, slot_offset(i)?);
        args.push(v);
    }
    let sig = builder.import_signature(wasm_signature(isa.default_call_conv(), ty));
    let call = builder.ins().call_indirect(sig, wasm_call, &args);
    let results = builder.inst_results(call).to_vec();
    for (i, &r) in results.iter().enumerate() {
        let raw = to_raw(&mut builder, r);
        builder.ins().store(flags, raw, values, slot_offset(i)?);
    }
    builder.ins().return_(&[]);
    builder.finalize(isa.frontend_config());
    Ok(func)
}

/// Builds the wasm→host trampoline of type `ty` (type index `type_index`).
pub(crate) fn host_trampoline(
    isa: &dyn TargetIsa,
    builder_ctx: &mut FunctionBuilderContext,
    type_index: u32,
    ty: &FuncType,
) -> TResult<ir::Function> {
    let call_conv = isa.default_call_conv();
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(HOST_TRAMPOLINE_NAMESPACE, type_index),
        wasm_signature(call_conv, ty),
    );
    let mut builder = FunctionBuilder::new(&mut func, builder_ctx);
    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let p = builder.block_params(entry).to_vec();
    let (host_ctx, caller_vmctx) = (p[0], p[1]);

    let len = ty.params.len().max(ty.results.len());
    let size = u32::try_from(len.max(1) * 8).map_err(|_| "too many values".to_string())?;
    let slot =
        builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 3));
    let values = builder.ins().stack_addr(I64, slot, 0);
    let flags = MemFlagsData::trusted();
    for (i, &param) in p[2..].iter().enumerate() {
        let raw = to_raw(&mut builder, param);
        builder.ins().store(flags, raw, values, slot_offset(i)?);
    }
    let len_value = builder.ins().iconst(I32, len as i64);
    let sig = builder.import_signature(Libcall::HostCall.signature(call_conv));
    let addr = builder
        .ins()
        .iconst(I64, Libcall::HostCall.address() as i64);
    builder
        .ins()
        .call_indirect(sig, addr, &[host_ctx, caller_vmctx, values, len_value]);
    let mut results = Vec::with_capacity(ty.results.len());
    for (i, &t) in ty.results.iter().enumerate() {
        results.push(
            builder
                .ins()
                .load(ir_type(t), flags, values, slot_offset(i)?),
        );
    }
    builder.ins().return_(&results);
    builder.finalize(isa.frontend_config());
    Ok(func)
}

fn slot_offset(i: usize) -> TResult<i32> {
    i32::try_from(i * 8).map_err(|_| "too many values".to_string())
}

/// A value as a 64-bit `ValRaw` (i32/f32 zero-extended).
fn to_raw(builder: &mut FunctionBuilder, v: Value) -> Value {
    match builder.func.dfg.value_type(v) {
        I32 => builder.ins().uextend(I64, v),
        F32 => {
            let bits = builder.ins().bitcast(I32, MemFlagsData::new(), v);
            builder.ins().uextend(I64, bits)
        }
        F64 => builder.ins().bitcast(I64, MemFlagsData::new(), v),
        _ => v,
    }
}
