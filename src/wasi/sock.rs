//! Sockets: the handles the host passes in, and `sock_accept`,
//! `sock_recv`, `sock_send`, `sock_shutdown`.
//!
//! A socket descriptor wraps the scheduler's blocking-style
//! [`TcpStream`]/[`TcpListener`], so a read, write or accept that would
//! block parks only the calling green thread (or blocks the OS thread when
//! there is none). Whether the host built the [`Socket`] from a std socket
//! or from a scheduler one (as [`crate::server`] does for each accepted
//! connection), every operation is supported.
//!
//! `RIFLAGS_RECV_PEEK` is the wrapper's `peek`, and a non-blocking accept
//! its `try_accept`. The other operations of non-blocking mode
//! (`FDFLAGS_NONBLOCK`, set with `fd_fdstat_set_flags` or `sock_accept`'s
//! flags) work on the socket's own host fd (`AsRawFd`), which is
//! non-blocking: one `recv`/`send` with `EAGAIN` instead of parking. Only
//! the guest's descriptor entry records the mode. `poll_oneoff` also
//! checks and waits for the fd's readiness.
//!
//! Reading the fd directly bypasses the wrapper's readiness cache, which is
//! harmless: such a read only takes data, so the cache can at worst say
//! "ready" for an empty socket, and the wrapper's next read then gets
//! `EAGAIN` and waits. (The cache says "not ready" only after a read found
//! the socket empty; any data arriving after that raises a new event.)

use super::abi::{fdflags, rights, sock};
use super::errno::{CallError, CallResult, Errno};
use super::fd::{read_into_iovecs, write_from_iovecs};
use super::fd_table::{Descriptor, FdEntry};
use super::guest_memory::GuestMemory;
use super::host_io::{self, io_result};
use super::WasiCtx;
use shoal_scheduler::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

/// A connected stream socket of the guest.
#[derive(Debug)]
pub struct StreamSocket {
    stream: TcpStream,
}

/// A listening socket of the guest.
#[derive(Debug)]
pub struct ListenerSocket {
    listener: TcpListener,
}

impl StreamSocket {
    /// The host fd (owned by the stream; never closed through this).
    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads once into `buf`: parks until data, end of stream or an error
    /// (or `EAGAIN` at once in non-blocking mode). `count_at` is the host
    /// address of the guest word the caller writes the byte count to (a
    /// cache hint only).
    pub fn read(&self, buf: &mut [u8], nonblocking: bool, count_at: usize) -> CallResult<usize> {
        if nonblocking {
            return io_result(host_io::recv_fd(self.raw_fd(), buf, libc::MSG_DONTWAIT));
        }
        self.hint_park(buf, count_at);
        io_result((&self.stream).read(buf))
    }

    /// Like `read`, leaving the data queued.
    pub fn peek(&self, buf: &mut [u8], nonblocking: bool, count_at: usize) -> CallResult<usize> {
        if nonblocking {
            return io_result(host_io::recv_fd(
                self.raw_fd(),
                buf,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            ));
        }
        self.hint_park(buf, count_at);
        io_result(self.stream.peek(buf))
    }

    /// Before a read that may park: what it touches when the data comes.
    /// The kernel copies the data into the guest's buffer, the caller
    /// writes the count into guest memory, and both start from this
    /// socket; with a thousand connections none of them is in the caches
    /// any more, so the worker loads them while the green threads before
    /// this one run (see `shoal_scheduler::set_park_hints`).
    fn hint_park(&self, buf: &[u8], count_at: usize) {
        shoal_scheduler::set_park_hints([
            buf.as_ptr() as usize,
            count_at,
            self as *const StreamSocket as usize,
        ]);
    }

    /// Writes some of `buf`: parks until the socket takes at least a byte
    /// (or `EAGAIN` at once in non-blocking mode).
    pub fn write(&self, buf: &[u8], nonblocking: bool) -> CallResult<usize> {
        if nonblocking {
            return io_result(host_io::send_fd(
                self.raw_fd(),
                buf,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            ));
        }
        io_result((&self.stream).write(buf))
    }

    pub fn shutdown(&self, how: Shutdown) -> CallResult {
        io_result(self.stream.shutdown(how))
    }
}

impl ListenerSocket {
    /// The host fd (owned by the listener; never closed through this).
    pub fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accepts a connection: parks until one arrives (or `EAGAIN` at once
    /// in non-blocking mode).
    pub fn accept(&self, nonblocking: bool) -> CallResult<StreamSocket> {
        let (stream, _) = io_result(if nonblocking {
            self.listener.try_accept()
        } else {
            self.listener.accept()
        })?;
        Ok(StreamSocket { stream })
    }
}

/// A socket the host hands to a guest ([`WasiCtx::push_socket`]).
#[derive(Debug)]
pub struct Socket {
    kind: SocketKind,
}

#[derive(Debug)]
enum SocketKind {
    Stream(StreamSocket),
    Listener(ListenerSocket),
}

impl Socket {
    /// A connected std stream (switched to non-blocking mode).
    pub fn from_std_stream(stream: std::net::TcpStream) -> io::Result<Socket> {
        Ok(Socket::from(TcpStream::from_std(stream)?))
    }

    /// A std listener (switched to non-blocking mode).
    pub fn from_std_listener(listener: std::net::TcpListener) -> io::Result<Socket> {
        Ok(Socket::from(TcpListener::from_std(listener)?))
    }

