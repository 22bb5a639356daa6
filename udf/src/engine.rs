//! [`Engine`]: what every session of a process shares.
//!
//! An engine holds the catalog (tiers, backends, the in-flight computes),
//! the registry of cached functions and one DataFusion runtime, whose
//! memory pool enforces the configured memory limit across all sessions
//! and whose disk manager gives sorts somewhere to spill. It is cheap to
//! clone and hands out [`crate::Session`]s: one for a REPL, one per client
//! for a server, or one wrapped around an embedding program's own context.

use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};

use datafusion::common::Result;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use nuthatch_backends::Backends;
use nuthatch_catalog::{Catalog, Config};

use crate::function::CachedFunction;
use crate::registry::Registry;

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: Config,
    catalog: Arc<Catalog>,
    registry: Arc<Registry>,
    runtime: Arc<RuntimeEnv>,
    /// What a front end adds to every session's state (a cluster's
    /// planner), set once, before sessions are made.
    session_hook: RwLock<Option<SessionHook>>,
}

/// Adds to the state of each session an engine makes, and of each context
/// it installs into: how a crate above this one (the cluster) puts its
/// planner, codecs and settings in, since sessions are made here.
/// It cannot fail: whatever it needs is checked when it is made.
pub type SessionHook = Arc<dyn Fn(SessionStateBuilder) -> SessionStateBuilder + Send + Sync>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.inner.catalog.root().url())
            .field("functions", &self.inner.registry.all().len())
            .finish()
    }
}

impl Engine {
    /// An engine over the tiers `config` names, with its memory limit and
    /// every built-in backend.
    pub fn new(config: &Config) -> Result<Engine> {
        Engine::with_backends(config, Backends::builtin())
    }

    /// An engine whose tiers store entries with `backends`: how a program
    /// adds a storage format of its own,
    /// `Backends::builtin().with(Arc::new(MyFormat))`. Each reads its
    /// section of the tiers' configuration as they open.
    pub fn with_backends(config: &Config, backends: Backends) -> Result<Engine> {
        let catalog = Catalog::with_backends(config, backends)?;
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = config.memory_limit {
            // A fair pool shares the limit among the operators that can
            // spill (a compute's sort, its window aggregates) instead of
            // letting the first one take it all; the tracking wrapper names
            // the biggest consumers when the limit is hit.
            let pool = TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(5).expect("non-zero"),
            );
            runtime = runtime.with_memory_pool(Arc::new(pool));
        }
        let runtime = runtime.build_arc()?;
        catalog.register_stores(&runtime);
        // Staleness compares entries with the definitions registered here.
        let registry: Arc<Registry> = Arc::default();
        catalog.set_definitions(Arc::clone(&registry) as _);
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                catalog,
                registry,
                runtime,
                session_hook: RwLock::new(None),
            }),
        })
    }

    /// An engine configured from the working directory and environment
    /// (see [`Config::discover`]).
    pub fn discover() -> Result<Engine> {
        Engine::new(&Config::discover()?)
    }

    /// Sets what every session made from now on adds to its state (see
    /// [`SessionHook`]); sessions made before keep theirs.
    pub fn set_session_hook(&self, hook: SessionHook) {
        *self.inner.session_hook.write().expect("session hook") = Some(hook);
    }

    /// `builder` with the session hook applied, if one is set.
    pub(crate) fn hooked(&self, builder: SessionStateBuilder) -> SessionStateBuilder {
        let hook = self
            .inner
            .session_hook
            .read()
            .expect("session hook")
            .clone();
        match hook {
            Some(hook) => hook(builder),
            None => builder,
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The DataFusion runtime every session of this engine runs in.
    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.inner.runtime
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Adds a cached function, replacing one of the same name, for every
    /// session of this engine.
    pub fn register(&self, function: CachedFunction) -> Result<()> {
        for name in function
            .backend()
            .into_iter()
            .chain(function.storage_backend())
        {
            let backend = self.catalog().backend(name).map_err(|e| {
                datafusion::common::DataFusionError::Plan(format!("{}: {e}", function.name()))
            })?;
            function.check_backend(backend.as_ref())?;
        }
        tracing::debug!(function = function.name(), "registered cached function");
        self.inner.registry.insert(Arc::new(function));
        Ok(())
    }

    pub fn function(&self, name: &str) -> Option<Arc<CachedFunction>> {
        self.inner.registry.get(name)
    }

    pub fn functions(&self) -> Vec<Arc<CachedFunction>> {
        self.inner.registry.all()
    }
}
