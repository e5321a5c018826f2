//! `shoal stress` through the built binary: every workload runs with a tiny
//! N and prints valid JSON lines with the peer's fields; limits are
//! reported cleanly (exit status 3, a JSON line naming the limit, how far
//! the run got and how to raise it); `--plot` writes an SVG chart.

use serde_json::Value;
use std::process::{Command, Output};

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// The fields every line starts with, in the peer's order.
const HEADER: [&str; 8] = [
    "workload", "runtime", "version", "alloc", "executor", "workers", "epoch", "tick_us",
];

fn stress(args: &[&str]) -> Output {
    Command::new(SHOAL)
        .arg("stress")
        .args(args)
        .output()
        .expect("run the shoal binary")
}

/// A JSON line: its text (for field order) and its parsed object.
struct Line {
    text: String,
    object: serde_json::Map<String, Value>,
}

impl std::ops::Index<&str> for Line {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        &self.object[key]
    }
}

/// Runs `shoal stress --json ARGS`, expects success, and returns every
/// stdout line parsed as a JSON object.
fn json_lines(args: &[&str]) -> Vec<Line> {
    let mut all = vec!["--json", "--workers", "2"];
    all.extend_from_slice(args);
    let out = stress(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shoal stress {args:?} failed ({:?})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => Line {
                text: line.to_string(),
                object,
            },
            other => panic!("not a JSON object: {line} ({other:?})"),
        })
        .collect()
}

/// Checks the header and that every `fields` is present and numeric.
fn check(line: &Line, workload: &str, fields: &[&str]) {
    let positions: Vec<Option<usize>> = HEADER
        .iter()
        .map(|k| line.text.find(&format!("\"{k}\":")))
        .collect();
    assert_eq!(positions[0], Some(1), "starts with workload: {}", line.text);
    assert!(
        positions
            .windows(2)
            .all(|w| matches!(w, [Some(a), Some(b)] if a < b)),
        "header fields in the peer's order: {}",
        line.text
    );
    assert_eq!(line["workload"], workload);
    assert_eq!(line["runtime"], "shoal");
    for f in fields {
        assert!(
            line.object.get(*f).is_some_and(Value::is_number),
            "{workload}: field {f} missing or not a number in {}",
            line.text
        );
    }
}

#[test]
fn spawn_prints_one_line_per_level() {
    let lines = json_lines(&["spawn", "-n", "300", "-c", "1,8", "--warmup", "20"]);
    assert_eq!(lines.len(), 2);
    for (line, c) in lines.iter().zip([1, 8]) {
        check(
            line,
            "spawn",
            &[
                "n",
                "concurrency",
                "wall_ms",
                "instances_per_sec",
                "lat_p50_us",
                "lat_p99_us",
                "lat_p999_us",
                "lat_max_us",
                "lat_mean_us",
                "epoch_ticks",
                "requests_that_suspended",
            ],
        );
        assert_eq!(line["concurrency"], c);
        assert_eq!(line["n"], 300);
    }
}

#[test]
fn yield_counts_switches() {
    let lines = json_lines(&["yield", "-n", "50", "-k", "10"]);
    assert_eq!(lines.len(), 1);
    check(
        &lines[0],
        "yield",
        &[
            "n",
            "k",
            "switches",
            "wall_ms",
            "switches_per_sec",
            "ns_per_switch",
            "setup_ms",
        ],
    );
    assert_eq!(lines[0]["switches"], 500);
}

#[test]
fn preempt_reports_fairness() {
    let lines = json_lines(&["preempt", "-n", "20", "-t", "0.3"]);
    assert_eq!(lines.len(), 1);
    check(
        &lines[0],
        "preempt",
        &[
            "n",
            "t_s",
            "increments_per_sec",
            "counter_min",
            "counter_median",
            "counter_max",
            "counter_cv",
            "starved_instances",
            "slices_total",
            "max_gap_ms",
            "p50_instance_max_gap_ms",
            "max_slice_ms",
            "gap_vs_ideal",
            "machine_noise_cv",
            "counter_cv_floor",
        ],
    );
    assert_eq!(lines[0]["starved_instances"], 0);
    let options = lines[0].object.get("options");
    assert!(
        options.and_then(|o| o.get("rotate_workers")).is_none(),
        "rotation is the default: {options:?}"
    );
    // The machine's noise was measured (the ticker runs), and the floor
    // it sets is below it (each instance ran more than one tick).
    let noise = lines[0]["machine_noise_cv"]
        .as_f64()
        .expect("noise measured");
    let floor = lines[0]["counter_cv_floor"].as_f64().expect("floor");
    assert!(
        noise > 0.0 && floor > 0.0 && floor < noise,
        "{noise} {floor}"
    );
}

