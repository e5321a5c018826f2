//! Waiting for I/O readiness from green threads.
//!
//! Each worker owns a `mio::Poll` and a readiness table: one slot per
//! registration, holding two readiness bits (readable, writable) and the
//! green threads waiting on each. A readiness event sets the bit and unparks
//! the waiters; the worker processes events between green-thread switches,
//! on its own thread, so no lock guards the table.
//!
//! Three ways to wait:
//!
//! - [`Registered<S>`] keeps a source registered (edge-triggered) with the
//!   Poll of every worker it has been used on, so that waits cost no system
//!   call. Its [`read_with`](Registered::read_with) /
//!   [`write_with`](Registered::write_with) run a non-blocking operation and,
//!   on `WouldBlock`, clear the readiness bit and park until the worker sees
//!   the source ready again. Clearing happens on the green thread right after
//!   the `WouldBlock`, with no event processing in between (same OS thread),
//!   so an edge is never lost. [`read_bytes_with`](Registered::read_bytes_with)
//!   also clears it after a short read, which emptied the socket. The `net`
//!   wrappers are built on it.
//! - [`wait_readable`] / [`wait_writable`] take any `mio::event::Source`,
//!   register it for the duration of one wait and deregister it.
//! - [`wait_any`] does the same for several descriptors at once, with an
//!   optional deadline: it returns on the first one ready or when the
//!   deadline passes (WASI's `poll_oneoff`).
//!
//! Outside green threads both fall back to blocking the OS thread (`poll(2)`
//! on the fd, or a temporary `mio::Poll`).
//!
//! Cancellation never unwinds out of these functions: a cancelled green
//! thread gets an `io::Error` for which [`is_cancelled`] returns true.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use mio::event::{Event, Source};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::cache::prefetch;
use crate::context::{current_task, current_worker};
use crate::error::Cancelled;
use crate::sys;
pub use crate::sys::poll_fds;
use crate::task::Task;
use crate::thread::TimerGuard;
use crate::worker::{Message, WorkerCore, WorkerRemote};

/// Readiness direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Readiness bits of a slot. `READ_CLOSED` is the one a short read leaves
/// set: the source reported end of stream or an error, which every later
/// read sees at once (with no new event to say so).
const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;

impl Direction {
    /// The readiness bits that let a wait in this direction return.
    fn bit(self) -> u8 {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE,
        }
    }

    fn interest(self) -> Interest {
        match self {
            Direction::Read => Interest::READABLE,
            Direction::Write => Interest::WRITABLE,
        }
    }
}

/// The error a cancelled green thread gets from an I/O wait.
pub fn cancelled_error() -> io::Error {
    io::Error::other(Cancelled)
}

/// The error a wait of the cancelled green thread `task` returns at once;
/// it yields first anyway, so that a caller retrying in a loop does not
/// monopolise the worker.
fn yield_cancelled(task: &Task) -> io::Error {
    let _ = task.yield_green();
    cancelled_error()
}

/// Whether `err` reports that the waiting green thread was cancelled.
pub fn is_cancelled(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Cancelled>())
}

/// The green threads waiting on one direction of a slot: almost always
/// one, kept in the slot itself, so that an event finds it without
/// loading another line.
type Waiters = SmallVec<[Arc<Task>; 1]>;

struct IoSlot {
    generation: u32,
    in_use: bool,
    readiness: u8,
    readers: Waiters,
    writers: Waiters,
}

impl IoSlot {
    fn waiters(&mut self, dir: Direction) -> &mut Waiters {
        match dir {
            Direction::Read => &mut self.readers,
            Direction::Write => &mut self.writers,
        }
    }
}

/// A worker's readiness table. Tokens are `generation << 32 | index`, so a
/// stale event for a reused slot is recognised and ignored.
pub(crate) struct IoTable {
    slots: Vec<IoSlot>,
    free: Vec<u32>,
    live: usize,
}

const MAX_GENERATION: u32 = 1 << 30;

