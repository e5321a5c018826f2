//! Which limit stops a run that holds many instances alive, and how to
//! raise it.
//!
//! Two moments:
//!
//! 1. **Before starting** ([`preflight`]): what is predictable from the
//!    plan (how many instances live at once, the memory strategy, the
//!    stack size) and from the machine (address space, `ulimit -v`,
//!    `vm.max_map_count`, available memory) is checked first, so that a run
//!    that cannot fit says so at once instead of after minutes of spawning
//!    (e.g. `Guarded` memories reserve 8 GiB of address space each: about
//!    15,000 fit in a process).
//! 2. **While running** ([`Limit::from_spawn_error`],
//!    [`Limit::from_run_error`]): a spawn refused, or an instance that could
//!    not be created, is turned into the [`Limit`] it hit; the workload
//!    stops spawning, releases what it holds, and reports a [`LimitHit`]:
//!    which limit, how far it got, and how to raise it.

use super::report::Record;
use super::sysinfo::{self, human_bytes};
use crate::runtime::{RunError, SpawnError};
use shoal_instance::MemoryStrategy;
use std::fmt;

/// Address space one `Guarded` memory reserves (8 GiB + one wasm page).
pub const GUARDED_RESERVATION: u64 = (8 << 30) + 65536;
/// Guard area below each green-thread stack (the scheduler's default).
pub const STACK_GUARD: u64 = 16 << 10;
/// Green-thread stacks per mapped region (the scheduler's default).
pub const STACKS_PER_REGION: usize = 1024;
/// Fraction of a resource a plan may use before it is refused.
const HEADROOM: f64 = 0.95;

/// A limit that can stop a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The process's address space (47 bits, or `ulimit -v`).
    AddressSpace {
        /// Bytes the run would need.
        needed: u64,
        /// Bytes the process may map.
        available: u64,
    },
    /// `vm.max_map_count`, the most mappings a process may have.
    MapCount {
        /// Mappings the run would need (estimated), or had when it failed.
        needed: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// Physical memory.
    Memory {
        /// Bytes the run would need (estimated).
        needed: u64,
        /// `MemAvailable` when checked.
        available: u64,
    },
    /// An engine pool limit (`Config::pooling.<field>`).
    Pool {
        /// The `PoolingConfig` field.
        field: String,
        /// Its value.
        limit: usize,
    },
    /// The stack pool of a worker (`RuntimeBuilder::max_instances_per_worker`).
    StacksPerWorker {
        /// Green threads per worker.
        limit: usize,
    },
    /// The contract's `max_instances`.
    ContractInstances {
        /// The contract's limit.
        limit: usize,
    },
    /// The OS refused memory for a stack or a linear memory (mmap failed),
    /// for a reason the mapping count and address space do not explain.
    Os(String),
}

