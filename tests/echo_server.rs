//! The echo server, one instance per connection, over real TCP.
//!
//! `ten_thousand_concurrent_connections` runs `shoal serve` (the built
//! binary) on `examples/echo.wat` as a child process and drives it from
//! this process: 10,000 connections, all open and all served by a live
//! instance at the same moment, each echoing a different payload, every
//! byte checked; beside them, clients that reset their connection
//! mid-stream, clients that send nothing, and clients that flood. The
//! clients run in this test process and the server in its own, so each
//! side needs about 10,000 descriptors, under the 20,000-file limit of
//! this machine (no `RLIMIT_NOFILE` change is needed or attempted). The
//! test ends with SIGTERM and checks the graceful shutdown.
//!
//! `connection_server_in_process` does the same at a smaller scale with
//! the library's `ConnectionServer`, and checks its counters.

mod cli_support;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Regular echo clients.
const CLIENTS: usize = 10_000;
/// Clients that reset their connection after sending part of a payload.
const ABRUPT: usize = 100;
/// Clients that connect and send nothing until the end.
const SILENT: usize = 100;
/// Clients that send `FLOOD_BYTES` as fast as they can (reading the echo).
const FLOODERS: usize = 4;
const FLOOD_BYTES: usize = 8 << 20;
/// Clients that flood without ever reading, then reset.
const DEAF_FLOODERS: usize = 4;
/// Connects in flight at once (the server's backlog is 4096).
const CONNECTS_IN_FLIGHT: usize = 512;
/// The whole exchange must finish within this.
const LIMIT: Duration = Duration::from_secs(120);

/// The byte at `offset` of connection `id`'s payload.
fn pattern(id: usize, offset: usize) -> u8 {
    let x = (id as u64)
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(offset as u64 * 31);
    (x ^ (x >> 11)) as u8
}

/// Payload length of regular client `id`: 2 to 3,001 bytes.
fn payload_len(id: usize) -> usize {
    2 + (id * 7919) % 3000
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Echo,
    Abrupt,
    Silent,
    Flood,
    DeafFlood,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Sent the first half, waiting for its echo.
    FirstHalf,
    /// First half echoed; waiting for every other client to get there.
    Holding,
    /// Sent everything and shut down writing; reading to end of stream.
    Draining,
    Done,
}

struct Client {
    id: usize,
    kind: Kind,
    stream: TcpStream,
    phase: Phase,
    len: usize,
    /// Bytes to send now (up to here), bytes sent, bytes received.
    send_to: usize,
    sent: usize,
    received: usize,
    /// Whether our write side is shut down.
    shut: bool,
}

impl Client {
    fn byte(&self, offset: usize) -> u8 {
        pattern(self.id, offset)
    }

