//! The backends every memory test runs on: in-memory, Redis standalone, Redis Cluster
//! (3 masters) and Redis Sentinel (master + replica + sentinel), on real `redis-server`
//! processes started by the test kit.
#![allow(dead_code, unreachable_pub, unused_macros)]

use std::sync::Arc;
use std::time::Duration;

use arshai::llm::Message;
use arshai::memory::{
    ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig, MemoryStore, open_store,
};
use arshai::settings::{MemoryProvider, MemorySettings};
use arshai_testkit::{RedisCluster, RedisSentinelGroup, RedisServer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Standalone,
    Cluster,
    Sentinel,
}

/// The processes behind a store; killed when dropped (one per test, so size is no concern).
#[allow(clippy::large_enum_variant)]
pub enum Servers {
    None,
    Standalone(RedisServer),
    Cluster(RedisCluster),
    Sentinel(RedisSentinelGroup),
}

/// A store under test and what it runs on.
pub struct Env {
    pub store: Arc<dyn MemoryStore>,
    pub in_memory: Option<Arc<InMemoryStore>>,
    pub servers: Servers,
    pub settings: MemorySettings,
}

impl Env {
    pub async fn open(
        backend: Backend,
        tune: impl FnOnce(&mut MemorySettings),
    ) -> anyhow::Result<Self> {
        let mut settings = MemorySettings {
            redis_response_timeout_seconds: 1.0,
            redis_connect_timeout_seconds: 1.0,
            // One index bucket, so the LRU order is exact on Cluster too; the bucketed
            // layout has its own test.
            redis_index_buckets: 1,
            ..MemorySettings::default()
        };
        tune(&mut settings);
        let servers = match backend {
            Backend::Memory => Servers::None,
            Backend::Standalone => {
                let server = RedisServer::start().await?;
                settings.redis_url = Some(server.url());
                Servers::Standalone(server)
            }
            Backend::Cluster => {
                let cluster = RedisCluster::start().await?;
                settings.redis_cluster_nodes = cluster.seeds();
                Servers::Cluster(cluster)
            }
            Backend::Sentinel => {
                let group = RedisSentinelGroup::start().await?;
                settings.redis_sentinel_master = Some(RedisSentinelGroup::MASTER_NAME.to_owned());
                settings.redis_sentinels = vec![group.sentinel_address()];
                Servers::Sentinel(group)
            }
        };
        let (store, in_memory): (Arc<dyn MemoryStore>, _) = if backend == Backend::Memory {
            settings.memory_provider = Some(MemoryProvider::Memory);
            // Built directly (as open_store does) to reach `run_pending_tasks`.
            let store = Arc::new(InMemoryStore::new(InMemoryStoreConfig {
                ttl: Duration::from_secs(settings.ttl_seconds),
                max_conversations: settings.max_conversations,
                max_conversations_total: settings.max_conversations_total,
                max_messages: settings.max_messages,
            }));
            (store.clone(), Some(store))
        } else {
            assert_eq!(settings.effective_provider(), MemoryProvider::Redis);
            (open_store(&settings).await?, None)
        };
        Ok(Self {
            store,
            in_memory,
            servers,
            settings,
        })
    }

    /// Lets lazy backends apply pending evictions (Redis evicts synchronously).
    pub fn settle(&self) {
        if let Some(store) = &self.in_memory {
            store.run_pending_tasks();
        }
    }

    /// A fresh store on the same servers (another instance of the fleet).
    pub async fn another_instance(&self) -> anyhow::Result<Arc<dyn MemoryStore>> {
        match &self.in_memory {
            Some(store) => Ok(store.clone()),
            None => Ok(open_store(&self.settings).await?),
        }
    }
}

pub fn key(tenant: &str, id: &str) -> ConversationKey {
    ConversationKey::new(tenant, ConversationId::parse(id).expect("valid id"))
}

pub fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.content.clone()).collect()
}

macro_rules! contract {
    ($backend:ident: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() -> anyhow::Result<()> {
                crate::$name(crate::Backend::$backend).await
            }
        )*
    };
}

macro_rules! every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory { contract!(Memory: $($name),*); }
        mod standalone { contract!(Standalone: $($name),*); }
        mod cluster { contract!(Cluster: $($name),*); }
        mod sentinel { contract!(Sentinel: $($name),*); }
    };
}

/// A Redis for the fleet-control tests (standalone, or a 3-master Cluster) and a link
/// configuration for it with short timeouts; the processes die with the returned servers.
pub async fn limits_redis(
    cluster: bool,
) -> anyhow::Result<(Servers, arshai::memory::redis::RedisStoreConfig)> {
    use arshai::memory::redis::{RedisStoreConfig, RedisTopology};
    let (servers, topology) = if cluster {
        let cluster = RedisCluster::start().await?;
        let nodes = cluster.seeds();
        (Servers::Cluster(cluster), RedisTopology::Cluster { nodes })
    } else {
        let server = RedisServer::start().await?;
        let url = server.url();
        (
            Servers::Standalone(server),
            RedisTopology::Standalone { url },
        )
    };
    let mut config = RedisStoreConfig::standalone("redis://unused");
    config.topology = topology;
    config.connect_timeout = Duration::from_millis(500);
    config.response_timeout = Duration::from_millis(500);
    Ok((servers, config))
}
