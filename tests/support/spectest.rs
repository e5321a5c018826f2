//! The `spectest` host module, exactly as the reference interpreter defines
//! it (`interpreter/host/spectest.ml`): print functions that do nothing,
//! four immutable globals holding 666 / 666.6, a funcref table of 10..20
//! elements and a memory of 1..2 pages.

use shoal_instance::{
    Error, Extern, Func, FuncType, Global, GlobalType, Linker, Memory, MemoryType, Store, Table,
    TableType, Val, ValType,
};

/// Defines `spectest` in `linker`, its items allocated in `store`.
pub fn define(linker: &mut Linker<()>, store: &mut Store<()>) -> Result<(), Error> {
    use ValType::{F32, F64, I32, I64};

    let prints: [(&str, &[ValType]); 7] = [
        ("print", &[]),
        ("print_i32", &[I32]),
        ("print_i64", &[I64]),
        ("print_f32", &[F32]),
        ("print_f64", &[F64]),
        ("print_i32_f32", &[I32, F32]),
        ("print_f64_f64", &[F64, F64]),
    ];
    for (name, params) in prints {
        let ty = FuncType::new(params.iter().copied(), []);
        let func = Func::new(store, ty, |_caller, _params, _results| Ok(()));
        linker.define("spectest", name, Extern::Func(func))?;
    }

    let globals = [
        ("global_i32", I32, Val::I32(666)),
        ("global_i64", I64, Val::I64(666)),
        ("global_f32", F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, content, value) in globals {
        let global = Global::new(
            store,
            GlobalType {
                content,
                mutable: false,
            },
            value,
        )?;
        linker.define("spectest", name, Extern::Global(global))?;
    }

    let table_ty = TableType {
        element: ValType::FuncRef,
        minimum: 10,
        maximum: Some(20),
    };
    let table = Table::new(store, table_ty, Val::FuncRef(None))?;
    linker.define("spectest", "table", Extern::Table(table))?;

    let memory = Memory::new(
        store,
        MemoryType {
            minimum: 1,
            maximum: Some(2),
        },
    )?;
    linker.define("spectest", "memory", Extern::Memory(memory))?;
    Ok(())
}