impl Limit {
    /// A short name (the JSON `limit` field).
    pub fn name(&self) -> &'static str {
        match self {
            Limit::AddressSpace { .. } => "address_space",
            Limit::MapCount { .. } => "vm.max_map_count",
            Limit::Memory { .. } => "memory",
            Limit::Pool { .. } => "pool",
            Limit::StacksPerWorker { .. } => "stacks_per_worker",
            Limit::ContractInstances { .. } => "contract_max_instances",
            Limit::Os(_) => "os",
        }
    }

    /// What to do to get further.
    pub fn how_to_raise(&self) -> String {
        match self {
            Limit::AddressSpace { .. } => "use --memory-strategy checked (a Guarded memory \
                reserves 8 GiB of address space; a Checked one only its maximum size, packed in \
                slabs), fewer instances, or lift `ulimit -v`"
                .into(),
            Limit::MapCount { needed, .. } => format!(
                "raise the kernel's limit, as root: `sysctl -w vm.max_map_count={}` (host-wide); \
                 or use --memory-strategy checked (a Guarded memory costs two mappings, a \
                 Checked one none of its own)",
                (needed + needed / 4).max(65_530).next_power_of_two()
            ),
            Limit::Memory { needed, .. } => format!(
                "run fewer instances, or free memory: the run needs about {} resident",
                human_bytes(*needed)
            ),
            Limit::Pool { field, limit } => format!(
                "raise the pool limit: --pool-max-instances N (Config::pooling.{field}, now \
                 {limit}); by default the stress tool sizes the pools from N"
            ),
            Limit::StacksPerWorker { limit } => format!(
                "raise --max-instances-per-worker (RuntimeBuilder::max_instances_per_worker, \
                 now {limit}), or add --workers; by default the stress tool sizes it from N"
            ),
            Limit::ContractInstances { limit } => {
                format!("raise the contract's max_instances (now {limit})")
            }
            Limit::Os(_) => "check `ulimit -v`, vm.overcommit_memory and free memory; \
                run fewer instances"
                .into(),
        }
    }

    /// The limit a refused spawn hit, or `None` if the refusal is not a
    /// limit (a bad module, a shut-down runtime).
    pub fn from_spawn_error(e: &SpawnError) -> Option<Limit> {
        match e {
            SpawnError::InstanceLimit { limit } => Some(Limit::ContractInstances { limit: *limit }),
            SpawnError::Executor(shoal_scheduler::SpawnError::StackPoolExhausted {
                limit, ..
            }) => Some(Limit::StacksPerWorker { limit: *limit }),
            SpawnError::Executor(shoal_scheduler::SpawnError::StackAllocation {
                reason, ..
            }) => Some(Self::from_os_failure(reason)),
            _ => None,
        }
    }

    /// The limit an instance that never ran hit, or `None` if it failed
    /// for another reason (a trap, a wrong result).
    pub fn from_run_error(e: &RunError) -> Option<Limit> {
        match e {
            RunError::Instance(shoal_instance::Error::Resource(msg)) => {
                Some(Self::from_resource_message(msg))
            }
            RunError::NotStarted(shoal_scheduler::SpawnError::StackAllocation {
                reason, ..
            }) => Some(Self::from_os_failure(reason)),
            RunError::NotStarted(shoal_scheduler::SpawnError::StackPoolExhausted {
                limit, ..
            }) => Some(Limit::StacksPerWorker { limit: *limit }),
            RunError::Refused(s) => Self::from_spawn_error(s),
            _ => None,
        }
    }

    /// `shoal_instance::Error::Resource`'s message: a pool limit (it names
    /// `Config::pooling.<field> = <n>`), else an OS refusal.
    fn from_resource_message(msg: &str) -> Limit {
        if let Some(rest) = msg.split("Config::pooling.").nth(1) {
            let field: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let limit = rest
                .split('=')
                .nth(1)
                .and_then(|v| {
                    v.trim()
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            if msg.contains("pool limit reached") {
                return Limit::Pool { field, limit };
            }
        }
        Self::from_os_failure(msg)
    }

    /// An `mmap`/`mprotect` failure: the mapping count if it is at the
    /// kernel's limit, else the address space if it is nearly used up,
    /// else an OS refusal with its message.
    fn from_os_failure(msg: &str) -> Limit {
        let maps = sysinfo::map_count();
        if let Some(max) = sysinfo::max_map_count() {
            if maps + 64 >= max {
                return Limit::MapCount { needed: maps, max };
            }
        }
        let space = address_space();
        let vsz = sysinfo::memory_use().vsz;
        if vsz as f64 >= space as f64 * HEADROOM {
            return Limit::AddressSpace {
                needed: vsz,
                available: space,
            };
        }
        Limit::Os(msg.to_string())
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::AddressSpace { needed, available } => write!(
                f,
                "address space: the run needs about {} of virtual memory, the process may map {}",
                human_bytes(*needed),
                human_bytes(*available)
            ),
            Limit::MapCount { needed, max } => write!(
                f,
                "mappings: about {needed} memory mappings needed, vm.max_map_count is {max}"
            ),
            Limit::Memory { needed, available } => write!(
                f,
                "memory: about {} resident needed, {} available",
                human_bytes(*needed),
                human_bytes(*available)
            ),
            Limit::Pool { field, limit } => {
                write!(f, "pool limit Config::pooling.{field} = {limit} reached")
            }
            Limit::StacksPerWorker { limit } => write!(
                f,
                "a worker's stack pool is full: {limit} green threads per worker \
                 (max_instances_per_worker)"
            ),
            Limit::ContractInstances { limit } => {
                write!(f, "the contract's max_instances ({limit}) reached")
            }
            Limit::Os(msg) => write!(f, "the OS refused memory: {msg}"),
        }
    }
}

/// A run stopped by a limit: which, how far it got, how to raise it.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitHit {
    /// The limit.
    pub limit: Limit,
    /// Instances that were alive (parked, ready) when it stopped; 0 if it
    /// was refused before starting.
    pub reached: usize,
    /// Instances asked for.
    pub wanted: usize,
    /// Whether it was predicted before starting (nothing was spawned).
    pub before_start: bool,
}

impl LimitHit {
    /// The JSON fields of the hit (after the workload's header).
    pub fn record(&self) -> Record {
        let mem = sysinfo::memory_use();
        Record::new()
            .with("error", self.to_string())
            .with("limit", self.limit.name())
            .with("limit_detail", self.limit.to_string())
            .with("reached", self.reached)
            .with("wanted", self.wanted)
            .with("before_start", self.before_start)
            .with("how_to_raise", self.limit.how_to_raise())
            .with("rss_bytes", mem.rss)
            .with("vsz_bytes", mem.vsz)
            .with("maps", sysinfo::map_count())
            .with("vm_max_map_count", sysinfo::max_map_count())
    }
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.before_start {
            write!(
                f,
                "{} instances cannot be held at once, refused before starting: {}. To go \
                 further: {}",
                self.wanted,
                self.limit,
                self.limit.how_to_raise()
            )
        } else {
            write!(
                f,
                "stopped at {} of {} instances: {}. To go further: {}",
                self.reached,
                self.wanted,
                self.limit,
                self.limit.how_to_raise()
            )
        }
    }
}

