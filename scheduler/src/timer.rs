//! A worker's deadlines: a binary min-heap with lazy cancellation.
//!
//! Each entry carries a sequence number. The owner of an entry (a green
//! thread in `sleep` or `park_timeout`) remembers the number of its one live
//! timer; cancelling is forgetting that number, and the heap skips entries
//! whose number is no longer remembered when they surface. To bound memory
//! when many timers are cancelled early (e.g. `recv_timeout` answered at
//! once), the heap is rebuilt without stale entries whenever they outnumber
//! the live ones.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Min-heap of `(deadline, seq, item)`; `seq` is never 0.
pub(crate) struct TimerHeap<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    next_seq: u64,
    cancelled: usize,
}

impl<T> TimerHeap<T> {
    pub(crate) fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            next_seq: 1,
            cancelled: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Adds a deadline; returns its sequence number (never 0).
    pub(crate) fn insert(&mut self, at: Instant, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { at, seq, item }));
        seq
    }

    /// Records that one entry went stale; rebuilds the heap when stale
    /// entries dominate. `is_live(seq, item)` tells live entries.
    pub(crate) fn note_cancelled(&mut self, is_live: impl Fn(u64, &T) -> bool) {
        self.cancelled += 1;
        if self.cancelled > 64 && self.cancelled * 2 > self.heap.len() {
            self.heap.retain(|Reverse(e)| is_live(e.seq, &e.item));
            self.cancelled = 0;
        }
    }

    /// The earliest deadline (possibly of a stale entry: a spurious wake-up
    /// at worst).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(u64, T)> {
        if self.heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Reverse(e) = self.heap.pop()?;
            Some((e.seq, e.item))
        } else {
            None
        }
    }

    /// Accounts for an expired entry that turned out stale.
    pub(crate) fn note_stale_popped(&mut self) {
        self.cancelled = self.cancelled.saturating_sub(1);
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.cancelled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expires_in_deadline_order() {
        let mut heap = TimerHeap::new();
        let t0 = Instant::now();
        heap.insert(t0 + Duration::from_millis(30), "c");
        heap.insert(t0 + Duration::from_millis(10), "a");
        heap.insert(t0 + Duration::from_millis(20), "b");
        assert_eq!(heap.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(heap.pop_expired(t0).is_none());
        let now = t0 + Duration::from_millis(25);
        let order: Vec<_> = std::iter::from_fn(|| heap.pop_expired(now))
            .map(|(_, s)| s)
            .collect();
        assert_eq!(order, ["a", "b"]);
        assert_eq!(heap.len(), 1);
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut heap = TimerHeap::new();
        let t0 = Instant::now() + Duration::from_secs(60);
        let live: u64 = heap.insert(t0, 0u32);
        for i in 1..200u32 {
            heap.insert(t0, i);
        }
        for _ in 1..200 {
            heap.note_cancelled(|seq, _| seq == live);
        }
        assert!(heap.len() < 100, "heap kept {} entries", heap.len());
    }
}
