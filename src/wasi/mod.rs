//! WASI preview1 (`wasi_snapshot_preview1`) for Shoal instances.
//!
//! ```text
//! let stdout = WritePipe::new();
//! let ctx = WasiCtx::builder()
//!     .args(["prog", "--flag"])
//!     .env("HOME", "/")
//!     .stdout(stdout.clone())
//!     .preopened_dir("/srv/data", "/data")
//!     .build()?;
//! let code = shoal::wasi::run_command(&engine, &module, ctx)?;   // 0, or proc_exit's code
//! println!("{}", stdout.contents_string());
//! ```
//!
//! # Pieces
//!
//! - [`WasiCtx`] holds one guest's arguments, environment, descriptors and
//!   exit code; [`WasiCtxBuilder`] sets it up (stdio inherited, piped in
//!   memory with [`ReadPipe`]/[`WritePipe`], or null; preopened
//!   directories; sockets).
//! - [`add_to_linker`] defines every preview1 function in a
//!   [`Linker`] for any store data `T` that holds a
//!   `WasiCtx`.
//! - [`run_command`] instantiates a command module on the current thread
//!   and runs its `_start`.
//!
//! # The descriptor table
//!
//! Guest fds are indices into a per-instance table (`fd_table.rs`), never
//! host fds: 0–2 are stdio, then the preopened directories, then sockets
//! the host pushed, then what the guest opens, each at the lowest free
//! number. Each entry carries WASI rights, checked by every call
//! (`ENOTCAPABLE`); rights only shrink as fds are derived from others.
//!
//! # The sandbox
//!
//! A guest reaches the host file system only through preopened
//! directories, and every path is resolved by cap-std beneath the
//! directory handle it is relative to (`path.rs` has the details): `..`
//! past the root, absolute paths and symlinks leading out all fail with
//! `ENOTCAPABLE`. Guest pointers and lengths are bounds-checked against
//! its memory (`EFAULT`); no guest input panics the host. What the host
//! copies or keeps for one call is bounded whatever the guest's memory
//! holds: at most `IOV_MAX` (1,024) iovecs and [`MAX_SUBSCRIPTIONS`]
//! (65,536) `poll_oneoff` subscriptions (`EINVAL` beyond), and paths of at
//! most `PATH_MAX` (4,096) bytes (`ENAMETOOLONG`).
//!
//! # Blocking
//!
//! Calls that wait (socket reads and writes, `sock_accept`, stdin,
//! `poll_oneoff`, `sched_yield`) park the calling green thread when there
//! is one, so the scheduler's worker runs other instances meanwhile, and
//! block the OS thread otherwise. Regular-file I/O and writes to the
//! process's stdout/stderr are plain blocking system calls.
//!
//! # Errors
//!
//! Every failure is a WASI [`Errno`]; `proc_exit` and cancellation end the
//! instance with a [`Trap`](shoal_instance::Trap) of kind `Exit(code)` or
//! `Cancelled`.

pub mod abi;
mod args_env;
mod clocks;
mod ctx;
mod errno;
mod fd;
pub mod fd_table;
mod filestat;
pub mod guest_memory;
mod host_io;
mod linker;
mod path;
mod pipe;
mod poll;
mod proc;
mod random;
mod sock;

pub use abi::{rights, MODULE};
pub use ctx::{DirAccess, WasiCtx, WasiCtxBuilder, WasiError};
pub use errno::Errno;
pub use linker::add_to_linker;
pub use pipe::{ReadPipe, WritePipe};
pub use poll::MAX_SUBSCRIPTIONS;
pub use sock::Socket;

use shoal_instance::{Engine, Error, Linker, Module, Store, TrapKind};

/// The exit code of a command run that ended with `result`: 0 when
/// `_start` returned, the code a `proc_exit` trap carries, and the error
/// itself for anything else (a real trap, a link error, ...).
pub fn exit_code<T>(result: Result<T, Error>) -> Result<i32, Error> {
    match result {
        Ok(_) => Ok(0),
        Err(Error::Trap(trap)) => match trap.kind {
            TrapKind::Exit(code) => Ok(code),
            _ => Err(Error::Trap(trap)),
        },
        Err(other) => Err(other),
    }
}

/// Runs the WASI command `module` on the current thread: links it against
/// WASI with `ctx`, instantiates it and calls its `_start` export.
///
/// Returns the guest's exit code (0 when `_start` returns, the
/// `proc_exit` code otherwise), or the error: `Error::Trap` for a trap,
/// `Error::Link` for an import WASI does not provide, `Error::Export` when
/// the module has no `_start` of type `() -> ()`.
///
/// Called on a green thread, waiting calls park only that green thread.
pub fn run_command(engine: &Engine, module: &Module, ctx: WasiCtx) -> Result<i32, Error> {
    let mut linker = Linker::new(engine);
    add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)?;
    let mut store = Store::new(engine, ctx);
    exit_code(run_start(&linker, &mut store, module))
}

/// Instantiates `module` in `store` with `linker` and calls `_start`
/// (for embedders with their own store data; see [`exit_code`]).
pub fn run_start<T>(
    linker: &Linker<T>,
    store: &mut Store<T>,
    module: &Module,
) -> Result<(), Error> {
    let instance = linker.instantiate(&mut *store, module)?;
    let start = instance.get_typed_func::<(), ()>(&*store, "_start")?;
    start.call(&mut *store, ())
}
