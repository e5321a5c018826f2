//! [`translate_operator`]: one wasm operator → Cranelift instructions on the
//! value stack.
//!
//! Semantics that Cranelift provides directly, and that this file relies on:
//! shift and rotate amounts are taken modulo the width; `sdiv`/`udiv`/
//! `srem`/`urem` trap on a zero divisor (`INTEGER_DIVISION_BY_ZERO`), `sdiv`
//! traps on `MIN / -1` (`INTEGER_OVERFLOW`) while `srem` returns 0 for it;
//! `fcvt_to_sint`/`fcvt_to_uint` trap with `BAD_CONVERSION_TO_INTEGER` on
//! NaN and `INTEGER_OVERFLOW` when out of range (the spec's "invalid
//! conversion to integer" and "integer overflow"); `fmin`/`fmax` propagate
//! NaN and order -0 below +0; `nearest` rounds ties to even; `fneg`, `fabs`
//! and `fcopysign` only touch the sign bit.

use super::control::{ControlFrame, ElseData, TranslationState};
use super::env::FuncEnvironment;
use super::TResult;
use crate::libcall::Libcall;
use crate::trap::codes;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::types::{F32, F64, I16, I32, I64, I8};
use cranelift_codegen::ir::{
    self, Block, BlockArg, InstBuilder, JumpTableData, MemFlagsData, Type, Value,
};
use cranelift_codegen::packed_option::ReservedValue;
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::HashMap;
use wasmparser::{MemArg, MemArgTarget, Operator};

