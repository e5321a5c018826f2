//! Options shared by the subcommands that run guests (`run`, `serve`):
//! resource limits and the WASI environment, their value parsers, and
//! loading the module file.

use super::exit::CliError;
use clap::{Args, ValueEnum};
use shoal::runtime::{Runtime, RuntimeBuilder};
use shoal::wasi::WasiCtxBuilder;
use shoal::{Contract, MemoryStrategy, Module, WASM_PAGE_SIZE};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits on every instance, and how the runtime runs it.
#[derive(Args, Debug, Clone)]
pub struct LimitOptions {
    /// Largest linear memory an instance may have: bytes, or with a suffix:
    /// KiB, MiB, GiB (also K/M/G and KB/MB/GB, all powers of 1024) or
    /// pages (64 KiB wasm pages, also `p`); rounded down to whole pages;
    /// at most 4GiB. `memory.grow` beyond it fails (returns -1), a module
    /// that declares more is refused.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_pages)]
    pub max_memory: Option<u64>,

    /// CPU time an instance may use, e.g. `5s`, `500ms`, `250us`, `1m` (a
    /// bare number is seconds). Time parked in a host call (waiting for
    /// input, sleeping) does not count. When it is spent the instance traps
    /// (exit code 124 for `run`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,

    /// CPU time an instance runs before it yields to the others of its
    /// worker, e.g. `1ms` [default: 250us, one epoch tick].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeslice: Option<Duration>,

    /// How linear memory is bounds-checked: `guarded` (guard pages, no
    /// checks in compiled code: fastest, 8 GiB of address space per memory)
    /// or `checked` (explicit checks, memories packed densely: for many
    /// instances) [default: guarded for `run`, checked for `serve`].
    #[arg(long, value_name = "STRATEGY")]
    pub memory_strategy: Option<StrategyArg>,
}

/// `--memory-strategy` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    /// Guard pages: no bounds checks in compiled code.
    Guarded,
    /// Explicit bounds checks, densely packed memories.
    Checked,
}

impl From<StrategyArg> for MemoryStrategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Guarded => MemoryStrategy::Guarded,
            StrategyArg::Checked => MemoryStrategy::Checked,
        }
    }
}

impl LimitOptions {
    /// A runtime builder with these options, `default_strategy` unless
    /// `--memory-strategy` says otherwise.
    pub fn runtime_builder(&self, default_strategy: MemoryStrategy) -> RuntimeBuilder {
        let mut contract = Contract::default();
        if let Some(pages) = self.max_memory {
            contract.max_memory_pages = pages;
        }
        let mut builder = Runtime::builder()
            .memory_strategy(self.memory_strategy.map_or(default_strategy, Into::into))
            .contract(contract);
        if let Some(slice) = self.timeslice {
            builder = builder.timeslice(slice);
        }
        builder
    }

    /// The contract for each instance: the runtime's, with the CPU budget.
    pub fn contract(&self, runtime: &Runtime) -> Contract {
        let mut contract = runtime.contract().clone();
        contract.cpu_budget_epochs = self.budget.map(|b| runtime.epochs(b));
        contract
    }

    /// The budget as the user wrote it (for messages).
    pub fn budget_text(&self) -> String {
        self.budget
            .map_or_else(|| "none".to_string(), |b| format!("--budget {b:?}"))
    }
}

/// What a guest sees of the host: directories and environment.
#[derive(Args, Debug, Clone)]
pub struct WasiOptions {
    /// Lets the guest use host directory HOST, under the name GUEST (default:
    /// HOST as written). Nothing outside it is reachable. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<DirMapping>,

    /// Sets an environment variable of the guest; `--env NAME` passes the
    /// host's value of NAME, if it has one. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub env: Vec<EnvVar>,
}

/// A `--dir` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMapping {
    pub host: PathBuf,
    pub guest: String,
}

/// An `--env` entry: a value, or `None` to inherit the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
}

