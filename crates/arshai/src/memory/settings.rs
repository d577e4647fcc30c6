//! The `[memory]` settings section: which backend, how to reach Redis, and the limits every
//! backend keeps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{LeasePolicy, LeaseSettings};
use crate::InvalidSetting;

/// Which memory backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryProvider {
    /// In this process only (one instance).
    Memory,
    /// Redis (standalone, Sentinel or Cluster): shared by every instance.
    Redis,
}

/// Conversation memory (`[memory]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemorySettings {
    /// `memory` or `redis`; when unset, `redis` if a Redis URL is set, else `memory`.
    pub memory_provider: Option<MemoryProvider>,
    /// Redis URL (`redis://`, `rediss://`, with user and password for ACLs).
    pub redis_url: Option<String>,
    /// Redis host, used when no URL is set.
    pub redis_host: String,
    /// Redis port, used when no URL is set.
    pub redis_port: u16,
    /// Redis database number.
    pub redis_db: i64,
    /// Bound on Redis connections / commands in flight.
    pub redis_max_connections: usize,
    /// Retry idempotent Redis operations that time out.
    pub redis_retry_on_timeout: bool,
    /// Sliding TTL of a conversation, in seconds, refreshed on every write.
    pub ttl_seconds: u64,
    /// Most conversations kept per tenant; the least recently used are evicted.
    pub max_conversations: u64,
    /// Optional cap on conversations over every tenant together.
    pub max_conversations_total: Option<u64>,
    /// Redis Cluster: buckets of the LRU and listing indexes (`0`: 16).
    pub redis_index_buckets: u32,
    /// Most messages kept per conversation; the oldest are trimmed.
    pub max_messages: usize,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// What a turn does when another turn holds its conversation: `wait` or `reject`.
    pub turn_policy: LeasePolicy,
    /// With `turn_policy = "wait"`, the longest wait, in seconds.
    pub turn_wait_seconds: f64,
    /// Lifetime of a turn lease without renewal, in seconds.
    pub turn_lease_seconds: f64,
    /// Sentinel: the monitored master's name; setting it selects Sentinel.
    pub redis_sentinel_master: Option<String>,
    /// Sentinel: the sentinels' addresses (`host:port`).
    pub redis_sentinels: Vec<String>,
    /// Cluster: seed nodes (`host:port` or `redis://…`); setting them selects Cluster.
    pub redis_cluster_nodes: Vec<String>,
    /// Bound on establishing a Redis connection, in seconds.
    pub redis_connect_timeout_seconds: f64,
    /// Bound on each Redis command's reply, in seconds.
    pub redis_response_timeout_seconds: f64,
    /// Longest wait for one of the `redis_max_connections` in-flight slots, in seconds.
    pub redis_pool_wait_seconds: f64,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            memory_provider: None,
            redis_url: None,
            redis_host: "127.0.0.1".to_owned(),
            redis_port: 6379,
            redis_db: 0,
            redis_max_connections: 20,
            redis_retry_on_timeout: true,
            ttl_seconds: 3600,
            max_conversations: 1000,
            max_conversations_total: None,
            redis_index_buckets: 0,
            max_messages: 1000,
            key_prefix: "arshai".to_owned(),
            turn_policy: LeasePolicy::Wait,
            turn_wait_seconds: 30.0,
            turn_lease_seconds: 5.0,
            redis_sentinel_master: None,
            redis_sentinels: Vec::new(),
            redis_cluster_nodes: Vec::new(),
            redis_connect_timeout_seconds: 5.0,
            redis_response_timeout_seconds: 2.0,
            redis_pool_wait_seconds: 2.0,
        }
    }
}

impl MemorySettings {
    /// The backend in effect: the explicit choice, else Redis when a URL, a Sentinel master or
    /// Cluster nodes are set.
    pub fn effective_provider(&self) -> MemoryProvider {
        match self.memory_provider {
            Some(provider) => provider,
            None if self.redis_url.is_some()
                || self.redis_sentinel_master.is_some()
                || !self.redis_cluster_nodes.is_empty() =>
            {
                MemoryProvider::Redis
            }
            None => MemoryProvider::Memory,
        }
    }

    /// The lease settings for agent turns.
    pub fn lease_settings(&self) -> LeaseSettings {
        LeaseSettings {
            ttl: Duration::from_secs_f64(self.turn_lease_seconds),
            policy: self.turn_policy,
            max_wait: Duration::from_secs_f64(self.turn_wait_seconds),
        }
    }

    /// Checks ranges and consistency that types alone cannot express.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.ttl_seconds == 0 {
            return Err(InvalidSetting::new(
                "memory.ttl_seconds",
                0,
                "must be at least 1",
            ));
        }
        if self.max_conversations_total == Some(0) {
            return Err(InvalidSetting::new(
                "memory.max_conversations_total",
                0,
                "must be at least 1 (leave it unset for no global cap)",
            ));
        }
        InvalidSetting::check_at_least_one([
            ("memory.max_conversations", self.max_conversations),
            ("memory.max_messages", self.max_messages as u64),
            (
                "memory.redis_max_connections",
                self.redis_max_connections as u64,
            ),
        ])?;
        InvalidSetting::check_seconds([
            ("memory.turn_wait_seconds", self.turn_wait_seconds),
            ("memory.turn_lease_seconds", self.turn_lease_seconds),
            (
                "memory.redis_connect_timeout_seconds",
                self.redis_connect_timeout_seconds,
            ),
            (
                "memory.redis_response_timeout_seconds",
                self.redis_response_timeout_seconds,
            ),
            (
                "memory.redis_pool_wait_seconds",
                self.redis_pool_wait_seconds,
            ),
        ])?;
        if self.effective_provider() == MemoryProvider::Redis
            && self.redis_url.as_deref().is_some_and(|url| {
                !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("redis+unix://")
                    || url.starts_with("unix://"))
            })
        {
            return Err(InvalidSetting::new(
                "memory.redis_url",
                "(hidden)",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        if self.key_prefix.contains(['{', '}']) {
            return Err(InvalidSetting::new(
                "memory.key_prefix",
                &self.key_prefix,
                "must not contain '{' or '}' (they would change the Redis Cluster hash tag)",
            ));
        }
        if self.redis_sentinel_master.is_some() && self.redis_sentinels.is_empty() {
            return Err(InvalidSetting::new(
                "memory.redis_sentinels",
                "[]",
                "must list at least one sentinel when redis_sentinel_master is set",
            ));
        }
        Ok(())
    }
}
