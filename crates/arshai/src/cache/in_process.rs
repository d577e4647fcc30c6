//! [`InProcessCache`]: answers in this process, bounded by entries and bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::sync::Cache;

use super::answer::CachedAnswer;
use super::key::CacheKey;
use super::settings::CacheSettings;
use super::store::{CacheError, ResponseCache, Stored};

#[derive(Clone)]
struct Entry {
    stored: Stored,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<CacheKey, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Cached answers in this process (moka: TinyLFU admission, LRU eviction, per-entry TTL).
///
/// Each entry weighs its size in bytes, and at least `max_bytes / max_entries`, so the
/// cache holds at most `max_entries` entries and at most `max_bytes` bytes of answers.
pub struct InProcessCache {
    entries: Cache<CacheKey, Entry>,
}

impl std::fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl InProcessCache {
    /// A cache bounded as `settings` says.
    pub fn new(settings: &CacheSettings) -> Self {
        let max_bytes = settings.max_bytes.max(1);
        let floor = (max_bytes / settings.max_entries.max(1)).max(1);
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |_key: &CacheKey, entry: &Entry| {
                u32::try_from(entry.stored.bytes.max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { entries }
    }

    /// Applies pending evictions now (moka evicts lazily), for tests and metrics.
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }

    /// Entries held now (after [`Self::run_pending_tasks`], exact).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Total weight held now (bytes, with the per-entry floor).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }
}

#[async_trait]
impl ResponseCache for InProcessCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Stored>, CacheError> {
        Ok(self.entries.get(key).map(|entry| entry.stored))
    }

    async fn put(
        &self,
        key: &CacheKey,
        answer: Arc<CachedAnswer>,
        encoded: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let stored = Stored {
            answer,
            bytes: encoded.len() as u64,
        };
        self.entries.insert(key.clone(), Entry { stored, ttl });
        Ok(())
    }
}
