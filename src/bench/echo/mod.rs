//! The echo benchmark: a TCP echo server with one wasm instance per
//! connection, beside a plain native mio echo server, in the same process
//! and the same run.
//!
//! ```no_run
//! use shoal::bench::echo::{self, EchoConfig};
//! use std::time::Duration;
//!
//! let report = echo::run(&EchoConfig {
//!     connections: vec![100, 1_000, 10_000],
//!     duration: Duration::from_secs(5),
//!     ..EchoConfig::default()
//! })?;
//! print!("{report}");                 // a table
//! print!("{}", report.to_json_lines()); // or JSON, one object per row
//! # Ok::<(), shoal::bench::echo::EchoError>(())
//! ```
//!
//! `cargo run --release --example echo_bench -- --connections 1000 --seconds 5`
//! runs it from the command line.
//!
//! # What is measured
//!
//! For each connection count, each server in turn ([`run_one`]):
//!
//! 1. The server starts on a loopback port with `workers` threads: Shoal's
//!    runtime with that many workers, serving `examples/echo.wat` with a
//!    fresh instance per connection (`shoal_server.rs`), or the native
//!    server with that many mio event loops (`native.rs`). A third server,
//!    for diagnosis only ([`EchoServer::Green`], row `shoal-no-wasm`), runs
//!    Shoal's runtime with a plain Rust echo loop on a green thread per
//!    connection (`green_server.rs`): it tells the cost of green threads
//!    and the scheduler's I/O from that of the wasm instance and WASI.
//! 2. The load generator (`load.rs`) opens the connections from
//!    `client_threads` threads and runs closed-loop ping-pong on every
//!    connection: send `payload` bytes, read the echo back in full, check
//!    every byte, send the next. After `warmup`, requests are counted for
//!    `duration`: requests per second, and the latency of each request
//!    (first byte written to last byte read) in an HDR histogram.
//! 3. The clients close; the server is given a few seconds to see every
//!    connection end (a Shoal instance returns at end of stream), then it
//!    stops.
//!
//! The servers take turns: at each connection count their order is
//! reversed every other round, for `rounds` rounds, and each row adds up
//! its rounds, so that a drift or a burst of other load on the machine does
//! not favour the first or the last. (With three servers the middle one
//! stays in the middle.)
//!
//! Server and clients share the machine's cores, as in any loopback
//! benchmark: by default half the cores serve and half run clients. The
//! figures compare the servers with each other, under the same clients.
//! Each client thread has its own descriptor table (see `load.rs`), so
//! 10,000 connections fit under a 20,000-file limit.

mod error;
mod green_server;
mod load;
mod native;
mod report;
mod shoal_server;

pub use error::EchoError;
pub use report::{EchoReport, EchoRow};
pub use shoal_server::ECHO_WAT;

use crate::runtime::{Runtime, RuntimeBuilder};
use green_server::GreenEchoServer;
use native::NativeEchoServer;
use shoal_instance::MemoryStrategy;
use shoal_server::ShoalEchoServer;
use std::time::{Duration, Instant};

/// The name of Shoal's rows.
pub const SHOAL: &str = "shoal";
/// The name of the native server's rows.
pub const NATIVE: &str = "native-mio";
/// The name of the rows of the green-thread server without wasm.
pub const GREEN: &str = "shoal-no-wasm";

/// How long a server may take to see every client's end of stream after a
/// run before it is stopped anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// The runtime of the two servers built on Shoal: `workers` workers, and
/// the epoch tick asked for (else the runtime's).
fn runtime_builder(workers: usize, epoch_tick: Option<Duration>) -> RuntimeBuilder {
    let builder = Runtime::builder().workers(workers);
    match epoch_tick {
        Some(tick) => builder.epoch_tick(tick),
        None => builder,
    }
}

/// Half the cores of the machine, at least one.
fn half_the_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Which echo server to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EchoServer {
    /// Shoal: one wasm instance per connection.
    Shoal,
    /// A native mio echo server.
    Native,
    /// Diagnostic: Shoal's runtime with a Rust echo loop on a green thread
    /// per connection, no wasm (`green_server.rs`).
    Green,
}

/// What a command line's `--server` may name, and the servers each runs.
pub const SERVER_SELECTIONS: &[(&str, &[EchoServer])] = &[
    ("both", &[EchoServer::Native, EchoServer::Shoal]),
    ("shoal", &[EchoServer::Shoal]),
    ("native", &[EchoServer::Native]),
    ("no-wasm", &[EchoServer::Green]),
    (
        "all",
        &[EchoServer::Native, EchoServer::Green, EchoServer::Shoal],
    ),
];

