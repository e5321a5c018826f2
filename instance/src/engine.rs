//! The Engine: configuration, the target ISA and the engine-wide registry of
//! function signatures, shared by every module compiled with it.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::Pools;
use crate::types::FuncType;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Compiles modules and holds what all their instances share.
///
/// Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: Config,
    isa: OwnedTargetIsa,
    signatures: Mutex<SignatureRegistry>,
    /// The epoch counter compiled code compares with its deadline. The
    /// runtime may point engines at the scheduler's global counter instead.
    epoch: &'static AtomicU64,
    /// Where instances get their VMContexts, memories and tables.
    pools: Arc<Pools>,
}

/// Interns function types: structurally equal types get the same id, which
/// `call_indirect` compares.
#[derive(Default)]
struct SignatureRegistry {
    ids: HashMap<FuncType, u32>,
    types: Vec<FuncType>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Engine {
    /// An engine for the host's CPU, with its own epoch counter.
    pub fn new(config: Config) -> Result<Engine> {
        let epoch: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        Self::with_epoch_counter(config, epoch)
    }

    /// An engine whose compiled code reads `epoch` as the current epoch.
    pub fn with_epoch_counter(config: Config, epoch: &'static AtomicU64) -> Result<Engine> {
        let isa = build_isa(&config)?;
        let pools = Pools::new(config.memory_strategy, &config.pooling);
        Ok(Engine {
            inner: Arc::new(EngineInner {
                pools,
                config,
                isa,
                signatures: Mutex::new(SignatureRegistry::default()),
                epoch,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Cranelift target.
    pub fn isa(&self) -> &dyn cranelift_codegen::isa::TargetIsa {
        &*self.inner.isa
    }

    /// The Cranelift target as a shared handle (cranelift-jit owns one per
    /// compiled module).
    pub(crate) fn isa_arc(&self) -> OwnedTargetIsa {
        self.inner.isa.clone()
    }

    /// The engine's instance pools.
    pub(crate) fn pools(&self) -> &Arc<Pools> {
        &self.inner.pools
    }

    /// The epoch counter compiled code reads.
    pub fn epoch_counter(&self) -> &'static AtomicU64 {
        self.inner.epoch
    }

    /// Advances the epoch by one (the runtime's ticker normally does this).
    pub fn increment_epoch(&self) {
        self.inner
            .epoch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The engine-wide id of `ty`.
    pub fn signature_id(&self, ty: &FuncType) -> u32 {
        let mut reg = self.inner.signatures.lock();
        if let Some(&id) = reg.ids.get(ty) {
            return id;
        }
        let id = reg.types.len() as u32;
        reg.types.push(ty.clone());
        reg.ids.insert(ty.clone(), id);
        id
    }

    /// The type with engine-wide id `id`.
    pub fn signature(&self, id: u32) -> Option<FuncType> {
        self.inner.signatures.lock().types.get(id as usize).cloned()
    }

    /// Whether two handles are the same engine.
    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

fn build_isa(config: &Config) -> Result<OwnedTargetIsa> {
    let bad = |message: String| Error::Resource(format!("cannot configure Cranelift: {message}"));
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| bad(format!("{name}={value}: {e}")))
    };
    set(&mut flags, "opt_level", config.opt_level)?;
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    // Frame pointers let the trap handler walk wasm frames for backtraces.
    set(&mut flags, "preserve_frame_pointers", "true")?;
    set(&mut flags, "enable_multi_ret_implicit_sret", "true")?;
    // Stack exhaustion is caught by the prologue's stack-limit check.
    set(&mut flags, "enable_probestack", "false")?;
    set(&mut flags, "is_pic", "false")?;
    // Block offsets, to fit small loops in one line of code
    // (`code_layout.rs`).
    set(&mut flags, "machine_code_cfg_info", "true")?;
    let isa_builder = cranelift_native::builder().map_err(|e| bad(e.to_string()))?;
    isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| bad(e.to_string()))
}
