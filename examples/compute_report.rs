//! Runs the compute kernels of `../shared/workloads/compute.wat` on Shoal and
//! prints one JSON line per (epoch mode, kernel) in the format of the
//! Wasmtime peer's `compute` subcommand (same field names: `workload`,
//! `runtime`, `epoch`, `kernel`, `arg`, `result`, `reps`, `min_ms`,
//! `median_ms`, `max_ms`), so the two outputs can be joined line by line.
//!
//! ```text
//! cargo run --release --example compute_report -- [-r REPS] [--epoch true,false]
//! ```
//!
//! Defaults: 11 reps, both modes (epoch on first, as the peer does). With
//! epoch checks on, nothing advances the epoch and the deadline is out of
//! reach, so the checks cost what they cost and never yield
//! (`epoch_yields_per_call` is always 0).

#[path = "../benches/common/mod.rs"]
mod common;

use common::{ComputeInstance, Kernel};

fn usage() -> ! {
    eprintln!("usage: compute_report [-r REPS] [--epoch true,false]");
    std::process::exit(2)
}

fn parse_args() -> (usize, Vec<bool>) {
    let mut reps = 11;
    let mut modes = vec![true, false];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "-r" | "--reps" => {
                reps = value
                    .parse()
                    .ok()
                    .filter(|&r| r >= 1)
                    .unwrap_or_else(|| usage())
            }
            "--epoch" => {
                modes = value
                    .split(',')
                    .map(|m| m.parse::<bool>().unwrap_or_else(|_| usage()))
                    .collect()
            }
            _ => usage(),
        }
    }
    (reps, modes)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let (reps, modes) = parse_args();
    for epoch in modes {
        let mut instance = ComputeInstance::new(epoch);
        for kernel in Kernel::ALL {
            let mut times = Vec::with_capacity(reps);
            let mut result = String::new();
            for _ in 0..reps {
                let (elapsed, r) = instance.time_once(kernel);
                times.push(elapsed);
                result = r;
            }
            times.sort_unstable();
            println!(
                "{{\"workload\":\"compute\",\"runtime\":\"shoal\",\"version\":\"{}\",\
                 \"epoch\":{epoch},\"kernel\":\"{}\",\"arg\":{},\"result\":{result},\
                 \"reps\":{reps},\"min_ms\":{:.3},\"median_ms\":{:.3},\"max_ms\":{:.3},\
                 \"epoch_yields_per_call\":0.0}}",
                env!("CARGO_PKG_VERSION"),
                kernel.name(),
                kernel.arg(),
                ms(times[0]),
                ms(times[reps / 2]),
                ms(times[reps - 1]),
            );
        }
    }
}
