//! Sockets the host hands to a WASI guest: `fd_read`/`fd_write`,
//! `sock_recv` (plain, peek, wait-all), `sock_send`, `sock_shutdown`,
//! `sock_accept`, non-blocking mode and `poll_oneoff` readiness, on sockets
//! built from std sockets and from the scheduler's; and an
//! echo guest run per connection on the runtime's green threads, all
//! parked in `fd_read` at once on a single worker.

mod wasi_support;

use shoal::wasi::{Socket, WasiCtx};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;
use wasi_support::errno::*;
use wasi_support::{subscription, tcp_pair, Guest, BUF, IOVS, OUT, OUT2};

const SOCK: i64 = 3;

fn guest_with(socket: Socket) -> Guest {
    let mut ctx = WasiCtx::builder().build().unwrap();
    assert_eq!(ctx.push_socket(socket), Ok(3));
    Guest::new(ctx)
}

fn iov(g: &mut Guest, len: u32) {
    let b = [BUF.to_le_bytes(), len.to_le_bytes()].concat();
    g.write(IOVS, &b);
}

fn recv(g: &mut Guest, len: u32, flags: i64) -> Result<Vec<u8>, i32> {
    recv_on(g, SOCK as u32, len, flags)
}

fn recv_on(g: &mut Guest, fd: u32, len: u32, flags: i64) -> Result<Vec<u8>, i32> {
    iov(g, len);
    let args = [fd as i64, IOVS as i64, 1, flags, OUT as i64, OUT2 as i64];
    match g.call("sock_recv", &args) {
        0 => Ok(g.read(BUF, g.read_u32(OUT))),
        e => Err(e),
    }
}

/// What every socket must do, whatever it is built from: `fd_read` and
/// `fd_write` both ways, and a peek (`sock_recv` with `RECV_PEEK`) that
/// leaves the data for the next read.
fn exchange_and_peek(g: &mut Guest, client: &mut TcpStream) {
    client.write_all(b"ping").unwrap();
    assert_eq!(g.read_fd(3, 64).unwrap(), b"ping");
    assert_eq!(g.write_fd(3, b"pong"), Ok(4));
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    client.write_all(b"peekaboo").unwrap();
    assert_eq!(recv(g, 4, 1).unwrap(), b"peek");
    assert_eq!(recv(g, 64, 1).unwrap(), b"peekaboo");
    assert_eq!(recv(g, 64, 0).unwrap(), b"peekaboo");
}

#[test]
fn stream_read_write_peek_waitall_shutdown() {
    let (server, mut client) = tcp_pair();
    let mut g = guest_with(Socket::from_std_stream(server).unwrap());
    exchange_and_peek(&mut g, &mut client);

    // Wait-all gathers data sent in pieces.
    let sender = std::thread::spawn(move || {
        for part in [&b"0123"[..], b"45", b"6789"] {
            client.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        client
    });
    assert_eq!(recv(&mut g, 10, 2).unwrap(), b"0123456789");
    let mut client = sender.join().unwrap();

    // sock_send, then shut down our write half: the client sees EOF.
    g.write(BUF, b"bye");
    let b = [BUF.to_le_bytes(), 3u32.to_le_bytes()].concat();
    g.write(IOVS, &b);
    assert_eq!(
        g.call("sock_send", &[SOCK, IOVS as i64, 1, 0, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u32(OUT), 3);
    assert_eq!(g.call("sock_shutdown", &[SOCK, 2]), SUCCESS);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"bye");
    // The client closes: the guest reads end of stream.
    drop(client);
    assert_eq!(g.read_fd(3, 64).unwrap(), b"");
    // Bad arguments.
    assert_eq!(g.call("sock_shutdown", &[SOCK, 0]), INVAL);
    assert_eq!(g.call("sock_shutdown", &[SOCK, 4]), INVAL);
    assert_eq!(recv(&mut g, 4, 4), Err(INVAL));
    assert_eq!(g.call("fd_fdstat_get", &[SOCK, OUT as i64]), SUCCESS);
    assert_eq!(g.read(OUT, 1)[0], 6, "SOCKET_STREAM");
}

#[test]
fn nonblocking_mode_and_poll() {
    let (server, mut client) = tcp_pair();
    let mut g = guest_with(Socket::from_std_stream(server).unwrap());
    assert_eq!(g.call("fd_fdstat_set_flags", &[SOCK, 4]), SUCCESS);
    assert_eq!(g.read_fd(3, 16), Err(AGAIN));
    assert_eq!(recv(&mut g, 16, 1), Err(AGAIN));

    // poll: a read subscription and a 50 ms clock; no data, so the clock.
    let subs = 4096u32;
    let evs = 16384u32;
    g.write(subs, &subscription(1, 1, 3, 0, 0));
    g.write(subs + 48, &subscription(2, 0, 1, 50_000_000, 0));
    let args = [subs as i64, evs as i64, 2, OUT as i64];
    assert_eq!(g.call("poll_oneoff", &args), SUCCESS);
    assert_eq!(g.read_u32(OUT), 1);
    assert_eq!(g.read_u64(evs), 2, "the clock fired");
    // Data arrives: the read subscription fires.
    client.write_all(b"data").unwrap();
    assert_eq!(g.call("poll_oneoff", &args), SUCCESS);
    assert_eq!(g.read_u32(OUT), 1);
    assert_eq!(g.read_u64(evs), 1, "the socket is readable");
    assert_eq!(g.read_fd(3, 16).unwrap(), b"data");
    // A write subscription alone fires at once; a read one alone waits
    // (off a green thread: blocking poll) until data comes.
    g.write(subs, &subscription(5, 2, 3, 0, 0));
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u64(evs), 5);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        client.write_all(b"late").unwrap();
        client
    });
    g.write(subs, &subscription(6, 1, 3, 0, 0));
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u64(evs), 6);
    assert_eq!(g.read_fd(3, 16).unwrap(), b"late");
    let client = writer.join().unwrap();
    // Hang-up is reported.
    drop(client);
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u64(evs), 6);
    assert_eq!(g.read_fd(3, 16).unwrap(), b"");
}