/// The parser of a command line's `--server`: the names of
/// [`SERVER_SELECTIONS`] (for `shoal stress echo` and the `echo_bench`
/// example).
pub fn server_selection_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(SERVER_SELECTIONS.iter().map(|(name, _)| *name))
}

impl EchoServer {
    /// The servers of the [`SERVER_SELECTIONS`] entry `name`.
    pub fn selection(name: &str) -> Option<Vec<EchoServer>> {
        SERVER_SELECTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, servers)| servers.to_vec())
    }

    /// The row name: [`SHOAL`], [`NATIVE`] or [`GREEN`].
    pub fn name(self) -> &'static str {
        match self {
            EchoServer::Shoal => SHOAL,
            EchoServer::Native => NATIVE,
            EchoServer::Green => GREEN,
        }
    }
}

/// What to run. [`Default`] gives the full comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoConfig {
    /// Connection counts, each run in turn (default 100, 1,000, 10,000).
    pub connections: Vec<usize>,
    /// Servers to measure at each count (default both).
    pub servers: Vec<EchoServer>,
    /// Measured time per row (default 5 s).
    pub duration: Duration,
    /// Unmeasured time before it (default 1 s).
    pub warmup: Duration,
    /// Bytes per request (default 64).
    pub payload: usize,
    /// Server threads for every server (default: half the cores, at
    /// least one: the other half runs the clients).
    pub workers: Option<usize>,
    /// Client threads (default: half the cores, at least one).
    pub client_threads: usize,
    /// Shoal's memory strategy (default `Checked`, the dense one).
    pub memory_strategy: MemoryStrategy,
    /// Measured rounds per row (default 1). With more, the servers take
    /// turns round by round, and each row adds up its rounds: on a noisy
    /// machine the servers then see the same noise.
    pub rounds: usize,
    /// Shoal's epoch tick, which is also its timeslice (default: the
    /// runtime's, 250 µs). A ticker thread wakes once per tick.
    pub epoch_tick: Option<Duration>,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            connections: vec![100, 1_000, 10_000],
            servers: vec![EchoServer::Native, EchoServer::Shoal],
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            payload: 64,
            workers: None,
            client_threads: half_the_cores(),
            memory_strategy: MemoryStrategy::Checked,
            rounds: 1,
            epoch_tick: None,
        }
    }
}

impl EchoConfig {
    /// The server threads used: `workers`, or half the cores.
    pub fn server_threads(&self) -> usize {
        self.workers.unwrap_or_else(half_the_cores)
    }

    fn check(&self) -> Result<(), EchoError> {
        let bad = |msg: &str| Err(EchoError::Config(msg.to_string()));
        if self.connections.is_empty() || self.connections.contains(&0) {
            return bad("every connection count must be at least 1");
        }
        if self.servers.is_empty() {
            return bad("choose at least one server");
        }
        if self.payload == 0 {
            return bad("the payload must be at least 1 byte");
        }
        if self.duration.is_zero() {
            return bad("the measured duration must be longer than 0");
        }
        // A day is far more than a benchmark needs, and keeps `now +
        // warm-up + duration` representable.
        const DAY: Duration = Duration::from_secs(86_400);
        if self.duration > DAY || self.warmup > DAY {
            return bad("the warm-up and the measured duration must be at most a day each");
        }
        if self.client_threads == 0 || self.workers == Some(0) || self.rounds == 0 {
            return bad("client threads, workers and rounds must be at least 1");
        }
        Ok(())
    }
}

/// Runs every (connection count, server) pair of `config` and returns
/// their rows; see the module docs.
pub fn run(config: &EchoConfig) -> Result<EchoReport, EchoError> {
    run_with(config, |_| {})
}

/// [`run`], calling `on_row` with each row as soon as it is measured (for
/// a progress display).
pub fn run_with(
    config: &EchoConfig,
    mut on_row: impl FnMut(&EchoRow),
) -> Result<EchoReport, EchoError> {
    config.check()?;
    let mut report = EchoReport::default();
    let mut turn = 0usize;
    for &connections in &config.connections {
        let mut rounds: Vec<Vec<Round>> = config.servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..config.rounds {
            // Alternate which server goes first.
            let mut order: Vec<usize> = (0..config.servers.len()).collect();
            if turn % 2 == 1 {
                order.reverse();
            }
            turn += 1;
            for i in order {
                rounds[i].push(measure(config, config.servers[i], connections)?);
            }
        }
        for (server, rounds) in config.servers.iter().zip(&rounds) {
            let row = make_row(config, *server, connections, rounds);
            on_row(&row);
            report.rows.push(row);
        }
    }
    Ok(report)
}

