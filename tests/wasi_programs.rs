//! Real C programs (tests/programs/*.c, built to .wasm by
//! tests/programs/build.sh with clang and wasi-libc) run under Shoal and,
//! built natively with the system `cc`, as ordinary processes: stdout and
//! the exit code must be the same. A deliberate trap must be a trap under
//! Shoal (with the output flushed before it) where the native program dies
//! of a signal.

mod wasi_support;

use shoal::wasi::WasiCtx;
use shoal::TrapKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use wasi_support::{module, run, Run, TempDir};

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// Builds `tests/programs/<name>.c` natively into `dir`.
fn native(name: &str, dir: &TempDir) -> PathBuf {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = dir.join(name);
    let status = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(programs().join(format!("{name}.c")))
        .arg("-lm")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC): {e}"));
    assert!(status.success(), "native build of {name}.c failed");
    out
}

fn wasm(name: &str) -> shoal::Module {
    let bytes = std::fs::read(programs().join(format!("{name}.wasm")))
        .unwrap_or_else(|e| panic!("{name}.wasm is missing (run tests/programs/build.sh): {e}"));
    module(bytes)
}

/// How a native run ended.
#[derive(Debug, PartialEq, Eq)]
enum NativeEnd {
    Code(i32),
    Signal(i32),
}

struct NativeRun {
    stdout: Vec<u8>,
    end: NativeEnd,
}

