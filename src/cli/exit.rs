//! Exit codes of the `shoal` command, and the errors that lead to them.
//!
//! | code | meaning |
//! |---|---|
//! | the guest's | `shoal run`: the guest's exit code (`proc_exit`, or 0 when `_start` returns); the OS keeps its low 8 bits |
//! | 0 | success; `shoal serve` stopped by SIGINT/SIGTERM |
//! | 1 | an error before or around the guest: unreadable or invalid module, missing import or export, contract violation, bad preopen, runtime failure |
//! | 2 | usage error: unknown or malformed option (reported by clap), wrong `--invoke` arguments |
//! | 124 | the guest spent its CPU budget (`--budget`), as `timeout(1)` |
//! | 134 | the guest trapped (128 + SIGABRT, as `wasmtime run`); the trap and its wasm backtrace are on stderr |

use shoal::runtime::{BuildError, RunError, SpawnError};
use shoal::wasi::WasiError;
use shoal::Trap;
use std::path::PathBuf;
use std::process::ExitCode;

/// An error before or around the guest.
pub const EXIT_ERROR: u8 = 1;
/// A usage error.
pub const EXIT_USAGE: u8 = 2;
/// The guest spent its CPU budget.
pub const EXIT_TIMEOUT: u8 = 124;
/// The guest trapped.
pub const EXIT_TRAP: u8 = 134;

/// Why a command failed; [`exit_code`](CliError::exit_code) maps it to the
/// table in the module docs.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments that parse but do not fit (e.g. `--invoke` arguments).
    #[error("{0}")]
    Usage(String),
    /// The module file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    ReadModule {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The module does not parse, validate or compile (the compiler's
    /// message, on one line).
    #[error("`{path}` is not a valid WebAssembly module: {message}")]
    Compile { path: PathBuf, message: String },
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] BuildError),
    /// The module cannot be instantiated as asked (imports, exports,
    /// contract).
    #[error("cannot run `{path}`: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: SpawnError,
    },
    /// The WASI context could not be set up.
    #[error("cannot set up WASI: {0}")]
    Wasi(#[from] WasiError),
    /// The guest trapped.
    #[error("`{path}` trapped: {trap}")]
    Trap { path: PathBuf, trap: Trap },
    /// The guest spent its CPU budget.
    #[error("`{path}` ran out of CPU budget ({budget}): {trap}")]
    Timeout {
        path: PathBuf,
        budget: String,
        trap: Trap,
    },
    /// The guest did not run to its end for another reason.
    #[error("`{path}` failed: {source}")]
    Run {
        path: PathBuf,
        #[source]
        source: RunError,
    },
    /// A system call of the command itself failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Trap { .. } => EXIT_TRAP,
            CliError::Timeout { .. } => EXIT_TIMEOUT,
            _ => EXIT_ERROR,
        }
    }

    /// Prints the error and its causes on stderr and returns its exit code.
    pub fn report(&self) -> ExitCode {
        let mut message = format!("error: {self}");
        let mut source = std::error::Error::source(self);
        // Sources already in the message are not repeated.
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(&format!("\n  caused by: {text}"));
            }
            source = cause.source();
        }
        eprintln!("{message}");
        ExitCode::from(self.exit_code())
    }

    /// An [`Io`](CliError::Io) error maker, for `map_err`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }
}

/// The exit code for a guest exit code: its low 8 bits, as the OS would
/// keep them.
pub fn guest_exit(code: i32) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}
