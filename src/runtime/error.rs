//! Errors of the runtime API: building a [`Runtime`](super::Runtime),
//! spawning an instance, and running one.
//!
//! - [`BuildError`]: the runtime could not start (bad configuration, the
//!   engine or the executor failed).
//! - [`SpawnError`]: an instance was refused before it ran (the module
//!   breaks the contract, an import or the export is missing, the instance
//!   limit is reached, the executor is shut down). Returned synchronously by
//!   `spawn`, so a server can answer "busy" at once.
//! - [`RunError`]: an instance that was accepted did not return a value (it
//!   trapped, ran out of budget, was cancelled, a host function panicked).
//!   Returned by [`JoinHandle::join`](super::JoinHandle::join).

use crate::contract::ContractViolation;
use shoal_instance::{Trap, TrapKind};
use std::any::Any;
use std::fmt;

/// Building a [`Runtime`](super::Runtime) failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid runtime configuration: {0}")]
    InvalidConfig(String),
    /// The engine (code generator) could not be set up.
    #[error("cannot create the engine: {0}")]
    Engine(#[source] shoal_instance::Error),
    /// The executor (worker threads, epoch ticker) could not start.
    #[error("cannot start the executor: {0}")]
    Executor(#[source] shoal_scheduler::BuildError),
}

/// An instance was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The module breaks the contract (a forbidden import, a memory or
    /// table larger than allowed). Every violation is listed.
    #[error("the module breaks the contract: {}", list(.0))]
    Contract(Vec<ContractViolation>),
    /// The contract asks for something this runtime cannot enforce (a
    /// smaller stack than the runtime's green threads give wasm).
    #[error("the contract cannot be enforced: {0}")]
    UnenforceableContract(String),
    /// The module was compiled by another engine than the runtime's, so its
    /// code has no (or other) epoch checks and could not be preempted.
    #[error(
        "the module was compiled by another engine than the runtime's: compile it with \
         Runtime::compile (or Module::new(runtime.engine(), ..)) so that it can be preempted"
    )]
    ForeignModule,
    /// An import could not be resolved by the linker (or has the wrong
    /// type), or the linker belongs to another engine.
    #[error("cannot link the module: {0}")]
    Link(#[source] shoal_instance::Error),
    /// The entry export is missing or has another kind or type.
    #[error("{0}")]
    Export(String),
    /// As many instances as the contract allows are alive.
    #[error(
        "{limit} instances are alive, the most the contract allows (Contract::max_instances); \
         wait for some to finish or raise the limit"
    )]
    InstanceLimit {
        /// The contract's `max_instances`.
        limit: usize,
    },
    /// The executor refused the green thread (shut down, or its stack pool
    /// is full).
    #[error(transparent)]
    Executor(#[from] shoal_scheduler::SpawnError),
}

fn list(violations: &[ContractViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An accepted instance did not return a value.
pub enum RunError {
    /// The instance trapped: a fault in wasm, a spent CPU budget
    /// ([`TrapKind::Timeout`]), a cancellation ([`TrapKind::Cancelled`]), a
    /// host function that returned an error, ...
    Trap(Trap),
    /// Instantiating or calling failed without a trap (out of resources,
    /// e.g. a pool limit; an argument of the wrong type).
    Instance(shoal_instance::Error),
    /// A host function panicked (not a trap: a bug on the host side). The
    /// payload is what `std::panic::catch_unwind` returns.
    Panicked(Box<dyn Any + Send + 'static>),
    /// [`Runtime::run_here`](super::InstanceTemplate::run_here) was called
    /// on a green thread of an executor without the runtime's switch hook:
    /// a trap there could not be caught safely.
    NotOnRuntime,
    /// `run_here` was refused before the instance was created (e.g. the
    /// contract's instance limit is reached).
    Refused(SpawnError),
    /// The green thread never started (its stack could not be allocated).
    NotStarted(shoal_scheduler::SpawnError),
}

impl RunError {
    /// The trap, if the instance trapped.
    pub fn trap(&self) -> Option<&Trap> {
        match self {
            RunError::Trap(t) => Some(t),
            _ => None,
        }
    }

    /// The trap's kind, if the instance trapped.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        self.trap().map(|t| t.kind)
    }

    /// Whether the instance was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.trap_kind() == Some(TrapKind::Cancelled)
    }

    /// Whether the instance spent its CPU budget.
    pub fn is_timeout(&self) -> bool {
        self.trap_kind() == Some(TrapKind::Timeout)
    }

    /// The panic message, if a host function panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            RunError::Panicked(payload) => payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }

    pub(crate) fn cancelled() -> RunError {
        RunError::Trap(Trap::new(TrapKind::Cancelled))
    }
}

impl From<shoal_instance::Error> for RunError {
    fn from(e: shoal_instance::Error) -> Self {
        match e {
            shoal_instance::Error::Trap(t) => RunError::Trap(t),
            other => RunError::Instance(other),
        }
    }
}

impl From<shoal_scheduler::JoinError> for RunError {
    fn from(e: shoal_scheduler::JoinError) -> Self {
        match e {
            shoal_scheduler::JoinError::Cancelled => RunError::cancelled(),
            shoal_scheduler::JoinError::Panicked(payload) => RunError::Panicked(payload),
            shoal_scheduler::JoinError::SpawnFailed(e) => RunError::NotStarted(e),
        }
    }
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Trap(t) => f.debug_tuple("Trap").field(t).finish(),
            RunError::Instance(e) => f.debug_tuple("Instance").field(e).finish(),
            RunError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
            RunError::NotOnRuntime => f.write_str("NotOnRuntime"),
            RunError::Refused(e) => f.debug_tuple("Refused").field(e).finish(),
            RunError::NotStarted(e) => f.debug_tuple("NotStarted").field(e).finish(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Trap(t) => fmt::Display::fmt(t, f),
            RunError::Instance(e) => fmt::Display::fmt(e, f),
            RunError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "a host function panicked: {msg}"),
                None => f.write_str("a host function panicked"),
            },
            RunError::NotOnRuntime => f.write_str(
                "run_here was called on a green thread of an executor that is not a Shoal \
                 runtime's: spawn the green thread with Runtime::executor() (or call \
                 run_here from an OS thread)",
            ),
            RunError::Refused(e) => fmt::Display::fmt(e, f),
            RunError::NotStarted(e) => write!(f, "the instance's green thread never started: {e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Trap(t) => Some(t),
            RunError::Instance(e) => Some(e),
            RunError::NotStarted(e) => Some(e),
            RunError::Refused(e) => Some(e),
            _ => None,
        }
    }
}
