//! The `fd_*` calls: reading, writing, seeking, syncing and inspecting
//! descriptors of every kind, listing directories, and the preopen
//! queries.
//!
//! Reads and writes go through [`read_into_iovecs`] /
//! [`write_from_iovecs`]. A regular file is read and written through every
//! buffer in turn (it never blocks); a stream (standard input, a pipe, a
//! socket) is read at most once per call, into its first non-empty buffer,
//! so that a call returns as soon as some data is there instead of waiting
//! to fill every buffer.

use super::abi::{
    self, advice, encode_dirent, fdflags, filetype, rights, whence, FdStat, FileStat,
};
use super::errno::{CallError, CallResult, Errno};
use super::fd_table::{Descriptor, DirHandle, DirRecord, FdEntry, Input, Output};
use super::filestat;
use super::guest_memory::{GuestMemory, IoVec, IoVecs};
use super::host_io::{self, io_result, Interest};
use super::WasiCtx;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// Reads into the guest buffers `iovs` with `read`, which returns how many
/// bytes it put in the buffer it was given. Stops at the first short read;
/// with `once`, after the first non-empty buffer. An error after some bytes
/// were read ends the call with those bytes (POSIX semantics); a trap
/// always propagates.
pub fn read_into_iovecs(
    mem: &mut GuestMemory<'_>,
    iovs: &[IoVec],
    once: bool,
    mut read: impl FnMut(&mut [u8]) -> CallResult<usize>,
) -> CallResult<u32> {
    transfer_iovecs(iovs, once, |ptr, len| Ok(read(mem.slice_mut(ptr, len)?)))
}

/// Writes the guest buffers `iovs` with `write`, which returns how many
/// bytes of its buffer it took; stops at the first short write. Errors are
/// handled as in [`read_into_iovecs`].
pub fn write_from_iovecs(
    mem: &GuestMemory<'_>,
    iovs: &[IoVec],
    mut write: impl FnMut(&[u8]) -> CallResult<usize>,
) -> CallResult<u32> {
    transfer_iovecs(iovs, false, |ptr, len| Ok(write(mem.slice(ptr, len)?)))
}

/// The loop of [`read_into_iovecs`] and [`write_from_iovecs`]:
/// `transfer(ptr, len)` moves up to `len` bytes of the guest buffer at
/// `ptr`, and returns `Err` if that buffer is outside guest memory (always
/// an error) or else how the transfer went.
fn transfer_iovecs(
    iovs: &[IoVec],
    once: bool,
    mut transfer: impl FnMut(u32, u32) -> Result<CallResult<usize>, Errno>,
) -> CallResult<u32> {
    let mut total: u32 = 0;
    for iov in iovs {
        if iov.len == 0 {
            continue;
        }
        // The total is reported as a u32: do not move past what it can say.
        let len = iov.len.min(u32::MAX - total);
        if len == 0 {
            break;
        }
        let n = match transfer(iov.ptr, len)? {
            Ok(n) => n.min(len as usize) as u32,
            Err(CallError::Errno(_)) if total > 0 => break,
            Err(e) => return Err(e),
        };
        total += n;
        if once || n < len {
            break;
        }
    }
    Ok(total)
}

/// The guest buffers `iovs_ptr`/`iovs_len` and the entry of `fd`, which
/// must have `rights`, for a call that reports a byte count at `out`
/// (checked to be writable first).
fn io_call<'c>(
    ctx: &'c mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    out: u32,
    rights: u64,
) -> CallResult<(IoVecs, &'c mut FdEntry)> {
    let iovs = mem.iovecs(iovs_ptr, iovs_len)?;
    mem.slice_mut(out, 4)?;
    let entry = ctx.fds.get_with(fd, rights)?;
    Ok((iovs, entry))
}

