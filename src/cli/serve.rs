//! `shoal serve`: a TCP server where every connection is its own instance.
//!
//! ```text
//! shoal serve --listen ADDR [OPTIONS] MODULE.wasm|.wat [ARGS...]
//! shoal serve --listen 127.0.0.1:7000 examples/echo.wat
//! shoal serve --listen 0.0.0.0:8080 --budget 100ms --max-memory 1MiB --max-connections 50000 handler.wasm
//! ```
//!
//! For every accepted connection a fresh instance of MODULE is created and
//! its `_start` (or the `--invoke` export, with ARGS as its arguments) is
//! called; the connection is a WASI socket descriptor of the instance, the
//! first after the `--dir` preopens: fd 3 when there are none. The guest
//! reads and writes it with `fd_read`/`fd_write` or
//! `sock_recv`/`sock_send`; the connection is closed when the instance
//! ends. The instance's stdout and stderr are the server's, its stdin is
//! empty; `--env` and `--dir` apply to every instance.
//!
//! It is [`shoal::server::ConnectionServer`] on a [`Runtime`](shoal::runtime::Runtime)
//! (see its protocol): a client that closes abruptly, sends nothing or
//! floods costs only its own instance; `--budget` and `--max-memory` bound
//! each instance, `--max-connections` the number alive at once (beyond it
//! a connection is closed as soon as it is accepted).
//!
//! # Shutdown
//!
//! On SIGINT or SIGTERM (`signals.rs`) the server stops accepting and
//! closes its listener, then waits up to `--grace` for the live
//! connections to end; a second signal, or the end of the grace period,
//! cancels the rest (each instance ends with a `Cancelled` trap at its
//! next wait or deadline). It then prints a summary and exits with 0; with
//! 1 if the accept loop failed.

