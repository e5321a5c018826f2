//! Compile throughput: `Module::new` (validate, translate, compile with
//! Cranelift, place the code) on
//!
//! - `examples/guests/bigprog.wasm`, a C program of a few thousand lines
//!   built with clang for wasm32-wasi (rebuild: `examples/guests/build.sh`);
//! - `../shared/workloads/compute.wat`, converted to binary first (untimed)
//!   so both figures are in MB of wasm binary per second.
//!
//! Each is compiled with parallel compilation on (the default: all cores)
//! and off (one core). `cargo bench --bench compile`; criterion prints the
//! throughput as MiB/s next to each time.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use shoal::{Config, Engine, Module};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn bigprog_wasm() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/guests/bigprog.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nIt is committed with the repository; \
             `examples/guests/build.sh` rebuilds it from bigprog.c.",
            path.display()
        )
    })
}

fn compile(c: &mut Criterion) {
    let compute = wat::parse_bytes(&common::read_compute_wat())
        .expect("compute.wat is valid text format")
        .into_owned();
    let inputs = [("bigprog.wasm", bigprog_wasm()), ("compute.wat", compute)];

    let mut group = c.benchmark_group("compile");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, bytes) in &inputs {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        for parallel_compilation in [true, false] {
            let engine = Engine::new(Config {
                parallel_compilation,
                ..Config::default()
            })
            .expect("create engine");
            let mode = if parallel_compilation {
                "parallel"
            } else {
                "serial"
            };
            group.bench_function(format!("{name}/{mode}"), |b| {
                b.iter(|| Module::new(&engine, black_box(bytes)).expect("compile"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
