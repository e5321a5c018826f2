//! What can stop an echo benchmark run.

use std::io;

/// An echo benchmark run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// The configuration cannot be run.
    #[error("invalid echo benchmark configuration: {0}")]
    Config(String),
    /// A system call failed (`what` says which step).
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The Shoal runtime could not start.
    #[error("cannot start the Shoal runtime: {0}")]
    Runtime(#[from] crate::runtime::BuildError),
    /// The echo guest did not compile or link.
    #[error("cannot prepare the echo guest: {0}")]
    Guest(String),
    /// Not every client connection could be opened.
    #[error(
        "only {connected} of {wanted} client connections could be opened ({source}); \
         check `ulimit -n` and net.ipv4.ip_local_port_range, or use fewer connections"
    )]
    Connect {
        /// Connections established.
        connected: usize,
        /// Connections asked for.
        wanted: usize,
        /// The first error.
        #[source]
        source: io::Error,
    },
    /// A server sent back bytes that differ from what was sent.
    #[error(
        "the {server} server echoed a wrong byte on connection {connection} \
         (request {request}, offset {offset}): expected {expected:#04x}, got {got:#04x}"
    )]
    WrongEcho {
        /// Which server.
        server: &'static str,
        /// Connection index.
        connection: usize,
        /// Request number on that connection.
        request: u64,
        /// Offset in the request.
        offset: usize,
        /// The byte sent.
        expected: u8,
        /// The byte received.
        got: u8,
    },
    /// A thread of the benchmark panicked (a bug).
    #[error("a benchmark thread panicked: {0}")]
    Panicked(String),
}

impl EchoError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> EchoError {
        let what = what.into();
        move |source| EchoError::Io { what, source }
    }
}
