//! [`add_to_linker`]: registers every `wasi_snapshot_preview1` function.
//!
//! Each host function:
//!
//! 1. finds the calling instance's `"memory"` export in the context's
//!    [`MemoryCache`] (the [`WasiCtx`] is found in the store's data by
//!    `get`);
//! 2. borrows the memory's bytes and the store's data at once
//!    ([`Memory::data_and_store_mut`]: the bytes are not part of the data)
//!    and wraps the bytes in a bounds-checked [`GuestMemory`] (an empty one
//!    if there is no memory);
//! 3. runs the call and returns the errno as the function's `i32` result,
//!    or ends the instance with a trap (`proc_exit`, cancellation).
//!
//! # The memory cache
//!
//! Looking an export up by name costs a hash of the name on every call.
//! The cache remembers, per calling [`Instance`] (its identity from
//! [`Caller::instance`], which costs nothing), which [`Memory`] it exports
//! as `"memory"`, or that it exports none, so the steady state does no
//! name lookup. It is kept per instance, not per context: one store (one
//! `WasiCtx`) may hold several instances, each with its own memory. An
//! entry never goes stale: an instance's exports are fixed, and an
//! `Instance` handle names one instance of one store for the store's whole
//! life (handles of another store never match). A call the host makes
//! directly, with no calling instance, sees no memory, as before.

use super::abi::MODULE;
use super::errno::{CallError, CallResult};
use super::guest_memory::GuestMemory;
use super::{args_env, clocks, fd, path, poll, proc, random, sock, WasiCtx};
use shoal_instance::{
    Caller, Error, Extern, FuncType, Instance, Linker, Memory, Trap, Val, ValType,
};
use smallvec::SmallVec;

/// The `"memory"` export of each instance that has called WASI with this
/// context (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct MemoryCache {
    /// One entry per calling instance, in the order of their first calls:
    /// the usual one-instance store finds its entry first, inline in the
    /// context (a separate buffer was one more cache miss at the first WASI
    /// call of every request of a connection's instance).
    entries: SmallVec<[(Instance, Option<Memory>); 1]>,
}

impl MemoryCache {
    /// What `instance` exports as `"memory"` (`Some(None)`: nothing), if it
    /// has called before.
    fn lookup(&self, instance: Instance) -> Option<Option<Memory>> {
        self.entries
            .iter()
            .find(|(cached, _)| *cached == instance)
            .map(|&(_, memory)| memory)
    }

    /// Records what `instance` exports as `"memory"`.
    fn remember(&mut self, instance: Instance, memory: Option<Memory>) {
        self.entries.push((instance, memory));
    }
}

/// The memory the calling instance exports as `"memory"`: from the cache,
/// or looked up by name on the instance's first call.
fn caller_memory<T>(caller: &mut Caller<'_, T>, get: fn(&mut T) -> &mut WasiCtx) -> Option<Memory> {
    let instance = caller.instance()?;
    if let Some(memory) = get(caller.data_mut()).memories.lookup(instance) {
        return memory;
    }
    let memory = caller.get_export("memory").and_then(Extern::into_memory);
    get(caller.data_mut()).memories.remember(instance, memory);
    memory
}

