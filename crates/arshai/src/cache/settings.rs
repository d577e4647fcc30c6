//! The cache settings: `[cache]` for the store every agent shares, and each agent's
//! `cache = { ttl_seconds, scope }`.

use serde::{Deserialize, Serialize};

/// Where cached answers live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// In this process, bounded by `max_entries` and `max_bytes` (TinyLFU admission, LRU
    /// eviction). The embedded default.
    #[default]
    Memory,
    /// In Redis, shared by every instance; bounded by Redis' `maxmemory` (run it with
    /// `maxmemory-policy volatile-lru` or `allkeys-lru`) and each entry's TTL.
    Redis,
}

/// `[cache]`: the store every caching agent shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// `memory` (default) or `redis` (uses the memory section's Redis connection).
    pub backend: CacheBackend,
    /// Prefix of every Redis key; must not contain `{` or `}`.
    pub key_prefix: String,
    /// In-process: most entries kept.
    pub max_entries: u64,
    /// In-process: most bytes of answers kept.
    pub max_bytes: u64,
    /// Answers larger than this are never cached (either backend).
    pub max_entry_bytes: u64,
    /// How long a request waits for an identical one already calling the provider (in
    /// this process, or on another instance holding the fill lock) before calling the
    /// provider itself.
    pub single_flight_wait_ms: u64,
    /// Redis: how long the fill lock of a missing key is held at most (the holder deletes
    /// it as soon as it has stored the answer).
    pub lock_ttl_ms: u64,
    /// Redis: how often a request waiting for another instance's fill looks for the value.
    pub poll_interval_ms: u64,
    /// Redis: most commands in flight from one instance.
    pub max_in_flight: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            key_prefix: "arshai:cache".to_owned(),
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            single_flight_wait_ms: 30_000,
            lock_ttl_ms: 30_000,
            poll_interval_ms: 20,
            max_in_flight: 256,
        }
    }
}

impl CacheSettings {
    /// Checks what serde cannot: the key prefix has no hash-tag braces, bounds are positive.
    /// The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(format!(
                "cache.key_prefix = {:?}: must be non-empty, without {{ or }}",
                self.key_prefix
            ));
        }
        let positive = [
            ("max_entries", self.max_entries),
            ("max_bytes", self.max_bytes),
            ("max_entry_bytes", self.max_entry_bytes),
            ("lock_ttl_ms", self.lock_ttl_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("max_in_flight", self.max_in_flight as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("cache.{key} must be above 0"));
            }
        }
        Ok(())
    }
}

/// Who shares a cached answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Only the tenant that asked (the key includes the tenant). The default.
    #[default]
    Tenant,
    /// Every tenant asking the same thing of the same agent.
    Global,
}

/// An agent's `cache = { … }`: present means the agent's answers are cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentCacheSettings {
    /// How long an answer stays cached.
    pub ttl_seconds: u64,
    /// `tenant` (default) or `global`.
    pub scope: CacheScope,
    /// Cache answers of requests that are not deterministic (temperature unset or above
    /// 0) too. Off by default: such a request would get the same answer every time.
    pub cache_nondeterministic: bool,
}

impl Default for AgentCacheSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 3_600,
            scope: CacheScope::Tenant,
            cache_nondeterministic: false,
        }
    }
}
