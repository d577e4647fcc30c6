//! [`InMemoryStoreBuilder`]: an [`InMemoryStore`] with the limits of `[memory]`'s defaults,
//! changed one at a time.

use std::time::Duration;

use super::{InMemoryStore, InMemoryStoreConfig};

/// Builds an [`InMemoryStore`]. Unset limits keep their defaults, the same as the
/// `[memory]` settings': a one-hour sliding TTL, 1,000 conversations per tenant, no global
/// cap, 1,000 messages per conversation. Start from [`InMemoryStore::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct InMemoryStoreBuilder {
    config: InMemoryStoreConfig,
}

impl InMemoryStoreBuilder {
    /// The sliding TTL: a conversation expires this long after its last write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// The most conversations kept per tenant; the least recently used go first.
    pub fn max_conversations(mut self, max: u64) -> Self {
        self.config.max_conversations = max;
        self
    }

    /// A cap over every tenant together; the least recently used go first.
    pub fn max_conversations_total(mut self, max: u64) -> Self {
        self.config.max_conversations_total = Some(max);
        self
    }

    /// The most messages kept per conversation; the oldest go first.
    pub fn max_messages(mut self, max: usize) -> Self {
        self.config.max_messages = max;
        self
    }

    /// The store.
    pub fn build(self) -> InMemoryStore {
        InMemoryStore::new(self.config)
    }
}

impl InMemoryStore {
    /// A builder with every limit at its default; see [`InMemoryStoreBuilder`].
    pub fn builder() -> InMemoryStoreBuilder {
        InMemoryStoreBuilder::default()
    }
}

impl Default for InMemoryStore {
    /// A store with the default limits ([`InMemoryStoreConfig::default`]).
    fn default() -> Self {
        Self::new(InMemoryStoreConfig::default())
    }
}
