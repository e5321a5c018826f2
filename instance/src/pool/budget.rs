//! Pool limits: engine-wide counts of live objects, taken in batches so
//! that threads do not contend on one counter for every instance.

use crate::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many permissions a thread takes from a [`Budget`] at once.
pub(crate) const BATCH: usize = 16;

/// The kinds of pooled objects that have a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Instances = 0,
    Memories = 1,
    Tables = 2,
}

impl Resource {
    pub(crate) const ALL: [Resource; 3] =
        [Resource::Instances, Resource::Memories, Resource::Tables];

    /// The `PoolingConfig` field that sets the limit.
    fn field(self) -> &'static str {
        match self {
            Resource::Instances => "max_instances",
            Resource::Memories => "max_memories",
            Resource::Tables => "max_tables",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Resource::Instances => "instances",
            Resource::Memories => "linear memories defined by instances",
            Resource::Tables => "tables defined by instances",
        }
    }
}

/// The engine-wide count of one resource: at most `limit` permissions are
/// out at once, each held by a live object or cached, unused, by a thread.
#[derive(Debug)]
pub(crate) struct Budget {
    resource: Resource,
    limit: usize,
    taken: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(resource: Resource, limit: usize) -> Budget {
        Budget {
            resource,
            limit,
            taken: AtomicUsize::new(0),
        }
    }

    /// Takes up to `want` permissions; returns how many were granted (0
    /// when the limit is reached).
    pub(crate) fn take(&self, want: usize) -> usize {
        let mut taken = self.taken.load(Ordering::Relaxed);
        loop {
            let grant = want.min(self.limit.saturating_sub(taken));
            if grant == 0 {
                return 0;
            }
            match self.taken.compare_exchange_weak(
                taken,
                taken + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return grant,
                Err(now) => taken = now,
            }
        }
    }

    /// Gives back `n` permissions.
    pub(crate) fn give(&self, n: usize) {
        if n > 0 {
            self.taken.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Permissions out (held by live objects or cached by threads).
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// The error for a request refused at the limit.
    pub(crate) fn exhausted(&self) -> Error {
        Error::Resource(format!(
            "pool limit reached: {limit} {noun} are alive at once \
             (Config::pooling.{field} = {limit}); raise Config::pooling.{field}, \
             or drop stores sooner",
            limit = self.limit,
            noun = self.resource.noun(),
            field = self.resource.field(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_up_to_the_limit() {
        let b = Budget::new(Resource::Memories, 20);
        assert_eq!(b.take(BATCH), 16);
        assert_eq!(b.take(BATCH), 4);
        assert_eq!(b.take(1), 0);
        b.give(5);
        assert_eq!(b.taken(), 15);
        assert_eq!(b.take(BATCH), 5);
        let msg = b.exhausted().to_string();
        assert!(msg.contains("Config::pooling.max_memories = 20"), "{msg}");
    }
}
