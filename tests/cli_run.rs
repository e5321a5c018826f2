//! `shoal run`, the built binary, end to end: the C programs of
//! tests/programs against the same programs built natively (stdout and
//! exit code), traps (message, wasm backtrace, exit code 134), invalid
//! modules (1), bad options (2), `--invoke`, `--dir`, `--env`, `--budget`
//! (124) and `--max-memory`.

mod cli_support;

use cli_support::{programs, shoal, shoal_in, TempDir};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Builds a test program natively (with the system `cc`), once per test
/// run, into the target directory (a `static` is never dropped, so a
/// temporary directory here would be left behind by every run).
fn native(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-native");
    let out = dir.join(name);
    // Held while building: two tests must not write the same binary at once.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.insert(name.to_string()) {
        std::fs::create_dir_all(&dir).expect("create the native build directory");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-O2", "-o"])
            .arg(&out)
            .arg(programs().join(format!("{name}.c")))
            .arg("-lm")
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC): {e}"));
        assert!(status.success(), "native build of {name}.c failed");
    }
    out
}

/// Runs the native build; returns (exit code, stdout).
fn run_native(name: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(native(name))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the native program");
    let mut input = child.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("native program");
    let _ = writer.join();
    (
        out.status.code().expect("the native program exits"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `shoal run [flags] NAME.wasm args` and the native program agree.
fn compare(name: &str, flags: &[&str], args: &[&str], env: &[(&str, &str)], stdin: &[u8]) {
    let wasm = format!("{name}.wasm");
    let mut cli: Vec<&str> = vec!["run"];
    cli.extend_from_slice(flags);
    let env_flags: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for e in &env_flags {
        cli.extend(["--env", e.as_str()]);
    }
    cli.push(&wasm);
    cli.extend_from_slice(args);
    let shoal = shoal_in(&programs(), &cli, stdin, Duration::from_secs(60));
    let (code, stdout) = run_native(name, args, env, stdin);
    shoal.expect_code(code);
    assert_eq!(shoal.stdout, stdout, "stdout of {name} differs: {shoal:#?}");
}

#[test]
fn programs_match_their_native_builds() {
    compare("arith", &[], &[], &[], b"");
    compare("sort", &[], &[], &[], b"");
    compare("alloc", &[], &[], &[], b"");
    compare("exit_code", &[], &[], &[], b"");
    compare("exit_code", &[], &["7"], &[], b"");
    let input = "hello, world\nsecond line  with   words\n".repeat(50);
    compare("stdin_stdout", &[], &[], &[], input.as_bytes());
    // The same with the other memory strategy and a short timeslice.
    compare(
        "arith",
        &["--memory-strategy", "checked", "--timeslice", "1ms"],
        &[],
        &[],
        b"",
    );
}

#[test]
fn exit_code_is_the_guests() {
    let out = shoal(&["run", "exit_code.wasm"]);
    out.expect_code(42);
    assert_eq!(out.stdout, "about to exit\natexit handler ran\n");
    shoal(&["run", "exit_code.wasm", "0"]).expect_code(0);
    shoal(&["run", "exit_code.wasm", "3"]).expect_code(3);
}

#[test]
fn argv_and_env() {
    let env = [
        ("GREETING", "hi there"),
        ("EMPTY", ""),
        ("WITH_EQUALS", "a=b=c"),
    ];
    compare(
        "args_env_clock",
        &[],
        &["hello world", "--flag=1", ""],
        &env,
        b"",
    );
    // `--env NAME` passes the host's value; an unset one is skipped.
    let out = Command::new(cli_support::SHOAL)
        .args(["run", "--env", "GREETING", "--env", "NOT_SET_ANYWHERE_42"])
        .arg(programs().join("args_env_clock.wasm"))
        .env("GREETING", "from the host")
        .env_remove("NOT_SET_ANYWHERE_42")
        .output()
        .expect("run shoal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("GREETING=from the host\n"), "{stdout}");
    assert!(stdout.contains("environment entries: 1\n"), "{stdout}");
}

#[test]
fn trap_prints_kind_and_backtrace_and_exits_134() {
    for (args, kind) in [
        (&[][..], "wasm trap: unreachable"),
        (&["nullfn"][..], "wasm trap: uninitialized element"),
    ] {
        let mut cli = vec!["run", "trap.wasm"];
        cli.extend_from_slice(args);
        let out = shoal(&cli);
        out.expect_code(134);
        assert_eq!(
            out.stdout, "before the trap\n",
            "output before the trap is kept"
        );
        assert!(out.stderr.contains("`trap.wasm` trapped"), "{out:#?}");
        assert!(out.stderr.contains(kind), "{out:#?}");
        assert!(out.stderr.contains("wasm backtrace:"), "{out:#?}");
        // The name section names the frames, innermost first.
        assert!(out.stderr.contains("0: main (func"), "{out:#?}");
        assert!(out.stderr.contains("_start"), "{out:#?}");
    }
}

#[test]
fn invalid_modules_exit_1() {
    let dir = TempDir::new("cli-invalid");
    let garbage = dir.file("garbage.wasm", b"\0asm\x01\0\0\0\x05\xff\xff");
    let text = dir.file("bad.wat", "(module (func (result i32) (i64.const 1)))");
    let not_wasm = dir.file("notes.txt", "this is not a module");
    for path in [&garbage, &text, &not_wasm] {
        let out = shoal_in(
            dir.path(),
            &["run", path.to_str().expect("utf-8")],
            b"",
            secs(30),
        );
        out.expect_code(1);
        assert!(
            out.stderr.contains("is not a valid WebAssembly module"),
            "{out:#?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "one clear line: {out:#?}");
    }
    let missing = shoal(&["run", "no-such-module.wasm"]);
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("cannot read `no-such-module.wasm`"),
        "{missing:#?}"
    );
    // An import WASI does not provide.
    let import = dir.file(
        "import.wat",
        r#"(module (import "env" "magic" (func)) (func (export "_start")))"#,
    );
    let out = shoal_in(
        dir.path(),
        &["run", import.to_str().expect("utf-8")],
        b"",
        secs(30),
    );
    out.expect_code(1);
    assert!(out.stderr.contains("env::magic"), "{out:#?}");
}

#[test]
fn bad_options_exit_2() {
    for args in [
        &["run", "--no-such-flag", "arith.wasm"][..],
        &["run", "--budget", "fast", "arith.wasm"],
        &["run", "--budget", "5 parsecs", "arith.wasm"],
        &["run", "--max-memory", "5GiB", "arith.wasm"],
        &["run", "--max-memory", "lots", "arith.wasm"],
        &["run", "--memory-strategy", "hopeful", "arith.wasm"],
        &["run", "--dir", "::/x", "arith.wasm"],
        &["run"],
        &["frobnicate"],
    ] {
        let out = shoal(args);
        out.expect_code(2);
        assert!(out.stderr.contains("error:"), "{args:?}: {out:#?}");
    }
    // --help and --version succeed.
    shoal(&["--help"]).expect_code(0);
    shoal(&["run", "--help"]).expect_code(0);
    assert!(shoal(&["--version"])
        .expect_code(0)
        .stdout
        .starts_with("shoal "));
}

const MATH: &str = r#"(module $math
  (func $add (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (func $div (export "div") (param i64 i64) (result i64)
    (i64.div_s (local.get 0) (local.get 1)))
  (func $divide (export "divide") (param i64 i64) (result i64)
    (call $div (local.get 0) (local.get 1)))
  (func (export "mix") (param f32 f64) (result f64 f32)
    (f64.add (f64.promote_f32 (local.get 0)) (local.get 1)) (local.get 0))
  (func (export "nothing"))
  (func $spin (export "spin") (loop $l (br $l)))
  ;; Grows memory one page at a time until it fails; returns the count.
  (func (export "grow") (result i32)
    (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (memory 1))"#;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn invoke_parses_arguments_and_prints_results() {
    let dir = TempDir::new("cli-invoke");
    dir.file("math.wat", MATH);
    let run = |args: &[&str]| {
        let mut cli = vec!["run", "--invoke"];
        cli.extend_from_slice(args);
        shoal_in(dir.path(), &cli, b"", secs(30))
    };
    assert_eq!(
        run(&["add", "math.wat", "2", "40"]).expect_code(0).stdout,
        "42\n"
    );
    assert_eq!(
        run(&["add", "math.wat", "-5", "0x3"]).expect_code(0).stdout,
        "-2\n"
    );
    assert_eq!(
        run(&["add", "math.wat", "4294967295", "1"])
            .expect_code(0)
            .stdout,
        "0\n"
    );
    assert_eq!(
        run(&["div", "math.wat", "-9000000000000", "3"])
            .expect_code(0)
            .stdout,
        "-3000000000000\n"
    );
    assert_eq!(
        run(&["mix", "math.wat", "1.5", "2.25"])
            .expect_code(0)
            .stdout,
        "3.75\n1.5\n"
    );
    assert_eq!(run(&["nothing", "math.wat"]).expect_code(0).stdout, "");
    // Wrong arguments and unknown exports are usage errors.
    let out = run(&["add", "math.wat", "1"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("takes 2 argument(s), but 1 were given"),
        "{out:#?}"
    );
    let out = run(&["add", "math.wat", "1", "two"]);
    out.expect_code(2);
    assert!(out.stderr.contains("`two` is not one"), "{out:#?}");
    let out = run(&["nope", "math.wat"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("its function exports: add, div"),
        "{out:#?}"
    );
    // A trap inside the invoked function: kind and named frames.
    let out = run(&["divide", "math.wat", "1", "0"]);
    out.expect_code(134);
    assert!(out.stderr.contains("integer divide by zero"), "{out:#?}");
    assert!(out.stderr.contains("0: math!div"), "{out:#?}");
    assert!(out.stderr.contains("1: math!divide"), "{out:#?}");
    // Without --invoke, a module without `_start` is refused with a hint.
    let out = shoal_in(dir.path(), &["run", "math.wat"], b"", secs(30));
    out.expect_code(2);
    assert!(out.stderr.contains("--invoke"), "{out:#?}");
}

#[test]
fn invoke_runs_a_reactors_initialize_first() {
    let dir = TempDir::new("cli-reactor");
    dir.file(
        "reactor.wat",
        r#"(module
          (global $ready (mut i32) (i32.const 0))
          (func (export "_initialize") (global.set $ready (i32.const 40)))
          (func (export "get") (param i32) (result i32)
            (i32.add (global.get $ready) (local.get 0))))"#,
    );
    let out = shoal_in(
        dir.path(),
        &["run", "--invoke", "get", "reactor.wat", "2"],
        b"",
        secs(30),
    );
    assert_eq!(out.expect_code(0).stdout, "42\n");
}

#[test]
fn dir_preopens_a_directory() {
    let sandbox = TempDir::new("cli-dir");
    let mapping = format!("{}::/sandbox", sandbox.path_str());
    let out = shoal(&["run", "--dir", &mapping, "files.wasm", "/sandbox"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("listing: notes.txt renamed.bin sub/"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("cleaned up: yes"), "{out:#?}");
    // Same output as the native program on a real directory.
    let native_dir = TempDir::new("cli-dir-native");
    let (code, stdout) = run_native("files", &[native_dir.path_str()], &[], b"");
    assert_eq!(code, 0);
    assert_eq!(out.stdout, stdout);
    // Without the preopen the program cannot reach the directory.
    let out = shoal(&["run", "files.wasm", sandbox.path_str()]);
    assert_ne!(out.code(), 0, "{out:#?}");
    // A directory that does not exist is an error before the guest runs.
    let out = shoal(&["run", "--dir", "/no/such/dir::/d", "files.wasm", "/d"]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("cannot preopen directory `/no/such/dir`"),
        "{out:#?}"
    );
}

#[test]
fn budget_stops_an_infinite_loop_with_124() {
    let dir = TempDir::new("cli-budget");
    dir.file("math.wat", MATH);
    let out = shoal_in(
        dir.path(),
        &["run", "--budget", "200ms", "--invoke", "spin", "math.wat"],
        b"",
        secs(30),
    );
    out.expect_code(124);
    assert!(
        out.stderr
            .contains("ran out of CPU budget (--budget 200ms)"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("CPU budget exhausted"), "{out:#?}");
    assert!(out.stderr.contains("math!spin"), "{out:#?}");
    assert!(out.elapsed < secs(10), "took {:?}", out.elapsed);
    // Time parked waiting for stdin is not CPU time: a 50 ms budget
    // survives input that arrives after 300 ms.
    let mut child = Command::new(cli_support::SHOAL)
        .args(["run", "--budget", "50ms", "stdin_stdout.wasm"])
        .current_dir(programs())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal");
    let mut input = child.stdin.take().expect("piped stdin");
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(&mut input, b"late\n").expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("shoal");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("   1: LATE\n"));
}

#[test]
fn max_memory_bounds_growth() {
    let dir = TempDir::new("cli-memory");
    dir.file("math.wat", MATH);
    let grow = |limit: &str, strategy: &str| {
        let out = shoal_in(
            dir.path(),
            &[
                "run",
                "--max-memory",
                limit,
                "--memory-strategy",
                strategy,
                "--invoke",
                "grow",
                "math.wat",
            ],
            b"",
            secs(60),
        );
        out.expect_code(0);
        out.stdout.trim().parse::<u32>().expect("a page count")
    };
    for strategy in ["guarded", "checked"] {
        // The module starts with one page.
        assert_eq!(grow("1MiB", strategy), 15, "{strategy}");
        assert_eq!(grow("10pages", strategy), 9, "{strategy}");
        assert_eq!(
            grow("100000", strategy),
            0,
            "{strategy}: rounded down to 1 page"
        );
    }
    // A C program whose mallocs fail under the limit exits cleanly.
    let out = shoal(&["run", "--max-memory", "16MiB", "alloc.wasm"]);
    out.expect_code(3);
    shoal(&["run", "--max-memory", "256MiB", "alloc.wasm"]).expect_code(0);
    // A module that declares more memory than allowed is refused.
    dir.file(
        "big.wat",
        r#"(module (memory 20) (func (export "_start")))"#,
    );
    let out = shoal_in(
        dir.path(),
        &["run", "--max-memory", "1MiB", "big.wat"],
        b"",
        secs(30),
    );
    out.expect_code(1);
    assert!(out.stderr.contains("needs at least 20 pages"), "{out:#?}");
}
