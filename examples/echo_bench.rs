//! The echo benchmark from the command line: requests per second and
//! latency of a TCP echo server with one wasm instance per connection,
//! beside a native mio echo server, in the same run.
//!
//! ```text
//! cargo run --release --example echo_bench -- --connections 1000 --seconds 5
//! cargo run --release --example echo_bench -- --connections 100,1000,10000 --json
//! ```
//!
//! It is a thin shell over [`shoal::bench::echo::run`], which `shoal stress
//! echo` calls too.

use clap::Parser;
use shoal::bench::echo::{self, EchoConfig, EchoServer};
use std::time::Duration;

/// Echo benchmark: Shoal (one wasm instance per connection) vs native mio.
#[derive(Parser, Debug)]
struct Args {
    /// Concurrent connections; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1_000, 10_000])]
    connections: Vec<usize>,
    /// Measured seconds per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before each row.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Bytes per request.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Server threads for both servers [default: half the cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Client threads [default: half the cores].
    #[arg(long)]
    client_threads: Option<usize>,
    /// Rounds per row: the servers take turns round by round, and each
    /// row adds its rounds up (for noisy machines).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Which servers: shoal, native, both, no-wasm (diagnostic: Shoal's
    /// runtime with a Rust echo loop per connection instead of wasm) or all.
    #[arg(long, default_value = "both", value_parser = echo::server_selection_parser())]
    server: String,
    /// Shoal's epoch tick (and timeslice), e.g. 1ms [default: 250us].
    #[arg(long, value_parser = parse_duration)]
    epoch_tick: Option<Duration>,
    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("`{s}`: write a number and us, ms or s"));
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    seconds(value * scale)
}

fn seconds(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("bad duration {s}: {e}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let servers = EchoServer::selection(&args.server).unwrap_or_default();
    let config = EchoConfig {
        connections: args.connections,
        servers,
        duration: seconds(args.seconds)?,
        warmup: seconds(args.warmup)?,
        payload: args.payload,
        workers: args.workers,
        client_threads: args
            .client_threads
            .unwrap_or(EchoConfig::default().client_threads),
        epoch_tick: args.epoch_tick,
        rounds: args.rounds,
        ..EchoConfig::default()
    };
    let json = args.json;
    let report = echo::run_with(&config, |row| {
        if json {
            println!("{}", row.to_json());
        } else {
            eprintln!(
                "{:>10} at {:>6} connections: {:>9.0} requests/s, p99 {:.1} us",
                row.server, row.connections, row.requests_per_sec, row.lat_p99_us
            );
        }
    })?;
    if !json {
        print!("{report}");
    }
    Ok(())
}
