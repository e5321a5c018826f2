//! The figures of an echo benchmark run: one [`EchoRow`] per server and
//! connection count, gathered in an [`EchoReport`] that prints as a table
//! or as JSON lines.

use std::fmt::{self, Write as _};

/// The figures of one server at one connection count.
#[derive(Clone, Debug, PartialEq)]
pub struct EchoRow {
    /// `"shoal"`, `"native-mio"` or `"shoal-no-wasm"`.
    pub server: &'static str,
    /// Concurrent client connections.
    pub connections: usize,
    /// Bytes per request (and per echo).
    pub payload_bytes: usize,
    /// Server threads (Shoal workers, or native event loops).
    pub workers: usize,
    /// Client threads.
    pub client_threads: usize,
    /// Measured rounds added up in this row.
    pub rounds: usize,
    /// Requests completed within the measured windows.
    pub requests: u64,
    /// Length of the measured windows together, in milliseconds.
    pub wall_ms: f64,
    /// `requests / wall`.
    pub requests_per_sec: f64,
    /// Latency percentiles and extremes, in microseconds (first byte
    /// written to last byte of the echo read).
    pub lat_p50_us: f64,
    /// 99th percentile latency, µs.
    pub lat_p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub lat_p999_us: f64,
    /// Largest latency, µs.
    pub lat_max_us: f64,
    /// Mean latency, µs.
    pub lat_mean_us: f64,
    /// Connections the server closed or reset early (should be 0).
    pub errors: u64,
    /// Shoal only: instances that trapped (should be 0).
    pub failed_instances: u64,
    /// Shoal: instances created (one per connection); native: 0.
    pub instances: u64,
}

impl EchoRow {
    /// The row as one JSON object (no trailing newline), with the field
    /// names of the peer harnesses (`workload`, `runtime`, `lat_p99_us`, ...).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"workload\":\"echo\"");
        let _ = write!(
            s,
            ",\"runtime\":\"{}\",\"connections\":{},\"payload_bytes\":{},\"workers\":{},\
             \"client_threads\":{},\"rounds\":{},\"requests\":{},\"wall_ms\":{:.3},\"requests_per_sec\":{:.1},\
             \"lat_p50_us\":{:.2},\"lat_p99_us\":{:.2},\"lat_p999_us\":{:.2},\"lat_max_us\":{:.2},\
             \"lat_mean_us\":{:.2},\"errors\":{},\"failed_instances\":{},\"instances\":{}}}",
            self.server,
            self.connections,
            self.payload_bytes,
            self.workers,
            self.client_threads,
            self.rounds,
            self.requests,
            self.wall_ms,
            self.requests_per_sec,
            self.lat_p50_us,
            self.lat_p99_us,
            self.lat_p999_us,
            self.lat_max_us,
            self.lat_mean_us,
            self.errors,
            self.failed_instances,
            self.instances
        );
        s
    }
}

/// Every row of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EchoReport {
    /// In the order they were measured.
    pub rows: Vec<EchoRow>,
}

impl EchoReport {
    /// The row of `server` at `connections`, if measured.
    pub fn row(&self, server: &str, connections: usize) -> Option<&EchoRow> {
        self.rows
            .iter()
            .find(|r| r.server == server && r.connections == connections)
    }

    /// Shoal's throughput as a fraction of the native server's at
    /// `connections`, if both were measured.
    pub fn throughput_ratio(&self, connections: usize) -> Option<f64> {
        self.ratio_to_native(super::SHOAL, connections)
    }

    /// The throughput of the rows named `server` as a fraction of the
    /// native server's at `connections`, if both were measured.
    pub fn ratio_to_native(&self, server: &str, connections: usize) -> Option<f64> {
        let row = self.row(server, connections)?;
        let native = self.row(super::NATIVE, connections)?;
        (native.requests_per_sec > 0.0).then(|| row.requests_per_sec / native.requests_per_sec)
    }

    /// One JSON object per line.
    pub fn to_json_lines(&self) -> String {
        self.rows.iter().map(|r| r.to_json() + "\n").collect()
    }
}

/// A readable table, with each other server's throughput as a share of
/// native's.
impl fmt::Display for EchoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<13} {:>7} {:>12} {:>13} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
            "server",
            "conns",
            "requests",
            "requests/s",
            "p50 us",
            "p99 us",
            "p999 us",
            "max us",
            "errors",
            "vs native"
        )?;
        for row in &self.rows {
            let ratio = match self.ratio_to_native(row.server, row.connections) {
                Some(r) if row.server != super::NATIVE => format!("{:.1}%", r * 100.0),
                _ => String::new(),
            };
            writeln!(
                f,
                "{:<13} {:>7} {:>12} {:>13.0} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>7} {:>8}",
                row.server,
                row.connections,
                row.requests,
                row.requests_per_sec,
                row.lat_p50_us,
                row.lat_p99_us,
                row.lat_p999_us,
                row.lat_max_us,
                row.errors + row.failed_instances,
                ratio
            )?;
        }
        Ok(())
    }
}