    /// Writes bytes up to `send_to`, as many as the socket takes.
    fn write_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        while self.sent < self.send_to {
            let n = (self.send_to - self.sent).min(chunk.len());
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = self.byte(self.sent + i);
            }
            match self.stream.write(&chunk[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => self.sent += w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads and checks what has arrived; Ok(true) at end of stream.
    fn read_more(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    for (i, &got) in buf[..n].iter().enumerate() {
                        let offset = self.received + i;
                        assert!(
                            offset < self.sent,
                            "client {} ({:?}): echo of {} bytes, only {} sent",
                            self.id,
                            self.kind,
                            offset + 1,
                            self.sent
                        );
                        assert_eq!(
                            got,
                            self.byte(offset),
                            "client {} ({:?}): wrong byte at offset {offset}",
                            self.id,
                            self.kind
                        );
                    }
                    self.received += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes with a reset (SO_LINGER 0) instead of a FIN.
    fn reset(self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the fd is an open socket owned by `self.stream`; the
        // option value is a valid `linger` of the size passed.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(self.stream);
    }
}

/// Drives every client against `addr`; see the module docs. Returns the
/// number of regular clients whose payload came back intact.
fn drive(addr: SocketAddr) -> usize {
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(4096);
    let mut kinds = Vec::new();
    kinds.extend(std::iter::repeat_n(Kind::Silent, SILENT));
    kinds.extend(std::iter::repeat_n(Kind::DeafFlood, DEAF_FLOODERS));
    kinds.extend(std::iter::repeat_n(Kind::Flood, FLOODERS));
    for i in 0..CLIENTS {
        kinds.push(Kind::Echo);
        if i % (CLIENTS / ABRUPT) == 0 {
            kinds.push(Kind::Abrupt);
        }
    }
    let mut clients: Vec<Option<Client>> = Vec::with_capacity(kinds.len());
    let mut next = 0usize;
    let mut connecting = 0usize;
    let mut holding = 0usize;
    let mut released = false;
    let mut echoed = 0usize;
    let mut flooded = 0usize;
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < LIMIT,
            "the exchange did not finish within {LIMIT:?}: {echoed} echoed, {holding} holding, \
             {connecting} connecting, {next} of {} started",
            kinds.len()
        );
        // Start connections, a bounded number at a time.
        while connecting < CONNECTS_IN_FLIGHT && next < kinds.len() {
            let mut stream = TcpStream::connect(addr).expect("connect");
            poll.registry()
                .register(
                    &mut stream,
                    Token(next),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register");
            let kind = kinds[next];
            let len = match kind {
                Kind::Echo => payload_len(next),
                Kind::Abrupt => 10_000,
                Kind::Silent => 0,
                Kind::Flood | Kind::DeafFlood => FLOOD_BYTES,
            };
            clients.push(Some(Client {
                id: next,
                kind,
                stream,
                phase: Phase::Connecting,
                len,
                send_to: 0,
                sent: 0,
                received: 0,
                shut: false,
            }));
            next += 1;
            connecting += 1;
        }
        // Once every regular client holds a live instance (its first half
        // echoed), release them all.
        if !released && next == kinds.len() && holding == CLIENTS {
            released = true;
            for client in clients.iter_mut().flatten() {
                if client.kind == Kind::Echo && client.phase == Phase::Holding {
                    client.send_to = client.len;
                    client.phase = Phase::Draining;
                    client.write_more().expect("write the second half");
                    if client.sent == client.len {
                        client
                            .stream
                            .shutdown(std::net::Shutdown::Write)
                            .expect("shutdown");
                        client.shut = true;
                    }
                }
            }
        }
        if echoed == CLIENTS && flooded == FLOODERS {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .expect("poll");
        for event in events.iter() {
            let index = event.token().0;
            let Some(client) = clients.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if client.phase == Phase::Connecting {
                if !event.is_writable() && !event.is_error() {
                    continue;
                }
                match client.stream.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => panic!("client {index} could not connect: {e}"),
                }
                match client.stream.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => panic!("client {index} could not connect: {e}"),
                }
                connecting -= 1;
                client.phase = Phase::FirstHalf;
                client.send_to = match client.kind {
                    Kind::Echo => client.len / 2,
                    Kind::Abrupt => client.len / 2,
                    Kind::Silent => 0,
                    Kind::Flood | Kind::DeafFlood => client.len,
                };
            }
            match client.kind {
                Kind::Silent => continue,
                Kind::Abrupt => {
                    client.write_more().expect("abrupt client write");
                    if client.sent == client.send_to {
                        // Reset mid-stream, without reading the echo.
                        if let Some(c) = clients[index].take() {
                            c.reset();
                        }
                    }
                    continue;
                }
                Kind::DeafFlood => {
                    // Writes until the socket is full, never reads; it is
                    // reset once the regular clients are done.
                    let _ = client.write_more();
                    continue;
                }
                Kind::Echo | Kind::Flood => {}
            }
            client
                .write_more()
                .unwrap_or_else(|e| panic!("client {index} ({:?}) write: {e}", client.kind));
            let sending_last = client.phase == Phase::Draining || client.kind == Kind::Flood;
            if sending_last && client.sent == client.len && !client.shut {
                client
                    .stream
                    .shutdown(std::net::Shutdown::Write)
                    .unwrap_or_else(|e| panic!("client {index} shutdown: {e}"));
                client.shut = true;
                client.phase = Phase::Draining;
            }
            let eof = client
                .read_more()
                .unwrap_or_else(|e| panic!("client {index} ({:?}) read: {e}", client.kind));
            match client.phase {
                Phase::FirstHalf if client.received == client.send_to => {
                    client.phase = Phase::Holding;
                    holding += 1;
                }
                Phase::Draining if eof => {
                    assert_eq!(
                        client.received, client.len,
                        "client {index} ({:?}): end of stream before the whole echo",
                        client.kind
                    );
                    client.phase = Phase::Done;
                    if client.kind == Kind::Echo {
                        echoed += 1;
                    } else {
                        flooded += 1;
                    }
                    // Close our side too; keep the slot empty.
                    clients[index] = None;
                }
                _ => assert!(!eof, "client {index}: unexpected end of stream"),
            }
        }
    }
    // Silent clients just close; deaf flooders reset.
    for client in clients.iter_mut() {
        if let Some(c) = client.take() {
            match c.kind {
                Kind::DeafFlood => c.reset(),
                _ => drop(c),
            }
        }
    }
    echoed
}

/// Starts `shoal serve` on a free loopback port; returns the child, the
/// address and a channel of its stderr lines.
fn start_serve(extra: &[&str]) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let echo = cli_support::repo_file("examples/echo.wat");
    let mut child = Command::new(cli_support::SHOAL)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg(&echo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("shoal serve prints its address");
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in `{first}`"));
    (child, addr, rx)
}

/// Sends SIGTERM and waits for a clean exit; returns stderr's remaining
/// lines.
fn stop_serve(mut child: Child, rx: &mpsc::Receiver<String>) -> Vec<String> {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: plain kill(2) of our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = cli_support::wait_limited(&mut child, Duration::from_secs(30), &["serve"]);
    assert_eq!(
        status.code(),
        Some(0),
        "shoal serve exits with 0 on SIGTERM"
    );
    rx.iter().collect()
}

/// One round trip on a fresh blocking connection.
fn echo_once(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(payload).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read the echo");
    back
}

#[test]
fn ten_thousand_concurrent_connections() {
    let (child, addr, rx) = start_serve(&["--budget", "5s", "--max-memory", "64KiB"]);
    let started = Instant::now();
    let echoed = drive(addr);
    assert_eq!(echoed, CLIENTS);
    let exchange = started.elapsed();
    // The server is still healthy.
    assert_eq!(echo_once(addr, b"still there?"), b"still there?");
    let lines = stop_serve(child, &rx);
    let summary = lines
        .iter()
        .find(|l| l.contains("stopped (SIGTERM)"))
        .unwrap_or_else(|| panic!("no summary in {lines:#?}"));
    let total = CLIENTS + ABRUPT + SILENT + FLOODERS + DEAF_FLOODERS + 1;
    assert!(
        summary.contains(&format!("{total} connection(s) accepted")),
        "{summary}"
    );
    assert!(summary.contains(" 0 trapped"), "{summary}");
    assert!(summary.contains(" 0 refused"), "{summary}");
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:#?}");
    eprintln!(
        "{CLIENTS} echo clients and {} others served in {exchange:?}",
        total - CLIENTS
    );
}

#[test]
fn graceful_shutdown_waits_for_live_connections_then_cancels() {
    let (mut child, addr, rx) = start_serve(&["--grace", "300ms"]);
    // A connection that stays open and silent.
    let silent = std::net::TcpStream::connect(addr).expect("connect");
    assert_eq!(echo_once(addr, b"hello"), b"hello");
    std::thread::sleep(Duration::from_millis(100));
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: plain kill(2) of our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let t = Instant::now();
    let status = cli_support::wait_limited(&mut child, Duration::from_secs(30), &["serve"]);
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "waited for the grace period"
    );
    let lines: Vec<String> = rx.iter().collect();
    let all = lines.join("\n");
    assert!(
        all.contains("waiting up to 300ms for 1 live connection(s)"),
        "{all}"
    );
    assert!(
        all.contains("stopped (SIGINT): 2 connection(s) accepted"),
        "{all}"
    );
    assert!(all.contains("1 cancelled at shutdown"), "{all}");
    // The silent client sees its connection closed.
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn serve_limits_each_instance() {
    // A guest that spins: with --budget it is stopped, alone, and logged.
    let dir = cli_support::TempDir::new("serve-limits");
    let spin = dir.file(
        "spin.wat",
        r#"(module (func $spin (export "_start") (loop $l (br $l))))"#,
    );
    let mut child = Command::new(cli_support::SHOAL)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--budget",
            "50ms",
            "--max-connections",
            "2",
        ])
        .arg(&spin)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal serve");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("first line");
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in `{line}`"));
    let a = std::net::TcpStream::connect(addr).expect("connect");
    let b = std::net::TcpStream::connect(addr).expect("connect");
    let c = std::net::TcpStream::connect(addr).expect("connect");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Each spinning instance runs out of budget; the connections close.
    for mut s in [a, b, c] {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: plain kill(2) of our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = cli_support::wait_limited(&mut child, Duration::from_secs(30), &["serve"]);
    assert_eq!(status.code(), Some(0));
    let all: Vec<String> = rx.iter().collect();
    let all = all.join("\n");
    assert!(all.contains("ran out of CPU budget"), "{all}");
    assert!(all.contains("3 connection(s) accepted"), "{all}");
    // At most two at once: the third was either refused or served after
    // one of the first two ended.
    assert!(all.contains("trapped"), "{all}");
}

