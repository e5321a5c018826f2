//! WASI calls that wait park only the calling instance's green thread:
//! many instances sleeping in `poll_oneoff`, waiting on a socket through
//! `poll_oneoff` (alone, or with a timeout), or yielding, all on one
//! worker; waiting on several sockets and a clock wakes on the first; a
//! cancelled instance ends with `Trap { kind: Cancelled }`.

mod wasi_support;

use shoal::runtime::{InstanceTemplate, Runtime};
use shoal::wasi::{Socket, WasiCtx};
use shoal::TrapKind;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use wasi_support::{subscription, tcp_pair};

/// Polls the subscriptions written by the data segments (`$n` of them at
/// 0), then, if fd 3 is a socket, echoes one read from it; exits with the
/// number of events.
fn poller(subscriptions: &[[u8; 48]], echo: bool) -> String {
    let mut data = String::new();
    for sub in subscriptions {
        for b in sub {
            data.push_str(&format!("\\{b:02x}"));
        }
    }
    let echo_code = if echo {
        r#"
        (i32.store (i32.const 2000) (i32.const 3000))
        (i32.store (i32.const 2004) (i32.const 256))
        (drop (call $read (i32.const 3) (i32.const 2000) (i32.const 1) (i32.const 2008)))
        (i32.store (i32.const 2004) (i32.load (i32.const 2008)))
        (drop (call $write (i32.const 3) (i32.const 2000) (i32.const 1) (i32.const 2012)))"#
    } else {
        ""
    };
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{data}")
  (func (export "_start")
    (local $err i32)
    (drop (call $yield))
    (local.set $err (call $poll (i32.const 0) (i32.const 1024) (i32.const {n}) (i32.const 1020)))
    (if (local.get $err) (then (call $exit (i32.add (i32.const 100) (local.get $err)))))
    {echo_code}
    (call $exit (i32.load (i32.const 1020)))))"#,
        n = subscriptions.len()
    )
}

/// A relative timeout of `nanos` on the monotonic clock.
fn clock_sub(userdata: u64, nanos: u64) -> [u8; 48] {
    subscription(userdata, 0, 1, nanos, 0)
}

fn read_sub(userdata: u64, fd: u32) -> [u8; 48] {
    subscription(userdata, 1, fd, 0, 0)
}

fn template(runtime: &Runtime, wat: &str) -> InstanceTemplate<WasiCtx> {
    let module = runtime.compile(wat).unwrap();
    let mut linker = shoal::Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).unwrap();
    runtime.template(&module, &linker, "_start").unwrap()
}

fn exit_code(result: Result<Vec<shoal::Val>, shoal::runtime::RunError>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => match e.trap_kind() {
            Some(TrapKind::Exit(code)) => code,
            _ => panic!("the instance failed: {e:?}"),
        },
    }
}

