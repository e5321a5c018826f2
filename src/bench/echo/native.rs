//! The native side of the comparison: a plain mio echo server, written the
//! way one would write it without wasm.
//!
//! `threads` event-loop threads, each with its own `mio::Poll` and its own
//! connections (the same shape as Shoal's workers). Thread 0 owns the
//! listener and deals accepted connections out round robin: its own are
//! registered at once, the others' go through a channel and a
//! `mio::Waker`. Each connection is served edge-triggered: read up to 32
//! KiB (the echo guest's buffer size), write it all back, and again until
//! the read would block; bytes a full socket does not take wait in the
//! connection until it is writable. End of stream or an error closes it.
//!
//! [`NativeEchoServer::stop`] sets a flag and wakes every thread; each
//! closes its connections and exits.

use super::error::EchoError;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Bytes read at once, as the echo guest does.
const BUF_LEN: usize = 32 * 1024;

/// A running native echo server.
pub(crate) struct NativeEchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

struct Shared {
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl NativeEchoServer {
    /// Binds a loopback port and starts `threads` event loops.
    pub(crate) fn start(threads: usize) -> Result<NativeEchoServer, EchoError> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(EchoError::io("cannot bind the native echo server"))?;
        raise_backlog(&std_listener).map_err(EchoError::io("listen(4096)"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(EchoError::io("cannot make the listener non-blocking"))?;
        let addr = std_listener
            .local_addr()
            .map_err(EchoError::io("local_addr"))?;
        let mut listener = Some(TcpListener::from_std(std_listener));
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let threads = threads.max(1);
        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        let mut senders = Vec::with_capacity(threads);
        let mut receivers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(EchoError::io("cannot create a mio Poll"))?;
            let waker = Waker::new(poll.registry(), WAKER)
                .map_err(EchoError::io("cannot create a mio Waker"))?;
            let (tx, rx) = mpsc::channel::<TcpStream>();
            polls.push(poll);
            wakers.push(Arc::new(waker));
            senders.push(tx);
            receivers.push(rx);
        }
        let mut handles = Vec::with_capacity(threads);
        for (index, (poll, inbox)) in polls.into_iter().zip(receivers).enumerate() {
            let shared = Shared {
                stop: stop.clone(),
                live: live.clone(),
            };
            // Thread 0 accepts and deals connections out to everyone.
            let dealer = if index == 0 {
                listener
                    .take()
                    .map(|l| (l, senders.clone(), wakers.clone()))
            } else {
                None
            };
            let handle = std::thread::Builder::new()
                .name(format!("native-echo-{index}"))
                .spawn(move || event_loop(poll, inbox, dealer, &shared))
                .map_err(EchoError::io("cannot start a native server thread"))?;
            handles.push(handle);
        }
        Ok(NativeEchoServer {
            addr,
            stop,
            live,
            wakers,
            threads: handles,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub(crate) fn live_connections(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Stops every thread and closes every connection.
    pub(crate) fn stop(self) -> Result<(), EchoError> {
        self.stop.store(true, Ordering::Release);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
        for handle in self.threads {
            handle
                .join()
                .map_err(|_| EchoError::Panicked("native echo server".into()))?
                .map_err(EchoError::io("native echo server"))?;
        }
        Ok(())
    }
}

/// Re-issues `listen` with a backlog of 4096 (std uses 128, too few for a
/// burst of thousands of connects).
fn raise_backlog(listener: &std::net::TcpListener) -> io::Result<()> {
    // SAFETY: the fd is a bound socket owned by `listener`, alive for the
    // call; `listen` on a listening socket only updates its backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), 4096) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

struct Conn {
    stream: TcpStream,
    /// Read bytes the socket has not taken back yet.
    pending: Vec<u8>,
}

type Dealer = (TcpListener, Vec<mpsc::Sender<TcpStream>>, Vec<Arc<Waker>>);

fn event_loop(
    mut poll: Poll,
    inbox: mpsc::Receiver<TcpStream>,
    mut dealer: Option<Dealer>,
    shared: &Shared,
) -> io::Result<()> {
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; BUF_LEN];
    let mut next = 0usize;
    if let Some((listener, _, _)) = dealer.as_mut() {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
    }
    while !shared.stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                WAKER => {
                    while let Ok(stream) = inbox.try_recv() {
                        add(&poll, &mut conns, &mut free, stream, shared)?;
                    }
                }
                LISTENER => {
                    let Some((listener, senders, wakers)) = dealer.as_ref() else {
                        continue;
                    };
                    loop {
                        let stream = match listener.accept() {
                            Ok((stream, _)) => stream,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                            Err(e) => return Err(e),
                        };
                        let target = next % senders.len();
                        next = next.wrapping_add(1);
                        if target == 0 {
                            add(&poll, &mut conns, &mut free, stream, shared)?;
                        } else if senders[target].send(stream).is_ok() {
                            wakers[target].wake()?;
                        }
                    }
                }
                Token(token) => {
                    let index = token - FIRST_CONN;
                    let Some(Some(conn)) = conns.get_mut(index) else {
                        continue;
                    };
                    if !serve(conn, &mut buf) {
                        if let Some(mut conn) = conns[index].take() {
                            let _ = poll.registry().deregister(&mut conn.stream);
                        }
                        free.push(index);
                        shared.live.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        }
    }
    shared
        .live
        .fetch_sub(conns.iter().flatten().count(), Ordering::AcqRel);
    Ok(())
}

fn add(
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    mut stream: TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let index = free.pop().unwrap_or_else(|| {
        conns.push(None);
        conns.len() - 1
    });
    poll.registry().register(
        &mut stream,
        Token(index + FIRST_CONN),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    shared.live.fetch_add(1, Ordering::AcqRel);
    conns[index] = Some(Conn {
        stream,
        pending: Vec::new(),
    });
    Ok(())
}

/// Echoes what can be echoed now; false when the connection is done.
fn serve(conn: &mut Conn, buf: &mut [u8]) -> bool {
    if !conn.pending.is_empty() {
        match write_some(&mut conn.stream, &conn.pending) {
            Ok(n) if n == conn.pending.len() => conn.pending.clear(),
            Ok(n) => {
                conn.pending.drain(..n);
                return true;
            }
            Err(_) => return false,
        }
    }
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        match write_some(&mut conn.stream, &buf[..n]) {
            Ok(written) if written == n => {}
            Ok(written) => {
                // The socket is full: keep the rest until it is writable.
                conn.pending.extend_from_slice(&buf[written..n]);
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// Writes as much of `data` as the socket takes now.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match stream.write(&data[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
