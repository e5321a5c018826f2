//! The configurations the suite runs under: each one an engine
//! configuration plus how the script's store is set up.
//!
//! - `guarded`, `checked`: the two memory strategies, no epoch checks.
//! - `guarded-epoch`, `checked-epoch`: the strategy, compiled with epoch
//!   checks, and a store whose epoch deadline is always already reached
//!   (deadline 0 on an engine whose epoch is never advanced, and a deadline
//!   callback that answers `Continue(0)`). Every function entry and every
//!   branch back to a loop header therefore takes the cold path: the epoch
//!   stub, the `EpochDeadlineReached` libcall, the callback, and back into
//!   wasm. Any register the stub or the libcall fails to preserve shows up
//!   as a wrong result somewhere in the suite.
//!
//! By default the runner uses [`SpecConfig::DEFAULT`]; `SHOAL_SPEC_STRATEGY`
//! picks others (see [`SpecConfig::parse_list`]).

use shoal_instance::{Config, Engine, MemoryStrategy, Store, UpdateDeadline};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One configuration of the engine and the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpecConfig {
    pub strategy: MemoryStrategy,
    /// Epoch checks compiled in, and every check takes the cold path.
    pub epoch: bool,
}

impl SpecConfig {
    pub const GUARDED: SpecConfig = SpecConfig {
        strategy: MemoryStrategy::Guarded,
        epoch: false,
    };
    pub const CHECKED: SpecConfig = SpecConfig {
        strategy: MemoryStrategy::Checked,
        epoch: false,
    };
    pub const GUARDED_EPOCH: SpecConfig = SpecConfig {
        strategy: MemoryStrategy::Guarded,
        epoch: true,
    };
    pub const CHECKED_EPOCH: SpecConfig = SpecConfig {
        strategy: MemoryStrategy::Checked,
        epoch: true,
    };

    /// Every configuration, in the order jobs are listed.
    pub const ALL: [SpecConfig; 4] = [
        SpecConfig::GUARDED,
        SpecConfig::CHECKED,
        SpecConfig::GUARDED_EPOCH,
        SpecConfig::CHECKED_EPOCH,
    ];

    /// What `cargo test --test spec` runs.
    pub const DEFAULT: [SpecConfig; 3] = [
        SpecConfig::GUARDED,
        SpecConfig::CHECKED,
        SpecConfig::GUARDED_EPOCH,
    ];

    /// The name in the output (`[guarded-epoch]`) and on the command line.
    pub fn name(self) -> &'static str {
        match (self.strategy, self.epoch) {
            (MemoryStrategy::Guarded, false) => "guarded",
            (MemoryStrategy::Checked, false) => "checked",
            (MemoryStrategy::Guarded, true) => "guarded-epoch",
            (MemoryStrategy::Checked, true) => "checked-epoch",
        }
    }

    pub fn parse(name: &str) -> Result<SpecConfig, String> {
        SpecConfig::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = SpecConfig::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown configuration `{name}`: expected one of {}, `both` \
                     (guarded and checked), `all`, or a comma-separated list",
                    names.join(", ")
                )
            })
    }

    /// `SHOAL_SPEC_STRATEGY`'s value: empty for the default, `both` for the
    /// two strategies without epochs, `all` for every configuration, or a
    /// comma-separated list of names.
    pub fn parse_list(value: Option<&str>) -> Result<Vec<SpecConfig>, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(SpecConfig::DEFAULT.to_vec()),
            Some("both") => Ok(vec![SpecConfig::GUARDED, SpecConfig::CHECKED]),
            Some("all") => Ok(SpecConfig::ALL.to_vec()),
            Some(list) => {
                let mut configs = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let config = SpecConfig::parse(name)?;
                    if !configs.contains(&config) {
                        configs.push(config);
                    }
                }
                Ok(configs)
            }
        }
    }

    pub fn engine(self) -> Result<Engine, String> {
        Engine::new(Config {
            memory_strategy: self.strategy,
            epoch_interruption: self.epoch,
            ..Default::default()
        })
        .map_err(|e| format!("cannot create the engine: {e}"))
    }

    /// Prepares a script's store. With epochs on, the deadline is the
    /// current epoch and stays there (nothing advances this engine's
    /// epoch), so every epoch check calls the callback, which counts its
    /// calls in the returned counter.
    pub fn setup_store<T>(engine: &Engine, store: &mut Store<T>) -> Option<Arc<AtomicU64>> {
        if !engine.config().epoch_interruption {
            return None;
        }
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(move |_caller| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(UpdateDeadline::Continue(0))
        });
        Some(calls)
    }
}
