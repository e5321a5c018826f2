//! SIGINT and SIGTERM as messages, for a graceful shutdown.
//!
//! [`ShutdownSignals::install`] blocks both signals in the calling thread
//! and starts a thread that waits for them with `sigwait(3)` and sends each
//! one on a channel. Threads started afterwards (the runtime's workers and
//! ticker) inherit the blocked mask, so the signals reach only that thread
//! and never interrupt a worker: no handler runs in signal context, and the
//! main thread reacts by reading the channel.
//!
//! Install it before building the runtime.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The signals received so far, in order.
pub struct ShutdownSignals {
    received: Receiver<libc::c_int>,
}

impl ShutdownSignals {
    /// Blocks SIGINT and SIGTERM in this thread (and the threads it starts
    /// from now on) and starts the thread that waits for them.
    pub fn install() -> io::Result<ShutdownSignals> {
        let set = signal_set()?;
        // SAFETY: `set` is an initialised signal set; a null old-set
        // pointer asks for nothing back.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("shoal-signals".into())
            .spawn(move || loop {
                let mut signal: libc::c_int = 0;
                // SAFETY: `set` is initialised and `signal` is a valid out
                // pointer; both signals are blocked in every thread, so
                // sigwait is the only way they are delivered.
                let ret = unsafe { libc::sigwait(&set, &mut signal) };
                if ret != 0 || tx.send(signal).is_err() {
                    return;
                }
            })?;
        Ok(ShutdownSignals { received: rx })
    }

    /// Waits up to `timeout` for a signal; returns its name.
    pub fn wait(&self, timeout: Duration) -> Option<&'static str> {
        match self.received.recv_timeout(timeout) {
            Ok(signal) => Some(name(signal)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }
}

fn signal_set() -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset then
    // adds valid signal numbers to the initialised set.
    unsafe {
        if libc::sigemptyset(set.as_mut_ptr()) != 0
            || libc::sigaddset(set.as_mut_ptr(), libc::SIGINT) != 0
            || libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(set.assume_init())
    }
}

fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
