//! How to reach Redis and what limits to keep, independent of the settings file format.

use std::time::Duration;

use crate::memory::MemorySettings;

/// Where the Redis data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or a managed endpoint), by URL: `redis://[user:password@]host:port[/db]`
    /// or `rediss://` for TLS.
    Standalone {
        /// The server's URL.
        url: String,
    },
    /// A master found through Sentinel, followed across failovers.
    Sentinel {
        /// The name the sentinels monitor (`sentinel monitor <name> …`).
        master_name: String,
        /// Sentinel addresses, `host:port` or `redis://host:port`.
        sentinels: Vec<String>,
        /// Credentials, TLS and database for the master, as a URL whose host is ignored.
        master_url: Option<String>,
    },
    /// A Redis Cluster, discovered from seed nodes.
    Cluster {
        /// Seed nodes, `redis://[user:password@]host:port` or `host:port`.
        nodes: Vec<String>,
    },
}

impl std::fmt::Debug for RedisTopology {
    // URLs may carry passwords: print only the shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone { .. } => f.write_str("Standalone"),
            Self::Sentinel {
                master_name,
                sentinels,
                ..
            } => write!(f, "Sentinel({master_name}, {} sentinels)", sentinels.len()),
            Self::Cluster { nodes } => write!(f, "Cluster({} seed nodes)", nodes.len()),
        }
    }
}

/// Everything a [`super::RedisStore`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisStoreConfig {
    /// Where the data lives.
    pub topology: RedisTopology,
    /// Database number (standalone and Sentinel; Cluster has only database 0).
    pub db: i64,
    /// Prefix of every key; must not contain `{` or `}`.
    pub key_prefix: String,
    /// Sliding TTL of a conversation, refreshed on every write.
    pub ttl: Duration,
    /// Most conversations kept per tenant; the least recently used are evicted.
    pub max_conversations: u64,
    /// Optional cap over every tenant together; the least recently used are evicted.
    pub max_conversations_total: Option<u64>,
    /// Index buckets per tenant and globally on Cluster (`0`: 16); standalone and Sentinel
    /// always use one. More buckets spread the index writes over more slots; the eviction
    /// bound becomes `buckets × ⌈max / buckets⌉`, LRU within each bucket.
    pub index_buckets: u32,
    /// Most messages kept per conversation; the oldest are trimmed.
    pub max_messages: usize,
    /// Most Redis commands in flight from this store at once.
    pub max_in_flight: usize,
    /// Longest wait for an in-flight slot before failing with a timeout.
    pub pool_wait: Duration,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on each command's reply.
    pub response_timeout: Duration,
    /// Retry operations that timed out or lost their connection (every operation of this
    /// store is idempotent; writes carry a write id, so a retried append never doubles).
    pub retry_on_timeout: bool,
}

impl Default for RedisStoreConfig {
    /// The defaults of the `[memory]` settings ([`MemorySettings::default`]): the standalone
    /// server at `redis://127.0.0.1:6379`.
    fn default() -> Self {
        Self::from_settings(&MemorySettings::default())
    }
}

impl RedisStoreConfig {
    /// A standalone configuration for `url` with every other setting at its default.
    pub fn standalone(url: impl Into<String>) -> Self {
        Self {
            topology: RedisTopology::Standalone { url: url.into() },
            ..Self::default()
        }
    }

    /// The configuration the settings describe: Cluster when seed nodes are set, Sentinel
    /// when a master name is set, else the standalone URL (or `redis_host`/`redis_port`).
    pub fn from_settings(settings: &MemorySettings) -> Self {
        let url = settings
            .redis_url
            .clone()
            .unwrap_or_else(|| format!("redis://{}:{}", settings.redis_host, settings.redis_port));
        let topology = if !settings.redis_cluster_nodes.is_empty() {
            RedisTopology::Cluster {
                nodes: settings.redis_cluster_nodes.clone(),
            }
        } else if let Some(master_name) = &settings.redis_sentinel_master {
            RedisTopology::Sentinel {
                master_name: master_name.clone(),
                sentinels: settings.redis_sentinels.clone(),
                master_url: settings.redis_url.clone(),
            }
        } else {
            RedisTopology::Standalone { url }
        };
        Self {
            topology,
            db: settings.redis_db,
            key_prefix: settings.key_prefix.clone(),
            ttl: Duration::from_secs(settings.ttl_seconds),
            max_conversations: settings.max_conversations,
            max_conversations_total: settings.max_conversations_total,
            index_buckets: settings.redis_index_buckets,
            max_messages: settings.max_messages,
            max_in_flight: settings.redis_max_connections.max(1),
            pool_wait: Duration::from_secs_f64(settings.redis_pool_wait_seconds),
            connect_timeout: Duration::from_secs_f64(settings.redis_connect_timeout_seconds),
            response_timeout: Duration::from_secs_f64(settings.redis_response_timeout_seconds),
            retry_on_timeout: settings.redis_retry_on_timeout,
        }
    }
}
