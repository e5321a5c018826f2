//! Trap kinds and the trap value returned to the host.
//!
//! Compiled code raises traps in two ways: a trap instruction (`ud2`) or a
//! faulting access whose site Cranelift recorded with a [`TrapCode`], and an
//! explicit call of a libcall that reports a [`TrapKind`]. Both end up as a
//! [`Trap`]: the kind plus the wasm backtrace, innermost frame first.

use cranelift_codegen::ir::TrapCode;
use std::fmt;

/// Why wasm execution stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// `unreachable` was executed.
    Unreachable,
    /// A load or store outside linear memory.
    MemoryOutOfBounds,
    /// A table access outside the table (including `call_indirect` with an
    /// index past the end: "undefined element").
    TableOutOfBounds,
    /// `call_indirect` found a null entry ("uninitialized element").
    IndirectCallToNull,
    /// `call_indirect` found a function of another type.
    BadSignature,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero,
    /// Signed division overflow (`INT_MIN / -1`).
    IntegerOverflow,
    /// A float-to-int conversion of NaN or an out-of-range value.
    BadConversionToInteger,
    /// The wasm stack limit was exceeded (runaway recursion).
    StackOverflow,
    /// A null reference was dereferenced.
    NullReference,
    /// The instance used up its CPU budget.
    Timeout,
    /// The instance was cancelled by its host.
    Cancelled,
    /// A host function returned an error (its message is in the trap).
    Host,
    /// The guest asked to exit (WASI `proc_exit`) with this code.
    Exit(i32),
}

impl TrapKind {
    /// The spec's wording for this trap, as the official test suite spells it.
    pub fn message(&self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::MemoryOutOfBounds => "out of bounds memory access",
            TrapKind::TableOutOfBounds => "out of bounds table access",
            TrapKind::IndirectCallToNull => "uninitialized element",
            TrapKind::BadSignature => "indirect call type mismatch",
            TrapKind::IntegerDivisionByZero => "integer divide by zero",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::BadConversionToInteger => "invalid conversion to integer",
            TrapKind::StackOverflow => "call stack exhausted",
            TrapKind::NullReference => "null reference",
            TrapKind::Timeout => "CPU budget exhausted",
            TrapKind::Cancelled => "cancelled",
            TrapKind::Host => "host function error",
            TrapKind::Exit(_) => "exit",
        }
    }
}

/// The trap codes Shoal's compiled code uses, beside Cranelift's own
/// (`STACK_OVERFLOW`, `HEAP_OUT_OF_BOUNDS`, `INTEGER_OVERFLOW`,
/// `INTEGER_DIVISION_BY_ZERO`, `BAD_CONVERSION_TO_INTEGER`).
pub mod codes {
    use cranelift_codegen::ir::TrapCode;
    /// `unreachable`.
    pub const UNREACHABLE: TrapCode = TrapCode::unwrap_user(1);
    /// Table index out of bounds.
    pub const TABLE_OUT_OF_BOUNDS: TrapCode = TrapCode::unwrap_user(2);
    /// `call_indirect` of a null entry.
    pub const INDIRECT_CALL_TO_NULL: TrapCode = TrapCode::unwrap_user(3);
    /// `call_indirect` signature mismatch.
    pub const BAD_SIGNATURE: TrapCode = TrapCode::unwrap_user(4);
    /// Null reference.
    pub const NULL_REFERENCE: TrapCode = TrapCode::unwrap_user(5);
}

impl TrapKind {
    /// Maps a trap code recorded by Cranelift back to a trap kind.
    pub fn from_code(code: TrapCode) -> Option<TrapKind> {
        Some(match code {
            TrapCode::STACK_OVERFLOW => TrapKind::StackOverflow,
            TrapCode::HEAP_OUT_OF_BOUNDS => TrapKind::MemoryOutOfBounds,
            TrapCode::INTEGER_OVERFLOW => TrapKind::IntegerOverflow,
            TrapCode::INTEGER_DIVISION_BY_ZERO => TrapKind::IntegerDivisionByZero,
            TrapCode::BAD_CONVERSION_TO_INTEGER => TrapKind::BadConversionToInteger,
            codes::UNREACHABLE => TrapKind::Unreachable,
            codes::TABLE_OUT_OF_BOUNDS => TrapKind::TableOutOfBounds,
            codes::INDIRECT_CALL_TO_NULL => TrapKind::IndirectCallToNull,
            codes::BAD_SIGNATURE => TrapKind::BadSignature,
            codes::NULL_REFERENCE => TrapKind::NullReference,
            _ => return None,
        })
    }
}

/// One wasm frame of a trap's backtrace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's index in its module's function index space.
    pub func_index: u32,
    /// The function's name, from the module's name section, if it has one.
    pub func_name: Option<String>,
    /// The module's name, from its name section, if it has one.
    pub module_name: Option<String>,
}

impl fmt::Display for FrameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.module_name {
            write!(f, "{m}!")?;
        }
        match &self.func_name {
            Some(name) => write!(f, "{name} (func {})", self.func_index),
            None => write!(f, "func {}", self.func_index),
        }
    }
}

/// Wasm execution stopped: why, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// What happened.
    pub kind: TrapKind,
    /// Wasm frames, innermost first. Empty when the trap was raised outside
    /// wasm code (for example by a start function's host import).
    pub backtrace: Vec<FrameInfo>,
    /// Extra detail, e.g. a host function's error message.
    pub message: Option<String>,
}

impl Trap {
    /// A trap with no backtrace.
    pub fn new(kind: TrapKind) -> Self {
        Trap {
            kind,
            backtrace: Vec::new(),
            message: None,
        }
    }
    /// A host-function error carrying a message.
    pub fn host(message: impl Into<String>) -> Self {
        Trap {
            kind: TrapKind::Host,
            backtrace: Vec::new(),
            message: Some(message.into()),
        }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TrapKind::Exit(code) => write!(f, "wasm exited with code {code}")?,
            kind => write!(f, "wasm trap: {}", kind.message())?,
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(top) = self.backtrace.first() {
            write!(f, " in {top}")?;
        }
        if !self.backtrace.is_empty() {
            write!(f, "\nwasm backtrace:")?;
            for (i, frame) in self.backtrace.iter().enumerate() {
                write!(f, "\n  {i}: {frame}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}
