//! Opens the memory store the settings select.

use std::sync::Arc;
use std::time::Duration;

use super::{
    InMemoryStore, InMemoryStoreConfig, MemoryError, MemoryProvider, MemorySettings, MemoryStore,
    RedisStore, RedisStoreConfig,
};

/// Opens the backend selected by `memory_provider` (or by a Redis URL being set).
pub async fn open_store(settings: &MemorySettings) -> Result<Arc<dyn MemoryStore>, MemoryError> {
    match settings.effective_provider() {
        MemoryProvider::Memory => Ok(Arc::new(InMemoryStore::new(InMemoryStoreConfig {
            ttl: Duration::from_secs(settings.ttl_seconds),
            max_conversations: settings.max_conversations,
            max_conversations_total: settings.max_conversations_total,
            max_messages: settings.max_messages,
        }))),
        MemoryProvider::Redis => Ok(Arc::new(
            RedisStore::open(RedisStoreConfig::from_settings(settings)).await?,
        )),
    }
}
