//! A real TCP echo server over loopback: 1,000 concurrent connections, each
//! served by its own green thread, with 1,000 green-thread clients.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shoal_scheduler::net::{TcpListener, TcpStream};
use shoal_scheduler::{channel, Executor, ShutdownMode};

const CONNECTIONS: usize = 1_000;
const ROUNDS: usize = 5;

#[test]
fn echo_1000_concurrent_connections() {
    let exec = Executor::builder().workers(2).build().expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let concurrent = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));

    // Handlers report when they run; clients only start talking once all
    // 1,000 handlers run, so that all connections are served at once.
    let (started_tx, started_rx) = channel::unbounded::<()>();
    let (s, c, p) = (served.clone(), concurrent.clone(), peak.clone());
    let server = exec
        .spawn(move || {
            for _ in 0..CONNECTIONS {
                let (stream, _) = listener.accept().expect("accept");
                let (s, c, p) = (s.clone(), c.clone(), p.clone());
                let started_tx = started_tx.clone();
                shoal_scheduler::spawn(move || {
                    let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    started_tx.send(()).expect("report start");
                    let mut stream = stream;
                    let mut buf = [0u8; 256];
                    loop {
                        match stream.read(&mut buf).expect("server read") {
                            0 => break,
                            n => stream.write_all(&buf[..n]).expect("server write"),
                        }
                    }
                    c.fetch_sub(1, Ordering::SeqCst);
                    s.fetch_add(1, Ordering::SeqCst);
                })
                .expect("spawn connection handler");
            }
        })
        .expect("spawn server");

    // Every client connects, then waits until all are connected, so that all
    // 1,000 connections are open (and served) at the same time.
    let (ready_tx, ready_rx) = channel::bounded::<()>(CONNECTIONS);
    let (go_tx, go_rx) = channel::unbounded::<()>();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|id| {
            let ready_tx = ready_tx.clone();
            let go_rx = go_rx.clone();
            exec.spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                ready_tx.send(()).expect("ready");
                go_rx.recv().expect("go");
                for round in 0..ROUNDS {
                    let msg = format!("client {id} round {round}\n");
                    stream.write_all(msg.as_bytes()).expect("client write");
                    let mut back = vec![0u8; msg.len()];
                    stream.read_exact(&mut back).expect("client read");
                    assert_eq!(back, msg.as_bytes());
                }
                stream
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shutdown write");
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).expect("eof");
                assert!(rest.is_empty());
            })
            .expect("spawn client")
        })
        .collect();
    for _ in 0..CONNECTIONS {
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("all clients connect");
    }
    for _ in 0..CONNECTIONS {
        started_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("all connections accepted");
    }
    for _ in 0..CONNECTIONS {
        go_tx.send(()).expect("go");
    }
    for client in clients {
        client.join().expect("client");
    }
    server.join().expect("server");
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
    assert_eq!(served.load(Ordering::SeqCst), CONNECTIONS);
    assert_eq!(peak.load(Ordering::SeqCst), CONNECTIONS);
}

#[test]
fn os_thread_client_against_green_server() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = exec
        .spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).expect("read");
            buf.len()
        })
        .expect("spawn");
    // The wrapper also works on a plain OS thread (blocking it).
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(&[7u8; 100_000]).expect("write");
    drop(client);
    assert_eq!(server.join().expect("server"), 100_000);
}

#[test]
fn wait_readable_on_any_mio_source() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let (mut a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
    b.set_nonblocking(true).expect("nonblocking");
    let reader = exec
        .spawn(move || {
            let mut source = mio::net::UnixStream::from_std(b);
            shoal_scheduler::io::wait_readable(&mut source).expect("wait");
            let mut buf = [0u8; 4];
            source.read(&mut buf).expect("read")
        })
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(20));
    assert!(!reader.is_finished());
    a.write_all(b"ping").expect("write");
    assert_eq!(reader.join().expect("reader"), 4);
}

