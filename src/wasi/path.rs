//! The `path_*` calls: everything that names a file by a path relative to
//! a directory descriptor.
//!
//! # The sandbox
//!
//! Every path is resolved by cap-std against the directory handle the
//! guest names, never by Shoal: cap-std opens each component with
//! `openat2(RESOLVE_BENEATH)` where the kernel has it, or walks the path
//! itself with `O_NOFOLLOW` at each step otherwise. Either way no path can
//! leave the directory: not with `..` past its root, not with an absolute
//! path, not through a symlink (whatever its target), and every directory
//! handle the guest opens below a preopen is a root of its own. An escape
//! attempt fails with `ENOTCAPABLE` and touches nothing. cap-std also
//! refuses to create a symlink with an absolute target and to read one
//! (`path_readlink`), so the guest cannot plant or learn host paths.
//!
//! Each call first checks that the fd is a directory (`ENOTDIR`), then
//! that it has the call's rights (`ENOTCAPABLE`).

use super::abi::{fdflags, lookupflags, oflags, rights};
use super::errno::{CallResult, Errno};
use super::fd_table::{Descriptor, DirHandle, FdEntry, FdTable};
use super::filestat;
use super::guest_memory::GuestMemory;
use super::host_io::io_result;
use super::WasiCtx;
use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt,
};
use std::path::PathBuf;

/// The directory behind `fd`, checked to have the rights `needed`.
fn dir_with(fds: &FdTable, fd: u32, needed: u64) -> Result<(&FdEntry, &DirHandle), Errno> {
    let entry = fds.get(fd)?;
    let dir = entry.dir()?;
    entry.require(needed)?;
    Ok((entry, dir))
}

/// A guest path (`ENOENT` when empty, as POSIX has it).
fn guest_path(mem: &GuestMemory<'_>, ptr: u32, len: u32) -> Result<PathBuf, Errno> {
    let path = mem.path(ptr, len)?;
    if path.as_os_str().is_empty() {
        return Err(Errno::NoEnt);
    }
    Ok(path)
}

fn follows(flags: u32) -> bool {
    flags & lookupflags::SYMLINK_FOLLOW != 0
}

/// Rights that make a file open for writing on the host.
const WRITE_RIGHTS: u64 = rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE;
/// Rights that make a file open for reading on the host.
const READ_RIGHTS: u64 = rights::FD_READ | rights::FD_READDIR;

