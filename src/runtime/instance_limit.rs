//! The contract's limit on live instances (`Contract::max_instances`).
//!
//! A spawn takes a [`Permit`] before it hands the instance to the executor;
//! without one it fails at once with [`SpawnError::InstanceLimit`]. The
//! permit travels inside the green thread's closure and is given back when
//! the instance is torn down: when its green thread returns, unwinds, or is
//! dropped without ever running (cancelled before it started, executor shut
//! down). It is given back *before* the result reaches the `JoinHandle`, so
//! "join, then spawn again" never trips the limit.
//!
//! One counter is shared by every spawn made under the same contract
//! instance: the runtime's default contract has one, and so does each
//! [`InstanceTemplate`](super::InstanceTemplate) built with its own contract.

use super::error::SpawnError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Live instances under one contract, and the most allowed.
#[derive(Debug)]
pub(crate) struct InstanceLimit {
    live: AtomicUsize,
    max: Option<usize>,
}

impl InstanceLimit {
    pub(crate) fn new(max: Option<usize>) -> Arc<InstanceLimit> {
        Arc::new(InstanceLimit {
            live: AtomicUsize::new(0),
            max,
        })
    }

    /// Instances alive now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Takes a permit for one more instance, if the limit allows.
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<Permit, SpawnError> {
        match self.max {
            None => {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
            Some(max) => {
                self.live
                    .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map_err(|_| SpawnError::InstanceLimit { limit: max })?;
            }
        }
        Ok(Permit {
            limit: self.clone(),
        })
    }
}

/// One live instance's place under the limit; given back on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    limit: Arc<InstanceLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.live.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_given_back() {
        let limit = InstanceLimit::new(Some(2));
        let a = limit.acquire().expect("first");
        let b = limit.acquire().expect("second");
        assert!(matches!(
            limit.acquire(),
            Err(SpawnError::InstanceLimit { limit: 2 })
        ));
        drop(a);
        let c = limit.acquire().expect("after one was given back");
        assert_eq!(limit.live(), 2);
        drop((b, c));
        assert_eq!(limit.live(), 0);
        let unlimited = InstanceLimit::new(None);
        let permits: Vec<_> = (0..1000)
            .map(|_| unlimited.acquire().expect("no limit"))
            .collect();
        assert_eq!(unlimited.live(), 1000);
        drop(permits);
        assert_eq!(unlimited.live(), 0);
    }
}