impl WasiOptions {
    /// Adds the directories and the environment to `builder`.
    pub fn apply(&self, mut builder: WasiCtxBuilder) -> WasiCtxBuilder {
        for dir in &self.dirs {
            builder = builder.preopened_dir(&dir.host, dir.guest.clone());
        }
        for var in &self.env {
            match &var.value {
                Some(value) => builder = builder.env(var.name.clone(), value.clone()),
                None => {
                    if let Ok(value) = std::env::var(&var.name) {
                        builder = builder.env(var.name.clone(), value);
                    }
                }
            }
        }
        builder
    }
}

/// Reads and compiles the module at `path` (binary or text).
pub fn load_module(runtime: &Runtime, path: &Path) -> Result<Module, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::ReadModule {
        path: path.to_path_buf(),
        source,
    })?;
    runtime.compile(bytes).map_err(|e| CliError::Compile {
        path: path.to_path_buf(),
        message: e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// Parses `--dir HOST[::GUEST]`.
pub fn parse_dir(s: &str) -> Result<DirMapping, String> {
    let (host, guest) = match s.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!(
            "`{s}` is not HOST or HOST::GUEST (both non-empty), e.g. `./data::/data`"
        ));
    }
    Ok(DirMapping {
        host: PathBuf::from(host),
        guest: guest.to_string(),
    })
}

/// Parses `--env NAME[=VALUE]`.
pub fn parse_env(s: &str) -> Result<EnvVar, String> {
    let (name, value) = match s.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (s, None),
    };
    if name.is_empty() {
        return Err(format!("`{s}` has no variable name: write NAME=VALUE"));
    }
    Ok(EnvVar {
        name: name.to_string(),
        value,
    })
}

/// Parses a duration: a number and a unit (`ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{s}` is not a duration: write a number and a unit, e.g. `5s`, `500ms`, `250us`")
    })?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown time unit `{other}` in `{s}`: use ns, us, ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|e| format!("`{s}` is not a usable duration: {e}"))
}

/// Parses a memory size into whole wasm pages (see `--max-memory`).
pub fn parse_memory_pages(s: &str) -> Result<u64, String> {
    const MAX_PAGES: u64 = 65536;
    let text = s.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| {
        format!("`{s}` is not a memory size: write e.g. `65536`, `64KiB`, `16MiB` or `10pages`")
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let pages = match unit.as_str() {
        "p" | "page" | "pages" => Some(value),
        _ => {
            let bytes_per_unit: u64 = match unit.as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                other => {
                    return Err(format!(
                        "unknown size unit `{other}` in `{s}`: use KiB, MiB, GiB or pages"
                    ))
                }
            };
            value
                .checked_mul(bytes_per_unit)
                .map(|bytes| bytes / WASM_PAGE_SIZE)
        }
    };
    match pages {
        Some(p) if p <= MAX_PAGES => Ok(p),
        _ => Err(format!(
            "`{s}` is more than a 32-bit memory can hold (4GiB, 65536 pages)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_pages("65536"), Ok(1));
        assert_eq!(parse_memory_pages("64KiB"), Ok(1));
        assert_eq!(parse_memory_pages("100000"), Ok(1), "rounded down");
        assert_eq!(parse_memory_pages("16MiB"), Ok(256));
        assert_eq!(parse_memory_pages("1g"), Ok(16384));
        assert_eq!(parse_memory_pages("10pages"), Ok(10));
        assert_eq!(parse_memory_pages("3p"), Ok(3));
        assert_eq!(parse_memory_pages("4GiB"), Ok(65536));
        assert!(parse_memory_pages("5GiB").is_err());
        assert!(parse_memory_pages("99999999999999999999").is_err());
        assert!(parse_memory_pages("12 furlongs").is_err());
        assert!(parse_memory_pages("-1").is_err());
    }

    #[test]
    fn dirs_and_env() {
        let d = parse_dir("/srv/data::/data").expect("valid");
        assert_eq!(d.host, PathBuf::from("/srv/data"));
        assert_eq!(d.guest, "/data");
        assert_eq!(parse_dir(".").expect("valid").guest, ".");
        assert!(parse_dir("::/x").is_err());
        assert_eq!(
            parse_env("A=b=c"),
            Ok(EnvVar {
                name: "A".into(),
                value: Some("b=c".into())
            })
        );
        assert_eq!(parse_env("HOME").expect("valid").value, None);
        assert!(parse_env("=x").is_err());
    }
}
