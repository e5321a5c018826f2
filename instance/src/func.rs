//! (in progress)
/// A function handle (placeholder until the runtime lands).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Func(pub(crate) u32);
