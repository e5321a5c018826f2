//! What can stop a stress workload.

use super::limits::LimitHit;
use std::path::PathBuf;

/// A stress workload could not complete.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// The options cannot be run (a zero count, a bad list).
    #[error("invalid options: {0}")]
    Config(String),
    /// A workload's `.wat` file could not be read.
    #[error(
        "cannot read the workload {}: {source} (the shared workloads live in \
         ../shared/workloads next to the repository; point --workloads-dir at them)",
        path.display()
    )]
    Workload {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The workload did not compile or link.
    #[error("cannot prepare {what}: {message}")]
    Guest {
        /// Which module or step.
        what: String,
        /// The error.
        message: String,
    },
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] crate::runtime::BuildError),
    /// A limit stopped the run (see [`LimitHit`]).
    #[error(transparent)]
    Limit(#[from] LimitHit),
    /// An instance failed (a trap, a wrong result): a bug, not a limit.
    #[error("{failed} instance(s) failed; first error: {first}")]
    Instances {
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
}

impl StressError {
    /// A [`StressError::Guest`] from any displayable error.
    pub fn guest(what: &str, e: impl std::fmt::Display) -> StressError {
        StressError::Guest {
            what: what.to_string(),
            message: e.to_string(),
        }
    }
}