/// `path_open(fd, dirflags, path, path_len, oflags, fs_rights_base,
/// fs_rights_inheriting, fdflags, opened_fd)`.
///
/// The new fd gets the rights asked for, within the directory's
/// inheriting rights. Asking to read or write where the directory passes
/// on no such right is `ENOTCAPABLE` (so a read-only preopen refuses an
/// open for writing up front); creating needs `PATH_CREATE_FILE` and
/// truncating `PATH_FILESTAT_SET_SIZE` on the directory.
#[allow(clippy::too_many_arguments)]
pub fn path_open(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    dirflags: u32,
    path_ptr: u32,
    path_len: u32,
    open_flags: u32,
    rights_base: u64,
    rights_inheriting: u64,
    fd_flags: u32,
    fd_out: u32,
) -> CallResult {
    mem.slice_mut(fd_out, 4)?;
    let open_flags = u16::try_from(open_flags).map_err(|_| Errno::Inval)?;
    let fd_flags = u16::try_from(fd_flags).map_err(|_| Errno::Inval)?;
    if open_flags & !oflags::ALL != 0 || fd_flags & !fdflags::ALL != 0 {
        return Err(Errno::Inval.into());
    }
    let path = guest_path(mem, path_ptr, path_len)?;
    let create = open_flags & oflags::CREAT != 0;
    let truncate = open_flags & oflags::TRUNC != 0;
    let want_dir = open_flags & oflags::DIRECTORY != 0;
    let mut needed = rights::PATH_OPEN;
    if create {
        needed |= rights::PATH_CREATE_FILE;
    }
    if truncate {
        needed |= rights::PATH_FILESTAT_SET_SIZE;
    }
    let (entry, dir) = dir_with(&ctx.fds, fd, needed)?;
    let essential = rights_base & (rights::FD_READ | rights::FD_WRITE);
    if essential & !entry.rights_inheriting != 0 {
        return Err(Errno::NotCapable.into());
    }
    let base = rights_base & entry.rights_inheriting;
    let inheriting = rights_inheriting & entry.rights_inheriting;
    let write = base & WRITE_RIGHTS != 0;
    let read = base & READ_RIGHTS != 0 || !write;
    let follow = if follows(dirflags) {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    };

    let desc = if want_dir {
        if create {
            return Err(Errno::Inval.into());
        }
        if write || truncate {
            return Err(Errno::IsDir.into());
        }
        let opened = if follow == FollowSymlinks::Yes {
            dir.dir.open_dir(&path)
        } else {
            dir.dir.open_dir_nofollow(&path)
        };
        Descriptor::Dir(DirHandle {
            dir: io_result(opened)?,
            preopen: None,
            listing: None,
        })
    } else {
        let mut opts = cap_std::fs::OpenOptions::new();
        opts.read(read)
            .write(write || create || truncate)
            .append(fd_flags & fdflags::APPEND != 0)
            .truncate(truncate)
            .follow(follow)
            .maybe_dir(true)
            .sync(fd_flags & fdflags::SYNC != 0)
            .dsync(fd_flags & fdflags::DSYNC != 0)
            .rsync(fd_flags & fdflags::RSYNC != 0)
            .nonblock(fd_flags & fdflags::NONBLOCK != 0);
        if create && open_flags & oflags::EXCL != 0 {
            opts.create_new(true);
        } else if create {
            opts.create(true);
        }
        let file = io_result(dir.dir.open_with(&path, &opts))?;
        let is_dir = io_result(file.metadata())?.is_dir();
        if is_dir {
            Descriptor::Dir(DirHandle {
                dir: cap_std::fs::Dir::from_std_file(file.into_std()),
                preopen: None,
                listing: None,
            })
        } else {
            Descriptor::File(file.into_std())
        }
    };
    let (base, inheriting) = match desc {
        Descriptor::Dir(_) => (base & rights::DIR_ALL, inheriting),
        _ => (base & rights::FILE_ALL, 0),
    };
    let mut new = FdEntry::new(desc, base, inheriting);
    new.flags = fd_flags;
    let new_fd = ctx.fds.insert(new)?;
    mem.write_u32(fd_out, new_fd)?;
    Ok(())
}

/// The guest path at `path_ptr` and the directory of the preopen or
/// directory `fd` it is relative to, which must have `right` (the path is
/// read first: a bad pointer is `EFAULT` whatever the fd).
fn dir_path<'c>(
    ctx: &'c WasiCtx,
    mem: &GuestMemory<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
    right: u64,
) -> Result<(&'c cap_std::fs::Dir, PathBuf), Errno> {
    let path = guest_path(mem, path_ptr, path_len)?;
    let (_, dir) = dir_with(&ctx.fds, fd, right)?;
    Ok((&dir.dir, path))
}

/// `path_create_directory(fd, path, path_len)`.
pub fn path_create_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> CallResult {
    let right = rights::PATH_CREATE_DIRECTORY;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    io_result(dir.create_dir(path))
}

/// `path_remove_directory(fd, path, path_len)`.
pub fn path_remove_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> CallResult {
    let right = rights::PATH_REMOVE_DIRECTORY;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    io_result(dir.remove_dir(path))
}

/// `path_unlink_file(fd, path, path_len)`.
pub fn path_unlink_file(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> CallResult {
    let right = rights::PATH_UNLINK_FILE;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    io_result(dir.remove_file(path))
}

/// `path_filestat_get(fd, flags, path, path_len, buf)`.
pub fn path_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    path_ptr: u32,
    path_len: u32,
    out: u32,
) -> CallResult {
    mem.slice_mut(out, 64)?;
    let right = rights::PATH_FILESTAT_GET;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    let meta = if follows(flags) {
        dir.metadata(path)
    } else {
        dir.symlink_metadata(path)
    };
    let stat = filestat::from_cap(&io_result(meta)?);
    mem.write(out, &stat.encode())?;
    Ok(())
}

