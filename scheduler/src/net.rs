//! Blocking-style TCP for green threads.
//!
//! [`TcpListener`] and [`TcpStream`] wrap non-blocking mio sockets in a
//! [`Registered`]: a call that would block parks the calling green thread
//! until the worker's Poll reports the socket ready, then retries. To the
//! caller they look like `std::net` (and implement `std::io::Read` /
//! `Write`). On a plain OS thread they block the OS thread instead.
//!
//! A cancelled green thread gets an error for which
//! [`io::is_cancelled`](crate::io::is_cancelled) is true; these calls never
//! unwind.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};

use std::os::fd::AsRawFd;

use crate::io::Registered;
use crate::sys;

/// Accept backlog of [`TcpListener::bind`]: enough for a burst of a
/// thousand connections (std and mio use 128).
pub const DEFAULT_BACKLOG: u32 = 4096;

fn for_each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last_err = None;
    for addr in addr.to_socket_addrs()? {
        match f(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// A TCP server socket whose `accept` parks the green thread.
pub struct TcpListener {
    inner: Registered<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works), with `SO_REUSEADDR`
    /// and an accept backlog of [`DEFAULT_BACKLOG`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        Self::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind`](Self::bind), with the given accept backlog (capped by
    /// the kernel at `net.core.somaxconn`). Too small a backlog makes a
    /// burst of connections wait for SYN-ACK retransmissions (seconds).
    pub fn bind_with_backlog<A: ToSocketAddrs>(addr: A, backlog: u32) -> io::Result<TcpListener> {
        for_each_addr(addr, |addr| {
            let listener = mio::net::TcpListener::bind(addr)?;
            sys::set_listen_backlog(listener.as_raw_fd(), backlog)?;
            Ok(TcpListener {
                inner: Registered::new(listener),
            })
        })
    }

    /// Adopts a std listener (switching it to non-blocking mode).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            inner: Registered::new(mio::net::TcpListener::from_std(listener)),
        })
    }

    /// Accepts a connection, parking until one arrives.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self.inner.read_with(|listener| listener.accept())?;
        Ok((TcpStream::from_mio(stream), addr))
    }

    /// Accepts a connection if one is waiting, else fails at once with
    /// `WouldBlock`.
    pub fn try_accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            match self.inner.get_ref().accept() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result.map(|(s, addr)| (TcpStream::from_mio(s), addr)),
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TcpListener")
            .field(self.inner.get_ref())
            .finish()
    }
}

/// A TCP connection whose reads, writes and connect park the green thread.
pub struct TcpStream {
    inner: Registered<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Registered::new(stream),
        }
    }

    /// Connects to `addr` (trying each resolved address), parking until the
    /// connection is established or fails.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        for_each_addr(addr, |addr| {
            let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?);
            // A non-blocking connect completes when the socket turns
            // writable; a spurious wake-up shows up as "not connected yet".
            stream.inner.write_with(|s| {
                if let Some(err) = s.take_error()? {
                    return Err(err);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })?;
            Ok(stream)
        })
    }

    /// Adopts a connected std stream (switching it to non-blocking mode).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(stream)))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// Reads into `buf` without taking the data from the socket, parking
    /// until some is there (or end of stream, or an error).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf))
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.inner.read_bytes_with(len, |mut s| s.read(buf))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|mut s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TcpStream")
            .field(self.inner.get_ref())
            .finish()
    }
}

/// The socket's descriptor, for callers that poll or configure it directly
/// (e.g. WASI's `poll_oneoff`). The wrapper stays registered with its
/// worker's `Poll`; don't close the descriptor.
impl std::os::fd::AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

/// See the `TcpListener` impl.
impl std::os::fd::AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

impl std::os::fd::AsFd for TcpStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}
