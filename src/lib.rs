//! Shoal: a WebAssembly runtime that runs every instance as a preemptible
//! green thread.
//!
//! This crate is the facade: it re-exports the compiler and instances
//! ([`shoal_instance`]) and the green-thread scheduler ([`shoal_scheduler`]).
#![deny(unsafe_op_in_unsafe_fn)]

pub use shoal_instance::*;
pub use shoal_scheduler as scheduler;
pub mod contract;
pub use contract::{Contract, ContractViolation, ImportPattern};
pub mod runtime;
pub mod wasi;
pub use runtime::{
    InstanceTemplate, JoinHandle, RunError, Runtime, RuntimeBuilder, SpawnError, TypedTemplate,
};
pub mod bench;
pub mod server;