/// One read from the process's standard input: waits (parking the green
/// thread) until it is readable, or `EAGAIN` in non-blocking mode.
fn read_stdin(buf: &mut [u8], nonblocking: bool) -> CallResult<usize> {
    if nonblocking || shoal_scheduler::is_green_thread() {
        let mut fds = [host_io::pollfd(0, Interest::Read)];
        if host_io::poll_fds(&mut fds, Some(Duration::ZERO))? == 0 {
            if nonblocking {
                return Err(Errno::Again.into());
            }
            host_io::wait_fd(0, Interest::Read)?;
        }
    }
    io_result(host_io::read_fd(0, buf))
}

/// `fd_read(fd, iovs, iovs_len, nread)`.
pub fn fd_read(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    nread: u32,
) -> CallResult {
    let (iovs, entry) = io_call(ctx, mem, fd, iovs_ptr, iovs_len, nread, rights::FD_READ)?;
    let nonblocking = entry.flags & fdflags::NONBLOCK != 0;
    let n = match &mut entry.desc {
        Descriptor::File(file) => {
            read_into_iovecs(mem, &iovs, false, |buf| io_result((&*file).read(buf)))?
        }
        Descriptor::Input(Input::Inherit) => {
            read_into_iovecs(mem, &iovs, true, |buf| read_stdin(buf, nonblocking))?
        }
        Descriptor::Input(Input::Pipe(pipe)) => {
            read_into_iovecs(mem, &iovs, true, |buf| io_result((&*pipe).read(buf)))?
        }
        Descriptor::Input(Input::Null) => 0,
        Descriptor::TcpStream(stream) => {
            let count_at = mem.hint_addr(nread);
            read_into_iovecs(mem, &iovs, true, |buf| {
                stream.read(buf, nonblocking, count_at)
            })?
        }
        Descriptor::Dir(_) => return Err(Errno::IsDir.into()),
        Descriptor::Output(_) => return Err(Errno::Badf.into()),
        Descriptor::TcpListener(_) => return Err(Errno::NotConn.into()),
    };
    mem.write_u32(nread, n)?;
    Ok(())
}

/// `fd_write(fd, iovs, iovs_len, nwritten)`.
pub fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    nwritten: u32,
) -> CallResult {
    let (iovs, entry) = io_call(ctx, mem, fd, iovs_ptr, iovs_len, nwritten, rights::FD_WRITE)?;
    let nonblocking = entry.flags & fdflags::NONBLOCK != 0;
    let n = match &mut entry.desc {
        Descriptor::File(file) => {
            write_from_iovecs(mem, &iovs, |buf| io_result((&*file).write(buf)))?
        }
        Descriptor::Output(Output::Stdout) => {
            write_from_iovecs(mem, &iovs, |buf| io_result(host_io::write_fd(1, buf)))?
        }
        Descriptor::Output(Output::Stderr) => {
            write_from_iovecs(mem, &iovs, |buf| io_result(host_io::write_fd(2, buf)))?
        }
        Descriptor::Output(Output::Pipe(pipe)) => {
            write_from_iovecs(mem, &iovs, |buf| io_result((&*pipe).write(buf)))?
        }
        Descriptor::Output(Output::Null) => write_from_iovecs(mem, &iovs, |buf| Ok(buf.len()))?,
        Descriptor::TcpStream(stream) => {
            write_from_iovecs(mem, &iovs, |buf| stream.write(buf, nonblocking))?
        }
        Descriptor::Dir(_) => return Err(Errno::IsDir.into()),
        Descriptor::Input(_) => return Err(Errno::Badf.into()),
        Descriptor::TcpListener(_) => return Err(Errno::NotConn.into()),
    };
    mem.write_u32(nwritten, n)?;
    Ok(())
}

/// The regular file behind `entry`: `ESPIPE` for streams, `EISDIR` for a
/// directory.
fn file_of(entry: &FdEntry) -> Result<&std::fs::File, Errno> {
    match &entry.desc {
        Descriptor::File(f) => Ok(f),
        Descriptor::Dir(_) => Err(Errno::IsDir),
        _ => Err(Errno::Spipe),
    }
}