impl std::error::Error for LimitHit {}

/// What a run will hold at once, for [`preflight`].
#[derive(Clone, Debug)]
pub struct Plan {
    /// Instances alive at once.
    pub live: usize,
    /// Their memory strategy.
    pub memory_strategy: MemoryStrategy,
    /// Usable bytes of each green-thread stack.
    pub stack_size: u64,
    /// Resident bytes each live instance is expected to cost (stack pages
    /// touched, store, instance, touched linear memory).
    pub resident_per_instance: u64,
}

/// The process's usable address space: 47 bits, or `ulimit -v` if lower.
pub fn address_space() -> u64 {
    sysinfo::address_space_limit().map_or(sysinfo::USER_ADDRESS_SPACE, |l| {
        l.min(sysinfo::USER_ADDRESS_SPACE)
    })
}

/// Checks `plan` against the machine before anything is spawned; `Err`
/// names the first limit it would hit (see the module docs).
pub fn preflight(plan: &Plan) -> Result<(), LimitHit> {
    let refuse = |limit: Limit| LimitHit {
        limit,
        reached: 0,
        wanted: plan.live,
        before_start: true,
    };
    let live = plan.live as u64;
    let now = sysinfo::memory_use();

    // Address space: each Guarded memory's reservation, every stack slot.
    let per_memory = match plan.memory_strategy {
        MemoryStrategy::Guarded => GUARDED_RESERVATION,
        MemoryStrategy::Checked => 65536,
    };
    let per_stack = plan.stack_size + STACK_GUARD;
    let needed = now
        .vsz
        .saturating_add(live.saturating_mul(per_memory + per_stack));
    let available = address_space();
    if needed as f64 > available as f64 * HEADROOM {
        return Err(refuse(Limit::AddressSpace { needed, available }));
    }

    // Mappings: stack regions, Checked slabs (16 GiB each), two per Guarded
    // memory, two per stack on kernels without MADV_GUARD_INSTALL.
    if let Some(max) = sysinfo::max_map_count() {
        let mut maps = sysinfo::map_count() + 256 + plan.live / STACKS_PER_REGION;
        maps += match plan.memory_strategy {
            MemoryStrategy::Guarded => 2 * plan.live,
            MemoryStrategy::Checked => plan.live / 262_144 + 1,
        };
        if !sysinfo::has_guard_install() {
            maps += 2 * plan.live;
        }
        if maps as f64 > max as f64 * HEADROOM {
            return Err(refuse(Limit::MapCount { needed: maps, max }));
        }
    }

    // Physical memory.
    if let Some(available) = sysinfo::mem_available() {
        let needed = live.saturating_mul(plan.resident_per_instance);
        if needed as f64 > available as f64 * 0.9 {
            return Err(refuse(Limit::Memory { needed, available }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(live: usize, memory_strategy: MemoryStrategy) -> Plan {
        Plan {
            live,
            memory_strategy,
            stack_size: 512 << 10,
            resident_per_instance: 8 << 10,
        }
    }

    #[test]
    fn guarded_caps_near_fifteen_thousand() {
        assert!(preflight(&plan(10_000, MemoryStrategy::Guarded)).is_ok());
        let hit = preflight(&plan(20_000, MemoryStrategy::Guarded)).unwrap_err();
        assert!(
            matches!(
                hit.limit,
                Limit::AddressSpace { .. } | Limit::MapCount { .. }
            ),
            "{hit}"
        );
        assert!(
            hit.to_string().contains("--memory-strategy checked"),
            "{hit}"
        );
    }

    #[test]
    fn checked_fits_a_million_address_space() {
        let hit = preflight(&plan(1_000_000, MemoryStrategy::Checked));
        assert!(
            !matches!(
                hit,
                Err(LimitHit {
                    limit: Limit::AddressSpace { .. },
                    ..
                })
            ),
            "{hit:?}"
        );
    }

    #[test]
    fn pool_message_is_parsed() {
        let msg = "pool limit reached: 100 instances are alive at once \
                   (Config::pooling.max_instances = 100); raise Config::pooling.max_instances, \
                   or drop stores sooner";
        assert_eq!(
            Limit::from_resource_message(msg),
            Limit::Pool {
                field: "max_instances".into(),
                limit: 100
            }
        );
    }
}
