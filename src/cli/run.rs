//! `shoal run`: runs one WebAssembly module, in the manner of `wasmtime run`.
//!
//! ```text
//! shoal run [OPTIONS] MODULE.wasm|.wat [ARGS...]
//! shoal run --dir ./data::/data --env MODE=fast prog.wasm input.txt
//! shoal run --invoke add math.wat 1 2
//! shoal run --budget 2s --max-memory 64MiB untrusted.wasm
//! ```
//!
//! A WASI command's `_start` runs with ARGS as its arguments (`argv[0]` is
//! MODULE as written), the process's stdin, stdout and stderr, the `--env`
//! variables and the `--dir` directories. With `--invoke FUNC`, the export
//! FUNC is called instead, with ARGS parsed by its parameter types
//! (`invoke.rs`), and its results are printed one per line; a reactor's
//! `_initialize` runs first if the module exports one.
//!
//! The exit code is the guest's own, or one of those in `exit.rs` (134 for
//! a trap, 124 for a spent budget, 1 for an error before the guest ran).
//!
//! # Where the guest runs
//!
//! On a one-worker [`Runtime`], as a green thread of it, exactly like an
//! instance of `shoal serve` or of an embedder: so `--budget` and
//! `--timeslice` work as they do everywhere (the runtime's epoch ticker
//! moves the deadline, the preemption callback counts the instance's CPU
//! time and ends it with a `Timeout` trap when the budget is spent), a
//! blocking WASI call (stdin, `poll_oneoff`, sockets) parks the green
//! thread, and a trap is caught on the green thread and comes back through
//! the join handle. The main thread only waits for that handle. Running on
//! the main thread instead would need a second copy of that budget and
//! deadline logic; one worker costs one extra thread and a microsecond
//! or two at start.

use super::exit::{guest_exit, CliError};
use super::invoke;
use super::options::{load_module, LimitOptions, WasiOptions};
use clap::Args;
use shoal::runtime::{Finished, RunError, ShutdownMode};
use shoal::wasi::{WasiCtx, WasiCtxBuilder};
use shoal::{Linker, MemoryStrategy, TrapKind, Val};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `shoal run` options.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Call this export instead of `_start`, with ARGS as its arguments
    /// (parsed by its parameter types), and print its results.
    #[arg(long, value_name = "FUNC")]
    pub invoke: Option<String>,

    #[command(flatten)]
    pub wasi: WasiOptions,

    #[command(flatten)]
    pub limits: LimitOptions,

    /// The module: a binary `.wasm` or a text `.wat` file.
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,

    /// Arguments of the program (its argv after argv[0]), or of the
    /// `--invoke` function.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// Runs the module; see the module docs.
pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let runtime = args
        .limits
        .runtime_builder(MemoryStrategy::Guarded)
        .workers(1)
        .build()?;
    let module = load_module(&runtime, &args.module)?;
    let mut linker = Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).map_err(|source| {
        CliError::Spawn {
            path: args.module.clone(),
            source: shoal::runtime::SpawnError::Link(source),
        }
    })?;
    let contract = args.limits.contract(&runtime);
    let program = args.module.display().to_string();
    let mut ctx = WasiCtxBuilder::default()
        .arg(program.clone())
        .inherit_stdio();
    if args.invoke.is_none() {
        ctx = ctx.args(args.args.iter().cloned());
    }
    let ctx = args.wasi.apply(ctx).build()?;
    let spawn_error = |source| CliError::Spawn {
        path: args.module.clone(),
        source,
    };

    let outcome = match &args.invoke {
        None => {
            if !invoke::has_function(&module, "_start") {
                return Err(CliError::Usage(format!(
                    "`{program}` has no `_start` export, so it is not a WASI command: \
                     choose a function to call with --invoke FUNC ({})",
                    invoke::function_exports(&module)
                )));
            }
            let template = runtime
                .template_with_contract(&module, &linker, "_start", contract)
                .map_err(spawn_error)?;
            template
                .spawn_with(ctx, Vec::new())
                .map_err(spawn_error)?
                .join()
        }
        Some(func) => {
            let ty = invoke::export_type(&module, func)?;
            let params = invoke::parse_args(func, &ty, &args.args)?;
            if func != "_initialize" && invoke::has_function(&module, "_initialize") {
                // A reactor: `_initialize` first, then FUNC in the same
                // instance, still on its green thread and under its budget.
                let template = runtime
                    .template_with_contract(&module, &linker, "_initialize", contract)
                    .map_err(spawn_error)?;
                let func = func.clone();
                template
                    .spawn_then(ctx, Vec::new(), move |finished| {
                        call_after(finished, &func, &params)
                    })
                    .map_err(spawn_error)?
                    .join()
                    .and_then(|r| r)
            } else {
                let template = runtime
                    .template_with_contract(&module, &linker, func, contract)
                    .map_err(spawn_error)?;
                template
                    .spawn_with(ctx, params)
                    .map_err(spawn_error)?
                    .join()
            }
        }
    };
    let _ = runtime.shutdown(ShutdownMode::Cancel);
    let _ = std::io::stderr().flush();

    match outcome {
        Ok(results) => {
            if args.invoke.is_some() {
                let mut out = std::io::stdout().lock();
                for val in &results {
                    writeln!(out, "{}", invoke::format_val(val))
                        .map_err(CliError::io("cannot write the results"))?;
                }
                out.flush()
                    .map_err(CliError::io("cannot write the results"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let _ = std::io::stdout().flush();
            match error {
                RunError::Trap(trap) => match trap.kind {
                    TrapKind::Exit(code) => Ok(guest_exit(code)),
                    TrapKind::Timeout => Err(CliError::Timeout {
                        path: args.module,
                        budget: args.limits.budget_text(),
                        trap,
                    }),
                    _ => Err(CliError::Trap {
                        path: args.module,
                        trap,
                    }),
                },
                source => Err(CliError::Run {
                    path: args.module,
                    source,
                }),
            }
        }
    }
}

/// After `_initialize` returned: calls `func` with `params` in the same
/// instance.
fn call_after(
    finished: Finished<'_, WasiCtx, Vec<Val>>,
    func: &str,
    params: &[Val],
) -> Result<Vec<Val>, RunError> {
    finished.result?;
    let instance = finished.instance.ok_or_else(|| {
        RunError::Instance(shoal::Error::Export {
            name: func.to_string(),
            message: "the instance was not created".into(),
        })
    })?;
    let f = instance.get_func(&*finished.store, func).ok_or_else(|| {
        RunError::Instance(shoal::Error::Export {
            name: func.to_string(),
            message: "the instance has no function by this name".into(),
        })
    })?;
    f.call(finished.store, params).map_err(RunError::from)
}
