//! The echo benchmark as a library function (`shoal::bench::echo`), on a
//! short run: both servers answer every request correctly (the load
//! generator checks every byte), Shoal uses one instance per connection,
//! and the report prints as a table and as JSON lines.

use shoal::bench::echo::{self, EchoConfig, EchoError, EchoServer, GREEN, NATIVE, SHOAL};
use std::time::Duration;

#[test]
fn short_run_of_both_servers() {
    let config = EchoConfig {
        connections: vec![16, 300],
        duration: Duration::from_millis(400),
        warmup: Duration::from_millis(100),
        payload: 100,
        workers: Some(2),
        client_threads: 2,
        ..EchoConfig::default()
    };
    let mut seen = 0;
    let report = echo::run_with(&config, |_| seen += 1).expect("the benchmark runs");
    assert_eq!(seen, 4);
    assert_eq!(report.rows.len(), 4);
    for row in &report.rows {
        assert!(row.requests > 0, "{row:?}");
        assert_eq!(row.errors, 0, "{row:?}");
        assert_eq!(row.failed_instances, 0, "{row:?}");
        assert!(
            row.lat_p50_us > 0.0 && row.lat_p50_us <= row.lat_p99_us,
            "{row:?}"
        );
        assert!(row.lat_p99_us <= row.lat_max_us, "{row:?}");
        if row.server == SHOAL {
            // One fresh instance per connection.
            assert_eq!(row.instances, row.connections as u64, "{row:?}");
        }
    }
    assert!(report.row(NATIVE, 300).is_some());
    assert!(report.throughput_ratio(16).is_some_and(|r| r > 0.0));
    let table = report.to_string();
    assert!(
        table.contains("requests/s") && table.contains("vs native"),
        "{table}"
    );
    let json = report.to_json_lines();
    assert_eq!(json.lines().count(), 4);
    for line in json.lines() {
        assert!(
            line.starts_with("{\"workload\":\"echo\",\"runtime\":\""),
            "{line}"
        );
        assert!(line.contains("\"requests_per_sec\":") && line.contains("\"lat_p99_us\":"));
        assert!(line.ends_with('}'), "{line}");
    }
}

/// The diagnostic server without wasm (a Rust echo loop on a green thread
/// per connection) answers every request too, and its rows get a share of
/// native's in the table.
#[test]
fn the_server_without_wasm_echoes_every_byte() {
    let config = EchoConfig {
        connections: vec![200],
        servers: EchoServer::selection("all").expect("a known selection"),
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
        payload: 100,
        workers: Some(2),
        client_threads: 2,
        ..EchoConfig::default()
    };
    let report = echo::run(&config).expect("the benchmark runs");
    let names: Vec<&str> = report.rows.iter().map(|r| r.server).collect();
    assert_eq!(names, [NATIVE, GREEN, SHOAL]);
    let green = report.row(GREEN, 200).expect("a row");
    assert!(green.requests > 0 && green.errors == 0, "{green:?}");
    assert!(report.ratio_to_native(GREEN, 200).is_some_and(|r| r > 0.0));
    let table = report.to_string();
    let line = table
        .lines()
        .find(|l| l.starts_with(GREEN))
        .expect("a table line");
    assert!(line.trim_end().ends_with('%'), "{table}");
    assert_eq!(EchoServer::selection("neither"), None);
}

#[test]
fn bad_configurations_are_refused() {
    let bad = [
        EchoConfig {
            connections: vec![],
            ..EchoConfig::default()
        },
        EchoConfig {
            connections: vec![0],
            ..EchoConfig::default()
        },
        EchoConfig {
            payload: 0,
            ..EchoConfig::default()
        },
        EchoConfig {
            servers: vec![],
            ..EchoConfig::default()
        },
        EchoConfig {
            workers: Some(0),
            servers: vec![EchoServer::Shoal],
            ..EchoConfig::default()
        },
    ];
    for config in bad {
        assert!(
            matches!(echo::run(&config), Err(EchoError::Config(_))),
            "{config:?}"
        );
    }
}
