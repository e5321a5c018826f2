//! A diagnostic third server: Shoal's runtime and scheduler without wasm.
//! One green thread per connection runs a plain Rust echo loop on the
//! scheduler's `TcpStream` (read, then write it all back), on a [`Runtime`]
//! built as for the Shoal server: same workers, switch hook and epoch
//! ticks.
//!
//! Beside the other two rows it splits Shoal's gap to the native server in
//! two: what green threads, their parks and the scheduler's I/O cost
//! (this row against native), and what the wasm instance and its WASI
//! calls add (Shoal's row against this one).

use super::error::EchoError;
use crate::runtime::{Runtime, ShutdownMode};
use shoal_scheduler::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes a handler reads at a time (as the wasm guest's buffer).
const BUFFER: usize = 32 * 1024;

/// A running green-thread echo server.
pub(crate) struct GreenEchoServer {
    runtime: Runtime,
    addr: SocketAddr,
    live: Arc<AtomicUsize>,
}

impl GreenEchoServer {
    pub(crate) fn start(
        workers: usize,
        epoch_tick: Option<Duration>,
    ) -> Result<GreenEchoServer, EchoError> {
        let runtime = super::runtime_builder(workers, epoch_tick).build()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(EchoError::io("cannot bind the green echo server"))?;
        let addr = listener.local_addr().map_err(EchoError::io("local_addr"))?;
        let live = Arc::new(AtomicUsize::new(0));
        let l = live.clone();
        runtime
            .executor()
            .spawn(move || accept_loop(&listener, &l))
            .map_err(|e| EchoError::io("cannot start the accept loop")(io::Error::other(e)))?;
        Ok(GreenEchoServer {
            runtime,
            addr,
            live,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub(crate) fn live_connections(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Cancels the accept loop and every handler left, and stops the
    /// runtime.
    pub(crate) fn stop(self) -> Result<(), EchoError> {
        self.runtime
            .shutdown(ShutdownMode::Cancel)
            .map_err(|e| EchoError::Panicked(e.to_string()))
    }
}

/// Accepts until the runtime shuts down, a green thread per connection
/// (on the loop's worker unless that one is busier than the others, as
/// the Shoal server's instances).
fn accept_loop(listener: &TcpListener, live: &Arc<AtomicUsize>) {
    let Some(executor) = shoal_scheduler::Handle::current() else {
        return;
    };
    while let Ok((stream, _)) = listener.accept() {
        live.fetch_add(1, Ordering::AcqRel);
        let handler_live = live.clone();
        // Placed as the Shoal server places its instances.
        let spawned = executor.spawn_near(1, move || {
            echo(stream);
            handler_live.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            live.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    }
}

/// Echoes until end of stream or an error.
fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
