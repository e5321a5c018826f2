//! Serving TCP connections with one fresh instance per connection.
//!
//! A [`ConnectionServer`] is the general form of the echo server in
//! `examples/echo_server.rs`, and what `shoal serve` and the echo
//! benchmark ([`crate::bench::echo`]) run: an accept loop on the runtime
//! that hands every accepted connection to a new instance of one
//! [`InstanceTemplate`].
//!
//! ```no_run
//! use shoal::runtime::Runtime;
//! use shoal::scheduler::net::TcpListener;
//! use shoal::server::ConnectionServer;
//! use shoal::wasi::{Socket, WasiCtx};
//!
//! let runtime = Runtime::new()?;
//! let module = runtime.compile(std::fs::read("examples/echo.wat")?)?;
//! let mut linker = shoal::Linker::new(runtime.engine());
//! shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)?;
//! let template = runtime.template(&module, &linker, "_start")?;
//! let mut server = ConnectionServer::builder(template, |stream, _peer| {
//!     // The connection is the guest's fd 3.
//!     Ok(WasiCtx::builder().socket(Socket::from(stream)).build()?)
//! })
//! .start(&runtime, TcpListener::bind("127.0.0.1:7000")?)?;
//! println!("listening on {}", server.local_addr());
//! // ... later: stop accepting, let live connections finish.
//! server.stop_accepting()?;
//! server.wait_idle(std::time::Duration::from_secs(10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Protocol
//!
//! 1. **Start** ([`ServerBuilder::start`]): the listener moves into the
//!    *accept loop*, one green thread of the runtime's executor.
//! 2. **Accept.** For each connection the loop calls the builder's
//!    `data` function, which turns the stream into the instance's host
//!    data (for WASI: a `WasiCtx` holding the socket), and spawns an
//!    instance of the template with it. The instance is placed like any
//!    spawn from a green thread (on the loop's worker unless that one is
//!    busier than the others) and runs detached: nothing waits for it.
//! 3. **End of a connection.** When the instance's call ends, on the
//!    instance's own green thread, its [`ConnectionOutcome`] is counted in
//!    the [`ServerStats`] and handed to the observer, if any. Then the
//!    instance is torn down, which closes the connection. A client that
//!    closes abruptly, sends nothing or floods costs only its own instance:
//!    waiting parks only that green thread, and a busy instance is
//!    preempted at the end of its timeslice and stopped by its contract's
//!    CPU budget.
//! 4. **Refusals.** If the template's contract allows no more live
//!    instances, the executor refuses the green thread, or `data` fails, the
//!    connection is closed at once and counted as refused.
//! 5. **Accept errors.** Running out of descriptors or memory (`EMFILE`,
//!    `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses the loop for
//!    [`ACCEPT_BACKOFF`] — the pending connections wait in the backlog —
//!    then it goes on; a connection that failed before it was accepted
//!    (`ECONNABORTED`, ...) is skipped. Any other error ends the loop:
//!    [`ConnectionServer::stop_accepting`] returns it.
//! 6. **Stop** ([`ConnectionServer::stop_accepting`]): the accept loop is
//!    cancelled (its pending `accept` returns a cancellation error) and the
//!    listener is closed. Live instances keep serving their connections:
//!    [`ConnectionServer::wait_idle`] waits for them to end. Whatever is
//!    still alive after that is cancelled by shutting the runtime down with
//!    [`ShutdownMode::Cancel`](crate::runtime::ShutdownMode).

use crate::runtime::{InstanceTemplate, RunError, Runtime};
use shoal_instance::{TrapKind, Val};
use shoal_scheduler::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the accept loop pauses after running out of descriptors or
/// memory before it accepts again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How one connection's instance ended.
#[derive(Debug)]
pub enum ConnectionOutcome<'a> {
    /// The entry export returned (code 0) or the guest exited with this
    /// code (WASI `proc_exit`).
    Exited(i32),
    /// The instance trapped, ran out of CPU budget, was cancelled, or could
    /// not be created.
    Failed(&'a RunError),
}