    pub(crate) fn into_descriptor(self) -> (Descriptor, u64) {
        match self.kind {
            SocketKind::Stream(s) => (Descriptor::TcpStream(s), rights::SOCKET),
            SocketKind::Listener(l) => (Descriptor::TcpListener(l), rights::LISTENER),
        }
    }
}

/// A scheduler stream, e.g. one [`crate::server::ConnectionServer`]
/// accepted.
impl From<TcpStream> for Socket {
    fn from(stream: TcpStream) -> Socket {
        Socket {
            kind: SocketKind::Stream(StreamSocket { stream }),
        }
    }
}

/// A scheduler listener.
impl From<TcpListener> for Socket {
    fn from(listener: TcpListener) -> Socket {
        Socket {
            kind: SocketKind::Listener(ListenerSocket { listener }),
        }
    }
}

fn stream_of(entry: &FdEntry) -> Result<&StreamSocket, Errno> {
    match &entry.desc {
        Descriptor::TcpStream(s) => Ok(s),
        Descriptor::TcpListener(_) => Err(Errno::NotConn),
        _ => Err(Errno::NotSock),
    }
}

/// `sock_accept(fd, flags, result_fd)`.
pub fn sock_accept(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    flags: u32,
    fd_out: u32,
) -> CallResult {
    if flags & !u32::from(fdflags::NONBLOCK) != 0 {
        return Err(Errno::Inval.into());
    }
    // Check the result pointer first: a connection must not be accepted
    // and then lost.
    mem.slice_mut(fd_out, 4)?;
    let entry = ctx.fds.get_with(fd, rights::SOCK_ACCEPT)?;
    let nonblocking = entry.flags & fdflags::NONBLOCK != 0;
    let listener = match &entry.desc {
        Descriptor::TcpListener(l) => l,
        Descriptor::TcpStream(_) => return Err(Errno::Inval.into()),
        _ => return Err(Errno::NotSock.into()),
    };
    let stream = listener.accept(nonblocking)?;
    let mut new = FdEntry::new(Descriptor::TcpStream(stream), rights::SOCKET, 0);
    new.flags = flags as u16;
    let new_fd = ctx.fds.insert(new)?;
    mem.write_u32(fd_out, new_fd)?;
    Ok(())
}

/// `sock_recv(fd, ri_data, ri_data_len, ri_flags, ro_datalen, ro_flags)`.
#[allow(clippy::too_many_arguments)]
pub fn sock_recv(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    ri_flags: u32,
    ro_datalen: u32,
    ro_flags: u32,
) -> CallResult {
    let known = u32::from(sock::RECV_PEEK | sock::RECV_WAITALL);
    if ri_flags & !known != 0 {
        return Err(Errno::Inval.into());
    }
    let iovs = mem.iovecs(iovs_ptr, iovs_len)?;
    mem.slice_mut(ro_datalen, 4)?;
    mem.slice_mut(ro_flags, 2)?;
    let entry = ctx.fds.get_with(fd, rights::FD_READ)?;
    let nonblocking = entry.flags & fdflags::NONBLOCK != 0;
    let stream = stream_of(entry)?;
    let count_at = mem.hint_addr(ro_datalen);
    let peek = ri_flags & u32::from(sock::RECV_PEEK) != 0;
    let wait_all = ri_flags & u32::from(sock::RECV_WAITALL) != 0;
    let n = if peek {
        read_into_iovecs(mem, &iovs, true, |buf| {
            stream.peek(buf, nonblocking, count_at)
        })?
    } else if wait_all {
        // Keep reading until every buffer is full or the stream ends.
        read_into_iovecs(mem, &iovs, false, |buf| {
            let mut done = 0;
            while done < buf.len() {
                match stream.read(&mut buf[done..], nonblocking, count_at) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if done > 0 && matches!(e, CallError::Errno(_)) => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(done)
        })?
    } else {
        read_into_iovecs(mem, &iovs, true, |buf| {
            stream.read(buf, nonblocking, count_at)
        })?
    };
    mem.write_u32(ro_datalen, n)?;
    mem.write_u16(ro_flags, 0)?;
    Ok(())
}

/// `sock_send(fd, si_data, si_data_len, si_flags, so_datalen)`.
pub fn sock_send(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    _si_flags: u32,
    so_datalen: u32,
) -> CallResult {
    let iovs = mem.iovecs(iovs_ptr, iovs_len)?;
    mem.slice_mut(so_datalen, 4)?;
    let entry = ctx.fds.get_with(fd, rights::FD_WRITE)?;
    let nonblocking = entry.flags & fdflags::NONBLOCK != 0;
    let stream = stream_of(entry)?;
    let n = write_from_iovecs(mem, &iovs, |buf| stream.write(buf, nonblocking))?;
    mem.write_u32(so_datalen, n)?;
    Ok(())
}

/// `sock_shutdown(fd, how)`.
pub fn sock_shutdown(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory<'_>,
    fd: u32,
    how: u32,
) -> CallResult {
    let how = match u8::try_from(how) {
        Ok(sock::SHUT_RD) => Shutdown::Read,
        Ok(sock::SHUT_WR) => Shutdown::Write,
        Ok(h) if h == sock::SHUT_RD | sock::SHUT_WR => Shutdown::Both,
        _ => return Err(Errno::Inval.into()),
    };
    let entry = ctx.fds.get_with(fd, rights::SOCK_SHUTDOWN)?;
    stream_of(entry)?.shutdown(how)
}
