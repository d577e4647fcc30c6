//! [`RedisStoreBuilder`]: a [`RedisStore`] for one URL with the defaults of `[memory]`,
//! changed one at a time.

use std::time::Duration;

use super::{RedisStore, RedisStoreConfig, RedisTopology};
use crate::memory::MemoryError;

/// Builds a [`RedisStore`] on one standalone server. Unset settings keep the defaults of
/// the `[memory]` settings ([`RedisStoreConfig::default`]). Start from
/// [`RedisStore::builder`]; for Sentinel or Cluster, set [`RedisStoreConfig::topology`] and
/// call [`RedisStore::open`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct RedisStoreBuilder {
    config: RedisStoreConfig,
}

impl RedisStoreBuilder {
    /// The prefix of every key; must not contain `{` or `}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// The sliding TTL of a conversation, refreshed on every write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// The most conversations kept per tenant; the least recently used are evicted.
    pub fn max_conversations(mut self, max: u64) -> Self {
        self.config.max_conversations = max;
        self
    }

    /// A cap over every tenant together; the least recently used are evicted.
    pub fn max_conversations_total(mut self, max: u64) -> Self {
        self.config.max_conversations_total = Some(max);
        self
    }

    /// The most messages kept per conversation; the oldest are trimmed.
    pub fn max_messages(mut self, max: usize) -> Self {
        self.config.max_messages = max;
        self
    }

    /// The database number.
    pub fn db(mut self, db: i64) -> Self {
        self.config.db = db;
        self
    }

    /// The most Redis commands in flight from this store at once.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.config.max_in_flight = max;
        self
    }

    /// The bound on each command's reply.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// The bound on establishing a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.config
    }

    /// Opens the store ([`RedisStore::open`]).
    pub async fn open(self) -> Result<RedisStore, MemoryError> {
        RedisStore::open(self.config).await
    }
}

impl RedisStore {
    /// A builder for the standalone server at `url` (`redis://[user:password@]host:port[/db]`,
    /// `rediss://` for TLS), every other setting at its default; see [`RedisStoreBuilder`].
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            config: RedisStoreConfig {
                topology: RedisTopology::Standalone { url: url.into() },
                ..RedisStoreConfig::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemorySettings;

    #[test]
    fn the_builder_starts_from_the_memory_settings_defaults() {
        let url = "redis://10.0.0.1:6379";
        assert_eq!(
            RedisStore::builder(url).config(),
            &RedisStoreConfig::standalone(url)
        );
        let defaults = RedisStoreConfig::from_settings(&MemorySettings::default());
        assert_eq!(RedisStoreConfig::default(), defaults);
        let built = RedisStore::builder(url)
            .ttl(Duration::from_secs(60))
            .max_messages(10);
        assert_eq!(built.config().ttl, Duration::from_secs(60));
        assert_eq!(built.config().max_messages, 10);
        assert_eq!(built.config().max_conversations, defaults.max_conversations);
    }
}
