//! [`CacheStats`]: counters of the response cache, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every [`super::CachingClient`] of a cache; read them with
/// [`CacheStats::snapshot`] at scrape time and export them as Prometheus counters.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
    coalesced: AtomicU64,
    stored: AtomicU64,
    bytes_stored: AtomicU64,
    bytes_served: AtomicU64,
    tokens_saved: AtomicU64,
    errors: AtomicU64,
}

/// A copy of [`CacheStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Calls answered without the provider (stored answers and coalesced calls).
    pub hits: u64,
    /// Calls looked up, not found, and sent to the provider.
    pub misses: u64,
    /// Calls that skipped the cache.
    pub bypasses: u64,
    /// Of the hits, those answered by an identical call in flight (single flight).
    pub coalesced: u64,
    /// Answers stored.
    pub stored: u64,
    /// Bytes of answers stored.
    pub bytes_stored: u64,
    /// Bytes of answers served from the cache.
    pub bytes_served: u64,
    /// Provider calls saved (= hits).
    pub provider_calls_saved: u64,
    /// Tokens (input + output) the hits did not spend.
    pub tokens_saved: u64,
    /// Cache backend errors (the call then went to the provider).
    pub errors: u64,
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> CacheCounters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let hits = read(&self.hits);
        CacheCounters {
            hits,
            misses: read(&self.misses),
            bypasses: read(&self.bypasses),
            coalesced: read(&self.coalesced),
            stored: read(&self.stored),
            bytes_stored: read(&self.bytes_stored),
            bytes_served: read(&self.bytes_served),
            provider_calls_saved: hits,
            tokens_saved: read(&self.tokens_saved),
            errors: read(&self.errors),
        }
    }

    pub(crate) fn hit(&self, bytes: u64, tokens: u64, coalesced: bool) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
        self.tokens_saved.fetch_add(tokens, Ordering::Relaxed);
        if coalesced {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn bypass(&self) {
        self.bypasses.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stored(&self, bytes: u64) {
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.bytes_stored.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}
