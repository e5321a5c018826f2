//! Multi-producer, multi-consumer channels whose blocking operations park
//! the green thread, not its worker.
//!
//! A channel is a `VecDeque` under a `parking_lot::Mutex` plus two FIFO
//! queues of waiters (receivers waiting for a value, senders waiting for
//! room). No lock is ever held across a suspension. A blocking call:
//!
//! 1. takes the lock and tries to make progress (pop / push);
//! 2. otherwise enqueues a waiter (its [`Thread`] and a `notified` flag),
//!    releases the lock and parks until the flag is set;
//! 3. the party that makes progress possible (a `send` for receivers, a
//!    `recv` for senders, the last handle of the other side going away)
//!    dequeues one waiter (or all, on disconnect), sets its flag and unparks
//!    it after releasing the lock.
//!
//! A woken waiter goes back to step 1 (another thread may have taken the
//! value first). A waiter that leaves without consuming its notification
//! (cancelled while waiting) hands it to the next waiter, so no value is
//! stranded with a parked receiver.
//!
//! Blocking calls work on OS threads too (they block the OS thread). On a
//! cancelled green thread they unwind (see [`crate::yield_now`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::thread::{current, park_timeout, park_until, Thread};

/// The receiving side hung up: the value comes back.
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
#[error("sending on a channel whose receivers have all been dropped")]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

/// Why `try_send` failed; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TrySendError<T> {
    /// The channel is full.
    #[error("sending on a full channel")]
    Full(T),
    /// All receivers have been dropped.
    #[error("sending on a channel whose receivers have all been dropped")]
    Disconnected(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

/// The channel is empty and every sender has been dropped.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
#[error("receiving on an empty channel whose senders have all been dropped")]
pub struct RecvError;

/// Why `try_recv` failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TryRecvError {
    /// The channel is empty.
    #[error("receiving on an empty channel")]
    Empty,
    /// The channel is empty and every sender has been dropped.
    #[error("receiving on an empty channel whose senders have all been dropped")]
    Disconnected,
}

/// Why `recv_timeout` failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    #[error("timed out waiting on a channel")]
    Timeout,
    /// The channel is empty and every sender has been dropped.
    #[error("receiving on an empty channel whose senders have all been dropped")]
    Disconnected,
}

struct Waiter {
    thread: Thread,
    notified: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Receivers,
    Senders,
}

struct State<T> {
    queue: VecDeque<T>,
    senders: usize,
    receivers: usize,
    waiting_receivers: VecDeque<Arc<Waiter>>,
    waiting_senders: VecDeque<Arc<Waiter>>,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Receivers => Side::Senders,
            Side::Senders => Side::Receivers,
        }
    }
}

impl<T> State<T> {
    /// How many handles of `side` are alive.
    fn handles(&mut self, side: Side) -> &mut usize {
        match side {
            Side::Receivers => &mut self.receivers,
            Side::Senders => &mut self.senders,
        }
    }

    fn waiters(&mut self, side: Side) -> &mut VecDeque<Arc<Waiter>> {
        match side {
            Side::Receivers => &mut self.waiting_receivers,
            Side::Senders => &mut self.waiting_senders,
        }
    }

    /// Dequeues one waiter of `side` and marks it notified.
    fn notify_one(&mut self, side: Side) -> Option<Arc<Waiter>> {
        let waiter = self.waiters(side).pop_front()?;
        waiter.notified.store(true, Ordering::Release);
        Some(waiter)
    }

    fn notify_all(&mut self, side: Side) -> Vec<Arc<Waiter>> {
        let waiters: Vec<_> = self.waiters(side).drain(..).collect();
        for waiter in &waiters {
            waiter.notified.store(true, Ordering::Release);
        }
        waiters
    }
}

struct Chan<T> {
    capacity: Option<usize>,
    state: Mutex<State<T>>,
}

impl<T> Chan<T> {
    fn has_room(&self, state: &State<T>) -> bool {
        self.capacity.is_none_or(|cap| state.queue.len() < cap)
    }

    fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// A new handle of `side` (a clone).
    fn add_handle(&self, side: Side) {
        *self.state.lock().handles(side) += 1;
    }

    /// One handle of `side` is dropped; when it was the last, every waiter
    /// of the other side is woken (to find the channel disconnected).
    fn drop_handle(&self, side: Side) {
        let waiters = {
            let mut state = self.state.lock();
            let handles = state.handles(side);
            *handles -= 1;
            if *handles == 0 {
                state.notify_all(side.other())
            } else {
                Vec::new()
            }
        };
        for waiter in waiters {
            waiter.thread.unpark();
        }
    }
}

/// What both halves of a channel have alike: queue length and capacity,
/// `Clone` (one more handle of their side), `Drop` (one less: the last
/// wakes the other side) and `Debug`.
macro_rules! channel_handle {
    ($half:ident, $side:expr) => {
        impl<T> $half<T> {
            /// Values queued now.
            pub fn len(&self) -> usize {
                self.chan.len()
            }

            /// Whether no value is queued now.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The capacity (`None`: unbounded).
            pub fn capacity(&self) -> Option<usize> {
                self.chan.capacity
            }
        }

        impl<T> Clone for $half<T> {
            fn clone(&self) -> Self {
                self.chan.add_handle($side);
                $half {
                    chan: self.chan.clone(),
                }
            }
        }

        impl<T> Drop for $half<T> {
            fn drop(&mut self) {
                self.chan.drop_handle($side);
            }
        }

        impl<T> fmt::Debug for $half<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($half)).finish_non_exhaustive()
            }
        }
    };
}

/// Removes a waiter that leaves (normally or by unwinding); if it had been
/// notified but leaves unsatisfied, passes the notification on.
struct WaitGuard<'a, T> {
    chan: &'a Chan<T>,
    waiter: Arc<Waiter>,
    side: Side,
    armed: bool,
}

