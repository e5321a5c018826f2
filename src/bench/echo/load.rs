//! The load generator: closed-loop echo clients on mio event loops.
//!
//! # Protocol
//!
//! 1. **Own descriptor tables.** Each client thread first gives itself a
//!    private descriptor table (`close_range(3, ~0, CLOSE_RANGE_UNSHARE)`:
//!    a copy of the process's table, less everything but stdio). The
//!    per-process limit on open files (`RLIMIT_NOFILE`, 20,000 on the
//!    machines this was written on, and only root can raise it) bounds the
//!    highest descriptor number *in one table*, so the clients' sockets and
//!    the servers' sockets no longer compete: 10,000 connections need
//!    10,000 descriptors on each side. A thread's table and every socket in
//!    it go away when the thread exits.
//! 2. **Connect.** Each thread opens its share of the connections, at most
//!    [`CONNECTS_IN_FLIGHT`] at a time, so that a burst never overflows the
//!    server's accept backlog (a dropped SYN is retried only after a
//!    second).
//! 3. **Start together.** Once every thread is connected (or one failed:
//!    then all stop), they share one start instant.
//! 4. **Ping-pong.** Every connection sends a request of `payload` bytes,
//!    reads the echo back to the last byte, checks every byte, and sends
//!    the next request at once. The bytes differ per connection and per
//!    request (`pattern`). A request counts, and its latency (first write
//!    to last byte read) goes into the thread's histogram, when it was
//!    sent after the warm-up and completed within the measured window.
//! 5. **End.** At the end of the window the thread closes its connections
//!    (the servers see end of stream) and returns its figures.

use super::error::EchoError;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Connects a thread has in flight at once.
pub(crate) const CONNECTS_IN_FLIGHT: usize = 256;
/// How long connecting may take in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Highest latency the histograms hold (larger values are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What to run.
pub(crate) struct LoadSpec {
    pub(crate) server: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) connections: usize,
    pub(crate) threads: usize,
    pub(crate) payload: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
}