use super::exit::CliError;
use super::invoke;
use super::options::{load_module, parse_duration, LimitOptions, WasiOptions};
use super::signals::ShutdownSignals;
use clap::Args;
use shoal::runtime::ShutdownMode;
use shoal::scheduler::net::TcpListener;
use shoal::server::{ConnectionOutcome, ConnectionServer, ServerStats};
use shoal::wasi::{Socket, WasiCtx, WasiCtxBuilder};
use shoal::{Linker, MemoryStrategy, TrapKind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `shoal serve` options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, e.g. `127.0.0.1:7000` (port 0 picks a free
    /// port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// Call this export for each connection instead of `_start`, with ARGS
    /// as its arguments (parsed by its parameter types).
    #[arg(long, value_name = "FUNC")]
    pub invoke: Option<String>,

    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Most connections (instances) alive at once; more are closed as soon
    /// as they are accepted [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// After SIGINT/SIGTERM, how long live connections may go on before
    /// they are cancelled.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Log every connection's end on stderr (not only failures).
    #[arg(short, long)]
    pub verbose: bool,

    #[command(flatten)]
    pub wasi: WasiOptions,

    #[command(flatten)]
    pub limits: LimitOptions,

    /// The module: a binary `.wasm` or a text `.wat` file.
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,

    /// Arguments of every instance (argv after argv[0]), or of the
    /// `--invoke` function.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// Serves until SIGINT or SIGTERM; see the module docs.
pub fn serve(args: ServeArgs) -> Result<ExitCode, CliError> {
    if args.workers == Some(0) {
        return Err(CliError::Usage("--workers must be at least 1".into()));
    }
    // Before any thread starts, so that every thread inherits the mask.
    let signals =
        ShutdownSignals::install().map_err(CliError::io("cannot set up signal handling"))?;
    let mut builder = args.limits.runtime_builder(MemoryStrategy::Checked);
    if let Some(workers) = args.workers {
        builder = builder.workers(workers);
    }
    let runtime = builder.build()?;
    let module = load_module(&runtime, &args.module)?;
    let program = args.module.display().to_string();
    let spawn_error = |source| CliError::Spawn {
        path: args.module.clone(),
        source,
    };

    let entry = args.invoke.clone().unwrap_or_else(|| "_start".to_string());
    let (argv, params) = match &args.invoke {
        None => {
            if !invoke::has_function(&module, "_start") {
                return Err(CliError::Usage(format!(
                    "`{program}` has no `_start` export: choose the function to call for each \
                     connection with --invoke FUNC ({})",
                    invoke::function_exports(&module)
                )));
            }
            (args.args.clone(), Vec::new())
        }
        Some(func) => {
            let ty = invoke::export_type(&module, func)?;
            (Vec::new(), invoke::parse_args(func, &ty, &args.args)?)
        }
    };
    let mut linker = Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx)
        .map_err(|e| spawn_error(shoal::runtime::SpawnError::Link(e)))?;
    let mut contract = args.limits.contract(&runtime);
    contract.max_instances = args.max_connections;
    let template = runtime
        .template_with_contract(&module, &linker, &entry, contract)
        .map_err(spawn_error)?;

    // Each instance's WASI context; built once here so that a bad --dir
    // is reported before the first connection.
    let wasi = args.wasi.clone();
    let guest_argv: Vec<String> = std::iter::once(program.clone()).chain(argv).collect();
    let context = move || {
        wasi.apply(
            WasiCtxBuilder::default()
                .args(guest_argv.iter().cloned())
                .inherit_stdout()
                .inherit_stderr(),
        )
    };
    drop(context().build()?);

    let listener = TcpListener::bind(args.listen.as_str())
        .map_err(CliError::io(format!("cannot listen on `{}`", args.listen)))?;
    let verbose = args.verbose;
    let mut server = ConnectionServer::builder(template, move |stream, _peer| {
        Ok(context().socket(Socket::from(stream)).build()?)
    })
    .args(params)
    .observer(move |peer, outcome| log_outcome(peer, outcome, verbose))
    .start(&runtime, listener)
    .map_err(CliError::io("cannot start the accept loop"))?;
    eprintln!(
        "shoal serve: listening on {} ({program}: one instance per connection, {} workers)",
        server.local_addr(),
        runtime.workers()
    );

    let reason = loop {
        if let Some(signal) = signals.wait(Duration::from_millis(100)) {
            break signal;
        }
        if server.accept_loop_ended() {
            break "the accept loop ended";
        }
    };
    let accept_result = server.stop_accepting();
    let live = server.stats().active;
    if live > 0 {
        eprintln!(
            "shoal serve: {reason}: stopped accepting; waiting up to {:?} for {live} live \
             connection(s) (signal again to stop now)",
            args.grace
        );
    }
    // A grace too large for the clock means no deadline.
    let deadline = Instant::now().checked_add(args.grace);
    while server.stats().active > 0 && deadline.is_none_or(|d| Instant::now() < d) {
        if signals.wait(Duration::from_millis(10)).is_some() {
            break;
        }
    }
    let cancelled = server.stats().active;
    print_summary(&server, reason, cancelled);
    drop(server);
    let _ = runtime.shutdown(ShutdownMode::Cancel);
    match accept_result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(source) => Err(CliError::Io {
            what: "the accept loop failed".into(),
            source,
        }),
    }
}

/// Prints the closing summary.
fn print_summary(server: &ConnectionServer, reason: &str, cancelled: u64) {
    let ServerStats {
        accepted,
        refused,
        exited_ok,
        exited_error,
        failed,
        ..
    } = server.stats();
    eprintln!(
        "shoal serve: stopped ({reason}): {accepted} connection(s) accepted; {exited_ok} ended \
         cleanly, {exited_error} with a non-zero exit code, {failed} trapped, {refused} refused, \
         {cancelled} cancelled at shutdown"
    );
}

/// The observer: failures always, every connection with `--verbose`.
fn log_outcome(peer: std::net::SocketAddr, outcome: &ConnectionOutcome<'_>, verbose: bool) {
    match outcome {
        ConnectionOutcome::Exited(code) if verbose => {
            eprintln!("shoal serve: {peer}: exited with code {code}");
        }
        ConnectionOutcome::Exited(_) => {}
        ConnectionOutcome::Failed(error) => match error.trap_kind() {
            // Cancellation happens only at shutdown, which is reported.
            Some(TrapKind::Cancelled) if !verbose => {}
            Some(TrapKind::Timeout) => {
                eprintln!("shoal serve: {peer}: ran out of CPU budget: {error}")
            }
            _ => eprintln!("shoal serve: {peer}: {error}"),
        },
    }
}
