//! The `shoal` command line: one file per subcommand, plus what they share.
//!
//! - `run.rs`: `shoal run`, one module, like `wasmtime run`;
//! - `serve.rs`: `shoal serve`, one instance per TCP connection;
//! - `stress.rs`: `shoal stress`, the benchmark workloads of `shoal::bench`;
//! - `options.rs`: the limit and WASI options `run` and `serve` share, and
//!   their value parsers;
//! - `invoke.rs`: `--invoke` argument parsing and result printing;
//! - `signals.rs`: SIGINT/SIGTERM for graceful shutdown;
//! - `exit.rs`: exit codes and errors.
//!
//! A subcommand is a variant of [`Command`] holding its `clap::Args`
//! struct, and a file here with a function from those args to
//! `Result<ExitCode, CliError>`; [`main`] dispatches. Benchmarks live in
//! the library (`shoal::bench`), so a subcommand that runs them is a thin
//! shell like the others.

mod exit;
mod invoke;
mod options;
mod run;
mod serve;
mod signals;
mod stress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Shoal: WebAssembly instances as preemptible green threads.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about, long_about = None)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a WebAssembly module (a WASI command, or one export with --invoke).
    #[command(after_help = EXIT_CODES)]
    Run(run::RunArgs),
    /// Serve TCP connections, each with a fresh instance of a module.
    #[command(after_help = EXIT_CODES)]
    Serve(serve::ServeArgs),
    /// Stress benchmarks: spawn, yield, preempt, idle, compute, echo.
    Stress(stress::StressArgs),
}

const EXIT_CODES: &str = "\
Exit codes:
  N    run: the guest's exit code (proc_exit, or 0 when _start returns)
  0    success; serve: stopped by SIGINT/SIGTERM
  1    error before or around the guest (unreadable or invalid module,
       missing import or export, contract violation, bad --dir, ...)
  2    usage error (bad option or --invoke arguments)
  3    stress: a limit (memory, mappings, a pool) stopped the run
  124  the guest spent its CPU budget (--budget)
  134  the guest trapped (the trap and its wasm backtrace are on stderr)";

/// Parses the command line, runs the subcommand, and turns its outcome
/// into the process's exit code (clap exits by itself with 2 on a usage
/// error, 0 for --help and --version).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Stress(args) => stress::stress(args),
    };
    result.unwrap_or_else(|error| error.report())
}
