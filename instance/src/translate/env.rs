//! How compiled code reaches the module's things: globals, memories, tables,
//! functions, libcalls and the epoch, all through the VMContext.
//!
//! # What is hoisted
//!
//! Fields of the VMContext that never change while an instance lives (the
//! `runtime_limits` and `epoch_counter` pointers, pointers to imported
//! definitions, imported functions, every memory's `base`) are loaded with
//! `MemFlags::trusted().with_readonly().with_can_move()`: Cranelift treats
//! such loads as pure, so it deduplicates them and moves them out of loops.
//! The base of each memory is loaded once in the entry block.
//!
//! Fields that change (a memory's `current_length` on grow, a table's base
//! and size, mutable globals, the epoch) are loaded where they are used,
//! tagged with alias regions (heap, table, globals, vmctx) so that
//! Cranelift's alias analysis can still remove a reload when no store to
//! the same region (and no call) happened in between. The epoch deadline is
//! kept in a variable and reloaded after every call that can change it
//! (see `epoch_check`).
//!
//! # Memory accesses
//!
//! `Guarded`: `base + uextend(index) + offset` with no check; the memory's
//! reservation covers every u32 index plus u32 offset, so an out-of-bounds
//! access faults in the guard region and the load/store's trap code
//! (`HEAP_OUT_OF_BOUNDS`) is recorded at its site.
//!
//! `Checked`: before the access, `uextend(index) + offset + size >
//! current_length` (64-bit, cannot overflow) traps with `HEAP_OUT_OF_BOUNDS`.
//! The check is skipped for a constant index that is in bounds of the
//! memory's minimum size (memories never shrink), and the length is a
//! constant for memories whose maximum equals their minimum.

use super::{epoch_stub_id, ir_type, trampolines, wasm_signature, TResult};
use crate::config::{MemoryStrategy, WASM_PAGE_SIZE};
use crate::engine::Engine;
use crate::libcall::Libcall;
use crate::module_info::ModuleInfo;
use crate::trap::codes;
use crate::types::GlobalType;
use crate::vmcontext::{
    VMFuncRef, VMFunctionImport, VMMemoryDefinition, VMOffsets, VMRuntimeLimits, VMTableDefinition,
};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{
    self, AliasRegion, AliasRegionData, Block, BlockArg, Endianness, ExtFuncData, ExternalName,
    FuncRef, GlobalValueData, InstBuilder, InstructionData, MemFlagsData, Opcode, SigRef, TrapCode,
    UserExternalName, Value, ValueDef,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, Variable};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

/// Alias regions of one function (see the module docs).
#[derive(Clone, Copy)]
struct Regions {
    /// Linear memory contents.
    heap: AliasRegion,
    /// Table elements.
    table: AliasRegion,
    /// Global values (defined inline or imported).
    globals: AliasRegion,
    /// Mutable VMContext fields written only by the runtime (lengths, sizes,
    /// table bases).
    vmctx: AliasRegion,
}

/// How one memory is reached from the current function.
#[derive(Clone, Copy)]
struct MemoryData {
    /// Address of the `VMMemoryDefinition` is `def_base + def_offset`.
    def_base: Value,
    def_offset: i32,
    /// The hoisted `base` pointer.
    base: Value,
    /// `current_length` when it can never change (maximum == minimum).
    fixed_len: Option<u64>,
    /// The minimum size in bytes: every index below it is in bounds.
    min_bytes: u64,
}

/// Module-wide translation settings plus the per-function caches.
pub(crate) struct FuncEnvironment<'a> {
    pub(crate) info: &'a ModuleInfo,
    pub(crate) offsets: &'a VMOffsets,
    pub(crate) isa: &'a dyn TargetIsa,
    call_conv: CallConv,
    strategy: MemoryStrategy,
    /// The engine's epoch counter (a `&'static AtomicU64`), when epoch
    /// checks are on. Its address is a constant of the engine: the check
    /// at a function's entry loads the epoch from it directly, one load
    /// instead of two through the VMContext (fib's 2.7M calls: checks cost
    /// +4% instead of +9-17%). Loops keep the pointer loaded at entry in a
    /// register (a constant would be rematerialized at every back edge as
    /// a 10-byte `movabs`: sieve's checks went from +15% to +43%).
    epoch_counter: Option<usize>,

    // Per function (reset by `begin_function`).
    vmctx: Option<Value>,
    regions: Option<Regions>,
    memories: Vec<MemoryData>,
    limits_ptr: Option<Value>,
    epoch_ptr: Option<Value>,
    epoch_stub: Option<FuncRef>,
    /// The epoch deadline, cached (see `epoch_check`).
    deadline: Option<Variable>,
    sig_refs: HashMap<u32, SigRef>,
    func_refs: HashMap<u32, FuncRef>,
    libcall_sigs: HashMap<Libcall, SigRef>,
}