/// A socket built from the scheduler's `TcpStream`, as `shoal serve` and
/// `ConnectionServer` hand connections in: every operation works, including
/// those that need the host fd (peek, non-blocking mode, poll readiness).
#[test]
fn scheduler_stream_supports_every_operation() {
    let (server, mut client) = tcp_pair();
    let stream = shoal::scheduler::net::TcpStream::from_std(server).unwrap();
    let mut g = guest_with(Socket::from(stream));
    exchange_and_peek(&mut g, &mut client);
    // A blocking peek on an empty socket waits for data.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        client.write_all(b"later").unwrap();
        client
    });
    assert_eq!(recv(&mut g, 64, 1).unwrap(), b"later");
    let mut client = writer.join().unwrap();
    assert_eq!(g.read_fd(3, 64).unwrap(), b"later");

    // Non-blocking mode: reads, peeks on an empty socket say EAGAIN, and
    // fdstat reports the flag.
    assert_eq!(g.call("fd_fdstat_set_flags", &[SOCK, 4]), SUCCESS);
    assert_eq!(g.call("fd_fdstat_get", &[SOCK, OUT as i64]), SUCCESS);
    assert_eq!(g.read(OUT + 2, 2), [4, 0], "FDFLAGS_NONBLOCK");
    assert_eq!(g.read_fd(3, 16), Err(AGAIN));
    assert_eq!(recv(&mut g, 16, 0), Err(AGAIN));
    assert_eq!(recv(&mut g, 16, 1), Err(AGAIN));
    // A non-blocking write goes out at once.
    assert_eq!(g.write_fd(3, b"nb"), Ok(2));
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"nb");

    // poll_oneoff on the socket fires when data arrives (the socket is
    // still non-blocking: poll waits regardless).
    let subs = 4096u32;
    let evs = 16384u32;
    g.write(subs, &subscription(9, 1, 3, 0, 0)); // FD_READ on fd 3
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        client.write_all(b"ready").unwrap();
        client
    });
    assert_eq!(
        g.call("poll_oneoff", &[subs as i64, evs as i64, 1, OUT as i64]),
        SUCCESS
    );
    assert_eq!(g.read_u32(OUT), 1);
    assert_eq!(g.read_u64(evs), 9);
    assert_eq!(g.read(evs + 8, 2), [0, 0], "no error");
    assert_eq!(g.read(evs + 10, 1)[0], 1, "FD_READ");
    let _client = writer.join().unwrap();
    assert_eq!(g.read_fd(3, 16).unwrap(), b"ready");
    assert_eq!(g.call("fd_fdstat_set_flags", &[SOCK, 0]), SUCCESS);
    assert_eq!(g.call("sock_shutdown", &[SOCK, 3]), SUCCESS);
}

