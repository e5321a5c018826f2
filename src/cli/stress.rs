//! `shoal stress WORKLOAD [OPTIONS]`: the peer workloads (`spawn`,
//! `yield`, `preempt`, `idle`, `compute`) and `echo`, with the Wasmtime
//! peer's parameter names; a thin shell over `shoal::bench`.
//!
//! Output: a readable table on stdout, or with `--json` one JSON object per
//! measurement (the peer's field names, each line starting with
//! `workload`, `runtime`, `version`, ...). A progress bar goes to stderr
//! when a run lasts more than a second, unless `--json` is given or stderr
//! is not a terminal. `--plot FILE.svg` draws the latency distribution
//! (`spawn`) or the fairness spread (`preempt`).
//!
//! A run that a limit stops (memory, `vm.max_map_count`, address space, a
//! pool) prints which limit, how far it got and how to raise it (as a JSON
//! line too with `--json`), and exits with status 3.

use super::exit::CliError;
use super::options::{parse_duration, StrategyArg};
use clap::{Args, Subcommand};
use shoal::bench::compute::ComputeParams;
use shoal::bench::echo::{self, EchoConfig, EchoServer};
use shoal::bench::idle::IdleParams;
use shoal::bench::preempt::PreemptParams;
use shoal::bench::spawn::SpawnParams;
use shoal::bench::yields::YieldParams;
use shoal::bench::{compute, idle, preempt, spawn, yields};
use shoal::bench::{Report, StressError, StressOptions};
use shoal::MemoryStrategy;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status of a run stopped by a limit.
pub const EXIT_LIMIT: u8 = 3;

/// `shoal stress`.
#[derive(Args, Debug)]
pub struct StressArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    workload: Workload,
}

