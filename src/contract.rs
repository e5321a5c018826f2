//! Security by contract: what a module may ask for, checked before it runs
//! and enforced while it runs.
//!
//! A [`Contract`] states which imports a module may have, how large its
//! memories and tables may grow, how much stack and CPU time an instance may
//! use, and how many instances may be alive at once.
//!
//! - **At link time** ([`Contract::check`]): every import must match an
//!   allowed pattern, and every declared memory and table minimum must fit
//!   the limits. A violation is an error naming the import or the limit.
//!   `check` only reads the module, so an embedder can vet a module without
//!   running it.
//! - **At run time** the runtime enforces the rest: `memory.grow` and
//!   `table.grow` beyond the limits fail as the spec says (they return -1),
//!   an instance that spends its CPU budget ends with `TrapKind::Timeout`,
//!   and a spawn beyond the instance limit is refused.

use shoal_instance::{Module, WASM_PAGE_SIZE};
use std::fmt;

/// An allowed import: `module` and `name`, each either exact or `*`
/// (anything), or a prefix ending in `*` (`"fd_*"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPattern {
    pub module: String,
    pub name: String,
}

impl ImportPattern {
    /// A pattern from `module` and `name` (see the type's docs for `*`).
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        ImportPattern {
            module: module.into(),
            name: name.into(),
        }
    }

    /// Whether `module::name` is allowed by this pattern.
    pub fn matches(&self, module: &str, name: &str) -> bool {
        glob_matches(&self.module, module) && glob_matches(&self.name, name)
    }
}

impl std::str::FromStr for ImportPattern {
    type Err = String;
    /// Parses `module::name`, e.g. `wasi_snapshot_preview1::*`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("::") {
            Some((module, name)) if !module.is_empty() && !name.is_empty() => {
                Ok(ImportPattern::new(module, name))
            }
            _ => Err(format!(
                "import pattern `{s}` must look like `module::name` (`*` allowed)"
            )),
        }
    }
}

impl fmt::Display for ImportPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.module, self.name)
    }
}

fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => pattern == text,
    }
}

/// What a module may ask for and an instance may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    /// Allowed imports; `None` allows every import.
    pub allowed_imports: Option<Vec<ImportPattern>>,
    /// Largest memory an instance may have, in wasm pages.
    pub max_memory_pages: u64,
    /// Largest table an instance may have, in elements.
    pub max_table_elements: u32,
    /// Native stack an instance's wasm may use, in bytes: deeper recursion
    /// traps with `StackOverflow`. A runtime's default contract also sizes
    /// every green thread's stack with it; a template's own contract may
    /// ask for less, not more.
    pub stack_size: usize,
    /// CPU time an instance may use, in epochs (ticks); `None` is unlimited.
    pub cpu_budget_epochs: Option<u64>,
    /// How many instances may be alive at once; `None` is unlimited.
    pub max_instances: Option<usize>,
}

impl Default for Contract {
    /// Permissive defaults: any import, 4 GiB memories, 10M-element tables,
    /// 512 KiB stacks, no CPU budget, no instance limit.
    fn default() -> Self {
        Contract {
            allowed_imports: None,
            max_memory_pages: 65536,
            max_table_elements: 10_000_000,
            stack_size: 512 * 1024,
            cpu_budget_epochs: None,
            max_instances: None,
        }
    }
}

/// Why a module does not satisfy a contract.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("import `{module}::{name}` is not allowed by the contract (allowed: {allowed})")]
    ForbiddenImport {
        module: String,
        name: String,
        allowed: String,
    },
    #[error(
        "memory {index} needs at least {pages} pages ({bytes} bytes) but the contract allows {limit} pages"
    )]
    MemoryTooLarge {
        index: u32,
        pages: u64,
        bytes: u64,
        limit: u64,
    },
    #[error("table {index} needs at least {elements} elements but the contract allows {limit}")]
    TableTooLarge {
        index: u32,
        elements: u32,
        limit: u32,
    },
}

impl Contract {
    /// Allows only the imports matching `patterns`.
    pub fn allow_imports(mut self, patterns: impl IntoIterator<Item = ImportPattern>) -> Self {
        self.allowed_imports = Some(patterns.into_iter().collect());
        self
    }

    /// Checks `module` against the contract without running it. Returns
    /// every violation, imports first.
    pub fn check(&self, module: &Module) -> Result<(), Vec<ContractViolation>> {
        let mut violations = Vec::new();
        if let Some(allowed) = &self.allowed_imports {
            for (module_name, name, _) in module.imports() {
                if !allowed.iter().any(|p| p.matches(module_name, name)) {
                    violations.push(ContractViolation::ForbiddenImport {
                        module: module_name.to_string(),
                        name: name.to_string(),
                        allowed: describe(allowed),
                    });
                }
            }
        }
        let info = module.info();
        for (index, memory) in info.memories.iter().enumerate() {
            if memory.minimum > self.max_memory_pages {
                violations.push(ContractViolation::MemoryTooLarge {
                    index: index as u32,
                    pages: memory.minimum,
                    bytes: memory.minimum.saturating_mul(WASM_PAGE_SIZE),
                    limit: self.max_memory_pages,
                });
            }
        }
        for (index, table) in info.tables.iter().enumerate() {
            if table.minimum > self.max_table_elements {
                violations.push(ContractViolation::TableTooLarge {
                    index: index as u32,
                    elements: table.minimum,
                    limit: self.max_table_elements,
                });
            }
        }
        // `info.memories` and `info.tables` list imports first, so imported
        // memories and tables are checked too.
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

fn describe(patterns: &[ImportPattern]) -> String {
    if patterns.is_empty() {
        return "none".to_string();
    }
    patterns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_instance::{Config, Engine};

    fn module(wat: &str) -> Module {
        let engine = Engine::new(Config::default()).expect("engine");
        Module::new(&engine, wat).expect("module compiles")
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        let p: ImportPattern = "wasi_snapshot_preview1::fd_*".parse().expect("pattern");
        assert!(p.matches("wasi_snapshot_preview1", "fd_write"));
        assert!(!p.matches("wasi_snapshot_preview1", "path_open"));
        assert!(!p.matches("env", "fd_write"));
        assert!(ImportPattern::new("*", "*").matches("anything", "goes"));
        assert!("no-separator".parse::<ImportPattern>().is_err());
    }

    #[test]
    fn forbidden_import_is_named() {
        let m =
            module(r#"(module (import "env" "log" (func)) (import "env" "open_socket" (func)))"#);
        let contract = Contract::default().allow_imports([ImportPattern::new("env", "log")]);
        let violations = contract.check(&m).unwrap_err();
        assert_eq!(violations.len(), 1);
        let message = violations[0].to_string();
        assert!(message.contains("env::open_socket"), "{message}");
        assert!(message.contains("env::log"), "{message}");
    }

    #[test]
    fn memory_and_table_minimums_are_checked() {
        let m = module(r#"(module (memory 10) (table 50 funcref))"#);
        let contract = Contract {
            max_memory_pages: 4,
            max_table_elements: 8,
            ..Contract::default()
        };
        let violations = contract.check(&m).unwrap_err();
        assert!(matches!(
            violations[0],
            ContractViolation::MemoryTooLarge { pages: 10, .. }
        ));
        assert!(matches!(
            violations[1],
            ContractViolation::TableTooLarge { elements: 50, .. }
        ));
        assert!(Contract::default().check(&m).is_ok());
    }
}
