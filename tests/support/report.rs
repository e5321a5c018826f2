//! What a run of one script reports, and how it travels from the child
//! process that runs the script to the parent that prints the summary.
//!
//! # Protocol (child stdout → parent), one line each
//!
//! ```text
//! #at <line>:<col> <directive>     before each directive
//! #ok                              the directive passed
//! FAIL <file>:<line>:<col> [<config>] <directive>: <why>   it failed
//! INFO <file>:<line>:<col> [<config>] <directive>: <note>  (verbose only)
//! #done <passed> <failed>          the script ran to its end
//! ```
//!
//! `#at` before every directive lets the parent name the directive that was
//! running when a child crashed or timed out; `#done` missing means it did.

use std::io::Write;
use std::time::Duration;

/// Where a directive is, and which one it is.
#[derive(Clone, Copy, Debug)]
pub struct Position {
    pub line: usize,
    pub col: usize,
    pub directive: &'static str,
}

/// Receives the outcome of each directive of one script.
pub trait Reporter {
    /// A directive is about to run.
    fn begin(&mut self, at: Position);
    /// The directive begun last passed.
    fn pass(&mut self);
    /// The directive begun last failed.
    fn fail(&mut self, why: &str);
    /// A remark on the directive begun last that is not a failure (for
    /// example an error message that differs from the spec's wording).
    fn info(&mut self, note: &str);
}

/// Which script under which configuration: the prefix of every line.
#[derive(Clone, Debug)]
pub struct JobName {
    pub file: String,
    /// The configuration's name (see `configs.rs`).
    pub config: &'static str,
}

impl JobName {
    /// `<tag> <file>:<line>:<col> [<config>] <directive>: <text>`, on one line.
    pub fn line(&self, tag: &str, at: Position, text: &str) -> String {
        format!(
            "{tag} {}:{}:{} [{}] {}: {}",
            self.file,
            at.line,
            at.col,
            self.config,
            at.directive,
            one_line(text)
        )
    }
}

/// `text` with its line breaks turned into ` | ` (trap backtraces have them).
pub fn one_line(text: &str) -> String {
    text.trim_end().replace('\n', " | ")
}

