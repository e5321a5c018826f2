//! The Shoal side of the comparison: `examples/echo.wat`, one fresh
//! instance per connection, served by a [`ConnectionServer`] on a
//! [`Runtime`] with as many workers as the native server has threads.
//!
//! Each accepted connection becomes the guest's WASI fd 3 (a scheduler
//! stream handed over as is: one host descriptor per connection), and the
//! guest loops on `fd_read` / `fd_write`; a read with nothing to read parks
//! the instance's green thread until the worker's Poll sees data.

use super::error::EchoError;
use crate::runtime::{Runtime, ShutdownMode};
use crate::server::ConnectionServer;
use crate::wasi::{Socket, WasiCtx};
use shoal_instance::{Linker, MemoryStrategy};
use std::net::SocketAddr;
use std::time::Duration;

/// The echo guest (`examples/echo.wat`).
pub const ECHO_WAT: &str = include_str!("../../../examples/echo.wat");

/// A running Shoal echo server.
pub(crate) struct ShoalEchoServer {
    runtime: Runtime,
    server: ConnectionServer,
}

impl ShoalEchoServer {
    pub(crate) fn start(
        workers: usize,
        memory_strategy: MemoryStrategy,
        epoch_tick: Option<Duration>,
    ) -> Result<ShoalEchoServer, EchoError> {
        let runtime = super::runtime_builder(workers, epoch_tick)
            .memory_strategy(memory_strategy)
            .build()?;
        let guest = |e: &dyn std::fmt::Display| EchoError::Guest(e.to_string());
        let module = runtime.compile(ECHO_WAT).map_err(|e| guest(&e))?;
        let mut linker = Linker::new(runtime.engine());
        crate::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).map_err(|e| guest(&e))?;
        let template = runtime
            .template(&module, &linker, "_start")
            .map_err(|e| guest(&e))?;
        let listener = shoal_scheduler::net::TcpListener::bind("127.0.0.1:0")
            .map_err(EchoError::io("cannot bind the Shoal echo server"))?;
        let server = ConnectionServer::builder(template, |stream, _peer| {
            Ok(WasiCtx::builder().socket(Socket::from(stream)).build()?)
        })
        .start(&runtime, listener)
        .map_err(EchoError::io("cannot start the accept loop"))?;
        Ok(ShoalEchoServer { runtime, server })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Instances alive now.
    pub(crate) fn live_connections(&self) -> usize {
        usize::try_from(self.server.stats().active).unwrap_or(usize::MAX)
    }

    /// Instances that trapped (none should).
    pub(crate) fn failed_instances(&self) -> u64 {
        self.server.stats().failed
    }

    /// Instances accepted in all.
    pub(crate) fn instances(&self) -> u64 {
        self.server.stats().accepted
    }

    /// Stops accepting, gives the instances `grace` to see their clients'
    /// end of stream, then cancels the rest and stops the runtime.
    pub(crate) fn stop(mut self, grace: Duration) -> Result<(), EchoError> {
        self.server
            .stop_accepting()
            .map_err(EchoError::io("the Shoal accept loop failed"))?;
        self.server.wait_idle(grace);
        drop(self.server);
        self.runtime
            .shutdown(ShutdownMode::Cancel)
            .map_err(|e| EchoError::Panicked(e.to_string()))
    }
}