/// Options of every workload (before or after its name).
#[derive(Args, Debug)]
struct GlobalArgs {
    /// Worker threads [default: one per core].
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Linear memory strategy: `checked` (explicit bounds checks, memories
    /// packed densely: for many instances) or `guarded` (no bounds checks,
    /// 8 GiB of address space each: up to ~15,000 live) [default: guarded
    /// for compute (one instance, as the peer's), checked for the others].
    #[arg(long, global = true, value_name = "STRATEGY")]
    memory_strategy: Option<StrategyArg>,
    /// One JSON object per measurement instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Epoch tick in microseconds [default: 250].
    #[arg(long, global = true, default_value_t = 250)]
    tick_us: u64,
    /// CPU time an instance runs before it yields, e.g. `1ms` [default: one tick].
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    timeslice: Option<Duration>,
    /// Draw a chart as SVG: the latency distribution (spawn) or the
    /// fairness spread (preempt).
    #[arg(long, global = true, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Where the shared .wat workloads are [default: ../shared/workloads
    /// beside the source tree].
    #[arg(long, global = true, value_name = "DIR")]
    workloads_dir: Option<PathBuf>,
    /// Engine pool limit (instances, memories, tables alive at once)
    /// [default: sized from the run].
    #[arg(long, global = true, value_name = "N")]
    pool_max_instances: Option<usize>,
    /// Green threads alive at once per worker [default: sized from the run].
    #[arg(long, global = true, value_name = "N")]
    max_instances_per_worker: Option<usize>,
    /// Never draw the progress bar.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Keep each worker on the CPU the kernel gives it, instead of moving
    /// the workers through the CPUs every 100 ms (which keeps a slow CPU
    /// from slowing one worker's instances only).
    #[arg(long, global = true)]
    no_rotation: bool,
}

/// The workloads.
#[derive(Subcommand, Debug)]
enum Workload {
    /// Per-request instances of spawn.wat (instantiate, call, drop), N at
    /// each concurrency C: instances/s and latency percentiles.
    Spawn {
        /// Requests per concurrency level.
        #[arg(short, long, default_value_t = 100_000)]
        n: usize,
        /// Concurrency levels, comma separated; one line each.
        #[arg(short, long, value_delimiter = ',', default_values_t = vec![1usize, 256])]
        concurrency: Vec<usize>,
        /// Unmeasured warm-up requests before each level.
        #[arg(long, default_value_t = 2_000)]
        warmup: usize,
    },
    /// N instances of yield.wat, each calling the host env.yield K times:
    /// switches/s.
    Yield {
        /// Instances.
        #[arg(short, long, default_value_t = 10_000)]
        n: usize,
        /// Yields per instance.
        #[arg(short, long, default_value_t = 100)]
        k: u32,
    },
    /// N instances of preempt.wat spinning for T seconds: progress,
    /// fairness, worst gap between timeslices.
    Preempt {
        /// Instances.
        #[arg(short, long, default_value_t = 1_000)]
        n: usize,
        /// Seconds to spin.
        #[arg(short, long, default_value_t = 5.0)]
        t: f64,
    },
    /// N instances of idle.wat parked in a host call: RSS per parked
    /// instance (up to a million with --memory-strategy checked).
    Idle {
        /// Instances parked at once.
        #[arg(short, long, visible_alias = "instances", default_value_t = 10_000)]
        n: usize,
        /// Instances through the same path before the baseline.
        #[arg(long, default_value_t = 64)]
        warmup: usize,
    },
    /// The kernels of compute.wat, epoch checks on and off.
    Compute {
        /// Calls per kernel.
        #[arg(short, long, default_value_t = 11)]
        reps: usize,
        /// fib's argument.
        #[arg(long, default_value_t = 30)]
        fib_n: u32,
        /// sieve's argument.
        #[arg(long, default_value_t = 10_000_000)]
        sieve_n: u32,
        /// matmul's matrix size.
        #[arg(long, default_value_t = 200)]
        matmul_n: u32,
        /// Epoch modes, in this order.
        #[arg(long, value_delimiter = ',', default_values_t = vec![true, false])]
        epoch: Vec<bool>,
    },
    /// TCP echo: one wasm instance per connection, beside a native mio
    /// server (shoal::bench::echo).
    Echo {
        /// Concurrent connections; a comma-separated list runs each in turn.
        #[arg(long, value_delimiter = ',', default_values_t = [100, 1_000, 10_000])]
        connections: Vec<usize>,
        /// Measured time per row.
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        duration: Duration,
        /// Unmeasured time before each row.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        warmup: Duration,
        /// Bytes per request.
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Client threads.
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
        /// Which servers: shoal, native, both, no-wasm (diagnostic: Shoal's
        /// runtime with a Rust echo loop per connection instead of wasm) or
        /// all.
        #[arg(long, default_value = "both", value_parser = echo::server_selection_parser())]
        server: String,
    },
}

impl Workload {
    fn name(&self) -> &'static str {
        match self {
            Workload::Spawn { .. } => "spawn",
            Workload::Yield { .. } => "yield",
            Workload::Preempt { .. } => "preempt",
            Workload::Idle { .. } => "idle",
            Workload::Compute { .. } => "compute",
            Workload::Echo { .. } => "echo",
        }
    }
}

