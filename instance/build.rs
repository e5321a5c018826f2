//! Builds the catch-point shim (`src/c/catch.c`): the one place where a
//! function returns twice (`sigsetjmp`), kept out of Rust on purpose. See
//! `src/trap_handling.rs` for why it is C and not inline assembly.

fn main() {
    println!("cargo:rerun-if-changed=src/c/catch.c");
    cc::Build::new()
        .file("src/c/catch.c")
        // glibc's fortified `siglongjmp` (`__longjmp_chk`) refuses to jump
        // from the signal stack to a stack it does not recognise, which is
        // exactly what a trap on a green-thread stack does. Some distributions
        // enable fortification by default at -O2; turn it off here.
        .flag_if_supported("-U_FORTIFY_SOURCE")
        .warnings(true)
        .compile("shoal_catch");
}