/// `fd_pread(fd, iovs, iovs_len, offset, nread)`.
pub fn fd_pread(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    offset: u64,
    nread: u32,
) -> CallResult {
    let (iovs, entry) = io_call(
        ctx,
        mem,
        fd,
        iovs_ptr,
        iovs_len,
        nread,
        rights::FD_READ | rights::FD_SEEK,
    )?;
    let file = file_of(entry)?;
    let mut at = offset;
    let n = read_into_iovecs(mem, &iovs, false, |buf| {
        let n = io_result(file.read_at(buf, at))?;
        at = at.saturating_add(n as u64);
        Ok(n)
    })?;
    mem.write_u32(nread, n)?;
    Ok(())
}

/// `fd_pwrite(fd, iovs, iovs_len, offset, nwritten)`.
pub fn fd_pwrite(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    offset: u64,
    nwritten: u32,
) -> CallResult {
    let (iovs, entry) = io_call(
        ctx,
        mem,
        fd,
        iovs_ptr,
        iovs_len,
        nwritten,
        rights::FD_WRITE | rights::FD_SEEK,
    )?;
    let file = file_of(entry)?;
    let mut at = offset;
    let n = write_from_iovecs(mem, &iovs, |buf| {
        let n = io_result(file.write_at(buf, at))?;
        at = at.saturating_add(n as u64);
        Ok(n)
    })?;
    mem.write_u32(nwritten, n)?;
    Ok(())
}

/// `fd_seek(fd, offset, whence, newoffset)`.
pub fn fd_seek(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    offset: i64,
    whence: u32,
    newoffset: u32,
) -> CallResult {
    mem.slice_mut(newoffset, 8)?;
    let pos = match u8::try_from(whence) {
        Ok(whence::SET) => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::Inval)?),
        Ok(whence::CUR) => SeekFrom::Current(offset),
        Ok(whence::END) => SeekFrom::End(offset),
        _ => return Err(Errno::Inval.into()),
    };
    // Asking for the position only needs the right to tell it.
    let needed = if pos == SeekFrom::Current(0) {
        rights::FD_TELL
    } else {
        rights::FD_SEEK
    };
    let entry = ctx.fds.get_with(fd, needed)?;
    let mut file = file_of(entry)?;
    let new = io_result(file.seek(pos))?;
    mem.write_u64(newoffset, new)?;
    Ok(())
}

/// `fd_tell(fd, offset)`.
pub fn fd_tell(ctx: &mut WasiCtx, mem: &mut GuestMemory<'_>, fd: u32, offset: u32) -> CallResult {
    mem.slice_mut(offset, 8)?;
    let entry = ctx.fds.get_with(fd, rights::FD_TELL)?;
    let mut file = file_of(entry)?;
    let pos = io_result(file.stream_position())?;
    mem.write_u64(offset, pos)?;
    Ok(())
}

/// A std `File` for a directory handle, for the fd-based calls cap-std
/// does not offer on a `Dir` (`fsync`, `futimens`). cap-std may hold
/// directories as `O_PATH` descriptors, which refuse those: the directory
/// is reopened (as `.`, beneath itself) for reading.
fn dir_as_file(dir: &DirHandle) -> CallResult<std::fs::File> {
    use cap_fs_ext::OpenOptionsMaybeDirExt;
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.read(true).maybe_dir(true);
    Ok(io_result(dir.dir.open_with(".", &opts))?.into_std())
}

fn sync(ctx: &mut WasiCtx, fd: u32, right: u64, data_only: bool) -> CallResult {
    let entry = ctx.fds.get_with(fd, right)?;
    let run = |file: &std::fs::File| {
        io_result(if data_only {
            file.sync_data()
        } else {
            file.sync_all()
        })
    };
    match &entry.desc {
        Descriptor::File(file) => run(file),
        Descriptor::Dir(dir) => run(&dir_as_file(dir)?),
        _ => Err(Errno::Inval.into()),
    }
}