/// Translates one operator of reachable code.
pub(crate) fn translate_operator(
    op: &Operator,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
    locals: &[Variable],
) -> TResult<()> {
    macro_rules! unop {
        ($m:ident) => {{
            let a = state.pop1()?;
            let v = builder.ins().$m(a);
            state.push1(v);
        }};
    }
    macro_rules! binop {
        ($m:ident) => {{
            let (a, b) = state.pop2()?;
            let v = builder.ins().$m(a, b);
            state.push1(v);
        }};
    }
    macro_rules! icmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2()?;
            let c = builder.ins().icmp($cc, a, b);
            let v = builder.ins().uextend(I32, c);
            state.push1(v);
        }};
    }
    macro_rules! fcmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2()?;
            let c = builder.ins().fcmp($cc, a, b);
            let v = builder.ins().uextend(I32, c);
            state.push1(v);
        }};
    }
    macro_rules! convert {
        ($m:ident, $ty:expr) => {{
            let a = state.pop1()?;
            let v = builder.ins().$m($ty, a);
            state.push1(v);
        }};
    }
    macro_rules! sext_from {
        ($narrow:expr, $wide:expr) => {{
            let a = state.pop1()?;
            let n = builder.ins().ireduce($narrow, a);
            let v = builder.ins().sextend($wide, n);
            state.push1(v);
        }};
    }
    macro_rules! load {
        ($memarg:expr, $kind:expr) => {
            translate_load($memarg, $kind, builder, state, env)?
        };
    }
    macro_rules! store {
        ($memarg:expr, $size:expr) => {
            translate_store($memarg, $size, builder, state, env)?
        };
    }

    match *op {
        // ------------------------------------------------------------------
        // Control
        Operator::Unreachable => {
            builder.ins().trap(codes::UNREACHABLE);
            state.reachable = false;
        }
        Operator::Nop => {}
        Operator::Block { blockty } => {
            let (params, results) = env.block_type(blockty)?;
            let next = block_with_params(builder, &results);
            state.push_block(next, params.len(), results.len())?;
        }
        Operator::Loop { blockty } => {
            let (params, results) = env.block_type(blockty)?;
            let header = block_with_params(builder, &params);
            let next = block_with_params(builder, &results);
            jump(builder, header, state.peekn(params.len())?);
            state.push_loop(header, next, params.len(), results.len())?;
            // Control joins at the top of the loop: its params are the
            // header's block params from now on.
            state.popn(params.len())?;
            state.pushn(builder.block_params(header));
            // No epoch check here: every branch back to the header checks
            // on its way (`Operator::Br`, `BrIf`, `BrTable`), which is the
            // same guarantee (an iteration cannot repeat unchecked) with the
            // check folded into the back edge, and none on the first entry.
            builder.switch_to_block(header);
        }
        Operator::If { blockty } => {
            let cond = state.pop1()?;
            let (params, results) = env.block_type(blockty)?;
            let then_block = builder.create_block();
            let destination = block_with_params(builder, &results);
            let else_data = if params == results {
                // Maybe no `else`: the false edge targets the destination
                // (with the params, which are the results) until an `else`
                // shows up.
                let args = block_args(state.peekn(params.len())?);
                let branch_inst = builder
                    .ins()
                    .brif(cond, then_block, &[], destination, &args);
                ElseData::NoElse {
                    branch_inst,
                    placeholder: destination,
                }
            } else {
                let else_block = block_with_params(builder, &params);
                let args = block_args(state.peekn(params.len())?);
                builder.ins().brif(cond, then_block, &[], else_block, &args);
                builder.seal_block(else_block);
                ElseData::WithElse { else_block }
            };
            builder.seal_block(then_block);
            builder.switch_to_block(then_block);
            state.push_if(destination, else_data, params.len(), results.len(), blockty)?;
        }
        Operator::Else => translate_else(builder, state, env)?,
        Operator::End => {
            let frame = state.control.pop().ok_or("`end` without a block")?;
            let next = frame.following_code();
            jump(builder, next, state.peekn(frame.num_return_values())?);
            if let ControlFrame::Loop { header, .. } = frame {
                builder.seal_block(header);
            }
            // (An `if` without `else` leaves its duplicated params on the
            // stack; truncating to the original size below drops them.)
            builder.switch_to_block(next);
            builder.seal_block(next);
            frame.truncate_value_stack_to_original_size(&mut state.stack);
            state.pushn(builder.block_params(next));
        }
        Operator::Br { relative_depth } => {
            let arity = jump_to_frame(builder, state, env, relative_depth)?;
            state.popn(arity)?;
            state.reachable = false;
        }
        Operator::BrIf { relative_depth } => {
            let cond = state.pop1()?;
            let (arity, dest, back_edge) = branch_destination(state, env, relative_depth)?;
            let next = builder.create_block();
            let args = block_args(state.peekn(arity)?);
            if back_edge {
                // The taken edge goes through a block of its own whose
                // check's branch is the branch back (as for `br`). It must
                // follow this block in the code, so that `jz next` falls
                // through to the check and `jb header`: one taken branch
                // per iteration. Cranelift orders blocks by a depth-first
                // walk that puts a branch's second target first, so the
                // condition is inverted to make the check the second (the
                // inversion folds into the compare: `icmp` is rewritten
                // with the complementary condition).
                let checked = builder.create_block();
                let exit = builder.ins().icmp_imm_u(IntCC::Equal, cond, 0);
                builder.ins().brif(exit, next, &[], checked, &[]);
                builder.seal_block(checked);
                builder.switch_to_block(checked);
                env.epoch_check_then_jump(builder, dest, &args)?;
            } else {
                builder.ins().brif(cond, dest, &args, next, &[]);
            }
            builder.seal_block(next);
            builder.switch_to_block(next);
        }
        Operator::BrTable { ref targets } => {
            let default = targets.default();
            let mut depths = Vec::with_capacity(targets.len() as usize);
            for depth in targets.targets() {
                depths.push(depth.map_err(|e| e.to_string())?);
            }
            let index = state.pop1()?;
            let arity = state.frame_mut(default)?.br_arity();
            // A branch back to a loop checks the epoch on its own edge.
            let mut back_edges = false;
            if env.epoch_interruption() {
                for &depth in depths.iter().chain([&default]) {
                    back_edges |= state.frame_mut(depth)?.is_loop();
                }
            }
            if arity == 0 && !back_edges {
                let mut table = Vec::with_capacity(depths.len());
                for &depth in &depths {
                    let (_, dest, _) = branch_destination(state, env, depth)?;
                    table.push(builder.func.dfg.block_call(dest, &[]));
                }
                let (_, dest, _) = branch_destination(state, env, default)?;
                let default_call = builder.func.dfg.block_call(dest, &[]);
                let jt = builder.create_jump_table(JumpTableData::new(default_call, &table));
                builder.ins().br_table(index, jt);
            } else {
                // Jump tables carry no arguments, nor checks: go through
                // one intermediate block per distinct target.
                let mut edge_blocks: HashMap<u32, Block> = HashMap::new();
                let mut order: Vec<(u32, Block)> = Vec::new();
                let mut edge = |builder: &mut FunctionBuilder, depth: u32| {
                    *edge_blocks.entry(depth).or_insert_with(|| {
                        let b = builder.create_block();
                        order.push((depth, b));
                        b
                    })
                };
                let mut table = Vec::with_capacity(depths.len());
                for &depth in &depths {
                    let b = edge(builder, depth);
                    table.push(builder.func.dfg.block_call(b, &[]));
                }
                let default_block = edge(builder, default);
                let default_call = builder.func.dfg.block_call(default_block, &[]);
                let jt = builder.create_jump_table(JumpTableData::new(default_call, &table));
                builder.ins().br_table(index, jt);
                for (depth, b) in order {
                    builder.switch_to_block(b);
                    builder.seal_block(b);
                    jump_to_frame(builder, state, env, depth)?;
                }
                state.popn(arity)?;
            }
            state.reachable = false;
        }
        Operator::Return => {
            let n = state
                .control
                .first()
                .ok_or("`return` outside the body")?
                .num_return_values();
            builder.ins().return_(state.peekn(n)?);
            state.popn(n)?;
            state.reachable = false;
        }

        // ------------------------------------------------------------------
        // Calls
        Operator::Call { function_index } => {
            let n = env
                .info
                .functions
                .get(function_index as usize)
                .and_then(|&t| env.info.types.get(t as usize))
                .ok_or_else(|| format!("function index {function_index} out of range"))?
                .params
                .len();
            let args = state.peekn(n)?.to_vec();
            let call = env.call(builder, function_index, &args)?;
            state.popn(n)?;
            state.pushn(builder.inst_results(call));
        }
        Operator::CallIndirect {
            type_index,
            table_index,
        } => {
            let callee = state.pop1()?;
            let n = env
                .info
                .types
                .get(type_index as usize)
                .ok_or_else(|| format!("type index {type_index} out of range"))?
                .params
                .len();
            let args = state.peekn(n)?.to_vec();
            let call = env.call_indirect(builder, table_index, type_index, callee, &args)?;
            state.popn(n)?;
            state.pushn(builder.inst_results(call));
        }

        // ------------------------------------------------------------------
        // Parametric
        Operator::Drop => {
            state.pop1()?;
        }
        Operator::Select | Operator::TypedSelect { .. } => {
            let (a, b, cond) = state.pop3()?;
            let v = builder.ins().select(cond, a, b);
            state.push1(v);
        }

        // ------------------------------------------------------------------
        // Variables
        Operator::LocalGet { local_index } => {
            let v = builder.use_var(local(locals, local_index)?);
            state.push1(v);
        }
        Operator::LocalSet { local_index } => {
            let v = state.pop1()?;
            builder.def_var(local(locals, local_index)?, v);
        }
        Operator::LocalTee { local_index } => {
            let v = *state.stack.last().ok_or("wasm value stack underflow")?;
            builder.def_var(local(locals, local_index)?, v);
        }
        Operator::GlobalGet { global_index } => {
            let v = env.global_get(builder, global_index)?;
            state.push1(v);
        }
        Operator::GlobalSet { global_index } => {
            let v = state.pop1()?;
            env.global_set(builder, global_index, v)?;
        }

        // ------------------------------------------------------------------
        // Memory
        Operator::I32Load { ref memarg } => load!(memarg, Load::Plain(I32)),
        Operator::I64Load { ref memarg } => load!(memarg, Load::Plain(I64)),
        Operator::F32Load { ref memarg } => load!(memarg, Load::Plain(F32)),
        Operator::F64Load { ref memarg } => load!(memarg, Load::Plain(F64)),
        Operator::I32Load8S { ref memarg } => load!(memarg, Load::S8(I32)),
        Operator::I32Load8U { ref memarg } => load!(memarg, Load::U8(I32)),
        Operator::I32Load16S { ref memarg } => load!(memarg, Load::S16(I32)),
        Operator::I32Load16U { ref memarg } => load!(memarg, Load::U16(I32)),
        Operator::I64Load8S { ref memarg } => load!(memarg, Load::S8(I64)),
        Operator::I64Load8U { ref memarg } => load!(memarg, Load::U8(I64)),
        Operator::I64Load16S { ref memarg } => load!(memarg, Load::S16(I64)),
        Operator::I64Load16U { ref memarg } => load!(memarg, Load::U16(I64)),
        Operator::I64Load32S { ref memarg } => load!(memarg, Load::S32),
        Operator::I64Load32U { ref memarg } => load!(memarg, Load::U32),
        Operator::I32Store { ref memarg } | Operator::F32Store { ref memarg } => store!(memarg, 4),
        Operator::I64Store { ref memarg } | Operator::F64Store { ref memarg } => store!(memarg, 8),
        Operator::I32Store8 { ref memarg } | Operator::I64Store8 { ref memarg } => {
            store!(memarg, 1)
        }
        Operator::I32Store16 { ref memarg } | Operator::I64Store16 { ref memarg } => {
            store!(memarg, 2)
        }
        Operator::I64Store32 { ref memarg } => store!(memarg, 4),
        Operator::MemorySize { mem } => {
            let v = env.memory_size(builder, mem)?;
            state.push1(v);
        }
        Operator::MemoryGrow { mem } => {
            let delta = state.pop1()?;
            let vmctx = env.vmctx()?;
            let mem = builder.ins().iconst(I32, i64::from(mem));
            let call = env.call_libcall(builder, Libcall::MemoryGrow, &[vmctx, mem, delta]);
            let v = first_result(builder, call)?;
            state.push1(v);
        }
        Operator::MemoryFill { mem } => {
            let (dst, byte, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let mem = builder.ins().iconst(I32, i64::from(mem));
            env.call_libcall(builder, Libcall::MemoryFill, &[vmctx, mem, dst, byte, len]);
        }
        Operator::MemoryCopy { dst_mem, src_mem } => {
            let (dst, src, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let dst_mem = builder.ins().iconst(I32, i64::from(dst_mem));
            let src_mem = builder.ins().iconst(I32, i64::from(src_mem));
            env.call_libcall(
                builder,
                Libcall::MemoryCopy,
                &[vmctx, dst_mem, src_mem, dst, src, len],
            );
        }
        Operator::MemoryInit { data_index, mem } => {
            let (dst, src, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let mem = builder.ins().iconst(I32, i64::from(mem));
            let data = builder.ins().iconst(I32, i64::from(data_index));
            env.call_libcall(
                builder,
                Libcall::MemoryInit,
                &[vmctx, mem, data, dst, src, len],
            );
        }
        Operator::DataDrop { data_index } => {
            let vmctx = env.vmctx()?;
            let data = builder.ins().iconst(I32, i64::from(data_index));
            env.call_libcall(builder, Libcall::DataDrop, &[vmctx, data]);
        }

        // ------------------------------------------------------------------
        // Tables and references
        Operator::TableGet { table } => {
            let index = state.pop1()?;
            let addr = env.table_element_address(builder, table, index)?;
            let flags = env.table_flags()?;
            let v = builder.ins().load(I64, flags, addr, 0);
            state.push1(v);
        }
        Operator::TableSet { table } => {
            let (index, value) = state.pop2()?;
            let addr = env.table_element_address(builder, table, index)?;
            let flags = env.table_flags()?;
            builder.ins().store(flags, value, addr, 0);
        }
        Operator::TableSize { table } => {
            let v = env.table_size(builder, table)?;
            state.push1(v);
        }
        Operator::TableGrow { table } => {
            let (init, delta) = state.pop2()?;
            let vmctx = env.vmctx()?;
            let table = builder.ins().iconst(I32, i64::from(table));
            let call = env.call_libcall(builder, Libcall::TableGrow, &[vmctx, table, init, delta]);
            let v = first_result(builder, call)?;
            state.push1(v);
        }
        Operator::TableFill { table } => {
            let (dst, value, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let table = builder.ins().iconst(I32, i64::from(table));
            env.call_libcall(
                builder,
                Libcall::TableFill,
                &[vmctx, table, dst, value, len],
            );
        }
        Operator::TableCopy {
            dst_table,
            src_table,
        } => {
            let (dst, src, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let dst_table = builder.ins().iconst(I32, i64::from(dst_table));
            let src_table = builder.ins().iconst(I32, i64::from(src_table));
            env.call_libcall(
                builder,
                Libcall::TableCopy,
                &[vmctx, dst_table, src_table, dst, src, len],
            );
        }
        Operator::TableInit { elem_index, table } => {
            let (dst, src, len) = state.pop3()?;
            let vmctx = env.vmctx()?;
            let table = builder.ins().iconst(I32, i64::from(table));
            let elem = builder.ins().iconst(I32, i64::from(elem_index));
            env.call_libcall(
                builder,
                Libcall::TableInit,
                &[vmctx, table, elem, dst, src, len],
            );
        }
        Operator::ElemDrop { elem_index } => {
            let vmctx = env.vmctx()?;
            let elem = builder.ins().iconst(I32, i64::from(elem_index));
            env.call_libcall(builder, Libcall::ElemDrop, &[vmctx, elem]);
        }
        Operator::RefNull { .. } => {
            let v = builder.ins().iconst(I64, 0);
            state.push1(v);
        }
        Operator::RefIsNull => {
            let a = state.pop1()?;
            let c = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let v = builder.ins().uextend(I32, c);
            state.push1(v);
        }
        Operator::RefFunc { function_index } => {
            let v = env.func_ref_address(builder, function_index)?;
            state.push1(v);
        }

        // ------------------------------------------------------------------
        // Constants
        Operator::I32Const { value } => {
            let v = builder.ins().iconst(I32, i64::from(value));
            state.push1(v);
        }
        Operator::I64Const { value } => {
            let v = builder.ins().iconst(I64, value);
            state.push1(v);
        }
        Operator::F32Const { value } => {
            let v = builder.ins().f32const(Ieee32::with_bits(value.bits()));
            state.push1(v);
        }
        Operator::F64Const { value } => {
            let v = builder.ins().f64const(Ieee64::with_bits(value.bits()));
            state.push1(v);
        }

        // ------------------------------------------------------------------
        // Integer comparisons
        Operator::I32Eqz | Operator::I64Eqz => {
            let a = state.pop1()?;
            let c = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let v = builder.ins().uextend(I32, c);
            state.push1(v);
        }
        Operator::I32Eq | Operator::I64Eq => icmp!(IntCC::Equal),
        Operator::I32Ne | Operator::I64Ne => icmp!(IntCC::NotEqual),
        Operator::I32LtS | Operator::I64LtS => icmp!(IntCC::SignedLessThan),
        Operator::I32LtU | Operator::I64LtU => icmp!(IntCC::UnsignedLessThan),
        Operator::I32GtS | Operator::I64GtS => icmp!(IntCC::SignedGreaterThan),
        Operator::I32GtU | Operator::I64GtU => icmp!(IntCC::UnsignedGreaterThan),
        Operator::I32LeS | Operator::I64LeS => icmp!(IntCC::SignedLessThanOrEqual),
        Operator::I32LeU | Operator::I64LeU => icmp!(IntCC::UnsignedLessThanOrEqual),
        Operator::I32GeS | Operator::I64GeS => icmp!(IntCC::SignedGreaterThanOrEqual),
        Operator::I32GeU | Operator::I64GeU => icmp!(IntCC::UnsignedGreaterThanOrEqual),

        // ------------------------------------------------------------------
        // Float comparisons (`ne` is true when either side is NaN)
        Operator::F32Eq | Operator::F64Eq => fcmp!(FloatCC::Equal),
        Operator::F32Ne | Operator::F64Ne => fcmp!(FloatCC::NotEqual),
        Operator::F32Lt | Operator::F64Lt => fcmp!(FloatCC::LessThan),
        Operator::F32Gt | Operator::F64Gt => fcmp!(FloatCC::GreaterThan),
        Operator::F32Le | Operator::F64Le => fcmp!(FloatCC::LessThanOrEqual),
        Operator::F32Ge | Operator::F64Ge => fcmp!(FloatCC::GreaterThanOrEqual),

        // ------------------------------------------------------------------
        // Integer arithmetic
        Operator::I32Clz | Operator::I64Clz => unop!(clz),
        Operator::I32Ctz | Operator::I64Ctz => unop!(ctz),
        Operator::I32Popcnt | Operator::I64Popcnt => unop!(popcnt),
        Operator::I32Add | Operator::I64Add => binop!(iadd),
        Operator::I32Sub | Operator::I64Sub => binop!(isub),
        Operator::I32Mul | Operator::I64Mul => binop!(imul),
        Operator::I32DivS | Operator::I64DivS => binop!(sdiv),
        Operator::I32DivU | Operator::I64DivU => binop!(udiv),
        Operator::I32RemS | Operator::I64RemS => binop!(srem),
        Operator::I32RemU | Operator::I64RemU => binop!(urem),
        Operator::I32And | Operator::I64And => binop!(band),
        Operator::I32Or | Operator::I64Or => binop!(bor),
        Operator::I32Xor | Operator::I64Xor => binop!(bxor),
        Operator::I32Shl | Operator::I64Shl => binop!(ishl),
        Operator::I32ShrS | Operator::I64ShrS => binop!(sshr),
        Operator::I32ShrU | Operator::I64ShrU => binop!(ushr),
        Operator::I32Rotl | Operator::I64Rotl => binop!(rotl),
        Operator::I32Rotr | Operator::I64Rotr => binop!(rotr),

        // ------------------------------------------------------------------
        // Float arithmetic
        Operator::F32Abs | Operator::F64Abs => unop!(fabs),
        Operator::F32Neg | Operator::F64Neg => unop!(fneg),
        Operator::F32Ceil | Operator::F64Ceil => unop!(ceil),
        Operator::F32Floor | Operator::F64Floor => unop!(floor),
        Operator::F32Trunc | Operator::F64Trunc => unop!(trunc),
        Operator::F32Nearest | Operator::F64Nearest => unop!(nearest),
        Operator::F32Sqrt | Operator::F64Sqrt => unop!(sqrt),
        Operator::F32Add | Operator::F64Add => binop!(fadd),
        Operator::F32Sub | Operator::F64Sub => binop!(fsub),
        Operator::F32Mul | Operator::F64Mul => binop!(fmul),
        Operator::F32Div | Operator::F64Div => binop!(fdiv),
        Operator::F32Min | Operator::F64Min => binop!(fmin),
        Operator::F32Max | Operator::F64Max => binop!(fmax),
        Operator::F32Copysign | Operator::F64Copysign => binop!(fcopysign),

        // ------------------------------------------------------------------
        // Conversions
        Operator::I32WrapI64 => convert!(ireduce, I32),
        Operator::I64ExtendI32S => convert!(sextend, I64),
        Operator::I64ExtendI32U => convert!(uextend, I64),
        Operator::I32TruncF32S | Operator::I32TruncF64S => convert!(fcvt_to_sint, I32),
        Operator::I32TruncF32U | Operator::I32TruncF64U => convert!(fcvt_to_uint, I32),
        Operator::I64TruncF32S | Operator::I64TruncF64S => convert!(fcvt_to_sint, I64),
        Operator::I64TruncF32U | Operator::I64TruncF64U => convert!(fcvt_to_uint, I64),
        Operator::I32TruncSatF32S | Operator::I32TruncSatF64S => convert!(fcvt_to_sint_sat, I32),
        Operator::I32TruncSatF32U | Operator::I32TruncSatF64U => convert!(fcvt_to_uint_sat, I32),
        Operator::I64TruncSatF32S | Operator::I64TruncSatF64S => convert!(fcvt_to_sint_sat, I64),
        Operator::I64TruncSatF32U | Operator::I64TruncSatF64U => convert!(fcvt_to_uint_sat, I64),
        Operator::F32ConvertI32S | Operator::F32ConvertI64S => convert!(fcvt_from_sint, F32),
        Operator::F32ConvertI32U | Operator::F32ConvertI64U => convert!(fcvt_from_uint, F32),
        Operator::F64ConvertI32S | Operator::F64ConvertI64S => convert!(fcvt_from_sint, F64),
        Operator::F64ConvertI32U | Operator::F64ConvertI64U => convert!(fcvt_from_uint, F64),
        Operator::F32DemoteF64 => convert!(fdemote, F32),
        Operator::F64PromoteF32 => convert!(fpromote, F64),
        Operator::I32ReinterpretF32 => reinterpret(builder, state, I32)?,
        Operator::I64ReinterpretF64 => reinterpret(builder, state, I64)?,
        Operator::F32ReinterpretI32 => reinterpret(builder, state, F32)?,
        Operator::F64ReinterpretI64 => reinterpret(builder, state, F64)?,

        // ------------------------------------------------------------------
        // Sign extension
        Operator::I32Extend8S => sext_from!(I8, I32),
        Operator::I32Extend16S => sext_from!(I16, I32),
        Operator::I64Extend8S => sext_from!(I8, I64),
        Operator::I64Extend16S => sext_from!(I16, I64),
        Operator::I64Extend32S => sext_from!(I32, I64),

        ref other => {
            return Err(format!(
                "unsupported operator {other:?}: Shoal supports WebAssembly 2.0 without SIMD"
            ))
        }
    }
    Ok(())
}

/// Handles an operator in unreachable code: only nesting matters, until an
/// `else` or `end` makes code reachable again.
pub(crate) fn translate_unreachable_operator(
    op: &Operator,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
) -> TResult<()> {
    debug_assert!(!state.reachable);
    match *op {
        Operator::If { blockty } => {
            // Placeholder frame: nothing branches to it, its head is
            // unreachable, so neither its `else` nor its `end` will be.
            state.push_if(
                Block::reserved_value(),
                ElseData::NoElse {
                    branch_inst: ir::Inst::reserved_value(),
                    placeholder: Block::reserved_value(),
                },
                0,
                0,
                blockty,
            )?;
        }
        Operator::Block { .. } | Operator::Loop { .. } => {
            state.push_block(Block::reserved_value(), 0, 0)?;
        }
        Operator::Else => translate_else(builder, state, env)?,
        Operator::End => {
            let frame = state.control.pop().ok_or("`end` without a block")?;
            frame.truncate_value_stack_to_original_size(&mut state.stack);
            let reachable_anyway = match frame {
                // Nothing branches to a loop's end; its header is complete.
                ControlFrame::Loop { header, .. } => {
                    builder.seal_block(header);
                    false
                }
                // No `else`: the false edge of a reachable head reaches the end.
                ControlFrame::If {
                    head_is_reachable,
                    consequent_ends_reachable: None,
                    ..
                } => head_is_reachable,
                // The `else` arm ended unreachable; the `then` arm decides.
                ControlFrame::If {
                    head_is_reachable,
                    consequent_ends_reachable: Some(then_reachable),
                    ..
                } => head_is_reachable && then_reachable,
                ControlFrame::Block { .. } => false,
            };
            if frame.exit_is_branched_to() || reachable_anyway {
                let next = frame.following_code();
                builder.switch_to_block(next);
                builder.seal_block(next);
                state.pushn(builder.block_params(next));
                state.reachable = true;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `else`, reachable or not: finish the `then` arm and start the `else` arm
/// if the `if` head was reachable.
fn translate_else(
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
) -> TResult<()> {
    let reachable = state.reachable;
    let Some(&ControlFrame::If {
        else_data,
        head_is_reachable,
        num_return_values,
        blocktype,
        destination,
        ..
    }) = state.control.last()
    else {
        return Err("`else` without `if`".to_string());
    };
    if let Some(ControlFrame::If {
        consequent_ends_reachable,
        ..
    }) = state.control.last_mut()
    {
        *consequent_ends_reachable = Some(reachable);
    }
    if !head_is_reachable {
        return Ok(());
    }
    let else_block = match else_data {
        ElseData::NoElse {
            branch_inst,
            placeholder,
        } => {
            let (params, _) = env.block_type(blocktype)?;
            let else_block = block_with_params(builder, &params);
            if reachable {
                // The `then` arm's results (== the params' count here).
                jump(builder, destination, state.peekn(num_return_values)?);
            }
            builder.change_jump_destination(branch_inst, placeholder, else_block);
            builder.seal_block(else_block);
            else_block
        }
        ElseData::WithElse { else_block } => {
            if reachable {
                jump(builder, destination, state.peekn(num_return_values)?);
            }
            else_block
        }
    };
    // Back to the second copy of the params (pushed by `push_if`); they are
    // the values the `else` arm starts with. The arguments of the branch to
    // `else_block` were that same copy, so the else arm can keep using them.
    if let Some(frame) = state.control.last() {
        frame.truncate_value_stack_to_else_params(&mut state.stack);
    }
    builder.switch_to_block(else_block);
    state.reachable = true;
    Ok(())
}

/// How a load reads memory.
#[derive(Clone, Copy)]
enum Load {
    Plain(Type),
    S8(Type),
    U8(Type),
    S16(Type),
    U16(Type),
    S32,
    U32,
}

fn memory_index(memarg: &MemArg) -> TResult<u32> {
    match memarg.target {
        MemArgTarget::Memory(m) => Ok(m),
        MemArgTarget::Array(_) => Err("GC array accesses are not supported".to_string()),
    }
}

fn translate_load(
    memarg: &MemArg,
    kind: Load,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
) -> TResult<()> {
    let size = match kind {
        Load::Plain(ty) => ty.bytes(),
        Load::S8(_) | Load::U8(_) => 1,
        Load::S16(_) | Load::U16(_) => 2,
        Load::S32 | Load::U32 => 4,
    };
    let index = state.pop1()?;
    let (addr, offset) =
        env.memory_address(builder, memory_index(memarg)?, index, memarg.offset, size)?;
    let flags = env.heap_flags()?;
    let ins = builder.ins();
    let v = match kind {
        Load::Plain(ty) => ins.load(ty, flags, addr, offset),
        Load::S8(ty) => ins.sload8(ty, flags, addr, offset),
        Load::U8(ty) => ins.uload8(ty, flags, addr, offset),
        Load::S16(ty) => ins.sload16(ty, flags, addr, offset),
        Load::U16(ty) => ins.uload16(ty, flags, addr, offset),
        Load::S32 => ins.sload32(flags, addr, offset),
        Load::U32 => ins.uload32(flags, addr, offset),
    };
    state.push1(v);
    Ok(())
}

fn translate_store(
    memarg: &MemArg,
    size: u32,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
) -> TResult<()> {
    let (index, value) = state.pop2()?;
    let (addr, offset) =
        env.memory_address(builder, memory_index(memarg)?, index, memarg.offset, size)?;
    let flags = env.heap_flags()?;
    let value_size = builder.func.dfg.value_type(value).bytes();
    let ins = builder.ins();
    match (size, value_size) {
        (1, _) => ins.istore8(flags, value, addr, offset),
        (2, _) => ins.istore16(flags, value, addr, offset),
        (4, 8) => ins.istore32(flags, value, addr, offset),
        _ => ins.store(flags, value, addr, offset),
    };
    Ok(())
}

fn reinterpret(
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    to: Type,
) -> TResult<()> {
    let a = state.pop1()?;
    let v = builder.ins().bitcast(to, MemFlagsData::new(), a);
    state.push1(v);
    Ok(())
}

fn local(locals: &[Variable], index: u32) -> TResult<Variable> {
    locals
        .get(index as usize)
        .copied()
        .ok_or_else(|| format!("local index {index} out of range"))
}

fn first_result(builder: &FunctionBuilder, inst: ir::Inst) -> TResult<Value> {
    builder
        .inst_results(inst)
        .first()
        .copied()
        .ok_or_else(|| "internal error: libcall without a result".to_string())
}

/// A new block with one param per type.
pub(crate) fn block_with_params(builder: &mut FunctionBuilder, types: &[Type]) -> Block {
    let block = builder.create_block();
    for &ty in types {
        builder.append_block_param(block, ty);
    }
    block
}

pub(crate) fn block_args(values: &[Value]) -> Vec<BlockArg> {
    values.iter().map(|&v| BlockArg::Value(v)).collect()
}

/// Ends the current block with an unconditional branch to the frame at
/// `depth`, with the values on top of the stack (left there), checking the
/// epoch on the way if it is a back edge. Returns how many values it took.
fn jump_to_frame(
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    env: &mut FuncEnvironment,
    depth: u32,
) -> TResult<usize> {
    let (arity, dest, back_edge) = branch_destination(state, env, depth)?;
    let args = block_args(state.peekn(arity)?);
    if back_edge {
        env.epoch_check_then_jump(builder, dest, &args)?;
    } else {
        builder.ins().jump(dest, &args);
    }
    Ok(arity)
}

/// Where a branch to the frame at `depth` goes, with how many
/// values, and whether it is a back edge that must check the epoch (a
/// branch to a loop with epoch checks on). Marks the frame as branched to.
fn branch_destination(
    state: &mut TranslationState,
    env: &FuncEnvironment,
    depth: u32,
) -> TResult<(usize, Block, bool)> {
    let frame = state.frame_mut(depth)?;
    frame.set_branched_to_exit();
    Ok((
        frame.br_arity(),
        frame.br_destination(),
        frame.is_loop() && env.epoch_interruption(),
    ))
}

/// `jump dest(values...)`.
pub(crate) fn jump(builder: &mut FunctionBuilder, dest: Block, values: &[Value]) {
    let args = block_args(values);
    builder.ins().jump(dest, &args);
}
