//! [`CacheLayer`]: what every caching agent of one process shares (the store, the
//! counters, the `[cache]` settings), and the wrapping of one agent's client.

use std::sync::Arc;

use super::{AgentCacheSettings, CacheSettings, CacheStats, CachingClient, ResponseCache};
use crate::llm::LlmClient;

/// The response cache of one process: one store and one set of counters shared by every
/// agent whose settings declare `cache = { … }`.
#[derive(Clone)]
pub struct CacheLayer {
    cache: Arc<dyn ResponseCache>,
    stats: Arc<CacheStats>,
    settings: CacheSettings,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("backend", &self.cache.backend())
            .finish()
    }
}

impl CacheLayer {
    /// A layer over `cache`, counting into `stats`, with the shared `settings`.
    pub fn new(
        cache: Arc<dyn ResponseCache>,
        stats: Arc<CacheStats>,
        settings: CacheSettings,
    ) -> Self {
        Self {
            cache,
            stats,
            settings,
        }
    }

    /// The counters every wrapped client updates.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// `inner` answered from the cache for `agent`, per its `policy`.
    pub fn wrap(
        &self,
        inner: Arc<dyn LlmClient>,
        agent: &str,
        policy: &AgentCacheSettings,
    ) -> Arc<dyn LlmClient> {
        Arc::new(CachingClient::new(
            inner,
            Arc::clone(&self.cache),
            Arc::clone(&self.stats),
            agent,
            policy,
            &self.settings,
        ))
    }
}