/// `fd_sync(fd)`.
pub fn fd_sync(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> CallResult {
    sync(ctx, fd, rights::FD_SYNC, false)
}

/// `fd_datasync(fd)`.
pub fn fd_datasync(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> CallResult {
    sync(ctx, fd, rights::FD_DATASYNC, true)
}

/// `fd_close(fd)`.
pub fn fd_close(ctx: &mut WasiCtx, _mem: &mut GuestMemory<'_>, fd: u32) -> CallResult {
    ctx.fds.remove(fd)?;
    Ok(())
}

/// `fd_renumber(from, to)`.
pub fn fd_renumber(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    from: u32,
    to: u32,
) -> CallResult {
    ctx.fds.renumber(from, to)?;
    Ok(())
}

/// `fd_fdstat_get(fd, stat)`.
pub fn fd_fdstat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
) -> CallResult {
    mem.slice_mut(out, 24)?;
    let entry = ctx.fds.get(fd)?;
    let stat = FdStat {
        filetype: entry.desc.filetype(),
        flags: entry.flags,
        rights_base: entry.rights_base,
        rights_inheriting: entry.rights_inheriting,
    };
    mem.write(out, &stat.encode())?;
    Ok(())
}

/// `fd_fdstat_set_flags(fd, flags)`: `APPEND` on files and `NONBLOCK`
/// everywhere can change (`NONBLOCK` is a property of the guest's entry:
/// the calls that honour it check it); the sync flags only at `path_open`
/// (`ENOTSUP`).
pub fn fd_fdstat_set_flags(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
) -> CallResult {
    let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
    if flags & !fdflags::ALL != 0 {
        return Err(Errno::Inval.into());
    }
    let entry = ctx.fds.get_with(fd, rights::FD_FDSTAT_SET_FLAGS)?;
    let sync_flags = fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC;
    if (flags ^ entry.flags) & sync_flags != 0 {
        return Err(Errno::NotSup.into());
    }
    let append_changes = (flags ^ entry.flags) & fdflags::APPEND != 0;
    match &entry.desc {
        Descriptor::File(file) if append_changes => {
            set_append(file.as_raw_fd(), flags & fdflags::APPEND != 0)?
        }
        _ if append_changes => return Err(Errno::Inval.into()),
        _ => {}
    }
    entry.flags = flags;
    Ok(())
}

/// Sets or clears `O_APPEND` on an open host file.
fn set_append(fd: i32, append: bool) -> CallResult {
    // SAFETY: F_GETFL/F_SETFL only read and set the status flags of `fd`,
    // an open file owned by the fd table.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let new = if append {
        flags | libc::O_APPEND
    } else {
        flags & !libc::O_APPEND
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// `fd_fdstat_set_rights(fd, base, inheriting)`: rights can only shrink.
pub fn fd_fdstat_set_rights(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    base: u64,
    inheriting: u64,
) -> CallResult {
    let entry = ctx.fds.get_mut(fd)?;
    if base & !entry.rights_base != 0 || inheriting & !entry.rights_inheriting != 0 {
        return Err(Errno::NotCapable.into());
    }
    entry.rights_base = base;
    entry.rights_inheriting = inheriting;
    Ok(())
}

/// The `filestat` of the process's standard stream `fd`.
fn host_stdio_stat(fd: i32) -> CallResult<FileStat> {
    use std::os::fd::AsFd;
    let owned = match fd {
        0 => std::io::stdin().as_fd().try_clone_to_owned(),
        1 => std::io::stdout().as_fd().try_clone_to_owned(),
        _ => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    let meta = io_result(owned.map(std::fs::File::from).and_then(|f| f.metadata()))?;
    Ok(filestat::from_std(&meta))
}

/// `fd_filestat_get(fd, buf)`.
pub fn fd_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
) -> CallResult {
    mem.slice_mut(out, 64)?;
    let entry = ctx.fds.get_with(fd, rights::FD_FILESTAT_GET)?;
    let stat = match &entry.desc {
        Descriptor::File(file) => filestat::from_std(&io_result(file.metadata())?),
        Descriptor::Dir(dir) => filestat::from_cap(&io_result(dir.dir.dir_metadata())?),
        Descriptor::Input(Input::Inherit) => host_stdio_stat(0)?,
        Descriptor::Output(Output::Stdout) => host_stdio_stat(1)?,
        Descriptor::Output(Output::Stderr) => host_stdio_stat(2)?,
        other => FileStat {
            filetype: other.filetype(),
            nlink: 1,
            ..FileStat::default()
        },
    };
    mem.write(out, &stat.encode())?;
    Ok(())
}

/// `fd_filestat_set_size(fd, size)`.
pub fn fd_filestat_set_size(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    size: u64,
) -> CallResult {
    let entry = ctx.fds.get_with(fd, rights::FD_FILESTAT_SET_SIZE)?;
    if size > i64::MAX as u64 {
        return Err(Errno::Fbig.into());
    }
    io_result(file_of(entry).map_err(|_| Errno::Inval)?.set_len(size))
}

/// `fd_filestat_set_times(fd, atim, mtim, fst_flags)`.
pub fn fd_filestat_set_times(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    atim: u64,
    mtim: u64,
    flags: u32,
) -> CallResult {
    let (atime, mtime) = filestat::decode_times(atim, mtim, flags)?;
    let entry = ctx.fds.get_with(fd, rights::FD_FILESTAT_SET_TIMES)?;
    let times = filestat::std_times(atime, mtime);
    match &entry.desc {
        Descriptor::File(file) => io_result(file.set_times(times)),
        Descriptor::Dir(dir) => io_result(dir_as_file(dir)?.set_times(times)),
        _ => Err(Errno::Inval.into()),
    }
}

/// `fd_advise(fd, offset, len, advice)`: passed to `posix_fadvise`.
pub fn fd_advise(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    offset: u64,
    len: u64,
    advice: u32,
) -> CallResult {
    let advice = match u8::try_from(advice) {
        Ok(advice::NORMAL) => libc::POSIX_FADV_NORMAL,
        Ok(advice::SEQUENTIAL) => libc::POSIX_FADV_SEQUENTIAL,
        Ok(advice::RANDOM) => libc::POSIX_FADV_RANDOM,
        Ok(advice::WILLNEED) => libc::POSIX_FADV_WILLNEED,
        Ok(advice::DONTNEED) => libc::POSIX_FADV_DONTNEED,
        Ok(advice::NOREUSE) => libc::POSIX_FADV_NOREUSE,
        _ => return Err(Errno::Inval.into()),
    };
    let offset = i64::try_from(offset).map_err(|_| Errno::Inval)?;
    let len = i64::try_from(len).map_err(|_| Errno::Inval)?;
    let entry = ctx.fds.get_with(fd, rights::FD_ADVISE)?;
    let file = file_of(entry)?;
    // SAFETY: posix_fadvise only takes a hint about an open file the table
    // owns; it touches no memory of ours.
    let ret = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, advice) };
    if ret != 0 {
        return Err(Errno::from_host_errno(ret).into());
    }
    Ok(())
}

