//! The compute kernels of `../shared/workloads/compute.wat` on Shoal, as
//! JSON lines in the Wasmtime peer's `compute` format: a thin shell over
//! [`shoal::bench::compute::run`] (what `shoal stress compute --json` runs),
//! kept for `benches/compare_wasmtime.sh`.
//!
//! ```text
//! cargo run --release --example compute_report -- [-r REPS] [--epoch true,false]
//! ```
//!
//! Memories are `Guarded` (no bounds checks, as the peer's). The epoch
//! ticks once a minute here, so with epoch checks on the checks
//! run but (almost) never fire: what is measured is their cost alone, as
//! the script runs the peer with a 5 s tick. `epoch_yields_per_call` shows
//! whether a tick landed.

use shoal::bench::compute::{self, ComputeParams};
use shoal::bench::StressOptions;
use shoal::MemoryStrategy;
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: compute_report [-r REPS] [--epoch true,false]");
    std::process::exit(2)
}

fn main() {
    let mut params = ComputeParams::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "-r" | "--reps" => params.reps = value.parse().unwrap_or_else(|_| usage()),
            "--epoch" => {
                params.epoch = value
                    .split(',')
                    .map(|m| m.parse::<bool>().unwrap_or_else(|_| usage()))
                    .collect()
            }
            _ => usage(),
        }
    }
    let opts = StressOptions {
        tick: Duration::from_secs(60),
        memory_strategy: MemoryStrategy::Guarded,
        ..StressOptions::default()
    };
    match compute::run(&opts, &params) {
        Ok(report) => print!("{}", report.to_json_lines()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    }
}