/// Runs `shoal stress`.
pub fn stress(args: StressArgs) -> Result<ExitCode, CliError> {
    let g = &args.global;
    let name = args.workload.name();
    if g.plot.is_some() && !matches!(name, "spawn" | "preempt") {
        return Err(CliError::Usage(format!(
            "--plot draws spawn's latency or preempt's fairness; {name} has no chart"
        )));
    }
    if !(10..=60_000_000).contains(&g.tick_us) {
        return Err(CliError::Usage(
            "--tick-us must be between 10 and 60,000,000".into(),
        ));
    }
    let opts = StressOptions {
        workers: g.workers,
        memory_strategy: match (g.memory_strategy, name) {
            (Some(s), _) => s.into(),
            (None, "compute") => MemoryStrategy::Guarded,
            (None, _) => MemoryStrategy::Checked,
        },
        tick: Duration::from_micros(g.tick_us),
        timeslice: g.timeslice,
        workloads_dir: g.workloads_dir.clone(),
        pool_max_instances: g.pool_max_instances,
        max_instances_per_worker: g.max_instances_per_worker,
        progress: !g.json && !g.no_progress && std::io::stderr().is_terminal(),
        rotate_workers: !g.no_rotation,
    };
    let outcome: Result<(Report, Option<String>), StressError> = match args.workload {
        Workload::Spawn {
            n,
            concurrency,
            warmup,
        } => spawn::run(
            &opts,
            &SpawnParams {
                n,
                concurrency,
                warmup,
            },
        )
        .map(|r| {
            let chart = r.chart();
            (r.report, Some(chart))
        }),
        Workload::Yield { n, k } => yields::run(&opts, &YieldParams { n, k }).map(|r| (r, None)),
        Workload::Preempt { n, t } => preempt::run(&opts, &PreemptParams { n, t }).map(|r| {
            let chart = r.chart();
            (r.report, Some(chart))
        }),
        Workload::Idle { n, warmup } => {
            idle::run(&opts, &IdleParams { n, warmup }).map(|r| (r, None))
        }
        Workload::Compute {
            reps,
            fib_n,
            sieve_n,
            matmul_n,
            epoch,
        } => compute::run(
            &opts,
            &ComputeParams {
                reps,
                fib_n,
                sieve_n,
                matmul_n,
                epoch,
            },
        )
        .map(|r| (r, None)),
        Workload::Echo {
            connections,
            duration,
            warmup,
            payload,
            client_threads,
            server,
        } => {
            return run_echo(
                g,
                EchoConfig {
                    connections,
                    servers: EchoServer::selection(&server).unwrap_or_default(),
                    duration,
                    warmup,
                    payload,
                    workers: g.workers,
                    client_threads,
                    memory_strategy: opts.memory_strategy,
                    epoch_tick: Some(opts.tick),
                    ..EchoConfig::default()
                },
            )
        }
    };
    match outcome {
        Ok((report, chart)) => {
            if g.json {
                print!("{}", report.to_json_lines());
            } else {
                print!("{}", report.to_table());
            }
            if let (Some(path), Some(svg)) = (&g.plot, chart) {
                std::fs::write(path, svg).map_err(|e| {
                    CliError::Usage(format!("cannot write the chart to {}: {e}", path.display()))
                })?;
                if !g.json {
                    println!("  chart: {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(StressError::Limit(hit)) => {
            if g.json {
                let mut line = opts.header(name, true);
                line.extend(hit.record());
                println!("{}", line.to_json());
            }
            eprintln!("error: {hit}");
            Ok(ExitCode::from(EXIT_LIMIT))
        }
        Err(StressError::Config(message)) => Err(CliError::Usage(message)),
        Err(e) => {
            if g.json {
                let line = opts.header(name, true).with("error", e.to_string());
                println!("{}", line.to_json());
            }
            eprintln!("error: {e}");
            Ok(ExitCode::from(super::exit::EXIT_ERROR))
        }
    }
}

/// `shoal stress echo`: the echo benchmark, rows printed as they come.
fn run_echo(g: &GlobalArgs, config: EchoConfig) -> Result<ExitCode, CliError> {
    let json = g.json;
    let result = echo::run_with(&config, |row| {
        if json {
            println!("{}", row.to_json());
        } else if std::io::stderr().is_terminal() && !g.no_progress {
            eprintln!(
                "{:>10} at {:>6} connections: {:>9.0} requests/s, p99 {:.1} us",
                row.server, row.connections, row.requests_per_sec, row.lat_p99_us
            );
        }
    });
    match result {
        Ok(report) => {
            if !json {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(echo::EchoError::Config(message)) => Err(CliError::Usage(message)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(super::exit::EXIT_ERROR))
        }
    }
}