fn run_native(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> NativeRun {
    use std::io::Write;
    let build = TempDir::new("wasi-native");
    let mut child = Command::new(native(name, &build))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the native program");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child
        .wait_with_output()
        .expect("wait for the native program");
    let _ = writer.join();
    let end = match (output.status.code(), output.status.signal()) {
        (Some(code), _) => NativeEnd::Code(code),
        (None, Some(signal)) => NativeEnd::Signal(signal),
        (None, None) => panic!("the native program ended without a code or a signal"),
    };
    NativeRun {
        stdout: output.stdout,
        end,
    }
}

fn run_shoal(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let builder = WasiCtx::builder()
        .arg(name)
        .args(args.iter().copied())
        .envs(env.iter().copied());
    run(&wasm(name), builder, stdin)
}

/// Runs `name` both ways and checks they agree on stdout and exit code;
/// returns the output.
fn compare(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> String {
    let shoal = run_shoal(name, args, env, stdin);
    let native = run_native(name, args, env, stdin);
    let code = shoal.code();
    assert_eq!(
        NativeEnd::Code(code),
        native.end,
        "{name}: exit codes differ (stderr under Shoal: {})",
        shoal.stderr_str()
    );
    assert_eq!(
        shoal.stdout_str(),
        String::from_utf8_lossy(&native.stdout),
        "{name}: stdout differs between Shoal (left) and native (right)"
    );
    shoal.stdout_str()
}

#[test]
fn arithmetic_and_floating_point() {
    let out = compare("arith", &[], &[], b"");
    assert!(out.contains("fib(90) = 2880067194370816120"), "{out}");
    assert!(out.contains("primes below 100000: 9592"), "{out}");
}

#[test]
fn malloc_heavy_with_memory_growth() {
    let out = compare("alloc", &[], &[], b"");
    assert!(out.contains("list: sum=139999300000 chars="), "{out}");
    assert!(out.contains("big: sum="), "{out}");
}

#[test]
fn qsort_through_function_pointers() {
    let out = compare("sort", &[], &[], b"");
    assert!(out.contains("bsearch: found"), "{out}");
    assert!(out.contains("apple apricot banana"), "{out}");
}

#[test]
fn stdin_to_stdout() {
    let mut input =
        String::from("hello, world\nthe quick brown fox\n\n  jumps over   the lazy dog");
    input.push('\n');
    input.push_str(&"long line ".repeat(1000));
    input.push_str("\nno newline at the end");
    let out = compare("stdin_stdout", &[], &[], input.as_bytes());
    assert!(out.starts_with("   1: HELLO, WORLD\n"), "{out}");
    // Empty input too.
    let empty = compare("stdin_stdout", &[], &[], b"");
    assert_eq!(empty, "lines=0 words=0 bytes=0\n");
}

#[test]
fn files_in_a_preopened_dir() {
    let native_dir = TempDir::new("files-native");
    let shoal_dir = TempDir::new("files-shoal");
    let native_root = native_dir.path().to_str().expect("temp path is UTF-8");
    let native = run_native("files", &[native_root], &[], b"");

    let builder = WasiCtx::builder()
        .args(["files", "/sandbox"])
        .preopened_dir(shoal_dir.path(), "/sandbox");
    let shoal = run(&wasm("files"), builder, b"");
    let code = shoal.code();
    assert_eq!(
        NativeEnd::Code(code),
        native.end,
        "exit codes differ; stderr under Shoal: {}",
        shoal.stderr_str()
    );
    assert_eq!(shoal.stdout_str(), String::from_utf8_lossy(&native.stdout));
    let out = shoal.stdout_str();
    assert!(out.contains("read 6: appended line"), "{out}");
    assert!(out.contains("listing: notes.txt renamed.bin sub/"), "{out}");
    assert!(out.contains("rmdir non-empty: -1 ENOTEMPTY"), "{out}");
    assert!(out.contains("cleaned up: yes"), "{out}");
    // The program removed everything it made.
    let left: Vec<_> = std::fs::read_dir(shoal_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn argv_env_and_clock() {
    let args = ["hello world", "ünïcödé", "", "--flag=1"];
    let env = [
        ("GREETING", "hi there"),
        ("EMPTY", ""),
        ("WITH_EQUALS", "a=b=c"),
    ];
    let out = compare("args_env_clock", &args, &env, b"");
    assert!(out.contains("argc=5\n"), "{out}");
    assert!(out.contains("argv[2]=ünïcödé (11 bytes)"), "{out}");
    assert!(out.contains("WITH_EQUALS=a=b=c\n"), "{out}");
    assert!(out.contains("UNSET_VARIABLE=(unset)\n"), "{out}");
    assert!(out.contains("environment entries: 3\n"), "{out}");
    assert!(!out.contains(": no"), "a clock check failed:\n{out}");
}

#[test]
fn non_zero_exit_code() {
    let out = compare("exit_code", &[], &[], b"");
    assert_eq!(out, "about to exit\natexit handler ran\n");
    let shoal = run_shoal("exit_code", &[], &[], b"");
    assert_eq!(shoal.code(), 42);
    // Returning from main with a code.
    compare("exit_code", &["7"], &[], b"");
    assert_eq!(run_shoal("exit_code", &["7"], &[], b"").code(), 7);
    assert_eq!(run_shoal("exit_code", &["0"], &[], b"").code(), 0);
}

fn expect_trap(args: &[&str], kind: TrapKind, native_signal: i32) {
    let shoal = run_shoal("trap", args, &[], b"");
    let trap = match &shoal.result {
        Err(shoal::Error::Trap(trap)) => trap.clone(),
        other => panic!("expected a trap, got {other:?}"),
    };
    assert_eq!(trap.kind, kind, "{trap}");
    assert!(!trap.backtrace.is_empty(), "a trap in wasm has a backtrace");
    assert_eq!(shoal.stdout_str(), "before the trap\n");
    let native = run_native("trap", args, &[], b"");
    assert_eq!(native.end, NativeEnd::Signal(native_signal));
    assert_eq!(native.stdout, shoal.stdout);
}

#[test]
fn deliberate_trap_unreachable() {
    expect_trap(&[], TrapKind::Unreachable, libc_sig::SIGILL);
}

#[test]
fn deliberate_trap_null_function_pointer() {
    expect_trap(&["nullfn"], TrapKind::IndirectCallToNull, libc_sig::SIGSEGV);
}

/// The two signal numbers the native trap program dies of (Linux).
mod libc_sig {
    pub const SIGILL: i32 = 4;
    pub const SIGSEGV: i32 = 11;
}