/// `fd_allocate(fd, offset, len)`: `posix_fallocate` (`ENOTSUP` where the
/// host file system cannot).
pub fn fd_allocate(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    offset: u64,
    len: u64,
) -> CallResult {
    let offset = i64::try_from(offset).map_err(|_| Errno::Inval)?;
    let len = i64::try_from(len).map_err(|_| Errno::Inval)?;
    if offset.checked_add(len).is_none() {
        return Err(Errno::Fbig.into());
    }
    let entry = ctx.fds.get_with(fd, rights::FD_ALLOCATE)?;
    let file = file_of(entry)?;
    // SAFETY: posix_fallocate works on an open file the table owns and
    // touches no memory of ours.
    let ret = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    if ret != 0 {
        return Err(Errno::from_host_errno(ret).into());
    }
    Ok(())
}

/// The guest name of preopened directory `fd`: `EBADF` for anything else.
fn preopen_name(ctx: &WasiCtx, fd: u32) -> Result<&str, Errno> {
    match &ctx.fds.get(fd)?.desc {
        Descriptor::Dir(DirHandle {
            preopen: Some(name),
            ..
        }) => Ok(name),
        _ => Err(Errno::Badf),
    }
}

/// `fd_prestat_get(fd, buf)`: `EBADF` for anything but a preopened
/// directory (wasi-libc stops looking for preopens at the first).
pub fn fd_prestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    out: u32,
) -> CallResult {
    mem.slice_mut(out, 8)?;
    let name = preopen_name(ctx, fd)?;
    let len = u32::try_from(name.len()).map_err(|_| Errno::NameTooLong)?;
    mem.write_u8(out, abi::PREOPENTYPE_DIR)?;
    mem.write(out + 1, &[0, 0, 0])?;
    mem.write_u32(out + 4, len)?;
    Ok(())
}