/// The result of running one script under one configuration.
#[derive(Debug)]
pub struct JobResult {
    pub name: JobName,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// `FAIL ...` lines, in order.
    pub failures: Vec<String>,
    /// `INFO ...` lines, in order.
    pub infos: Vec<String>,
    /// Anything else worth showing (a crashed child's stderr, a skip reason).
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

impl JobResult {
    pub fn new(name: JobName) -> JobResult {
        JobResult {
            name,
            passed: 0,
            failed: 0,
            skipped: 0,
            failures: Vec::new(),
            infos: Vec::new(),
            notes: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Collects the outcomes in memory (scripts run inside this process).
pub struct CollectReporter {
    pub result: JobResult,
    at: Option<Position>,
    verbose: bool,
}

impl CollectReporter {
    pub fn new(name: JobName, verbose: bool) -> Self {
        CollectReporter {
            result: JobResult::new(name),
            at: None,
            verbose,
        }
    }
}

fn unknown_position() -> Position {
    Position {
        line: 0,
        col: 0,
        directive: "script",
    }
}

impl Reporter for CollectReporter {
    fn begin(&mut self, at: Position) {
        self.at = Some(at);
    }
    fn pass(&mut self) {
        self.result.passed += 1;
    }
    fn fail(&mut self, why: &str) {
        let at = self.at.unwrap_or_else(unknown_position);
        self.result.failed += 1;
        self.result
            .failures
            .push(self.result.name.line("FAIL", at, why));
    }
    fn info(&mut self, note: &str) {
        if self.verbose {
            let at = self.at.unwrap_or_else(unknown_position);
            self.result
                .infos
                .push(self.result.name.line("INFO", at, note));
        }
    }
}

/// Writes the protocol to stdout (the child side).
pub struct StreamReporter {
    name: JobName,
    at: Option<Position>,
    verbose: bool,
    passed: u64,
    failed: u64,
}

impl StreamReporter {
    pub fn new(name: JobName, verbose: bool) -> Self {
        StreamReporter {
            name,
            at: None,
            verbose,
            passed: 0,
            failed: 0,
        }
    }

    fn emit(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A parent that went away cannot be told anything; keep running.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// The closing line.
    pub fn done(&self) {
        self.emit(&format!("#done {} {}", self.passed, self.failed));
    }
}

impl Reporter for StreamReporter {
    fn begin(&mut self, at: Position) {
        self.at = Some(at);
        self.emit(&format!("#at {}:{} {}", at.line, at.col, at.directive));
    }
    fn pass(&mut self) {
        self.passed += 1;
        self.emit("#ok");
    }
    fn fail(&mut self, why: &str) {
        self.failed += 1;
        let at = self.at.unwrap_or_else(unknown_position);
        self.emit(&self.name.line("FAIL", at, why));
    }
    fn info(&mut self, note: &str) {
        if self.verbose {
            let at = self.at.unwrap_or_else(unknown_position);
            self.emit(&self.name.line("INFO", at, note));
        }
    }
}

/// How a child process ended, as far as the parent is concerned.
pub enum ChildEnd {
    /// It exited by itself with this status.
    Exited(std::process::ExitStatus),
    /// The parent killed it after this long.
    TimedOut(Duration),
}

/// A child process that did not finish its script: where it was and what
/// happened to it.
pub struct Crash {
    /// `(line, col)` of the directive it was running, if it was running one.
    pub at: Option<(usize, usize)>,
    /// "the process crashed: killed by signal 11 (SIGSEGV)" and the like.
    pub why: String,
}

/// Rebuilds a [`JobResult`] from a child's stdout lines and its end; a
/// crash, if the child did not finish.
pub fn from_child(
    name: JobName,
    stdout: &[String],
    stderr: &[String],
    end: ChildEnd,
) -> (JobResult, Option<Crash>) {
    let mut result = JobResult::new(name);
    let mut running: Option<String> = None;
    let mut done = false;
    let mut stray = Vec::new();
    for line in stdout {
        if let Some(rest) = line.strip_prefix("#at ") {
            running = Some(rest.to_string());
        } else if line == "#ok" {
            result.passed += 1;
            running = None;
        } else if line.starts_with("FAIL ") {
            result.failed += 1;
            result.failures.push(line.clone());
            running = None;
        } else if line.starts_with("INFO ") {
            result.infos.push(line.clone());
        } else if line.starts_with("#done ") {
            done = true;
        } else {
            stray.push(line.clone());
        }
    }
    let exited_cleanly = matches!(&end, ChildEnd::Exited(status) if status.success());
    if done && exited_cleanly {
        return (result, None);
    }
    let how = match end {
        ChildEnd::TimedOut(after) => format!("timed out after {}s (killed)", after.as_secs()),
        ChildEnd::Exited(status) => describe_status(status),
    };
    let (position, directive) = match &running {
        Some(rest) => match rest.split_once(' ') {
            Some((pos, directive)) => (pos.to_string(), directive.to_string()),
            None => (rest.clone(), "directive".to_string()),
        },
        None if done => ("0:0".to_string(), "teardown".to_string()),
        None => ("0:0".to_string(), "after the last directive".to_string()),
    };
    let why = format!("the process {how}");
    result.failed += 1;
    result.failures.push(format!(
        "FAIL {}:{} [{}] {}: {why}",
        result.name.file, position, result.name.config, directive
    ));
    // Show what the process said last: panics, signal-handler messages.
    let tail: Vec<&String> = stray.iter().chain(stderr).collect();
    let start = tail.len().saturating_sub(15);
    for line in &tail[start..] {
        result.notes.push(format!("    | {line}"));
    }
    let at = position
        .split_once(':')
        .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)));
    let at = if running.is_some() { at } else { None };
    (result, Some(Crash { at, why }))
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        let name = match signal {
            4 => " (SIGILL)",
            5 => " (SIGTRAP)",
            6 => " (SIGABRT)",
            7 => " (SIGBUS)",
            8 => " (SIGFPE)",
            9 => " (SIGKILL)",
            11 => " (SIGSEGV)",
            _ => "",
        };
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        format!("crashed: killed by signal {signal}{name}{core}")
    } else {
        match status.code() {
            Some(code) => format!("exited early with status {code}"),
            None => "ended for an unknown reason".to_string(),
        }
    }
}