/// `path_filestat_set_times(fd, flags, path, path_len, atim, mtim, fst_flags)`.
#[allow(clippy::too_many_arguments)]
pub fn path_filestat_set_times(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    path_ptr: u32,
    path_len: u32,
    atim: u64,
    mtim: u64,
    fst_flags: u32,
) -> CallResult {
    let (atime, mtime) = filestat::decode_times(atim, mtim, fst_flags)?;
    let right = rights::PATH_FILESTAT_SET_TIMES;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    let (atime, mtime) = (filestat::cap_times(atime), filestat::cap_times(mtime));
    io_result(if follows(flags) {
        dir.set_times(path, atime, mtime)
    } else {
        dir.set_symlink_times(path, atime, mtime)
    })
}

/// `path_link(old_fd, old_flags, old_path, old_path_len, new_fd, new_path,
/// new_path_len)`: following a symlink source is not supported (`EINVAL`),
/// as in Wasmtime.
#[allow(clippy::too_many_arguments)]
pub fn path_link(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_fd: u32,
    old_flags: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> CallResult {
    if follows(old_flags) {
        return Err(Errno::Inval.into());
    }
    let old = guest_path(mem, old_ptr, old_len)?;
    let new = guest_path(mem, new_ptr, new_len)?;
    let (_, old_dir) = dir_with(&ctx.fds, old_fd, rights::PATH_LINK_SOURCE)?;
    let (_, new_dir) = dir_with(&ctx.fds, new_fd, rights::PATH_LINK_TARGET)?;
    io_result(old_dir.dir.hard_link(old, &new_dir.dir, new))
}

/// `path_rename(fd, old_path, old_path_len, new_fd, new_path, new_path_len)`.
#[allow(clippy::too_many_arguments)]
pub fn path_rename(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_fd: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> CallResult {
    let old = guest_path(mem, old_ptr, old_len)?;
    let new = guest_path(mem, new_ptr, new_len)?;
    let (_, old_dir) = dir_with(&ctx.fds, old_fd, rights::PATH_RENAME_SOURCE)?;
    let (_, new_dir) = dir_with(&ctx.fds, new_fd, rights::PATH_RENAME_TARGET)?;
    io_result(old_dir.dir.rename(old, &new_dir.dir, new))
}

/// `path_symlink(old_path, old_path_len, fd, new_path, new_path_len)`:
/// creates `new_path` pointing at `old_path`. An absolute target is
/// refused (`ENOTCAPABLE`); a relative one may say anything, since
/// following it is confined like any other path.
pub fn path_symlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    old_ptr: u32,
    old_len: u32,
    fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> CallResult {
    let target = guest_path(mem, old_ptr, old_len)?;
    let link = guest_path(mem, new_ptr, new_len)?;
    let (_, dir) = dir_with(&ctx.fds, fd, rights::PATH_SYMLINK)?;
    io_result(dir.dir.symlink(target, link))
}

/// `path_readlink(fd, path, path_len, buf, buf_len, bufused)`: the target,
/// cut to `buf_len` bytes (no NUL is added). A link to an absolute path is
/// not revealed (`ENOTCAPABLE`).
#[allow(clippy::too_many_arguments)]
pub fn path_readlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
    buf: u32,
    buf_len: u32,
    bufused: u32,
) -> CallResult {
    use std::os::unix::ffi::OsStrExt;
    mem.slice_mut(bufused, 4)?;
    mem.slice_mut(buf, buf_len)?;
    let right = rights::PATH_READLINK;
    let (dir, path) = dir_path(ctx, mem, fd, path_ptr, path_len, right)?;
    let target = io_result(dir.read_link(path))?;
    let bytes = target.as_os_str().as_bytes();
    let n = bytes.len().min(buf_len as usize);
    mem.write(buf, &bytes[..n])?;
    mem.write_u32(bufused, n as u32)?;
    Ok(())
}
