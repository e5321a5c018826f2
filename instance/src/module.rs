//! (in progress)
/// A compiled module (placeholder).
#[derive(Clone, Debug)]
pub struct Module;