impl<'a, T> WaitGuard<'a, T> {
    fn enqueue(chan: &'a Chan<T>, state: &mut State<T>, side: Side) -> WaitGuard<'a, T> {
        let waiter = Arc::new(Waiter {
            thread: current(),
            notified: AtomicBool::new(false),
        });
        state.waiters(side).push_back(waiter.clone());
        WaitGuard {
            chan,
            waiter,
            side,
            armed: true,
        }
    }

    fn notified(&self) -> bool {
        self.waiter.notified.load(Ordering::Acquire)
    }

    /// The waiter will retry under the lock: no hand-off needed.
    fn dismiss(mut self, state: &mut State<T>) {
        if !self.notified() {
            let me = &self.waiter;
            state.waiters(self.side).retain(|w| !Arc::ptr_eq(w, me));
        }
        self.armed = false;
    }
}

impl<T> Drop for WaitGuard<'_, T> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let handoff = {
            let mut state = self.chan.state.lock();
            if self.notified() {
                let can_progress = match self.side {
                    Side::Receivers => !state.queue.is_empty(),
                    Side::Senders => self.chan.has_room(&state),
                };
                if can_progress {
                    state.notify_one(self.side)
                } else {
                    None
                }
            } else {
                let me = &self.waiter;
                state.waiters(self.side).retain(|w| !Arc::ptr_eq(w, me));
                None
            }
        };
        if let Some(waiter) = handoff {
            waiter.thread.unpark();
        }
    }
}

/// Creates a channel holding at most `capacity` values (a capacity of 0 is
/// treated as 1).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    new_channel(Some(capacity.max(1)))
}

/// Creates a channel with no limit on queued values (`send` never blocks).
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new_channel(None)
}

fn new_channel<T>(capacity: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        capacity,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receivers: 1,
            waiting_receivers: VecDeque::new(),
            waiting_senders: VecDeque::new(),
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, parking while the channel is full. Fails (returning
    /// the value) once every receiver is gone. Unwinds if the calling green
    /// thread is cancelled while waiting.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = value;
        loop {
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            let mut state = self.chan.state.lock();
            if state.receivers == 0 || self.chan.has_room(&state) {
                continue;
            }
            let guard = WaitGuard::enqueue(&self.chan, &mut state, Side::Senders);
            drop(state);
            park_until(|| guard.notified());
            guard.dismiss(&mut self.chan.state.lock());
        }
    }

    /// Sends without blocking.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let waiter = {
            let mut state = self.chan.state.lock();
            if state.receivers == 0 {
                return Err(TrySendError::Disconnected(value));
            }
            if !self.chan.has_room(&state) {
                return Err(TrySendError::Full(value));
            }
            state.queue.push_back(value);
            state.notify_one(Side::Receivers)
        };
        if let Some(waiter) = waiter {
            waiter.thread.unpark();
        }
        Ok(())
    }
}

channel_handle!(Sender, Side::Senders);

/// The receiving half; clone it for more consumers.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Receives a value, parking while the channel is empty. Fails once the
    /// channel is empty and every sender is gone. Unwinds if the calling
    /// green thread is cancelled while waiting.
    pub fn recv(&self) -> Result<T, RecvError> {
        loop {
            match self.try_recv() {
                Ok(value) => return Ok(value),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) => {}
            }
            let mut state = self.chan.state.lock();
            if state.senders == 0 || !state.queue.is_empty() {
                continue;
            }
            let guard = WaitGuard::enqueue(&self.chan, &mut state, Side::Receivers);
            drop(state);
            park_until(|| guard.notified());
            guard.dismiss(&mut self.chan.state.lock());
        }
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.try_recv() {
                Ok(value) => return Ok(value),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            let mut state = self.chan.state.lock();
            if state.senders == 0 || !state.queue.is_empty() {
                continue;
            }
            let guard = WaitGuard::enqueue(&self.chan, &mut state, Side::Receivers);
            drop(state);
            while !guard.notified() {
                let Some(deadline) = deadline else {
                    park_until(|| guard.notified());
                    break;
                };
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                park_timeout(deadline - now);
            }
            let timed_out = !guard.notified();
            guard.dismiss(&mut self.chan.state.lock());
            if timed_out {
                return match self.try_recv() {
                    Ok(value) => Ok(value),
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                };
            }
        }
    }

    /// Receives without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let (value, waiter) = {
            let mut state = self.chan.state.lock();
            match state.queue.pop_front() {
                Some(value) => (value, state.notify_one(Side::Senders)),
                None if state.senders == 0 => return Err(TryRecvError::Disconnected),
                None => return Err(TryRecvError::Empty),
            }
        };
        if let Some(waiter) = waiter {
            waiter.thread.unpark();
        }
        Ok(value)
    }

    /// Iterates over received values until every sender is gone.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

channel_handle!(Receiver, Side::Receivers);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_threads_can_use_it() {
        let (tx, rx) = bounded(2);
        let producer = std::thread::spawn(move || {
            for i in 0..1000u32 {
                tx.send(i).expect("receiver alive");
            }
        });
        let sum: u64 = rx.iter().map(u64::from).sum();
        producer.join().expect("producer");
        assert_eq!(sum, 999 * 1000 / 2);
    }

    #[test]
    fn disconnect_is_reported() {
        let (tx, rx) = unbounded::<u8>();
        drop(rx);
        assert_eq!(tx.send(7), Err(SendError(7)));
        let (tx, rx) = unbounded::<u8>();
        tx.send(1).expect("send");
        drop(tx);
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Err(RecvError));
        let (_tx, rx) = bounded::<u8>(1);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
    }
}
