//! The spec-suite runner behind `tests/spec.rs`, one concept per file:
//!
//! - `driver`: which scripts under which configurations, child processes,
//!   parallelism, the printed summary;
//! - `configs`: the configurations (memory strategy, epoch checks);
//! - `wast_runner`: runs one `.wast` script's directives on one engine;
//! - `spectest`: the `spectest` host module;
//! - `values`: script literals ↔ `Val`, result patterns (NaN included);
//! - `traps`: the spec's trap messages ↔ `TrapKind`;
//! - `report`: outcomes, and the child → parent line protocol;
//! - `panics`: a panic hook that turns panics into failure messages.

pub mod configs;
pub mod driver;
pub mod panics;
pub mod report;
pub mod spectest;
pub mod traps;
pub mod values;
pub mod wast_runner;