#[test]
fn many_instances_sleep_in_poll_oneoff_on_one_worker() {
    let runtime = Runtime::builder().workers(1).build().unwrap();
    let t = template(&runtime, &poller(&[clock_sub(1, 200_000_000)], false));
    let start = Instant::now();
    let handles: Vec<_> = (0..500)
        .map(|_| t.spawn_with(WasiCtx::default(), vec![]).unwrap())
        .collect();
    for h in handles {
        assert_eq!(exit_code(h.join()), 1);
    }
    // 500 sequential 200 ms sleeps would take 100 s.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn sockets_wait_in_poll_oneoff_on_green_threads() {
    let runtime = Runtime::builder().workers(1).build().unwrap();
    // One fd alone (parks on readiness) and one fd with a long timeout
    // (parks on readiness and a timer): both must let the others run.
    let alone = template(&runtime, &poller(&[read_sub(7, 3)], true));
    let with_clock = template(
        &runtime,
        &poller(&[read_sub(7, 3), clock_sub(8, 60_000_000_000)], true),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    let mut handles = Vec::new();
    for i in 0..40 {
        let client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        let ctx = WasiCtx::builder()
            .socket(Socket::from_std_stream(server).unwrap())
            .build()
            .unwrap();
        let t = if i % 2 == 0 { &alone } else { &with_clock };
        handles.push(t.spawn_with(ctx, vec![]).unwrap());
        clients.push(client);
    }
    std::thread::sleep(Duration::from_millis(50));
    for (i, client) in clients.iter_mut().enumerate().rev() {
        let msg = format!("message {i}");
        client.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    for h in handles {
        assert_eq!(exit_code(h.join()), 1, "one event: the socket");
    }
}

#[test]
fn cancelling_a_waiting_instance() {
    let runtime = Runtime::builder().workers(1).build().unwrap();
    let t = template(&runtime, &poller(&[clock_sub(1, 600_000_000_000)], false));
    let h = t.spawn_with(WasiCtx::default(), vec![]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    h.cancel();
    let err = h.join().expect_err("a cancelled instance has no result");
    assert!(err.is_cancelled(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));

    // Cancelled while parked in a socket read.
    let echo = template(&runtime, &poller(&[clock_sub(1, 0)], true));
    let (server, _client) = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener.accept().unwrap().0, client)
    };
    let ctx = WasiCtx::builder()
        .socket(Socket::from_std_stream(server).unwrap())
        .build()
        .unwrap();
    let h = echo.spawn_with(ctx, vec![]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    h.cancel();
    assert!(h.join().expect_err("cancelled").is_cancelled());

    // Cancelled while parked on two sockets and a clock; the worker goes
    // on serving others afterwards.
    let subs = [
        read_sub(1, 3),
        read_sub(2, 4),
        clock_sub(3, 600_000_000_000),
    ];
    let waiter = template(&runtime, &first_event(&subs));
    let (a, _a_client) = tcp_pair();
    let (b, _b_client) = tcp_pair();
    let ctx = WasiCtx::builder()
        .socket(Socket::from_std_stream(a).unwrap())
        .socket(Socket::from_std_stream(b).unwrap())
        .build()
        .unwrap();
    let h = waiter.spawn_with(ctx, vec![]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    h.cancel();
    assert!(h.join().expect_err("cancelled").is_cancelled());
    let sleeper = template(&runtime, &first_event(&[clock_sub(5, 1_000_000)]));
    let h = sleeper.spawn_with(WasiCtx::default(), vec![]).unwrap();
    assert_eq!(exit_code(h.join()), 1000 + 50);
}

/// Polls the subscriptions written by the data segments and exits with
/// `nevents * 1000 + userdata * 10 + type` of the first event (or 9999 if
/// `poll_oneoff` or the event reports an error).
fn first_event(subscriptions: &[[u8; 48]]) -> String {
    let data: String = subscriptions
        .iter()
        .flatten()
        .map(|b| format!("\\{b:02x}"))
        .collect();
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{data}")
  (func (export "_start")
    (if (call $poll (i32.const 0) (i32.const 1024) (i32.const {n}) (i32.const 1020))
      (then (call $exit (i32.const 9999))))
    (if (i32.load16_u (i32.const 1032)) (then (call $exit (i32.const 9999))))
    (call $exit (i32.add (i32.mul (i32.load (i32.const 1020)) (i32.const 1000))
      (i32.add (i32.mul (i32.load (i32.const 1024)) (i32.const 10))
        (i32.load8_u (i32.const 1034)))))))"#,
        n = subscriptions.len()
    )
}

/// A context with two connected sockets, fds 3 and 4: one from std, one
/// from the scheduler (as the server hands connections in); and their
/// clients.
fn two_sockets() -> (WasiCtx, [TcpStream; 2]) {
    let (first, first_client) = tcp_pair();
    let (second, second_client) = tcp_pair();
    let ctx = WasiCtx::builder()
        .socket(Socket::from_std_stream(first).unwrap())
        .socket(Socket::from(
            shoal::scheduler::net::TcpStream::from_std(second).unwrap(),
        ))
        .build()
        .unwrap();
    (ctx, [first_client, second_client])
}

/// `poll_oneoff` on two sockets and a clock parks the green thread until
/// the first source fires: here the second socket, ~20 ms after the wait
/// began, long before the clock. Meanwhile the worker (the only one) runs
/// other instances. With no data, the clock fires.
#[test]
fn poll_oneoff_waits_on_several_fds_and_a_clock() {
    let runtime = Runtime::builder().workers(1).build().unwrap();
    let subs = [read_sub(1, 3), read_sub(2, 4), clock_sub(3, 10_000_000_000)];
    let two_fds = template(&runtime, &first_event(&subs));
    let (ctx, [_first_client, mut second_client]) = two_sockets();
    let start = Instant::now();
    let waiting = two_fds.spawn_with(ctx, vec![]).unwrap();

    // The worker is free while that instance waits: a sleeper on the same
    // worker runs and ends.
    let sleeper = template(&runtime, &first_event(&[clock_sub(5, 10_000_000)]));
    let h = sleeper.spawn_with(WasiCtx::default(), vec![]).unwrap();
    assert_eq!(exit_code(h.join()), 1000 + 50, "one clock event");

    let elapsed = start.elapsed();
    if elapsed < Duration::from_millis(20) {
        std::thread::sleep(Duration::from_millis(20) - elapsed);
    }
    second_client.write_all(b"x").unwrap();
    let code = exit_code(waiting.join());
    let took = start.elapsed();
    assert_eq!(code, 1000 + 20 + 1, "one event: fd 4 readable");
    assert!(took >= Duration::from_millis(20), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // No data on either socket: the 50 ms clock fires.
    let subs = [read_sub(1, 3), read_sub(2, 4), clock_sub(3, 50_000_000)];
    let timeout = template(&runtime, &first_event(&subs));
    let (ctx, _clients) = two_sockets();
    let start = Instant::now();
    let code = exit_code(timeout.spawn_with(ctx, vec![]).unwrap().join());
    let took = start.elapsed();
    assert_eq!(code, 1000 + 30, "one event: the clock");
    assert!(took >= Duration::from_millis(50), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A clock alone still times out on time.
#[test]
fn poll_oneoff_clock_only_times_out() {
    let runtime = Runtime::builder().workers(1).build().unwrap();
    let t = template(&runtime, &first_event(&[clock_sub(4, 30_000_000)]));
    let start = Instant::now();
    let code = exit_code(t.spawn_with(WasiCtx::default(), vec![]).unwrap().join());
    let took = start.elapsed();
    assert_eq!(code, 1000 + 40, "one clock event");
    assert!(took >= Duration::from_millis(30), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
