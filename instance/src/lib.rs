//! `shoal-instance`: WebAssembly bytes → compiled [`Module`] → [`Instance`].
//!
//! ```text
//! let engine = Engine::new(Config::default())?;
//! let module = Module::new(&engine, wasm_or_wat_bytes)?;      // validate + compile once
//! let mut store = Store::new(&engine, my_state);               // owns instances and their memory
//! let mut linker = Linker::new(&engine);
//! linker.func_wrap("env", "add", |a: i32, b: i32| a + b)?;     // typed host function
//! let instance = linker.instantiate(&mut store, &module)?;
//! let run = instance.get_typed_func::<(i32,), i32>(&store, "run")?;
//! let answer = run.call(&mut store, (41,))?;                   // Err(Error::Trap(..)) on a trap
//! ```
//!
//! # How the pieces fit
//!
//! - [`parse`] validates the bytes with wasmparser and produces a
//!   [`ModuleInfo`]; [`vmcontext::VMOffsets`] lays out each instance's VMContext
//!   from it.
//! - `translate` turns each function body into Cranelift IR, one operator at a
//!   time, reading VMContext fields at the offsets `VMOffsets` gives, and
//!   calling [`libcall`]s for the operators it does not inline. `compile`
//!   compiles them (in parallel) and places the code with cranelift-jit,
//!   along with the trampolines between the host and wasm.
//! - A [`Store`] owns instances, memories, tables, globals and host functions;
//!   they live until the store is dropped, which makes cross-instance
//!   references (imports, shared tables) safe without reference cycles.
//! - Instances take their VMContext, memories and tables from the engine's
//!   [`pool`]s (per-thread caches in front of engine-wide free lists, slabs of
//!   `Checked` memories, pooled `Guarded` reservations), and give them back
//!   reset when their store is dropped: steady-state instantiation makes no
//!   `mmap`, `munmap` or `mprotect`.
//! - Wasm runs on the calling thread's stack. Every entry from the host goes
//!   through `trap_handling::catch_traps`, which records a catch point; a
//!   trap (a signal in compiled code, or a libcall that fails) unwinds back to
//!   it and becomes an [`Error::Trap`].
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod engine;
pub mod error;
pub mod libcall;
pub mod module_info;
pub mod parse;
pub mod trap;
pub mod types;
pub mod vmcontext;

pub use config::{Config, MemoryStrategy, PoolingConfig, WASM_PAGE_SIZE};
pub use engine::Engine;
pub use error::{Error, Result};
pub use module_info::ModuleInfo;
pub use trap::{FrameInfo, Trap, TrapKind};
pub use types::{ExternRef, FuncType, GlobalType, MemoryType, TableType, Val, ValType};

// Compilation (translate: wasm -> Cranelift IR; compile: IR -> placed machine code).
pub(crate) mod code_layout;
pub(crate) mod compile;
pub mod module;
pub(crate) mod translate;

// Traps: catching them, signals, code lookup, backtraces.
pub(crate) mod backtrace;
pub(crate) mod code_registry;
pub(crate) mod signals;
pub mod trap_handling;

// Runtime objects.
pub(crate) mod builtins;
pub mod externals;
pub mod func;
pub mod instance;
pub mod linker;
pub mod memory;
pub(crate) mod memory_image;
pub mod pool;
pub mod store;
pub(crate) mod store_blocks;
pub mod table;
pub mod typed_func;

pub use externals::{Extern, ExternType, Global, Memory, Table};
pub use func::{Caller, Func, IntoFunc, WasmRet};
pub use instance::Instance;
pub use linker::{InstancePre, Linker};
pub use module::Module;
pub use pool::OsCalls;
pub use store::{AsContext, AsContextMut, Store, StoreLimits, UpdateDeadline};
pub use typed_func::{TypedFunc, WasmParams, WasmResults, WasmTy};