/// Where an epoch check is: [`FuncEnvironment::epoch_check`] or
/// [`FuncEnvironment::epoch_check_then_jump`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckSite {
    /// Loads the epoch from the counter's address, a constant: one load,
    /// where the pointer held in a register would cost one more at entry.
    FunctionEntry,
    /// Loads the epoch through the pointer loaded at entry: in a loop a
    /// register beats a 10-byte constant at every iteration.
    LoopBackEdge,
}

const MISSING_VMCTX: &str = "internal error: VMContext used before the function entry was set up";

impl<'a> FuncEnvironment<'a> {
    pub(crate) fn new(info: &'a ModuleInfo, offsets: &'a VMOffsets, engine: &'a Engine) -> Self {
        let (isa, config) = (engine.isa(), engine.config());
        FuncEnvironment {
            info,
            offsets,
            isa,
            call_conv: isa.default_call_conv(),
            strategy: config.memory_strategy,
            epoch_counter: config
                .epoch_interruption
                .then_some(engine.epoch_counter() as *const AtomicU64 as usize),
            vmctx: None,
            regions: None,
            memories: Vec::new(),
            limits_ptr: None,
            epoch_ptr: None,
            epoch_stub: None,
            deadline: None,
            sig_refs: HashMap::new(),
            func_refs: HashMap::new(),
            libcall_sigs: HashMap::new(),
        }
    }

    pub(crate) fn call_conv(&self) -> CallConv {
        self.call_conv
    }

    pub(crate) fn epoch_interruption(&self) -> bool {
        self.epoch_counter.is_some()
    }

    /// Sets up the per-function state: call in the entry block, after its
    /// params were appended, before any other code. Emits the hoisted loads
    /// and sets `func.stack_limit`.
    pub(crate) fn begin_function(&mut self, builder: &mut FunctionBuilder, vmctx: Value) {
        self.vmctx = Some(vmctx);
        self.memories.clear();
        self.sig_refs.clear();
        self.func_refs.clear();
        self.libcall_sigs.clear();
        self.limits_ptr = None;
        self.epoch_ptr = None;
        self.epoch_stub = None;
        self.deadline = None;

        let regions = &mut builder.func.dfg.alias_regions;
        let mut region = |user_id: u32, description: &'static str| {
            regions.insert(AliasRegionData {
                user_id,
                description: description.into(),
            })
        };
        self.regions = Some(Regions {
            heap: region(1, "heap"),
            table: region(2, "table"),
            globals: region(3, "globals"),
            vmctx: region(4, "vmctx"),
        });

        // Stack limit: load(load(vmctx + RUNTIME_LIMITS) + STACK_LIMIT),
        // checked by Cranelift in the prologue.
        let readonly = builder
            .func
            .dfg
            .mem_flags
            .insert_unchecked(MemFlagsData::trusted().with_readonly());
        let gv_vmctx = builder.create_global_value(GlobalValueData::VMContext);
        let gv_limits = builder.create_global_value(GlobalValueData::Load {
            base: gv_vmctx,
            offset: (VMOffsets::RUNTIME_LIMITS as i32).into(),
            global_type: I64,
            flags: readonly,
        });
        let gv_stack_limit = builder.create_global_value(GlobalValueData::Load {
            base: gv_limits,
            offset: (VMRuntimeLimits::STACK_LIMIT as i32).into(),
            global_type: I64,
            flags: readonly,
        });
        builder.func.stack_limit = Some(gv_stack_limit);

