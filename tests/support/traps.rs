//! The spec suite's trap messages, and the trap kinds that satisfy them.
//!
//! The reference interpreter names traps by message; Shoal reports a
//! [`TrapKind`]. A message matches a kind when it starts with one of the
//! prefixes below (the suite sometimes appends detail, as in
//! "uninitialized element 2" or "unreachable executed").

use shoal_instance::TrapKind;

/// Spec message prefix → the kinds that satisfy it. Longer prefixes first
/// where one is a prefix of another.
const MESSAGES: &[(&str, &[TrapKind])] = &[
    (
        "out of bounds memory access",
        &[TrapKind::MemoryOutOfBounds],
    ),
    ("out of bounds table access", &[TrapKind::TableOutOfBounds]),
    // `call_indirect` with an index past the end of the table.
    ("undefined element", &[TrapKind::TableOutOfBounds]),
    // `call_indirect` of a null entry.
    ("uninitialized element", &[TrapKind::IndirectCallToNull]),
    ("indirect call type mismatch", &[TrapKind::BadSignature]),
    ("integer divide by zero", &[TrapKind::IntegerDivisionByZero]),
    ("integer overflow", &[TrapKind::IntegerOverflow]),
    (
        "invalid conversion to integer",
        &[TrapKind::BadConversionToInteger],
    ),
    ("unreachable", &[TrapKind::Unreachable]),
    ("call stack exhausted", &[TrapKind::StackOverflow]),
    ("null reference", &[TrapKind::NullReference]),
    (
        "null function reference",
        &[TrapKind::NullReference, TrapKind::IndirectCallToNull],
    ),
];

/// The trap kinds that satisfy the spec's expected `message`, or `None` if
/// the runner does not know the message (a runner bug to fix here).
pub fn expected_kinds(message: &str) -> Option<&'static [TrapKind]> {
    MESSAGES
        .iter()
        .filter(|(prefix, _)| message.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, kinds)| *kinds)
}

/// Checks that `kind` is what the spec's `message` asks for.
pub fn check(kind: TrapKind, message: &str) -> Result<(), String> {
    match expected_kinds(message) {
        Some(kinds) if kinds.contains(&kind) => Ok(()),
        Some(_) => Err(format!(
            "trapped with `{}` ({kind:?}), expected `{message}`",
            kind.message()
        )),
        None => Err(format!(
            "runner does not know the trap message `{message}` (trapped with {kind:?}); \
             add it to tests/support/traps.rs"
        )),
    }
}
