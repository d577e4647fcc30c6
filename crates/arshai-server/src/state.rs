//! What every request handler shares.

use std::sync::Arc;

use arshai::agent::{Agent, AgentRegistry, RegistryError};
use arshai::cache::{
    CacheBackend, CacheLayer, CacheStats, InProcessCache, RedisCache, ResponseCache,
};
use arshai::limits::{FleetRedis, LimitError, LimitsBackend};
use arshai::memory::{MemoryError, MemoryStore, RedisStoreConfig, open_store};
use arshai::workflow::{DefinitionError, NodeCatalog, Workflow, WorkflowRegistry};

use crate::admission::Admission;
use crate::auth::{ApiKeys, AuthError};
use crate::metrics::{MeteredLlm, MeteredMemory, Metrics, MetricsLlmEvents};
use crate::readiness::Readiness;
use crate::runs::{RunError, Runs};
use crate::settings::Settings;
use crate::turn::limits::TurnLimits;

/// Shared, cheaply cloned state of the server.
#[derive(Clone)]
pub struct AppState {
    /// The settings the server runs with.
    pub settings: Arc<Settings>,
    /// The agents, by name.
    pub agents: Arc<AgentRegistry>,
    /// The conversation memory every agent shares (measured and traced).
    pub memory: Arc<dyn MemoryStore>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Admission control of agent turns.
    pub admission: Arc<Admission>,
    /// The readiness latch.
    pub readiness: Arc<Readiness>,
    /// Accepted API keys.
    pub auth: Arc<ApiKeys>,
    /// Rate limits and token budgets of every turn.
    pub limits: Arc<TurnLimits>,
    /// The response cache's counters (shared by every caching agent).
    pub cache_stats: Arc<CacheStats>,
    /// The workflows, by name.
    pub workflows: Arc<WorkflowRegistry>,
    /// The durable run queue; `None` with the in-memory store (runs are refused).
    pub runs: Option<Arc<Runs>>,
}

/// What a program adds to the workflows the settings declare: the functions, tools and
/// routers their nodes may name, and workflows built in code (see
/// [`crate::ServerBuilder::workflow`]).
#[derive(Clone, Default)]
pub(crate) struct CodeWorkflows {
    pub(crate) catalog: NodeCatalog,
    pub(crate) built: Vec<Arc<Workflow>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The memory store could not be opened.
    #[error("cannot open the memory store: {0}")]
    Memory(#[from] MemoryError),
    /// An agent could not be built.
    #[error("cannot build the agents: {0}")]
    Agents(#[from] RegistryError),
    /// The API keys could not be loaded.
    #[error("cannot load the API keys: {0}")]
    Auth(#[from] AuthError),
    /// A workflow could not be built (an unknown node, an unreachable node, a cycle
    /// without a step bound, …).
    #[error("cannot build the workflows: {0}")]
    Workflows(#[from] DefinitionError),
    /// The Redis link of the limits and the cache could not be opened.
    #[error("cannot open the limits and cache Redis link: {0}")]
    Fleet(#[from] LimitError),
    /// The run queue's Redis link could not be opened.
    #[error("cannot open the run queue: {0}")]
    Runs(#[from] RunError),
}

impl AppState {
    /// Opens the memory store and builds the agents the settings declare, each measured.
    pub async fn from_settings(settings: Settings) -> Result<Self, StartupError> {
        Self::assemble(settings, None, Vec::new(), CodeWorkflows::default()).await
    }

    /// The state of a server with `agents` built by the program besides those the settings
    /// declare (with agents given, the default `assistant` is not added), over `memory`
    /// (default: the store the settings choose). See [`crate::Server::builder`].
    pub(crate) async fn assemble(
        settings: Settings,
        memory: Option<Arc<dyn MemoryStore>>,
        agents: Vec<Arc<dyn Agent>>,
        code_workflows: CodeWorkflows,
    ) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new());
        let auth = ApiKeys::load(&settings.auth)?;
        let store = match memory {
            Some(store) => store,
            None => open_store(&settings.memory).await?,
        };
        let memory = MeteredMemory::wrap(store, Arc::clone(&metrics));
        let wrap_llm = |client| MeteredLlm::wrap(client, Arc::clone(&metrics));
        let events = Arc::new(MetricsLlmEvents::new(Arc::clone(&metrics)));
        let fleet = if settings.limits.backend == LimitsBackend::Redis
            || settings.cache.backend == CacheBackend::Redis
        {
            let max_in_flight = settings
                .limits
                .max_in_flight
                .max(settings.cache.max_in_flight);
            let config = RedisStoreConfig::from_settings(&settings.memory);
            Some(FleetRedis::open(&config, max_in_flight).await?)
        } else {
            None
        };
        let limits = Arc::new(TurnLimits::new(&settings.limits, fleet.as_ref()));
        let cache_stats = Arc::new(CacheStats::default());
        let store: Arc<dyn ResponseCache> = match (&fleet, settings.cache.backend) {
            (Some(fleet), CacheBackend::Redis) => Arc::new(RedisCache::new(fleet, &settings.cache)),
            _ => Arc::new(InProcessCache::new(&settings.cache)),
        };
        let cache = CacheLayer::new(store, Arc::clone(&cache_stats), settings.cache.clone());
        let mut registry = if settings.agents.is_empty() && !agents.is_empty() {
            AgentRegistry::default()
        } else {
            AgentRegistry::from_settings_cached(
                &settings.library(),
                Arc::clone(&memory),
                events,
                &wrap_llm,
                Some(&cache),
            )
            .await?
        };
        for agent in agents {
            registry.insert(agent);
        }
        let catalog = registry
            .iter()
            .fold(code_workflows.catalog, |catalog, agent| {
                catalog.agent(Arc::clone(agent))
            });
        let mut workflows = WorkflowRegistry::from_settings(&settings.workflows, &catalog)?;
        for workflow in code_workflows.built {
            workflows.insert(workflow);
        }
        let agents = registry;
        let admission = Admission::new(&settings.admission, Arc::clone(&metrics));
        let runs = Runs::open(&settings).await?;
        Ok(Self {
            settings: Arc::new(settings),
            agents: Arc::new(agents),
            memory,
            metrics,
            admission: Arc::new(admission),
            readiness: Arc::new(Readiness::default()),
            auth: Arc::new(auth),
            limits,
            cache_stats,
            workflows: Arc::new(workflows),
            runs,
        })
    }

    /// Starts draining: readiness fails and new turns are refused from now on.
    pub fn start_draining(&self) {
        self.readiness.start_draining();
        self.admission.close();
        self.metrics.draining.set(1);
    }
}