        // Hoisted pointers.
        if self.epoch_counter.is_some() {
            self.limits_ptr = Some(load_readonly(builder, vmctx, VMOffsets::RUNTIME_LIMITS));
            self.epoch_ptr = Some(load_readonly(builder, vmctx, VMOffsets::EPOCH_COUNTER));
            self.deadline = Some(builder.declare_var(I64));
            self.reload_deadline(builder);
        }
        for (index, ty) in self.info.memories.iter().enumerate() {
            let index = index as u32;
            let (def_base, def_offset) = if self.info.is_imported_memory(index) {
                let ptr = load_readonly(builder, vmctx, self.offsets.imported_memory(index));
                (ptr, 0)
            } else {
                let defined = index - self.info.num_imported_memories;
                (vmctx, self.offsets.defined_memory(defined) as i32)
            };
            let base = builder.ins().load(
                I64,
                readonly_flags(),
                def_base,
                def_offset + VMMemoryDefinition::BASE as i32,
            );
            let min_bytes = ty.minimum.saturating_mul(WASM_PAGE_SIZE);
            let fixed_len = match ty.maximum {
                Some(max) if max == ty.minimum && !self.info.is_imported_memory(index) => {
                    Some(min_bytes)
                }
                _ => None,
            };
            self.memories.push(MemoryData {
                def_base,
                def_offset,
                base,
                fixed_len,
                min_bytes,
            });
        }
    }

    pub(crate) fn vmctx(&self) -> TResult<Value> {
        self.vmctx.ok_or_else(|| MISSING_VMCTX.to_string())
    }

    fn regions(&self) -> TResult<Regions> {
        self.regions.ok_or_else(|| MISSING_VMCTX.to_string())
    }

    // ---------------------------------------------------------------------
    // Epoch

    /// The epoch check of a function entry: if the engine's epoch reached
    /// the deadline, call `EpochDeadlineReached` (cold), then continue.
    ///
    /// The check is one load (the epoch, which other threads advance), one
    /// compare with the deadline, one branch. The deadline lives in a
    /// variable: loaded at entry and reloaded after every call that can
    /// reach an epoch point, the only places it can change (the runtime sets
    /// it when the instance yields, in the cold call here, or when a host
    /// function called from wasm sets it; nothing may write it
    /// concurrently, it is not atomic).
    pub(crate) fn epoch_check(&mut self, builder: &mut FunctionBuilder) -> TResult<()> {
        let past = self.epoch_reached(builder, CheckSite::FunctionEntry)?;
        let cold = builder.create_block();
        let cont = builder.create_block();
        builder.ins().brif(past, cold, &[], cont, &[]);
        builder.set_cold_block(cold);
        builder.switch_to_block(cold);
        builder.seal_block(cold);
        self.call_epoch_stub(builder)?;
        builder.ins().jump(cont, &[]);
        builder.switch_to_block(cont);
        builder.seal_block(cont);
        Ok(())
    }

    /// An unconditional branch back to a loop header (`dest`, with `args`)
    /// that checks the epoch on its way: the check's branch *is* the back
    /// edge, so the check adds a load and a compare to the loop, not a
    /// branch as well (the `jmp` a header check leaves at the loop's end).
    ///
    /// The call for a reached deadline is placed right after the branch,
    /// not at the end of the function, so that Cranelift emits
    /// `jb header` and falls through to it (a cold block would need
    /// `jae cold; jmp header`); it only runs when the slice ends. Leaves the
    /// builder in that filled block.
    pub(crate) fn epoch_check_then_jump(
        &mut self,
        builder: &mut FunctionBuilder,
        dest: Block,
        args: &[BlockArg],
    ) -> TResult<()> {
        let past = self.epoch_reached(builder, CheckSite::LoopBackEdge)?;
        let reached = builder.create_block();
        builder.ins().brif(past, reached, &[], dest, args);
        builder.switch_to_block(reached);
        builder.seal_block(reached);
        self.call_epoch_stub(builder)?;
        builder.ins().jump(dest, args);
        Ok(())
    }

    /// Whether the epoch reached the deadline (an `i8` truth value).
    fn epoch_reached(&mut self, builder: &mut FunctionBuilder, at: CheckSite) -> TResult<Value> {
        let (Some(loaded_ptr), Some(deadline), Some(counter)) =
            (self.epoch_ptr, self.deadline, self.epoch_counter)
        else {
            return Err("internal error: epoch check without epoch pointers".to_string());
        };
        let epoch_ptr = match at {
            CheckSite::FunctionEntry => builder.ins().iconst(I64, counter as i64),
            CheckSite::LoopBackEdge => loaded_ptr,
        };
        // Not readonly: the epoch advances concurrently.
        let epoch = builder
            .ins()
            .load(I64, MemFlagsData::trusted(), epoch_ptr, 0);
        let deadline = builder.use_var(deadline);
        Ok(builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, epoch, deadline))
    }

    /// The call for a reached deadline, and the deadline's reload after it.
    fn call_epoch_stub(&mut self, builder: &mut FunctionBuilder) -> TResult<()> {
        let vmctx = self.vmctx()?;
        let stub = self.epoch_stub(builder);
        builder.ins().call(stub, &[vmctx]);
        self.reload_deadline(builder);
        Ok(())
    }

    /// Reloads the cached epoch deadline (after a call), if epoch checks
    /// are on.
    fn reload_deadline(&mut self, builder: &mut FunctionBuilder) {
        if let (Some(var), Some(limits)) = (self.deadline, self.limits_ptr) {
            let value = builder.ins().load(
                I64,
                MemFlagsData::trusted(),
                limits,
                VMRuntimeLimits::EPOCH_DEADLINE as i32,
            );
            builder.def_var(var, value);
        }
    }

    /// The module's epoch stub (see [`trampolines::epoch_stub`]), which
    /// calls `EpochDeadlineReached` without clobbering any register.
    fn epoch_stub(&mut self, builder: &mut FunctionBuilder) -> FuncRef {
        if let Some(f) = self.epoch_stub {
            return f;
        }
        let signature = builder.import_signature(trampolines::epoch_stub_signature());
        let name = builder
            .func
            .declare_imported_user_function(UserExternalName::new(0, epoch_stub_id(self.info)));
        let f = builder.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            colocated: true,
            patchable: false,
        });
        self.epoch_stub = Some(f);
        f
    }

    // ---------------------------------------------------------------------
    // Libcalls

    /// Calls a runtime function through its absolute address.
    pub(crate) fn call_libcall(
        &mut self,
        builder: &mut FunctionBuilder,
        libcall: Libcall,
        args: &[Value],
    ) -> ir::Inst {
        let call_conv = self.call_conv;
        let sig = *self
            .libcall_sigs
            .entry(libcall)
            .or_insert_with(|| builder.import_signature(libcall.signature(call_conv)));
        let addr = builder.ins().iconst(I64, libcall.address() as i64);
        let call = builder.ins().call_indirect(sig, addr, args);
        if libcall.may_reach_epoch_point() {
            self.reload_deadline(builder);
        }
        call
    }

    // ---------------------------------------------------------------------
    // Globals

    fn global_location(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
    ) -> TResult<(Value, i32, GlobalType)> {
        let ty = *self
            .info
            .globals
            .get(index as usize)
            .ok_or_else(|| format!("global index {index} out of range"))?;
        let vmctx = self.vmctx()?;
        if self.info.is_imported_global(index) {
            let ptr = load_readonly(builder, vmctx, self.offsets.imported_global(index));
            Ok((ptr, 0, ty))
        } else {
            let defined = index - self.info.num_imported_globals;
            Ok((vmctx, self.offsets.defined_global(defined) as i32, ty))
        }
    }

    fn global_flags(&self, ty: GlobalType) -> TResult<MemFlagsData> {
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.regions()?.globals));
        Ok(if ty.mutable {
            flags
        } else {
            flags.with_readonly().with_can_move()
        })
    }

    pub(crate) fn global_get(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
    ) -> TResult<Value> {
        let (base, offset, ty) = self.global_location(builder, index)?;
        let flags = self.global_flags(ty)?;
        Ok(builder.ins().load(ir_type(ty.content), flags, base, offset))
    }

    pub(crate) fn global_set(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
        value: Value,
    ) -> TResult<()> {
        let (base, offset, ty) = self.global_location(builder, index)?;
        let flags = self.global_flags(ty)?;
        builder.ins().store(flags, value, base, offset);
        Ok(())
    }

    // ---------------------------------------------------------------------
    // Memories

    fn memory(&self, index: u32) -> TResult<MemoryData> {
        self.memories
            .get(index as usize)
            .copied()
            .ok_or_else(|| format!("memory index {index} out of range"))
    }

    /// Flags of a linear-memory load or store.
    pub(crate) fn heap_flags(&self) -> TResult<MemFlagsData> {
        Ok(MemFlagsData::new()
            .with_endianness(Endianness::Little)
            .with_alias_region(Some(self.regions()?.heap)))
    }

    /// `current_length` of memory `index`, in bytes (i64).
    fn memory_length(&mut self, builder: &mut FunctionBuilder, index: u32) -> TResult<Value> {
        let mem = self.memory(index)?;
        if let Some(len) = mem.fixed_len {
            return Ok(builder.ins().iconst(I64, len as i64));
        }
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.regions()?.vmctx));
        Ok(builder.ins().load(
            I64,
            flags,
            mem.def_base,
            mem.def_offset + VMMemoryDefinition::CURRENT_LENGTH as i32,
        ))
    }

    /// The address for an access of `access_size` bytes at `index + offset`
    /// in memory `mem` (bounds-checked per the strategy), as a base value and
    /// an immediate offset for the load or store.
    pub(crate) fn memory_address(
        &mut self,
        builder: &mut FunctionBuilder,
        mem: u32,
        index: Value,
        offset: u64,
        access_size: u32,
    ) -> TResult<(Value, i32)> {
        let memory = self.memory(mem)?;
        if offset > u64::from(u32::MAX) {
            return Err(format!("memory offset {offset} exceeds 32 bits"));
        }
        let index64 = builder.ins().uextend(I64, index);
        if self.strategy == MemoryStrategy::Checked {
            let end = offset + u64::from(access_size);
            let statically_in_bounds = match iconst_value(builder, index) {
                Some(c) => u64::from(c as u32) + end <= memory.min_bytes,
                None => false,
            };
            if !statically_in_bounds {
                let len = self.memory_length(builder, mem)?;
                let access_end = builder.ins().iadd_imm_u(index64, end as i64);
                let oob = builder
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThan, access_end, len);
                builder.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
            }
        }
        let addr = builder.ins().iadd(memory.base, index64);
        match i32::try_from(offset) {
            Ok(imm) => Ok((addr, imm)),
            Err(_) => Ok((builder.ins().iadd_imm_u(addr, offset as i64), 0)),
        }
    }

    /// `memory.size`, in pages (i32).
    pub(crate) fn memory_size(
        &mut self,
        builder: &mut FunctionBuilder,
        mem: u32,
    ) -> TResult<Value> {
        let len = self.memory_length(builder, mem)?;
        let pages = builder.ins().ushr_imm_u(len, 16);
        Ok(builder.ins().ireduce(I32, pages))
    }

    // ---------------------------------------------------------------------
    // Tables

    /// Address of table `index`'s `VMTableDefinition`, as base + offset.
    fn table_definition(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
    ) -> TResult<(Value, i32)> {
        if index as usize >= self.info.tables.len() {
            return Err(format!("table index {index} out of range"));
        }
        let vmctx = self.vmctx()?;
        if self.info.is_imported_table(index) {
            Ok((
                load_readonly(builder, vmctx, self.offsets.imported_table(index)),
                0,
            ))
        } else {
            let defined = index - self.info.num_imported_tables;
            Ok((vmctx, self.offsets.defined_table(defined) as i32))
        }
    }

    /// `table.size` (i32).
    pub(crate) fn table_size(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
    ) -> TResult<Value> {
        if let Some(size) = self.fixed_table_size(index) {
            return Ok(builder.ins().iconst(I32, i64::from(size)));
        }
        let (def, off) = self.table_definition(builder, index)?;
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.regions()?.vmctx));
        Ok(builder.ins().load(
            I32,
            flags,
            def,
            off + VMTableDefinition::CURRENT_ELEMENTS as i32,
        ))
    }

    /// The size of a defined table that can never grow or shrink.
    fn fixed_table_size(&self, index: u32) -> Option<u32> {
        let ty = self.info.tables.get(index as usize)?;
        if self.info.is_imported_table(index) || ty.maximum != Some(ty.minimum) {
            return None;
        }
        Some(ty.minimum)
    }

    /// The address of element `elem` (i32) of table `index`, after checking
    /// it is in bounds (else trap `TABLE_OUT_OF_BOUNDS`).
    pub(crate) fn table_element_address(
        &mut self,
        builder: &mut FunctionBuilder,
        index: u32,
        elem: Value,
    ) -> TResult<Value> {
        let size = self.table_size(builder, index)?;
        let oob = builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, elem, size);
        builder.ins().trapnz(oob, codes::TABLE_OUT_OF_BOUNDS);
        let (def, off) = self.table_definition(builder, index)?;
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.regions()?.vmctx));
        let base = builder
            .ins()
            .load(I64, flags, def, off + VMTableDefinition::BASE as i32);
        let elem64 = builder.ins().uextend(I64, elem);
        let byte_offset = builder.ins().ishl_imm_u(elem64, 3);
        Ok(builder.ins().iadd(base, byte_offset))
    }

    /// Flags of a table element load or store.
    pub(crate) fn table_flags(&self) -> TResult<MemFlagsData> {
        Ok(MemFlagsData::trusted().with_alias_region(Some(self.regions()?.table)))
    }

    // ---------------------------------------------------------------------
    // Functions

    /// The signature of wasm type `type_index`, imported into this function.
    pub(crate) fn signature(
        &mut self,
        builder: &mut FunctionBuilder,
        type_index: u32,
    ) -> TResult<SigRef> {
        if let Some(&sig) = self.sig_refs.get(&type_index) {
            return Ok(sig);
        }
        let ty = self
            .info
            .types
            .get(type_index as usize)
            .ok_or_else(|| format!("type index {type_index} out of range"))?;
        let sig = builder.import_signature(wasm_signature(self.call_conv, ty));
        self.sig_refs.insert(type_index, sig);
        Ok(sig)
    }

    /// `ref.func`: the address of the function's `VMFuncRef` in the VMContext.
    pub(crate) fn func_ref_address(
        &mut self,
        builder: &mut FunctionBuilder,
        func_index: u32,
    ) -> TResult<Value> {
        if func_index as usize >= self.info.functions.len() {
            return Err(format!("function index {func_index} out of range"));
        }
        let vmctx = self.vmctx()?;
        Ok(builder
            .ins()
            .iadd_imm_u(vmctx, i64::from(self.offsets.func_ref(func_index))))
    }

    /// `call`: a direct call for defined functions, through the
    /// `VMFunctionImport` for imported ones. `args` are the wasm arguments.
    pub(crate) fn call(
        &mut self,
        builder: &mut FunctionBuilder,
        func_index: u32,
        args: &[Value],
    ) -> TResult<ir::Inst> {
        let type_index = *self
            .info
            .functions
            .get(func_index as usize)
            .ok_or_else(|| format!("function index {func_index} out of range"))?;
        let vmctx = self.vmctx()?;
        let mut call_args = Vec::with_capacity(args.len() + 2);
        if self.info.is_imported_func(func_index) {
            let sig = self.signature(builder, type_index)?;
            let base = self.offsets.imported_function(func_index);
            let code = load_readonly(builder, vmctx, base + VMFunctionImport::WASM_CALL);
            let callee_vmctx = load_readonly(builder, vmctx, base + VMFunctionImport::VMCTX);
            call_args.push(callee_vmctx);
            call_args.push(vmctx);
            call_args.extend_from_slice(args);
            let call = builder.ins().call_indirect(sig, code, &call_args);
            self.reload_deadline(builder);
            Ok(call)
        } else {
            let defined = func_index - self.info.num_imported_funcs;
            let func_ref = match self.func_refs.get(&defined) {
                Some(&f) => f,
                None => {
                    let signature = self.signature(builder, type_index)?;
                    // Namespace 0, index = the JIT's FuncId: compile.rs
                    // declares the defined functions first, in order.
                    let name = builder
                        .func
                        .declare_imported_user_function(UserExternalName::new(0, defined));
                    let f = builder.import_function(ExtFuncData {
                        name: ExternalName::user(name),
                        signature,
                        colocated: true,
                        patchable: false,
                    });
                    self.func_refs.insert(defined, f);
                    f
                }
            };
            call_args.push(vmctx);
            call_args.push(vmctx);
            call_args.extend_from_slice(args);
            let call = builder.ins().call(func_ref, &call_args);
            self.reload_deadline(builder);
            Ok(call)
        }
    }

    /// `call_indirect`: check the table index, the element for null and its
    /// type, then call through the `VMFuncRef`.
    pub(crate) fn call_indirect(
        &mut self,
        builder: &mut FunctionBuilder,
        table: u32,
        type_index: u32,
        callee: Value,
        args: &[Value],
    ) -> TResult<ir::Inst> {
        let expected = *self
            .info
            .type_ids
            .get(type_index as usize)
            .ok_or_else(|| format!("type index {type_index} has no signature id"))?;
        let sig = self.signature(builder, type_index)?;
        let elem_addr = self.table_element_address(builder, table, callee)?;
        let table_flags = self.table_flags()?;
        let func_ref = builder.ins().load(I64, table_flags, elem_addr, 0);
        builder.ins().trapz(func_ref, codes::INDIRECT_CALL_TO_NULL);
        // A VMFuncRef never changes once the instance is set up; its loads
        // cannot move above the null check, though.
        let funcref_flags = MemFlagsData::trusted().with_readonly();
        let type_id = builder
            .ins()
            .load(I32, funcref_flags, func_ref, VMFuncRef::TYPE_ID as i32);
        let mismatch = builder
            .ins()
            .icmp_imm_u(IntCC::NotEqual, type_id, i64::from(expected));
        builder.ins().trapnz(mismatch, codes::BAD_SIGNATURE);
        let code = builder
            .ins()
            .load(I64, funcref_flags, func_ref, VMFuncRef::WASM_CALL as i32);
        let callee_vmctx =
            builder
                .ins()
                .load(I64, funcref_flags, func_ref, VMFuncRef::VMCTX as i32);
        let vmctx = self.vmctx()?;
        let mut call_args = Vec::with_capacity(args.len() + 2);
        call_args.push(callee_vmctx);
        call_args.push(vmctx);
        call_args.extend_from_slice(args);
        let call = builder.ins().call_indirect(sig, code, &call_args);
        self.reload_deadline(builder);
        Ok(call)
    }

    /// The (params, results) of a block type, as Cranelift types.
    pub(crate) fn block_type(
        &self,
        ty: wasmparser::BlockType,
    ) -> TResult<(Vec<ir::Type>, Vec<ir::Type>)> {
        Ok(match ty {
            wasmparser::BlockType::Empty => (Vec::new(), Vec::new()),
            wasmparser::BlockType::Type(t) => (Vec::new(), vec![super::parser_ir_type(t)?]),
            wasmparser::BlockType::FuncType(index) => {
                let ft = self
                    .info
                    .types
                    .get(index as usize)
                    .ok_or_else(|| format!("block type index {index} out of range"))?;
                (
                    ft.params.iter().map(|&t| ir_type(t)).collect(),
                    ft.results.iter().map(|&t| ir_type(t)).collect(),
                )
            }
        })
    }
}

/// Flags of a load from a VMContext field that never changes.
fn readonly_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Loads an immutable pointer-sized VMContext field.
fn load_readonly(builder: &mut FunctionBuilder, vmctx: Value, offset: u32) -> Value {
    builder
        .ins()
        .load(I64, readonly_flags(), vmctx, offset as i32)
}

/// The constant behind `v`, if `v` is an `iconst`.
pub(crate) fn iconst_value(builder: &FunctionBuilder, v: Value) -> Option<i64> {
    if let ValueDef::Result(inst, _) = builder.func.dfg.value_def(v) {
        if let InstructionData::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } = builder.func.dfg.insts[inst]
        {
            return Some(imm.bits());
        }
    }
    None
}