impl ConnectionOutcome<'_> {
    fn of<R>(result: &Result<R, RunError>) -> ConnectionOutcome<'_> {
        match result {
            Ok(_) => ConnectionOutcome::Exited(0),
            Err(error) => match error.trap_kind() {
                Some(TrapKind::Exit(code)) => ConnectionOutcome::Exited(code),
                _ => ConnectionOutcome::Failed(error),
            },
        }
    }
}

/// Counters of a [`ConnectionServer`], read with
/// [`ConnectionServer::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused right after they were accepted (instance limit,
    /// executor shut down, `data` failed).
    pub refused: u64,
    /// Instances whose call has not ended yet.
    pub active: u64,
    /// Instances that returned or exited with code 0.
    pub exited_ok: u64,
    /// Instances that exited with a non-zero code.
    pub exited_error: u64,
    /// Instances that trapped (including a spent CPU budget and
    /// cancellation) or could not be created.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    ended: AtomicU64,
    exited_ok: AtomicU64,
    exited_error: AtomicU64,
    failed: AtomicU64,
}

type Observer = dyn Fn(SocketAddr, &ConnectionOutcome<'_>) + Send + Sync;

/// Sets up a [`ConnectionServer`]; see the module docs.
pub struct ServerBuilder<T, D> {
    template: InstanceTemplate<T>,
    data: D,
    args: Vec<Val>,
    observer: Option<Arc<Observer>>,
}

impl<T, D> ServerBuilder<T, D>
where
    T: Send + 'static,
    D: FnMut(TcpStream, SocketAddr) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + 'static,
{
    /// The arguments of the entry export (default: none).
    pub fn args(mut self, args: Vec<Val>) -> Self {
        self.args = args;
        self
    }

    /// Calls `observer` with the outcome of every connection's instance,
    /// on that instance's green thread (keep it short; it may log).
    pub fn observer(
        mut self,
        observer: impl Fn(SocketAddr, &ConnectionOutcome<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Starts the accept loop on `runtime`'s executor.
    pub fn start(self, runtime: &Runtime, listener: TcpListener) -> io::Result<ConnectionServer> {
        let local_addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let accept = runtime
            .executor()
            .spawn(move || accept_loop(listener, self, &shared))
            .map_err(io::Error::other)?;
        Ok(ConnectionServer {
            accept: Some(accept),
            counters,
            local_addr,
        })
    }
}

/// An accept loop that runs every connection in a fresh instance; see the
/// module docs.
///
/// Dropping it stops accepting (as [`stop_accepting`](Self::stop_accepting))
/// and leaves the live instances running.
pub struct ConnectionServer {
    accept: Option<shoal_scheduler::JoinHandle<io::Result<()>>>,
    counters: Arc<Counters>,
    local_addr: SocketAddr,
}

impl ConnectionServer {
    /// A server of instances of `template`, whose host data `data` builds
    /// from each accepted stream and its peer address.
    pub fn builder<T, D>(template: InstanceTemplate<T>, data: D) -> ServerBuilder<T, D>
    where
        T: Send + 'static,
        D: FnMut(TcpStream, SocketAddr) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
            + Send
            + 'static,
    {
        ServerBuilder {
            template,
            data,
            args: Vec::new(),
            observer: None,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let accepted = c.accepted.load(Ordering::Acquire);
        let refused = c.refused.load(Ordering::Acquire);
        let ended = c.ended.load(Ordering::Acquire);
        ServerStats {
            accepted,
            refused,
            active: accepted.saturating_sub(refused).saturating_sub(ended),
            exited_ok: c.exited_ok.load(Ordering::Relaxed),
            exited_error: c.exited_error.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Whether the accept loop has ended by itself (an accept error it
    /// cannot go on after; [`stop_accepting`](Self::stop_accepting) returns
    /// it).
    pub fn accept_loop_ended(&self) -> bool {
        self.accept.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Stops accepting: cancels the accept loop, waits for it to end and
    /// closes the listener. Returns the error that ended the loop before,
    /// if one did. Live instances go on (see [`wait_idle`](Self::wait_idle)).
    pub fn stop_accepting(&mut self) -> io::Result<()> {
        let Some(accept) = self.accept.take() else {
            return Ok(());
        };
        accept.cancel();
        match accept.join() {
            Ok(result) => result,
            Err(shoal_scheduler::JoinError::Cancelled) => Ok(()),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    /// Waits until no instance is active or `timeout` has passed; returns
    /// whether none is active. Polls the counters every millisecond (call
    /// it from an OS thread, not from a green thread of the runtime).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        // A timeout too large for the clock means no deadline.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.stats().active == 0 {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ConnectionServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.cancel();
        }
    }
}

impl std::fmt::Debug for ConnectionServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionServer")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The accept loop (module docs, steps 2, 4 and 5).
fn accept_loop<T, D>(
    listener: TcpListener,
    mut builder: ServerBuilder<T, D>,
    counters: &Arc<Counters>,
) -> io::Result<()>
where
    T: Send + 'static,
    D: FnMut(TcpStream, SocketAddr) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + 'static,
{
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if shoal_scheduler::io::is_cancelled(&e) => return Ok(()),
            Err(e) if is_resource_shortage(&e) => {
                if shoal_scheduler::try_sleep(ACCEPT_BACKOFF).is_err() {
                    return Ok(());
                }
                continue;
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => return Err(e),
        };
        counters.accepted.fetch_add(1, Ordering::AcqRel);
        let data = match (builder.data)(stream, peer) {
            Ok(data) => data,
            Err(_) => {
                counters.refused.fetch_add(1, Ordering::AcqRel);
                continue;
            }
        };
        let state = Arc::new(AtomicU8::new(SPAWNING));
        let mut guard = EndGuard {
            counters: counters.clone(),
            state: state.clone(),
            ran: false,
        };
        let observer = builder.observer.clone();
        let spawned = builder
            .template
            .spawn_then(data, builder.args.clone(), move |finished| {
                let outcome = ConnectionOutcome::of(&finished.result);
                let counter = match outcome {
                    ConnectionOutcome::Exited(0) => &guard.counters.exited_ok,
                    ConnectionOutcome::Exited(_) => &guard.counters.exited_error,
                    ConnectionOutcome::Failed(_) => &guard.counters.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(observer) = &observer {
                    observer(peer, &outcome);
                }
                guard.ran = true;
                guard.counters.ended.fetch_add(1, Ordering::AcqRel);
            });
        // The handle is dropped: the instance runs detached. A refused
        // spawn drops the host data, which closes the connection.
        match spawned {
            Err(_) => {
                counters.refused.fetch_add(1, Ordering::AcqRel);
            }
            Ok(_) => {
                if state
                    .compare_exchange(SPAWNING, DETACHED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // Its green thread was dropped unstarted before we got
                    // here: count it as failed (see `EndGuard`).
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    counters.ended.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }
}

/// The spawn call has not returned yet.
const SPAWNING: u8 = 0;
/// The spawn returned a handle: the instance is on its own.
const DETACHED: u8 = 1;
/// The instance's closure was dropped unrun while the spawn call ran.
const DROPPED_EARLY: u8 = 2;

/// Travels with a connection's inspect closure so that an instance whose
/// green thread never starts (its stack could not be mapped; reported only
/// through the dropped handle) still counts as ended, and `active` never
/// counts a connection that is gone. A closure dropped unrun *during* the
/// spawn call is either a refusal (the call fails: counted as refused by
/// the accept loop) or, if the call succeeded, counted by the accept loop
/// after it returns.
struct EndGuard {
    counters: Arc<Counters>,
    state: Arc<AtomicU8>,
    ran: bool,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.ran {
            return;
        }
        let early = self
            .state
            .compare_exchange(SPAWNING, DROPPED_EARLY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !early {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            self.counters.ended.fetch_add(1, Ordering::AcqRel);
        }
    }
}

fn is_resource_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}
