//! Host-side I/O primitives the WASI calls are built on: reads and writes
//! on raw host fds, readiness checks, and waits that park the calling green
//! thread (or block the OS thread when there is no green thread).
//!
//! Waiting on one fd registers a *duplicate* of it with the worker's Poll
//! for the duration of the wait (`shoal_scheduler::io::wait_readable`): the
//! original may already be registered there by the scheduler's own
//! `TcpStream`, and epoll refuses a second registration of one fd number
//! but accepts another number for the same socket. Waiting on several
//! ([`WaitSet`], for `poll_oneoff`) registers one duplicate per distinct fd
//! in the same way, with `shoal_scheduler::io::wait_any`; the duplicates
//! are made once per call, however often the call waits.

use super::errno::{CallError, CallResult};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Which readiness to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

fn cvt(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `read(2)` on `fd`, retrying on `EINTR`.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; `fd` is a
        // descriptor the caller owns or borrows (an invalid one gives EBADF).
        let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `write(2)` on `fd`, retrying on `EINTR`.
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` readable bytes.
        let ret = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `recv(2)` on a socket with `flags`, retrying on `EINTR`.
pub fn recv_fd(fd: RawFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        let ret = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `send(2)` on a socket with `flags`, retrying on `EINTR`.
pub fn send_fd(fd: RawFd, buf: &[u8], flags: i32) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` readable bytes.
        let ret = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `poll(2)` on `fds` for at most `timeout` (`None`: forever, as is a
/// timeout too long to represent; zero: just check), blocking the OS
/// thread. Returns how many have events.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    shoal_scheduler::io::poll_fds(fds, deadline_in(timeout))
}

/// The instant `timeout` from now; `None` for no timeout, as for one too
/// far away to represent.
fn deadline_in(timeout: Option<Duration>) -> Option<std::time::Instant> {
    timeout.and_then(|t| std::time::Instant::now().checked_add(t))
}

/// A `pollfd` for `fd` and `interest`.
pub fn pollfd(fd: RawFd, interest: Interest) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: match interest {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
        },
        revents: 0,
    }
}

/// A new descriptor for the same open file as `fd`.
fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`; an invalid one gives EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Waits until `fd` is ready for `interest` (or has an error or hang-up):
/// parks the green thread, or blocks the OS thread off one. A file that
/// cannot be polled (a regular file: epoll says `EPERM`) counts as ready.
pub fn wait_fd(fd: RawFd, interest: Interest) -> CallResult {
    if !shoal_scheduler::is_green_thread() {
        let mut fds = [pollfd(fd, interest)];
        poll_fds(&mut fds, None)?;
        return Ok(());
    }
    let copy = dup(fd)?;
    let raw = copy.as_raw_fd();
    let mut source = mio::unix::SourceFd(&raw);
    let result = match interest {
        Interest::Read => shoal_scheduler::io::wait_readable(&mut source),
        Interest::Write => shoal_scheduler::io::wait_writable(&mut source),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        Err(e) => Err(CallError::from(e)),
    }
}

/// The host fds one `poll_oneoff` on a green thread waits on: each
/// distinct fd duplicated once (see the module docs), for the union of the
/// interests asked for it, kept open until the set is dropped.
pub struct WaitSet {
    /// `(duplicate, interest)`, what the worker's Poll registers.
    waits: Vec<(RawFd, mio::Interest)>,
    _copies: Vec<OwnedFd>,
}

impl WaitSet {
    /// Duplicates each distinct fd of `fds` once.
    pub fn new(fds: impl IntoIterator<Item = (RawFd, Interest)>) -> CallResult<WaitSet> {
        let mut wanted: Vec<(RawFd, mio::Interest)> = fds
            .into_iter()
            .map(|(fd, interest)| {
                let interest = match interest {
                    Interest::Read => mio::Interest::READABLE,
                    Interest::Write => mio::Interest::WRITABLE,
                };
                (fd, interest)
            })
            .collect();
        wanted.sort_unstable_by_key(|&(fd, _)| fd);
        let mut distinct: Vec<(RawFd, mio::Interest)> = Vec::with_capacity(wanted.len());
        for (fd, interest) in wanted {
            match distinct.last_mut() {
                Some((last, union)) if *last == fd => *union = union.add(interest),
                _ => distinct.push((fd, interest)),
            }
        }
        let mut copies = Vec::with_capacity(distinct.len());
        let mut waits = Vec::with_capacity(distinct.len());
        for (fd, interest) in distinct {
            let copy = dup(fd)?;
            waits.push((copy.as_raw_fd(), interest));
            copies.push(copy);
        }
        Ok(WaitSet {
            waits,
            _copies: copies,
        })
    }

    /// Parks the green thread until one of the fds is ready, or `timeout`
    /// passes (`None`: no timeout). Which fd woke it is not reported:
    /// callers check readiness again with a zero-timeout [`poll_fds`].
    pub fn wait(&self, timeout: Option<Duration>) -> CallResult {
        shoal_scheduler::io::wait_any(&self.waits, deadline_in(timeout))?;
        Ok(())
    }
}

/// Sleeps for `duration`: parks the green thread, or sleeps the OS thread.
pub fn sleep(duration: Duration) -> CallResult {
    shoal_scheduler::try_sleep(duration).map_err(CallError::from)
}

/// Yields the green thread (or the OS thread).
pub fn yield_now() -> CallResult {
    shoal_scheduler::try_yield_now().map_err(CallError::from)
}

/// Maps an I/O result, turning cancellation into a trap.
pub fn io_result<T>(result: io::Result<T>) -> CallResult<T> {
    result.map_err(CallError::from)
}
