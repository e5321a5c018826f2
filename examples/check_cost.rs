//! What epoch checks cost on the compute kernels, measured interleaved:
//! one engine compiles `../shared/workloads/compute.wat` with checks, one
//! without, and the two instances take turns, call by call, so that a slow
//! or fast spell of a shared machine hits both sides of each ratio alike
//! (the criterion bench, `cargo bench --bench compute`, measures the two
//! groups minutes apart). The deadline is out of reach and nothing
//! advances the epoch: the checks run but never fire.
//!
//! ```text
//! cargo run --release --example check_cost -- [PAIRS (30)]
//! ```
//!
//! Prints, per kernel, the median time of each side and the median and
//! quartiles of the per-pair ratio (target: at most 1.10).

#[path = "../benches/common/mod.rs"]
mod common;

use common::{ComputeInstance, Kernel};

fn main() {
    let pairs: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 30,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: check_cost [PAIRS >= 1]");
            std::process::exit(2)
        }
    };
    let mut on = ComputeInstance::new(true);
    let mut off = ComputeInstance::new(false);
    println!("kernel   checks on ms  checks off ms  on/off median (quartiles)");
    for kernel in Kernel::ALL {
        // Warm up both (code, caches, page faults of the memory).
        for _ in 0..3 {
            on.time_once(kernel);
            off.time_once(kernel);
        }
        let mut times_on = Vec::with_capacity(pairs);
        let mut times_off = Vec::with_capacity(pairs);
        let mut ratios = Vec::with_capacity(pairs);
        for _ in 0..pairs {
            let a = on.time_once(kernel).0.as_secs_f64();
            let b = off.time_once(kernel).0.as_secs_f64();
            times_on.push(a);
            times_off.push(b);
            ratios.push(a / b);
        }
        for v in [&mut times_on, &mut times_off, &mut ratios] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "{:7}  {:12.2}  {:13.2}  {:.3} ({:.3}-{:.3})",
            kernel.name(),
            times_on[pairs / 2] * 1e3,
            times_off[pairs / 2] * 1e3,
            ratios[pairs / 2],
            ratios[pairs / 4],
            ratios[pairs * 3 / 4],
        );
    }
}