/// `fd_prestat_dir_name(fd, path, path_len)`.
pub fn fd_prestat_dir_name(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    path: u32,
    path_len: u32,
) -> CallResult {
    let name = preopen_name(ctx, fd)?;
    if name.len() > path_len as usize {
        return Err(Errno::NameTooLong.into());
    }
    mem.write(path, name.as_bytes())?;
    Ok(())
}

/// The entries of `dir`: `.` and `..` first, then the directory's own in
/// the host's order.
fn list(dir: &cap_std::fs::Dir) -> std::io::Result<Vec<DirRecord>> {
    use cap_fs_ext::OsMetadataExt;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::DirEntryExt;
    let own = dir.dir_metadata()?;
    let mut out = vec![
        DirRecord {
            ino: own.ino(),
            filetype: filetype::DIRECTORY,
            name: b".".to_vec(),
        },
        // The parent is outside this handle's reach (every directory
        // handle is a sandbox root of its own): its inode is not reported.
        DirRecord {
            ino: 0,
            filetype: filetype::DIRECTORY,
            name: b"..".to_vec(),
        },
    ];
    for entry in dir.entries()? {
        let entry = entry?;
        let filetype = entry
            .file_type()
            .map(|ft| super::fd_table::cap_filetype_of(&ft))
            .unwrap_or(filetype::UNKNOWN);
        out.push(DirRecord {
            ino: entry.ino(),
            filetype,
            name: entry.file_name().into_vec(),
        });
    }
    Ok(out)
}

/// `fd_readdir(fd, buf, buf_len, cookie, bufused)`: fills `buf` with
/// `dirent` headers and names from entry number `cookie` on; the last one
/// is cut off when it does not fit (a full buffer tells the guest to call
/// again with the last complete entry's `d_next`).
pub fn fd_readdir(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    buf: u32,
    buf_len: u32,
    cookie: u64,
    bufused: u32,
) -> CallResult {
    mem.slice_mut(bufused, 4)?;
    mem.slice_mut(buf, buf_len)?;
    let entry = ctx.fds.get_with(fd, rights::FD_READDIR)?;
    let dir = match &mut entry.desc {
        Descriptor::Dir(d) => d,
        _ => return Err(Errno::NotDir.into()),
    };
    if cookie == 0 || dir.listing.is_none() {
        dir.listing = Some(io_result(list(&dir.dir))?);
    }
    let listing = dir.listing.as_deref().unwrap_or_default();
    let out = mem.slice_mut(buf, buf_len)?;
    let mut used = 0usize;
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (index, record) in listing.iter().enumerate().skip(start) {
        let namlen = u32::try_from(record.name.len()).map_err(|_| Errno::NameTooLong)?;
        let header = encode_dirent(index as u64 + 1, record.ino, namlen, record.filetype);
        for part in [&header[..], &record.name[..]] {
            let n = part.len().min(out.len() - used);
            out[used..used + n].copy_from_slice(&part[..n]);
            used += n;
        }
        if used == out.len() {
            break;
        }
    }
    mem.write_u32(bufused, used as u32)?;
    Ok(())
}