/// More spinners than one round of timeslices fits in `-t`: those that
/// never got a slice are reported as starved (counter 0), not as failures.
#[test]
fn preempt_counts_instances_stopped_before_their_first_slice_as_starved() {
    // 2,000 instances x 250 µs / 2 workers = a 250 ms round, against 50 ms.
    // (Also: `--no-rotation` is noted in the header's options.)
    let lines = json_lines(&["preempt", "-n", "2000", "-t", "0.05", "--no-rotation"]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["options"]["rotate_workers"], false);
    assert_eq!(lines[0]["workers_rotated"], false);
    let starved = lines[0]["starved_instances"].as_u64().expect("starved");
    assert!(starved > 0 && starved < 2000, "{starved} starved");
    assert_eq!(lines[0]["counter_min"], 0);
    assert_eq!(lines[0]["n"], 2000);
}

#[test]
fn idle_measures_parked_instances() {
    let lines = json_lines(&["idle", "--instances", "500", "--warmup", "8"]);
    assert_eq!(lines.len(), 1);
    check(
        &lines[0],
        "idle",
        &[
            "n",
            "spawn_all_ms",
            "release_to_done_ms",
            "rss_baseline_bytes",
            "rss_parked_bytes",
            "bytes_per_parked_instance",
            "maps_parked",
        ],
    );
    assert_eq!(lines[0]["n"], 500);
}

#[test]
fn compute_runs_both_modes() {
    let lines = json_lines(&[
        "compute",
        "-r",
        "1",
        "--fib-n",
        "15",
        "--sieve-n",
        "1000",
        "--matmul-n",
        "12",
    ]);
    assert_eq!(lines.len(), 6, "3 kernels x 2 modes");
    for line in &lines {
        check(
            line,
            "compute",
            &["arg", "reps", "min_ms", "median_ms", "max_ms"],
        );
    }
    assert_eq!(lines[0]["kernel"], "fib");
    assert_eq!(lines[0]["result"], 610);
    assert_eq!(lines[0]["epoch"], true);
    assert_eq!(lines[5]["epoch"], false);
    assert_eq!(lines[4]["result"], 168, "primes up to 1000");
}

#[test]
fn table_by_default() {
    let out = stress(&["yield", "-n", "10", "-k", "5"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("switches/s") && text.contains("ns/switch"),
        "{text}"
    );
}

#[test]
fn pool_limit_stops_cleanly() {
    let out = stress(&[
        "--json",
        "idle",
        "-n",
        "2000",
        "--warmup",
        "0",
        "--pool-max-instances",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["workload"], "idle");
    assert_eq!(line["limit"], "pool");
    assert_eq!(line["before_start"], false);
    let reached = line["reached"].as_u64().expect("reached");
    assert!(reached > 0 && reached <= 100, "{line}");
    assert_eq!(line["wanted"], 2000);
    assert!(
        line["how_to_raise"]
            .as_str()
            .is_some_and(|s| s.contains("--pool-max-instances")),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped at"), "{stderr}");
}

#[test]
fn guarded_beyond_the_address_space_is_refused_before_starting() {
    let out = stress(&[
        "--json",
        "--memory-strategy",
        "guarded",
        "idle",
        "-n",
        "20000",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON line");
    assert_eq!(line["before_start"], true);
    assert_eq!(line["reached"], 0);
    assert!(
        line["how_to_raise"]
            .as_str()
            .is_some_and(|s| s.contains("--memory-strategy checked")),
        "{line}"
    );
}

#[test]
fn stacks_per_worker_limit_is_named() {
    let out = stress(&[
        "--json",
        "--workers",
        "1",
        "yield",
        "-n",
        "300",
        "-k",
        "2",
        "--max-instances-per-worker",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON line");
    assert_eq!(line["limit"], "stacks_per_worker", "{line}");
    assert!(line["reached"].as_u64().is_some_and(|r| r <= 50), "{line}");
}

#[test]
fn plot_writes_svg() {
    let dir = std::env::temp_dir().join(format!("shoal-stress-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spawn_svg = dir.join("spawn.svg");
    let preempt_svg = dir.join("preempt.svg");
    let out = stress(&[
        "spawn",
        "-n",
        "200",
        "-c",
        "1,4",
        "--warmup",
        "0",
        "--plot",
        spawn_svg.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = stress(&[
        "preempt",
        "-n",
        "10",
        "-t",
        "0.2",
        "--plot",
        preempt_svg.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{out:?}");
    for f in [&spawn_svg, &preempt_svg] {
        let svg = std::fs::read_to_string(f).expect("chart written");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_are_usage_errors() {
    let out = stress(&["idle", "-n", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = stress(&["--plot", "x.svg", "idle", "-n", "5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