#[test]
fn connection_server_in_process() {
    use shoal::runtime::{Runtime, ShutdownMode};
    use shoal::server::ConnectionServer;
    use shoal::wasi::{Socket, WasiCtx};
    let runtime = Runtime::builder().workers(2).build().expect("runtime");
    let module = runtime
        .compile(shoal::bench::echo::ECHO_WAT)
        .expect("echo.wat compiles");
    let mut linker = shoal::Linker::new(runtime.engine());
    shoal::wasi::add_to_linker(&mut linker, |ctx: &mut WasiCtx| ctx).expect("wasi");
    let template = runtime
        .template(&module, &linker, "_start")
        .expect("template");
    let listener = shoal::scheduler::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut server = ConnectionServer::builder(template, |stream, _| {
        Ok(WasiCtx::builder().socket(Socket::from(stream)).build()?)
    })
    .start(&runtime, listener)
    .expect("start");
    let addr = server.local_addr();
    let threads: Vec<_> = (0..50)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    let payload: Vec<u8> = (0..(t * 97 + i * 13 + 1))
                        .map(|k| pattern(t * 100 + i, k))
                        .collect();
                    assert_eq!(echo_once(addr, &payload), payload);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert!(server.wait_idle(Duration::from_secs(10)), "{server:?}");
    let stats = server.stats();
    assert_eq!(stats.accepted, 500);
    assert_eq!(stats.exited_ok, 500);
    assert_eq!((stats.failed, stats.refused, stats.active), (0, 0, 0));
    server
        .stop_accepting()
        .expect("the accept loop ends cleanly");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed"
    );
    runtime.shutdown(ShutdownMode::Wait).expect("shutdown");
}
