//! Builds the catch-point shim (`src/c/catch.c`): the one place where a
//! function returns twice (`sigsetjmp`), kept out of Rust on purpose. See
//! `src/trap_handling.rs` for why it is C and not inline assembly.

fn main() {
    println!("cargo:rerun-if-changed=src/c/catch.c");
    cc::Build::new()
        .file("src/c/catch.c")
        // glibc's fortified `siglongjmp` (`__longjmp_chk`) second-guesses
        // any jump to a lower stack address (a system call, and an abort
        // when it cannot explain it), while Shoal's jumps cross stacks by
        // design: signal stack -> green-thread stack. Some distributions
        // enable fortification by default at -O2; turn it off here (and in
        // catch.c itself).
        .flag_if_supported("-U_FORTIFY_SOURCE")
        .warnings(true)
        .compile("shoal_catch");
}