impl IoTable {
    pub(crate) fn new() -> Self {
        IoTable {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Registrations alive.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    fn split(token: usize) -> (usize, u32) {
        (token & 0xffff_ffff, (token >> 32) as u32)
    }

    fn slot(&mut self, token: usize) -> Option<&mut IoSlot> {
        let (index, generation) = Self::split(token);
        self.slots
            .get_mut(index)
            .filter(|s| s.in_use && s.generation == generation)
    }

    /// A new slot, not ready in either direction.
    pub(crate) fn alloc(&mut self) -> usize {
        self.live += 1;
        let index = match self.free.pop() {
            Some(index) => index as usize,
            None => {
                self.slots.push(IoSlot {
                    generation: 0,
                    in_use: false,
                    readiness: 0,
                    readers: Waiters::new(),
                    writers: Waiters::new(),
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.in_use = true;
        slot.readiness = 0;
        ((slot.generation as usize) << 32) | index
    }

    /// Frees a slot; its waiters are woken (they will find it gone).
    pub(crate) fn free(&mut self, token: usize) {
        let (index, _) = Self::split(token);
        let Some(slot) = self.slot(token) else {
            return;
        };
        slot.in_use = false;
        slot.generation = (slot.generation + 1) % MAX_GENERATION;
        let readers = std::mem::take(&mut slot.readers);
        let writers = std::mem::take(&mut slot.writers);
        self.free.push(index as u32);
        self.live -= 1;
        for task in readers.iter().chain(writers.iter()) {
            Task::unpark(task);
        }
    }

    /// The slot `token` names, whether or not it is still that token's:
    /// for cache hints only.
    fn slot_for_hint(&self, token: usize) -> Option<&IoSlot> {
        self.slots.get(Self::split(token).0)
    }

    /// Starts loading the slot of `token` (see [`IoTable::dispatch_all`]).
    fn prefetch_slot(&self, token: usize) {
        if let Some(slot) = self.slot_for_hint(token) {
            let at = slot as *const IoSlot as usize;
            prefetch(at);
            prefetch(at.wrapping_add(std::mem::size_of::<IoSlot>() - 1));
        }
    }

    /// Starts loading what waking the tasks waiting on the slot of `token`
    /// touches (see [`IoTable::dispatch_all`] and `Task::prefetch_shared`).
    fn prefetch_waiters(&self, token: usize) {
        if let Some(slot) = self.slot_for_hint(token) {
            for task in slot.readers.iter().chain(slot.writers.iter()) {
                Task::prefetch_shared(task);
            }
        }
    }

    /// Records a batch of events and wakes the tasks they concern,
    /// skipping `skip` (the worker's own waker).
    ///
    /// With a thousand connections the slots and the tasks of a batch are
    /// out of the caches, and waking one meant waiting for its slot's line,
    /// then for its task's lines, in turn, event after event. So the batch
    /// is walked three times: to start loading every event's slot, then
    /// (those lines having come in meanwhile) every waiting task's lines,
    /// then to dispatch.
    pub(crate) fn dispatch_all(&mut self, events: &Events, skip: Token) {
        for event in events.iter() {
            self.prefetch_slot(event.token().0);
        }
        for event in events.iter() {
            self.prefetch_waiters(event.token().0);
        }
        for event in events.iter() {
            if event.token() != skip {
                self.dispatch(event);
            }
        }
    }

    /// Records an event and wakes the tasks it concerns.
    pub(crate) fn dispatch(&mut self, event: &Event) {
        let Some(slot) = self.slot(event.token().0) else {
            return;
        };
        let error = event.is_error();
        let read_closed = event.is_read_closed() || error;
        if event.is_readable() || read_closed {
            slot.readiness |= if read_closed {
                READABLE | READ_CLOSED
            } else {
                READABLE
            };
            for task in slot.readers.drain(..) {
                Task::unpark(&task);
            }
        }
        if event.is_writable() || event.is_write_closed() || error {
            slot.readiness |= WRITABLE;
            for task in slot.writers.drain(..) {
                Task::unpark(&task);
            }
        }
    }

    /// `Some(ready)`, or `None` if the slot is gone.
    fn is_ready(&mut self, token: usize, dir: Direction) -> Option<bool> {
        self.slot(token).map(|s| s.readiness & dir.bit() != 0)
    }

    /// Clears the readiness `bits` of `token`: a direction's
    /// ([`Direction::bit`]) after `WouldBlock`, or only `READABLE` after a
    /// short read (no data is left, but an end of stream or error already
    /// seen stays).
    fn clear_ready(&mut self, token: usize, bits: u8) {
        if let Some(slot) = self.slot(token) {
            slot.readiness &= !bits;
        }
    }

    fn add_waiter(&mut self, token: usize, dir: Direction, task: &Task) {
        if let Some(slot) = self.slot(token) {
            let waiters = slot.waiters(dir);
            if !waiters.iter().any(|t| std::ptr::eq(&**t, task)) {
                waiters.push(task.arc());
            }
        }
    }

    fn remove_waiter(&mut self, token: usize, dir: Direction, task: &Task) {
        if let Some(slot) = self.slot(token) {
            slot.waiters(dir).retain(|t| !std::ptr::eq(&**t, task));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.live = 0;
    }
}

/// Parks `task` until slot `token` is ready in `dir` (or gone).
fn wait_on_slot(worker: &WorkerCore, task: &Task, token: usize, dir: Direction) -> io::Result<()> {
    let mut wakes = 0u32;
    loop {
        {
            let mut io = worker.io().borrow_mut();
            match io.is_ready(token, dir) {
                Some(false) => io.add_waiter(token, dir, task),
                Some(true) | None => break,
            }
        }
        if task.park_green().is_err() {
            worker.io().borrow_mut().remove_waiter(token, dir, task);
            return Err(cancelled_error());
        }
        wakes += 1;
    }
    // Ready at the first look: no waiter was added.
    if wakes > 0 {
        worker.io().borrow_mut().remove_waiter(token, dir, task);
    }
    if wakes > 1 {
        task.restore_token();
    }
    Ok(())
}

struct Registration {
    remote: Arc<WorkerRemote>,
    token: usize,
}

/// A non-blocking file descriptor that green threads can wait on.
///
/// The source must be in non-blocking mode. It is registered lazily, once
/// per worker it is used on (so it may move between green threads and
/// workers freely), and deregistered on drop.
pub struct Registered<S: AsRawFd> {
    source: S,
    registrations: Mutex<Vec<Registration>>,
}

impl<S: AsRawFd> Registered<S> {
    /// Wraps a non-blocking source.
    pub fn new(source: S) -> Self {
        Registered {
            source,
            registrations: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped source.
    pub fn get_ref(&self) -> &S {
        &self.source
    }

    /// The wrapped source, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Deregisters and returns the source.
    pub fn into_inner(mut self) -> S {
        self.deregister_all();
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is moved
        // out or dropped exactly once.
        unsafe {
            std::ptr::drop_in_place(&mut this.registrations);
            std::ptr::read(&this.source)
        }
    }

    fn fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }

    /// The readiness-table token of this source on `worker`, if it is
    /// registered there.
    fn registered_token(&self, worker: &WorkerCore) -> Option<usize> {
        self.registrations
            .lock()
            .iter()
            .find(|r| std::ptr::eq(&*r.remote, worker.remote()))
            .map(|r| r.token)
    }

    /// The readiness-table token of this source on `worker`, registering it
    /// there first if needed.
    fn token_on(&self, worker: &WorkerCore) -> io::Result<usize> {
        let mut registrations = self.registrations.lock();
        if let Some(r) = registrations
            .iter()
            .find(|r| std::ptr::eq(&*r.remote, worker.remote()))
        {
            return Ok(r.token);
        }
        let token = worker.io().borrow_mut().alloc();
        let fd = self.fd();
        if let Err(err) = worker.remote().registry().register(
            &mut SourceFd(&fd),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            worker.io().borrow_mut().free(token);
            return Err(err);
        }
        registrations.push(Registration {
            remote: worker.remote_arc().clone(),
            token,
        });
        Ok(token)
    }

    fn deregister_all(&mut self) {
        let fd = self.fd();
        let here = current_worker();
        for r in self.registrations.get_mut().drain(..) {
            let _ = r.remote.registry().deregister(&mut SourceFd(&fd));
            match here {
                Some(worker) if std::ptr::eq(worker.remote(), &*r.remote) => {
                    worker.io().borrow_mut().free(r.token)
                }
                _ => r.remote.send(Message::FreeIo(r.token)),
            }
        }
    }

    fn wait(&self, dir: Direction, clear: bool) -> io::Result<()> {
        let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
            return sys::poll_fd(self.fd(), dir == Direction::Read);
        };
        if task.is_cancelled() {
            return Err(yield_cancelled(task));
        }
        let token = self.token_on(worker)?;
        if clear {
            worker.io().borrow_mut().clear_ready(token, dir.bit());
        }
        wait_on_slot(worker, task, token, dir)
    }

    /// Waits until the worker has seen the source readable since readiness
    /// was last cleared (by `read_with` hitting `WouldBlock`). A freshly
    /// registered source reports its current state. Prefer
    /// [`read_with`](Self::read_with).
    pub fn wait_readable(&self) -> io::Result<()> {
        self.wait(Direction::Read, false)
    }

    /// Like [`wait_readable`](Self::wait_readable), for writability.
    pub fn wait_writable(&self) -> io::Result<()> {
        self.wait(Direction::Write, false)
    }

    /// Runs the non-blocking `op` until it does not return `WouldBlock`,
    /// parking the green thread (or blocking the OS thread) in between.
    pub fn read_with<R>(&self, op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.op_with(Direction::Read, op)
    }

    /// [`read_with`](Self::read_with) for an `op` that reads at most `len`
    /// bytes and returns how many it read, as `read(2)` on a stream socket.
    ///
    /// A short read (more than 0 bytes, fewer than `len`) emptied the
    /// socket's receive queue: the kernel copies all it has, up to `len`.
    /// So it clears the readiness bit, and the next call parks until the
    /// worker sees new data instead of first trying a read that would fail
    /// with `WouldBlock`, which saves a system call per message on
    /// request-response traffic (tokio does the same). No data is missed:
    /// data arriving after the short read wakes the Poll again
    /// (edge-triggered registrations report every arrival), and the worker
    /// only dispatches events between green-thread runs, after the bit was
    /// cleared. An end of stream or error seen before stays set (a bit of
    /// its own): its event came before the data was read, and no other will
    /// come. A source not yet registered on this worker is read first, as
    /// with `read_with` (its data may be queued already).
    ///
    /// Only for TCP streams: a Unix stream socket also stops a read short
    /// at a message carrying descriptors or credentials, with more data
    /// queued. Even on TCP, a read stops short at urgent data (`MSG_OOB`),
    /// which a peer can send: the rest then waits for the peer's next
    /// segment, on that connection only (tokio behaves the same). Not for
    /// `peek`: a short peek leaves the data queued, and no new event would
    /// come for it.
    pub fn read_bytes_with(
        &self,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
            return self.op_with(Direction::Read, op);
        };
        let registered = self.registered_token(worker);
        if let Some(token) = registered {
            if worker.io().borrow_mut().is_ready(token, Direction::Read) == Some(false) {
                if task.is_cancelled() {
                    return Err(yield_cancelled(task));
                }
                wait_on_slot(worker, task, token, Direction::Read)?;
            }
        }
        let result = self.op_with(Direction::Read, op);
        if let Ok(n) = result {
            if n > 0 && n < len {
                // Registering now (the first time on this worker) starts the
                // slot not ready, and the registration itself reports data
                // that came after the read. Failing to register only loses
                // the shortcut: the next read tries first.
                let token = registered.map_or_else(|| self.token_on(worker).ok(), Some);
                if let Some(token) = token {
                    worker.io().borrow_mut().clear_ready(token, READABLE);
                }
            }
        }
        result
    }

    /// Like [`read_with`](Self::read_with), waiting for writability.
    pub fn write_with<R>(&self, op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.op_with(Direction::Write, op)
    }

    fn op_with<R>(&self, dir: Direction, mut op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        loop {
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(dir, true)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }
}

impl<S: AsRawFd> Drop for Registered<S> {
    fn drop(&mut self) {
        self.deregister_all();
    }
}

impl<S: AsRawFd + std::fmt::Debug> std::fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Blocks until `source` is readable (or has an error or hang-up). Parks
/// only the green thread. The source is registered with the worker's Poll
/// for this one wait and deregistered afterwards, so it must not be
/// registered with another `mio::Registry` meanwhile.
pub fn wait_readable<S: Source + ?Sized>(source: &mut S) -> io::Result<()> {
    wait_once(source, Direction::Read)
}

/// Like [`wait_readable`], for writability.
pub fn wait_writable<S: Source + ?Sized>(source: &mut S) -> io::Result<()> {
    wait_once(source, Direction::Write)
}

fn wait_once<S: Source + ?Sized>(source: &mut S, dir: Direction) -> io::Result<()> {
    let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
        return wait_once_blocking(source, dir);
    };
    if task.is_cancelled() {
        return Err(yield_cancelled(task));
    }
    let registry = worker.remote().registry();
    let token = worker.io().borrow_mut().alloc();
    if let Err(err) = registry.register(source, Token(token), dir.interest()) {
        worker.io().borrow_mut().free(token);
        return Err(err);
    }
    let result = wait_on_slot(worker, task, token, dir);
    let deregistered = registry.deregister(source);
    worker.io().borrow_mut().free(token);
    result.and(deregistered)
}

fn wait_once_blocking<S: Source + ?Sized>(source: &mut S, dir: Direction) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry().register(source, Token(0), dir.interest())?;
    let mut events = Events::with_capacity(4);
    let result = loop {
        match poll.poll(&mut events, None) {
            Ok(()) if !events.is_empty() => break Ok(()),
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let deregistered = poll.registry().deregister(source);
    result.and(deregistered)
}

/// What ended a [`wait_any`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitAny {
    /// The descriptor at this index of the list is ready (the first one
    /// found; others may be ready too).
    Ready(usize),
    /// The deadline passed first.
    TimedOut,
}

/// Parks the green thread until the first of several descriptors is ready
/// for its interest (readable and/or writable; an error or hang-up counts
/// as ready) or `deadline` passes (`None`: no deadline). Blocks the OS
/// thread in `poll(2)` off a green thread.
///
/// On a green thread the descriptors are registered with the worker's
/// Poll for this one wait and deregistered before it returns, so none of
/// them may be registered with that Poll already: pass a duplicate
/// (`dup(2)`) of a descriptor that a [`Registered`] wrapper (e.g. a
/// [`net::TcpStream`](crate::net::TcpStream)) owns. Each entry needs its
/// own descriptor number. A descriptor that epoll cannot watch (a regular
/// file: `EPERM`) counts as ready, as `poll(2)` reports it.
///
/// The protocol, all on the worker's thread:
///
/// 1. allocate a readiness slot per descriptor and register it
///    (edge-triggered, like every registration: a fresh one reports the
///    descriptor's current state on the worker's next poll);
/// 2. arm the green thread's timer for `deadline`;
/// 3. loop: if a slot is ready, that is the answer; if the timer fired,
///    time is up; otherwise add the green thread as a waiter on every slot
///    and park (a readiness event or the timer unparks it);
/// 4. remove the waiters, deregister and free every slot, disarm the
///    timer. A cancelled green thread gets the error [`is_cancelled`]
///    recognises.
pub fn wait_any(fds: &[(RawFd, Interest)], deadline: Option<Instant>) -> io::Result<WaitAny> {
    let (Some(task), Some(worker)) = (current_task(), current_worker()) else {
        return wait_any_blocking(fds, deadline);
    };
    if task.is_cancelled() {
        return Err(yield_cancelled(task));
    }
    let mut waits = WaitAnyRegistrations {
        worker,
        task,
        slots: Vec::with_capacity(fds.len()),
    };
    for (index, &(fd, interest)) in fds.iter().enumerate() {
        let token = worker.io().borrow_mut().alloc();
        match worker
            .remote()
            .registry()
            .register(&mut SourceFd(&fd), Token(token), interest)
        {
            Ok(()) => waits.slots.push((fd, token, interest)),
            Err(err) => {
                worker.io().borrow_mut().free(token);
                return if err.raw_os_error() == Some(libc::EPERM) {
                    Ok(WaitAny::Ready(index))
                } else {
                    Err(err)
                };
            }
        }
    }
    let timer = deadline.map(|at| TimerGuard::new(worker, task, at));
    let mut wakes = 0u32;
    let result = loop {
        if let Some(index) = waits.ready() {
            break Ok(WaitAny::Ready(index));
        }
        if timer.as_ref().is_some_and(|t| !t.is_pending()) {
            break Ok(WaitAny::TimedOut);
        }
        waits.add_waiters();
        if task.park_green().is_err() {
            break Err(cancelled_error());
        }
        wakes += 1;
    };
    drop(timer);
    drop(waits);
    if result.is_ok() && wakes > 1 {
        // A wake-up that was not ours may have been a token meant for a
        // later park: keep it (as `wait_on_slot` does).
        task.restore_token();
    }
    result
}

/// The registrations of one [`wait_any`]; undone on drop.
struct WaitAnyRegistrations<'a> {
    worker: &'a WorkerCore,
    task: &'a Task,
    /// `(fd, token, interest)` of each registered descriptor, in list order.
    slots: Vec<(RawFd, usize, Interest)>,
}

fn directions(interest: Interest) -> impl Iterator<Item = Direction> {
    [
        (interest.is_readable(), Direction::Read),
        (interest.is_writable(), Direction::Write),
    ]
    .into_iter()
    .filter_map(|(wanted, dir)| wanted.then_some(dir))
}

impl WaitAnyRegistrations<'_> {
    /// The index of the first slot ready for its interest (or gone).
    fn ready(&self) -> Option<usize> {
        let mut io = self.worker.io().borrow_mut();
        self.slots.iter().position(|&(_, token, interest)| {
            directions(interest).any(|dir| io.is_ready(token, dir) != Some(false))
        })
    }

    fn add_waiters(&self) {
        let mut io = self.worker.io().borrow_mut();
        for &(_, token, interest) in &self.slots {
            for dir in directions(interest) {
                io.add_waiter(token, dir, self.task);
            }
        }
    }
}

impl Drop for WaitAnyRegistrations<'_> {
    fn drop(&mut self) {
        let registry = self.worker.remote().registry();
        let mut io = self.worker.io().borrow_mut();
        for &(fd, token, interest) in &self.slots {
            for dir in directions(interest) {
                io.remove_waiter(token, dir, self.task);
            }
            let _ = registry.deregister(&mut SourceFd(&fd));
            io.free(token);
        }
    }
}

/// [`wait_any`] off a green thread: `poll(2)` until a descriptor is ready
/// or the deadline.
fn wait_any_blocking(fds: &[(RawFd, Interest)], deadline: Option<Instant>) -> io::Result<WaitAny> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, interest)| {
            let read = if interest.is_readable() {
                libc::POLLIN
            } else {
                0
            };
            let write = if interest.is_writable() {
                libc::POLLOUT
            } else {
                0
            };
            libc::pollfd {
                fd,
                events: read | write,
                revents: 0,
            }
        })
        .collect();
    loop {
        if sys::poll_fds(&mut pollfds, deadline)? == 0 {
            return Ok(WaitAny::TimedOut);
        }
        if let Some(index) = pollfds.iter().position(|p| p.revents != 0) {
            return Ok(WaitAny::Ready(index));
        }
    }
}
