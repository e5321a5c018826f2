//! The `shoal` command: `shoal run` runs a WebAssembly module, `shoal
//! serve` serves TCP connections with one instance each. See `src/cli/`
//! and `shoal --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
