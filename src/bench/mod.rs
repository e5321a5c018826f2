//! Benchmarks that `shoal stress` runs, as library functions: each takes a
//! configuration and returns a report (rows of figures, a readable table,
//! JSON lines), so that the CLI, the examples and the tests share one
//! implementation.
//!
//! - [`echo`]: requests per second and latency of a TCP echo server with
//!   one wasm instance per connection, beside a native mio echo server.
//! - The workloads of the Wasmtime peer (`../shared/peers/wasmtime-peer`),
//!   with its parameters and JSON field names: [`spawn`] (per-request
//!   instances, throughput and latency), [`yields`] (switches per second),
//!   [`preempt`] (spinning instances: fairness and gaps), [`idle`] (resident
//!   memory per parked instance, up to a million), [`compute`] (the kernels,
//!   epoch checks on and off). Their shared pieces: [`options`] (the common
//!   options, the runtime and the JSON header), [`report`] (JSON lines and
//!   tables), [`plot`] (SVG charts), [`limits`] (which limit stops a run and
//!   how to raise it), [`progress`] (the progress bar), [`sysinfo`] (RSS,
//!   mappings, kernel limits), [`machine_noise`] (how steady the CPUs are:
//!   the floor under `preempt`'s CV), [`error`].

pub mod compute;
mod crowd;
pub mod echo;
pub mod error;
pub mod idle;
pub mod limits;
pub mod machine_noise;
pub mod options;
pub mod plot;
pub mod preempt;
pub mod progress;
pub mod report;
pub mod spawn;
pub mod sysinfo;
pub mod yields;

pub use error::StressError;
pub use options::StressOptions;
pub use report::{Record, Report, Value};