/// What a run measured.
pub(crate) struct LoadResult {
    /// Requests completed within the window.
    pub(crate) requests: u64,
    /// Their latencies, in nanoseconds.
    pub(crate) latency_ns: Histogram<u64>,
    /// Connections the server closed or reset before the end.
    pub(crate) errors: u64,
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 ns to 60 s at 3 significant digits: valid bounds, cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// The byte at `offset` of request `seq` on connection `conn`.
fn pattern(conn: usize, seq: u64, offset: usize) -> u8 {
    let x = (conn as u64)
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(seq.wrapping_mul(0x85eb_ca6b))
        .wrapping_add(offset as u64);
    (x ^ (x >> 7)) as u8
}

/// Runs the load against `spec.addr`; see the module docs.
pub(crate) fn run(spec: &LoadSpec) -> Result<LoadResult, EchoError> {
    let threads = spec.threads.clamp(1, spec.connections.max(1));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Arc::new(OnceLock::<Instant>::new());
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let first = spec.connections * t / threads;
        let end = spec.connections * (t + 1) / threads;
        let client = Client {
            server: spec.server,
            addr: spec.addr,
            ids: first..end,
            payload: spec.payload,
            warmup: spec.warmup,
            duration: spec.duration,
        };
        let (barrier, failed, start) = (barrier.clone(), failed.clone(), start.clone());
        let handle = std::thread::Builder::new()
            .name(format!("echo-client-{t}"))
            .spawn(move || client.run(&barrier, &failed, &start))
            .map_err(EchoError::io("cannot start a client thread"))?;
        handles.push(handle);
    }
    // Step 3: wait for every thread to connect, then start them together.
    barrier.wait();
    let _ = start.set(Instant::now());
    barrier.wait();
    let mut total = LoadResult {
        requests: 0,
        latency_ns: new_histogram(),
        errors: 0,
    };
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(part)) => {
                total.requests += part.requests;
                total.errors += part.errors;
                // Same bounds on both sides: adding cannot fail.
                let _ = total.latency_ns.add(&part.latency_ns);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(EchoError::Panicked("echo client".into()));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

struct Client {
    server: &'static str,
    addr: SocketAddr,
    ids: std::ops::Range<usize>,
    payload: usize,
    warmup: Duration,
    duration: Duration,
}

struct Conn {
    id: usize,
    stream: TcpStream,
    connected: bool,
    alive: bool,
    seq: u64,
    out: Vec<u8>,
    written: usize,
    received: usize,
    sent_at: Instant,
}

impl Client {
    fn run(
        self,
        barrier: &Barrier,
        failed: &AtomicBool,
        start: &OnceLock<Instant>,
    ) -> Result<LoadResult, EchoError> {
        let connected = own_descriptor_table()
            .map_err(EchoError::io(
                "cannot give the client thread its own descriptor table",
            ))
            .and_then(|()| self.connect_all());
        if connected.is_err() {
            failed.store(true, Ordering::Release);
        }
        barrier.wait();
        barrier.wait();
        let (poll, conns) = connected?;
        if failed.load(Ordering::Acquire) {
            return Ok(LoadResult {
                requests: 0,
                latency_ns: new_histogram(),
                errors: 0,
            });
        }
        let start = start.get().copied().unwrap_or_else(Instant::now);
        self.ping_pong(poll, conns, start)
    }

    /// Step 2 of the module docs.
    fn connect_all(&self) -> Result<(Poll, Vec<Conn>), EchoError> {
        let mut poll = Poll::new().map_err(EchoError::io("cannot create a mio Poll"))?;
        let mut events = Events::with_capacity(1024);
        let mut conns: Vec<Conn> = Vec::with_capacity(self.ids.len());
        let wanted = self.ids.len();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut in_flight = 0usize;
        let mut done = 0usize;
        let mut ids = self.ids.clone();
        let connect_error = |connected: usize, source: io::Error| EchoError::Connect {
            connected,
            wanted,
            source,
        };
        while done < wanted {
            while in_flight < CONNECTS_IN_FLIGHT {
                let Some(id) = ids.next() else { break };
                let mut stream =
                    TcpStream::connect(self.addr).map_err(|e| connect_error(done, e))?;
                let token = Token(conns.len());
                poll.registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| connect_error(done, e))?;
                conns.push(Conn {
                    id,
                    stream,
                    connected: false,
                    alive: true,
                    seq: 0,
                    out: Vec::with_capacity(self.payload),
                    written: 0,
                    received: 0,
                    sent_at: Instant::now(),
                });
                in_flight += 1;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(connect_error(
                    done,
                    io::Error::new(io::ErrorKind::TimedOut, "connecting took over 30 s"),
                ));
            }
            poll.poll(&mut events, Some(deadline - now))
                .map_err(EchoError::io("poll"))?;
            for event in events.iter() {
                let Some(conn) = conns.get_mut(event.token().0) else {
                    continue;
                };
                if conn.connected || !(event.is_writable() || event.is_error()) {
                    continue;
                }
                if let Some(e) = conn
                    .stream
                    .take_error()
                    .map_err(|e| connect_error(done, e))?
                {
                    return Err(connect_error(done, e));
                }
                match conn.stream.peer_addr() {
                    Ok(_) => {
                        let _ = conn.stream.set_nodelay(true);
                        conn.connected = true;
                        in_flight -= 1;
                        done += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => return Err(connect_error(done, e)),
                }
            }
        }
        Ok((poll, conns))
    }

    /// Step 4 of the module docs.
    fn ping_pong(
        &self,
        mut poll: Poll,
        mut conns: Vec<Conn>,
        start: Instant,
    ) -> Result<LoadResult, EchoError> {
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let mut result = LoadResult {
            requests: 0,
            latency_ns: new_histogram(),
            errors: 0,
        };
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; self.payload.max(16 * 1024)];
        let now = Instant::now();
        for conn in &mut conns {
            if !begin_request(conn, self.payload, now) {
                conn.alive = false;
                result.errors += 1;
            }
        }
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            poll.poll(&mut events, Some(end - now))
                .map_err(EchoError::io("poll"))?;
            for event in events.iter() {
                let Some(conn) = conns.get_mut(event.token().0) else {
                    continue;
                };
                if !conn.alive {
                    continue;
                }
                if event.is_writable() && conn.written < conn.out.len() && !write_more(conn) {
                    conn.alive = false;
                    result.errors += 1;
                    continue;
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let ok = self.read_echo(conn, &mut buf, measure_from, end, &mut result)?;
                    if !ok {
                        conn.alive = false;
                        result.errors += 1;
                    }
                }
            }
        }
        // Step 5: closing the sockets ends the servers' connections.
        drop(conns);
        drop(poll);
        Ok(result)
    }

    /// Reads what has arrived on `conn`, checks it, and starts the next
    /// request when the echo is complete. False when the connection broke.
    fn read_echo(
        &self,
        conn: &mut Conn,
        buf: &mut [u8],
        measure_from: Instant,
        end: Instant,
        result: &mut LoadResult,
    ) -> Result<bool, EchoError> {
        loop {
            let n = match conn.stream.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(false),
            };
            for (i, &got) in buf[..n].iter().enumerate() {
                let offset = conn.received + i;
                let expected = conn.out.get(offset).copied();
                if expected != Some(got) {
                    return Err(EchoError::WrongEcho {
                        server: self.server,
                        connection: conn.id,
                        request: conn.seq,
                        offset,
                        expected: expected.unwrap_or(0),
                        got,
                    });
                }
            }
            conn.received += n;
            if conn.received == conn.out.len() {
                let now = Instant::now();
                if conn.sent_at >= measure_from && now <= end {
                    result.requests += 1;
                    let ns = u64::try_from((now - conn.sent_at).as_nanos()).unwrap_or(u64::MAX);
                    result.latency_ns.saturating_record(ns.max(1));
                }
                conn.seq += 1;
                if !begin_request(conn, self.payload, now) {
                    return Ok(false);
                }
            }
        }
    }
}

/// Fills `conn.out` with the next request and writes what the socket takes.
fn begin_request(conn: &mut Conn, payload: usize, now: Instant) -> bool {
    conn.out.clear();
    conn.out
        .extend((0..payload).map(|offset| pattern(conn.id, conn.seq, offset)));
    conn.written = 0;
    conn.received = 0;
    conn.sent_at = now;
    write_more(conn)
}

/// Writes more of the current request; false when the connection broke.
fn write_more(conn: &mut Conn) -> bool {
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => return false,
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Step 1 of the module docs: a private descriptor table for the calling
/// thread, holding only stdio.
fn own_descriptor_table() -> io::Result<()> {
    // SAFETY: `close_range` with CLOSE_RANGE_UNSHARE first gives the calling
    // thread a private copy of the descriptor table, then closes
    // descriptors 3 and up *in that copy*: every other thread keeps its
    // descriptors. This thread was just started and owns no descriptor
    // (it holds only its spec, a barrier and atomics), so none of its
    // objects refers to a closed descriptor.
    let ret = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_UNSHARE as libc::c_int) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