/// Runs `f` with the context and memory of the caller.
fn with_ctx<T>(
    caller: &mut Caller<'_, T>,
    get: fn(&mut T) -> &mut WasiCtx,
    f: impl FnOnce(&mut WasiCtx, &mut GuestMemory<'_>) -> CallResult,
) -> Result<i32, Trap> {
    let result = match caller_memory(caller, get) {
        Some(memory) => {
            let (bytes, data) = memory.data_and_store_mut(caller);
            f(get(data), &mut GuestMemory::new(bytes))
        }
        None => f(get(caller.data_mut()), &mut GuestMemory::new(&mut [])),
    };
    match result {
        Ok(()) => Ok(0),
        Err(CallError::Errno(errno)) => Ok(i32::from(errno as u16)),
        Err(CallError::Trap(trap)) => Err(trap),
    }
}

/// Registers `$name` as a host function taking `($arg: $ty, ..)` and
/// returning an errno, implemented by `$imp(ctx, mem, args..)`.
macro_rules! wasi_fns {
    ($linker:ident, $get:ident; $($name:literal => $imp:path, ($($arg:ident: $ty:ty),*);)*) => {$(
        $linker.func_wrap(
            MODULE,
            $name,
            move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> Result<i32, Trap> {
                with_ctx(&mut caller, $get, |ctx, mem| $imp(ctx, mem, $($arg),*))
            },
        )?;
    )*};
}

/// Defines every `wasi_snapshot_preview1` function in `linker`. `get`
/// finds the [`WasiCtx`] in the store's data:
///
/// ```text
/// let mut linker = Linker::new(&engine);
/// shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)?;
/// let mut store = Store::new(&engine, WasiCtx::builder().inherit_stdio().build()?);
/// ```
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<(), Error> {
    wasi_fns! { linker, get;
        "args_get" => args_env::args_get, (argv: u32, buf: u32);
        "args_sizes_get" => args_env::args_sizes_get, (argc: u32, size: u32);
        "environ_get" => args_env::environ_get, (environ: u32, buf: u32);
        "environ_sizes_get" => args_env::environ_sizes_get, (count: u32, size: u32);
        "clock_res_get" => clocks::clock_res_get, (id: u32, out: u32);
        "clock_time_get" => clocks::clock_time_get, (id: u32, precision: u64, out: u32);
        "random_get" => random::random_get, (buf: u32, len: u32);
        "sched_yield" => proc::sched_yield, ();
        "proc_raise" => proc::proc_raise, (signal: u32);
        "poll_oneoff" => poll::poll_oneoff, (subs: u32, events: u32, nsubs: u32, nevents: u32);

        "fd_advise" => fd::fd_advise, (fd: u32, offset: u64, len: u64, advice: u32);
        "fd_allocate" => fd::fd_allocate, (fd: u32, offset: u64, len: u64);
        "fd_close" => fd::fd_close, (fd: u32);
        "fd_datasync" => fd::fd_datasync, (fd: u32);
        "fd_fdstat_get" => fd::fd_fdstat_get, (fd: u32, out: u32);
        "fd_fdstat_set_flags" => fd::fd_fdstat_set_flags, (fd: u32, flags: u32);
        "fd_fdstat_set_rights" => fd::fd_fdstat_set_rights, (fd: u32, base: u64, inheriting: u64);
        "fd_filestat_get" => fd::fd_filestat_get, (fd: u32, out: u32);
        "fd_filestat_set_size" => fd::fd_filestat_set_size, (fd: u32, size: u64);
        "fd_filestat_set_times" => fd::fd_filestat_set_times, (fd: u32, atim: u64, mtim: u64, flags: u32);
        "fd_pread" => fd::fd_pread, (fd: u32, iovs: u32, iovs_len: u32, offset: u64, nread: u32);
        "fd_prestat_get" => fd::fd_prestat_get, (fd: u32, out: u32);
        "fd_prestat_dir_name" => fd::fd_prestat_dir_name, (fd: u32, path: u32, path_len: u32);
        "fd_pwrite" => fd::fd_pwrite, (fd: u32, iovs: u32, iovs_len: u32, offset: u64, nwritten: u32);
        "fd_read" => fd::fd_read, (fd: u32, iovs: u32, iovs_len: u32, nread: u32);
        "fd_readdir" => fd::fd_readdir, (fd: u32, buf: u32, buf_len: u32, cookie: u64, bufused: u32);
        "fd_renumber" => fd::fd_renumber, (from: u32, to: u32);
        "fd_seek" => fd::fd_seek, (fd: u32, offset: i64, whence: u32, newoffset: u32);
        "fd_sync" => fd::fd_sync, (fd: u32);
        "fd_tell" => fd::fd_tell, (fd: u32, out: u32);
        "fd_write" => fd::fd_write, (fd: u32, iovs: u32, iovs_len: u32, nwritten: u32);

        "path_create_directory" => path::path_create_directory, (fd: u32, path: u32, len: u32);
        "path_filestat_get" => path::path_filestat_get, (fd: u32, flags: u32, path: u32, len: u32, out: u32);
        "path_filestat_set_times" => path::path_filestat_set_times,
            (fd: u32, flags: u32, path: u32, len: u32, atim: u64, mtim: u64, fst: u32);
        "path_link" => path::path_link,
            (old_fd: u32, old_flags: u32, old: u32, old_len: u32, new_fd: u32, new: u32, new_len: u32);
        "path_readlink" => path::path_readlink,
            (fd: u32, path: u32, len: u32, buf: u32, buf_len: u32, bufused: u32);
        "path_remove_directory" => path::path_remove_directory, (fd: u32, path: u32, len: u32);
        "path_rename" => path::path_rename,
            (fd: u32, old: u32, old_len: u32, new_fd: u32, new: u32, new_len: u32);
        "path_symlink" => path::path_symlink, (old: u32, old_len: u32, fd: u32, new: u32, new_len: u32);
        "path_unlink_file" => path::path_unlink_file, (fd: u32, path: u32, len: u32);

        "sock_accept" => sock::sock_accept, (fd: u32, flags: u32, fd_out: u32);
        "sock_recv" => sock::sock_recv,
            (fd: u32, iovs: u32, iovs_len: u32, flags: u32, datalen: u32, roflags: u32);
        "sock_send" => sock::sock_send, (fd: u32, iovs: u32, iovs_len: u32, flags: u32, datalen: u32);
        "sock_shutdown" => sock::sock_shutdown, (fd: u32, how: u32);
    }

    // `proc_exit` returns nothing: it always ends the instance.
    linker.func_wrap(
        MODULE,
        "proc_exit",
        move |mut caller: Caller<'_, T>, code: u32| -> Result<(), Trap> {
            with_ctx(&mut caller, get, |ctx, mem| proc::proc_exit(ctx, mem, code)).map(drop)
        },
    )?;

    // `path_open` has nine parameters, one more than typed host functions
    // take: it is defined with a dynamic signature.
    let i32_ = ValType::I32;
    let i64_ = ValType::I64;
    let ty = FuncType::new(
        [i32_, i32_, i32_, i32_, i32_, i64_, i64_, i32_, i32_],
        [i32_],
    );
    linker.func_new(
        MODULE,
        "path_open",
        ty,
        move |mut caller, params, results| {
            let int = |i: usize| match params.get(i) {
                Some(Val::I32(v)) => *v as u32 as u64,
                Some(Val::I64(v)) => *v as u64,
                _ => 0,
            };
            let errno = with_ctx(&mut caller, get, |ctx, mem| {
                path::path_open(
                    ctx,
                    mem,
                    int(0) as u32,
                    int(1) as u32,
                    int(2) as u32,
                    int(3) as u32,
                    int(4) as u32,
                    int(5),
                    int(6),
                    int(7) as u32,
                    int(8) as u32,
                )
            })?;
            if let Some(slot) = results.get_mut(0) {
                *slot = Val::I32(errno);
            }
            Ok(())
        },
    )?;
    Ok(())
}
