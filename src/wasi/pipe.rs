//! In-memory standard streams, for tests and embedders that capture a
//! guest's output or feed it input.
//!
//! Both are cheap to clone and share their buffer: keep a clone of a
//! [`WritePipe`] given to a [`WasiCtx`](super::WasiCtx) to read what the
//! guest wrote after it ends.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a byte buffer in an
    // inconsistent state: keep using it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Input read from memory: the guest reads these bytes, then end of file.
#[derive(Clone, Debug, Default)]
pub struct ReadPipe {
    inner: Arc<Mutex<io::Cursor<Vec<u8>>>>,
}

impl ReadPipe {
    /// A pipe that yields `bytes`, then end of file.
    pub fn new(bytes: impl Into<Vec<u8>>) -> ReadPipe {
        ReadPipe {
            inner: Arc::new(Mutex::new(io::Cursor::new(bytes.into()))),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        let cursor = lock(&self.inner);
        let len = cursor.get_ref().len() as u64;
        len.saturating_sub(cursor.position()) as usize
    }
}

impl Read for &ReadPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.inner).read(buf)
    }
}

impl From<&str> for ReadPipe {
    fn from(s: &str) -> ReadPipe {
        ReadPipe::new(s.as_bytes())
    }
}

impl From<Vec<u8>> for ReadPipe {
    fn from(bytes: Vec<u8>) -> ReadPipe {
        ReadPipe::new(bytes)
    }
}

/// Output captured in memory, optionally up to a limit (writes past it
/// fail with "no space", so a runaway guest cannot exhaust host memory).
#[derive(Clone, Debug)]
pub struct WritePipe {
    inner: Arc<Mutex<Vec<u8>>>,
    limit: usize,
}

impl Default for WritePipe {
    fn default() -> Self {
        WritePipe::new()
    }
}

impl WritePipe {
    /// An empty pipe without a limit.
    pub fn new() -> WritePipe {
        WritePipe::with_limit(usize::MAX)
    }

    /// An empty pipe that holds at most `limit` bytes.
    pub fn with_limit(limit: usize) -> WritePipe {
        WritePipe {
            inner: Arc::new(Mutex::new(Vec::new())),
            limit,
        }
    }

    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.inner).clone()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn contents_string(&self) -> String {
        String::from_utf8_lossy(&lock(&self.inner)).into_owned()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for &WritePipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = lock(&self.inner);
        let room = self.limit.saturating_sub(inner.len());
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(room);
        inner.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_share_their_buffer() {
        let out = WritePipe::with_limit(4);
        let clone = out.clone();
        assert_eq!((&clone).write(b"abcdef").ok(), Some(4));
        assert!((&clone).write(b"g").is_err());
        assert_eq!(out.contents(), b"abcd");

        let input = ReadPipe::from("hi");
        let mut buf = [0u8; 8];
        assert_eq!((&input).read(&mut buf).ok(), Some(2));
        assert_eq!((&input).read(&mut buf).ok(), Some(0));
        assert_eq!(input.remaining(), 0);
    }
}