/// Measures one server at one connection count, `config.rounds` times
/// (steps 1 to 3 of the module docs, each round).
pub fn run_one(
    config: &EchoConfig,
    server: EchoServer,
    connections: usize,
) -> Result<EchoRow, EchoError> {
    config.check()?;
    let rounds = (0..config.rounds)
        .map(|_| measure(config, server, connections))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(make_row(config, server, connections, &rounds))
}

/// What one round of one server measured.
struct Round {
    load: load::LoadResult,
    failed_instances: u64,
    instances: u64,
}

/// One round: steps 1 to 3 of the module docs.
fn measure(
    config: &EchoConfig,
    server: EchoServer,
    connections: usize,
) -> Result<Round, EchoError> {
    let started = match server {
        EchoServer::Shoal => Started::Shoal(ShoalEchoServer::start(
            config.server_threads(),
            config.memory_strategy,
            config.epoch_tick,
        )?),
        EchoServer::Native => Started::Native(NativeEchoServer::start(config.server_threads())?),
        EchoServer::Green => Started::Green(GreenEchoServer::start(
            config.server_threads(),
            config.epoch_tick,
        )?),
    };
    let spec = load::LoadSpec {
        server: server.name(),
        addr: started.local_addr(),
        connections,
        threads: config.client_threads,
        payload: config.payload,
        warmup: config.warmup,
        duration: config.duration,
    };
    let result = load::run(&spec);
    // Let the server see every end of stream, then stop it, whatever the
    // load's outcome.
    let drain_until = Instant::now() + DRAIN_GRACE;
    while started.live_connections() > 0 && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(2));
    }
    let (failed_instances, instances) = started.instance_counts();
    started.stop()?;
    Ok(Round {
        load: result?,
        failed_instances,
        instances,
    })
}

/// The row of `rounds`: their requests and latencies added up.
fn make_row(
    config: &EchoConfig,
    server: EchoServer,
    connections: usize,
    rounds: &[Round],
) -> EchoRow {
    let mut hist = load::new_histogram();
    for round in rounds {
        // Same bounds everywhere: adding cannot fail.
        let _ = hist.add(&round.load.latency_ns);
    }
    let requests: u64 = rounds.iter().map(|r| r.load.requests).sum();
    let us = |ns: u64| ns as f64 / 1_000.0;
    let wall = config.duration.as_secs_f64() * rounds.len() as f64;
    EchoRow {
        server: server.name(),
        connections,
        payload_bytes: config.payload,
        workers: config.server_threads(),
        client_threads: config.client_threads.min(connections),
        rounds: rounds.len(),
        requests,
        wall_ms: wall * 1_000.0,
        requests_per_sec: if wall > 0.0 {
            requests as f64 / wall
        } else {
            0.0
        },
        lat_p50_us: us(hist.value_at_quantile(0.50)),
        lat_p99_us: us(hist.value_at_quantile(0.99)),
        lat_p999_us: us(hist.value_at_quantile(0.999)),
        lat_max_us: us(hist.max()),
        lat_mean_us: hist.mean() / 1_000.0,
        errors: rounds.iter().map(|r| r.load.errors).sum(),
        failed_instances: rounds.iter().map(|r| r.failed_instances).sum(),
        instances: rounds.iter().map(|r| r.instances).sum(),
    }
}

enum Started {
    Shoal(ShoalEchoServer),
    Native(NativeEchoServer),
    Green(GreenEchoServer),
}

impl Started {
    fn local_addr(&self) -> std::net::SocketAddr {
        match self {
            Started::Shoal(s) => s.local_addr(),
            Started::Native(s) => s.local_addr(),
            Started::Green(s) => s.local_addr(),
        }
    }

    fn live_connections(&self) -> usize {
        match self {
            Started::Shoal(s) => s.live_connections(),
            Started::Native(s) => s.live_connections(),
            Started::Green(s) => s.live_connections(),
        }
    }

    fn instance_counts(&self) -> (u64, u64) {
        match self {
            Started::Shoal(s) => (s.failed_instances(), s.instances()),
            Started::Native(_) | Started::Green(_) => (0, 0),
        }
    }

    fn stop(self) -> Result<(), EchoError> {
        match self {
            Started::Shoal(s) => s.stop(Duration::ZERO),
            Started::Native(s) => s.stop(),
            Started::Green(s) => s.stop(),
        }
    }
}
