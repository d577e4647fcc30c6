//! What every request handler shares.

use std::sync::Arc;

use arshai::agent::{Agent, AgentRegistry, RegistryError};
use arshai::cache::{
    CacheBackend, CacheLayer, CacheStats, InProcessCache, RedisCache, ResponseCache,
};
use arshai::limits::{FleetRedis, LimitError, LimitsBackend};
use arshai::memory::{MemoryError, MemoryStore, RedisStoreConfig, open_store};

use crate::admission::Admission;
use crate::auth::{ApiKeys, AuthError};
use crate::metrics::{MeteredLlm, MeteredMemory, Metrics, MetricsLlmEvents};
use crate::readiness::Readiness;
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
    /// The Redis link of the limits and the cache could not be opened.
    #[error("cannot open the limits and cache Redis link: {0}")]
    Fleet(#[from] LimitError),
}

impl AppState {
    /// Opens the memory store and builds the agents the settings declare, each measured.
    pub async fn from_settings(settings: Settings) -> Result<Self, StartupError> {
        Self::assemble(settings, None, Vec::new()).await
    }

    /// The state of a server with `agents` built by the program besides those the settings
    /// declare (with agents given, the default `assistant` is not added), over `memory`
    /// (default: the store the settings choose). See [`crate::Server::builder`].
    pub(crate) async fn assemble(
        settings: Settings,
        memory: Option<Arc<dyn MemoryStore>>,
        agents: Vec<Arc<dyn Agent>>,
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
        let agents = registry;
        let admission = Admission::new(&settings.admission, Arc::clone(&metrics));
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
        })
    }

    /// Starts draining: readiness fails and new turns are refused from now on.
    pub fn start_draining(&self) {
        self.readiness.start_draining();
        self.admission.close();
        self.metrics.draining.set(1);
    }
}
