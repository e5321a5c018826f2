//! Translates one function body: entry block, locals, the operator loop.

use super::control::TranslationState;
use super::env::FuncEnvironment;
use super::operators::{translate_operator, translate_unreachable_operator};
use super::{parser_ir_type, wasm_signature, TResult};
use cranelift_codegen::ir::{self, types, InstBuilder, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

/// Reusable state for translating many functions on one thread.
#[derive(Default)]
pub(crate) struct FuncTranslator {
    builder_ctx: FunctionBuilderContext,
    state: TranslationState,
    locals: Vec<Variable>,
}

impl FuncTranslator {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Translates defined function `defined_index` into `func` (which is
    /// cleared and given its name and signature).
    pub(crate) fn translate(
        &mut self,
        env: &mut FuncEnvironment,
        defined_index: u32,
        func: &mut ir::Function,
    ) -> TResult<()> {
        let info = env.info;
        let func_index = info.num_imported_funcs + defined_index;
        let ty = info
            .functions
            .get(func_index as usize)
            .and_then(|&t| info.types.get(t as usize))
            .ok_or_else(|| format!("function {func_index} has no type"))?;
        let body_range = info
            .bodies
            .get(defined_index as usize)
            .ok_or_else(|| format!("function {func_index} has no body"))?
            .range
            .clone();
        let body_bytes = info
            .wasm
            .get(body_range.clone())
            .ok_or_else(|| format!("function {func_index}: body range out of bounds"))?;

        func.clear();
        func.name = UserFuncName::user(0, func_index);
        func.signature = wasm_signature(env.call_conv(), ty);

        let mut builder = FunctionBuilder::new(func, &mut self.builder_ctx);
        let entry = builder.create_block();
        builder.append_block_params_for_function_params(entry);
        builder.switch_to_block(entry);
        builder.seal_block(entry);
        builder.ensure_inserted_block();

        let params: Vec<ir::Value> = builder.block_params(entry).to_vec();
        let vmctx = params[0];
        env.begin_function(&mut builder, vmctx);

        // Locals: the params, then the declared locals (zero-initialised).
        self.locals.clear();
        for (i, &t) in ty.params.iter().enumerate() {
            let var = builder.declare_var(super::ir_type(t));
            builder.def_var(var, params[i + 2]);
            self.locals.push(var);
        }
        let body = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(
            body_bytes,
            body_range.start as u64,
        ));
        let mut locals_reader = body.get_locals_reader().map_err(|e| e.to_string())?;
        for _ in 0..locals_reader.get_count() {
            let (count, t) = locals_reader.read().map_err(|e| e.to_string())?;
            let ir_ty = parser_ir_type(t)?;
            if self.locals.len() + count as usize > 1_000_000 {
                return Err("too many locals".to_string());
            }
            let zero = zero_value(&mut builder, ir_ty);
            for _ in 0..count {
                let var = builder.declare_var(ir_ty);
                builder.def_var(var, zero);
                self.locals.push(var);
            }
        }

        if env.epoch_interruption() {
            env.epoch_check(&mut builder)?;
        }

        // The body is an implicit block whose end jumps to the exit block.
        let state = &mut self.state;
        state.clear();
        let exit = builder.create_block();
        for &t in &ty.results {
            builder.append_block_param(exit, super::ir_type(t));
        }
        state.push_block(exit, 0, ty.results.len())?;

        let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
        while !reader.eof() {
            let (op, offset) = reader.read_with_offset().map_err(|e| e.to_string())?;
            builder.set_srcloc(ir::SourceLoc::new(offset as u32));
            if state.reachable {
                translate_operator(&op, &mut builder, state, env, &self.locals)
            } else {
                translate_unreachable_operator(&op, &mut builder, state, env)
            }
            .map_err(|e| format!("{e} (at byte offset {offset:#x})"))?;
        }
        if !state.control.is_empty() {
            return Err("function body ends inside a block".to_string());
        }

        // The final `end` left us in the exit block (if it is reachable).
        if state.reachable && !builder.is_unreachable() {
            let results = state.stack.clone();
            builder.ins().return_(&results);
        }
        builder.finalize(env.isa.frontend_config());
        Ok(())
    }
}

/// The zero (or null) value of a type.
pub(crate) fn zero_value(builder: &mut FunctionBuilder, ty: ir::Type) -> ir::Value {
    match ty {
        types::F32 => builder.ins().f32const(0.0),
        types::F64 => builder.ins().f64const(0.0),
        _ => builder.ins().iconst(ty, 0),
    }
}