#[test]
fn cancelled_io_wait_returns_an_error() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (started_tx, started_rx) = channel::bounded::<()>(1);
    let handle = exec
        .spawn(move || {
            started_tx.send(()).expect("started");
            match listener.accept() {
                Ok(_) => false,
                Err(e) => shoal_scheduler::io::is_cancelled(&e),
            }
        })
        .expect("spawn");
    started_rx.recv().expect("started");
    handle.cancel();
    assert!(handle.join().expect("returned, not unwound"));
}

/// `try_accept` fails at once with `WouldBlock` when no connection waits;
/// `peek` parks until data arrives and leaves it for the next read.
#[test]
fn try_accept_and_peek() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = exec
        .spawn(move || {
            let err = listener.try_accept().expect_err("nothing waits");
            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                client.write_all(b"peek").expect("write");
                client
            });
            let mut buf = [0u8; 8];
            let peeked = server.peek(&mut buf).expect("peek");
            let mut again = [0u8; 8];
            let read = (&server).read(&mut again).expect("read");
            drop(writer.join());
            (buf[..peeked].to_vec(), again[..read].to_vec())
        })
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(got.0, b"peek");
    assert_eq!(got.1, b"peek");
    exec.shutdown(ShutdownMode::Wait).expect("shutdown");
}

/// A connected loopback TCP pair: the client, and the server side in
/// non-blocking mode.
fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).expect("nonblocking");
    (client, server)
}

/// After a short read emptied the socket, the next read parks until new
/// data comes instead of first trying a read that would fail with
/// `WouldBlock`: every read below runs its operation exactly once. And no
/// byte is missed, though each chunk arrives only after the read before.
#[test]
fn a_short_read_parks_the_next_read_until_new_data() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let (mut client, server) = tcp_pair();
    client.write_all(b"abc").expect("write");
    let (read_tx, read_rx) = channel::unbounded::<()>();
    let reader = exec
        .spawn(move || {
            let source = shoal_scheduler::io::Registered::new(server);
            let (mut got, mut reads, mut ops) = (Vec::new(), 0, 0);
            while got.len() < 8 {
                let mut buf = [0u8; 16];
                let n = source
                    .read_bytes_with(buf.len(), |mut s| {
                        ops += 1;
                        s.read(&mut buf)
                    })
                    .expect("read");
                got.extend_from_slice(&buf[..n]);
                reads += 1;
                read_tx.send(()).expect("report the read");
            }
            (got, reads, ops)
        })
        .expect("spawn");
    for chunk in [&b"de"[..], b"fgh"] {
        read_rx.recv().expect("the reader read");
        client.write_all(chunk).expect("write");
    }
    let (got, reads, ops) = reader.join().expect("reader");
    assert_eq!(got, b"abcdefgh");
    assert_eq!(reads, 3);
    assert_eq!(ops, reads, "a read tried before the data came");
}

/// The end of stream seen before a short read is not lost with the data:
/// the reader waits first (registering the socket), then the data and the
/// end of stream arrive together, so the event that wakes it reports both;
/// its short read clears the data's readiness, and the read after it must
/// still return 0 at once, since no new event will come.
#[test]
fn a_short_read_keeps_the_end_of_stream_seen_before() {
    let exec = Executor::builder().workers(1).build().expect("build");
    let (mut client, server) = tcp_pair();
    let reader = exec
        .spawn(move || {
            let source = shoal_scheduler::io::Registered::new(server);
            let mut reads = Vec::new();
            loop {
                let mut buf = [0u8; 16];
                let n = source
                    .read_bytes_with(buf.len(), |mut s| s.read(&mut buf))
                    .expect("read");
                reads.push(n);
                if n == 0 {
                    return reads;
                }
            }
        })
        .expect("spawn");
    // Let the reader find the socket empty and park first.
    std::thread::sleep(Duration::from_millis(20));
    client.write_all(b"xyz").expect("write");
    drop(client);
    assert_eq!(reader.join().expect("reader"), [3, 0]);
}