#[test]
fn accept_from_a_listener() {
    for std_listener in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = if std_listener {
            Socket::from_std_listener(listener).unwrap()
        } else {
            Socket::from(shoal::scheduler::net::TcpListener::from_std(listener).unwrap())
        };
        let mut g = guest_with(socket);
        let mut client = TcpStream::connect(addr).unwrap();
        assert_eq!(g.call("sock_accept", &[SOCK, 0, OUT as i64]), SUCCESS);
        let conn = g.read_u32(OUT);
        assert_eq!(conn, 4);
        client.write_all(b"hi").unwrap();
        assert_eq!(g.read_fd(conn, 8).unwrap(), b"hi");
        assert_eq!(g.write_fd(conn, b"yo"), Ok(2));
        let mut buf = [0u8; 2];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"yo");
        // Accept on a non-blocking listener with nobody waiting.
        assert_eq!(g.call("fd_fdstat_set_flags", &[SOCK, 4]), SUCCESS);
        assert_eq!(g.call("sock_accept", &[SOCK, 0, OUT as i64]), AGAIN);
        // ... and with a connection pending; the new socket is
        // non-blocking as asked.
        let mut client2 = TcpStream::connect(addr).unwrap();
        let accepted = loop {
            match g.call("sock_accept", &[SOCK, 4, OUT as i64]) {
                AGAIN => std::thread::sleep(Duration::from_millis(1)),
                errno => break errno,
            }
        };
        assert_eq!(accepted, SUCCESS);
        let conn2 = g.read_u32(OUT);
        assert_eq!(g.read_fd(conn2, 8), Err(AGAIN));
        client2.write_all(b"nb").unwrap();
        assert_eq!(recv_on(&mut g, conn2, 8, 1).unwrap(), b"nb", "peek");
        assert_eq!(g.call("fd_close", &[conn2 as i64]), SUCCESS);
        // A listener is not read, and a stream does not accept.
        assert_eq!(g.read_fd(3, 4), Err(NOTCAPABLE));
        assert_eq!(
            g.call("sock_accept", &[conn as i64, 0, OUT as i64]),
            NOTCAPABLE
        );
        assert_eq!(g.call("sock_shutdown", &[SOCK, 3]), NOTCAPABLE);
        assert_eq!(g.call("sock_accept", &[SOCK, 1 << 5, OUT as i64]), INVAL);
    }
}

#[test]
fn socket_calls_on_other_descriptors() {
    let mut g = Guest::new(WasiCtx::builder().build().unwrap());
    iov(&mut g, 4);
    let args = [0, IOVS as i64, 1, 0, OUT as i64, OUT2 as i64];
    assert_eq!(g.call("sock_recv", &args), NOTSOCK);
    assert_eq!(
        g.call("sock_send", &[1, IOVS as i64, 1, 0, OUT as i64]),
        NOTSOCK
    );
    assert_eq!(g.call("sock_accept", &[0, 0, OUT as i64]), NOTCAPABLE);
    assert_eq!(g.call("sock_shutdown", &[9, 3]), BADF);
}

/// Echoes fd 3 until end of stream: `fd_read` into a 4 KiB buffer, then
/// `fd_write` until all of it is written. A failing call exits with its
/// errno (plus 100 for writes).
const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i32) (local $err i32) (local $off i32)
    (block $done
      (loop $next
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 4096))
        (local.set $err (call $read (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 16)))
        (if (local.get $err) (then (call $exit (local.get $err))))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $off (i32.const 0))
        (loop $more
          (i32.store (i32.const 32) (i32.add (i32.const 1024) (local.get $off)))
          (i32.store (i32.const 36) (i32.sub (local.get $n) (local.get $off)))
          (local.set $err (call $write (i32.const 3) (i32.const 32) (i32.const 1) (i32.const 48)))
          (if (local.get $err) (then (call $exit (i32.add (i32.const 100) (local.get $err)))))
          (local.set $off (i32.add (local.get $off) (i32.load (i32.const 48))))
          (br_if $more (i32.lt_u (local.get $off) (local.get $n))))
        (br $next)))))"#;

#[test]
fn echo_guest_on_the_current_thread() {
    let (server, mut client) = tcp_pair();
    let module = wasi_support::module(ECHO);
    let ctx = WasiCtx::builder()
        .socket(Socket::from_std_stream(server).unwrap())
        .build()
        .unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let expected = payload.clone();
    let reader = std::thread::spawn(move || {
        let mut back = client.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            client.write_all(&payload).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        back.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    });
    let code = shoal::wasi::run_command(wasi_support::engine(), &module, ctx).unwrap();
    assert_eq!(code, 0);
    assert_eq!(reader.join().unwrap(), expected);
}

/// 64 echo instances on one worker, all parked in `fd_read` at once: the
/// clients send in reverse order, which only completes if a waiting
/// instance parks its green thread instead of blocking the worker.
#[test]
fn echo_guests_park_on_green_threads() {
    use shoal::runtime::Runtime;
    let runtime = Runtime::builder().workers(1).build().unwrap();
    let module = runtime.compile(ECHO).unwrap();
    let mut linker = shoal::Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).unwrap();
    let template = runtime.template(&module, &linker, "_start").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    let mut handles = Vec::new();
    for i in 0..64 {
        let client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        // Every other connection as a scheduler stream.
        let socket = if i % 2 == 0 {
            Socket::from_std_stream(server).unwrap()
        } else {
            Socket::from(shoal::scheduler::net::TcpStream::from_std(server).unwrap())
        };
        let ctx = WasiCtx::builder().socket(socket).build().unwrap();
        handles.push(template.spawn_with(ctx, vec![]).unwrap());
        clients.push(client);
    }
    std::thread::sleep(Duration::from_millis(100));
    for (i, client) in clients.iter_mut().enumerate().rev() {
        let payload = format!("connection {i} says hello").into_bytes();
        client.write_all(&payload).unwrap();
        let mut back = vec![0u8; payload.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, payload);
        client.shutdown(Shutdown::Write).unwrap();
    }
    for h in handles {
        h.join().expect("the echo instance ends cleanly");
    }
}
