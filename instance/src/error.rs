//! The error type of everything that can fail in `shoal-instance`.

use crate::trap::Trap;

/// Everything that can go wrong between wasm bytes and a returned value.
///
/// Every variant carries a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed wasm binary (or the text does not parse).
    #[error("malformed module at byte offset {offset:#x}: {message}")]
    Malformed { offset: usize, message: String },
    /// The module is well-formed but does not validate.
    #[error("invalid module at byte offset {offset:#x}: {message}")]
    Invalid { offset: usize, message: String },
    /// The module uses a feature this runtime does not support.
    #[error("unsupported feature `{feature}` at byte offset {offset:#x}: Shoal supports WebAssembly 2.0 without SIMD")]
    Unsupported { feature: String, offset: usize },
    /// The WebAssembly text could not be parsed.
    #[error("cannot parse WebAssembly text: {0}")]
    Text(String),
    /// Code generation failed (a bug in Shoal, or a resource limit).
    #[error("compilation failed in function {func_index}: {message}")]
    Compile { func_index: u32, message: String },
    /// An import could not be satisfied, or was satisfied with the wrong type.
    #[error("unknown import `{module}::{name}`: {message}")]
    Link {
        module: String,
        name: String,
        message: String,
    },
    /// No export by this name, or of another kind or type than asked.
    #[error("export `{name}`: {message}")]
    Export { name: String, message: String },
    /// Values passed to a call do not match its signature.
    #[error("wrong arguments: {0}")]
    Signature(String),
    /// Wasm code trapped (during instantiation or a call).
    #[error(transparent)]
    Trap(#[from] Trap),
    /// A resource could not be obtained (mmap failed, a limit was hit).
    #[error("out of resources: {0}")]
    Resource(String),
}

impl Error {
    /// The trap, if this error is one.
    pub fn as_trap(&self) -> Option<&Trap> {
        match self {
            Error::Trap(t) => Some(t),
            _ => None,
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
