//! Connections to Redis: standalone, Sentinel or Cluster, behind one `query` call.
//!
//! Every flavour is a multiplexed connection (many commands in flight on one socket, so
//! concurrent tasks pipeline for free) that reconnects on its own after an outage:
//! - standalone: redis-rs' `ConnectionManager`, created lazily so a store can be opened
//!   while Redis is still starting;
//! - Cluster: redis-rs' cluster connection (slot map, `MOVED`/`ASK`, reconnects);
//! - Sentinel: a connection to the master the sentinels name; it is dropped on any
//!   connection error or `READONLY` reply, and the next command asks the sentinels again,
//!   which is how writes follow a failover.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, IntoConnectionInfo, RedisError, RedisResult,
    ServerErrorKind, Value,
};

use super::config::{RedisStoreConfig, RedisTopology};

/// An open link to Redis.
// One per store, never moved after it is opened: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    /// One server (and its client, for the wake-up subscription).
    Standalone(ConnectionManager, Client),
    /// A cluster (and a client per seed node, for the wake-up subscription).
    Cluster(ClusterConnection, Vec<Client>),
    /// A master found through Sentinel.
    Sentinel(Box<SentinelLink>),
}

/// Adds `redis://` to a bare `host:port`.
fn with_scheme(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("redis://{address}")
    }
}

impl Link {
    /// Opens the link `config` describes. Standalone and Sentinel connect lazily (the first
    /// command connects); Cluster reads the slot map now, within the connect timeout.
    pub(crate) async fn open(config: &RedisStoreConfig) -> RedisResult<Self> {
        match &config.topology {
            RedisTopology::Standalone { url } => {
                let mut info = with_scheme(url).into_connection_info()?;
                if config.db != 0 && info.redis_settings().db() == 0 {
                    let settings = info.redis_settings().clone().set_db(config.db);
                    info = info.set_redis_settings(settings);
                }
                let client = Client::open(info)?;
                let subscriber = client.clone();
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Ok(Self::Standalone(
                    ConnectionManager::new_lazy_with_config(client, manager_config)?,
                    subscriber,
                ))
            }
            RedisTopology::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.iter().map(|n| with_scheme(n)))
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(3)
                    .min_retry_wait(20)
                    .max_retry_wait(500)
                    .build()?;
                let connection =
                    tokio::time::timeout(config.connect_timeout, client.get_async_connection())
                        .await
                        .map_err(|_| {
                            RedisError::from((
                                ErrorKind::Io,
                                "no cluster node answered within the connect timeout",
                            ))
                        })??;
                let seeds = nodes
                    .iter()
                    .map(|node| Client::open(with_scheme(node)))
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok(Self::Cluster(connection, seeds))
            }
            RedisTopology::Sentinel {
                master_name,
                sentinels,
                master_url,
            } => Ok(Self::Sentinel(Box::new(SentinelLink::new(
                master_name,
                sentinels,
                master_url.as_deref(),
                config,
            )?))),
        }
    }

    /// Whether keys of different slots may live on different servers.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(..))
    }

    /// A dedicated pub/sub connection (to the server, the current master, or the first seed
    /// node that answers: Cluster broadcasts `PUBLISH` to every node), within `timeout`.
    pub(crate) async fn pubsub(&self, timeout: Duration) -> RedisResult<PubSub> {
        let timed_out = || {
            RedisError::from((
                ErrorKind::Io,
                "no server accepted the wake-up subscription within the connect timeout",
            ))
        };
        match self {
            Self::Standalone(_, client) => tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .map_err(|_| timed_out())?,
            Self::Cluster(_, seeds) => {
                let mut last = timed_out();
                for client in seeds {
                    match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
                        Ok(Ok(pubsub)) => return Ok(pubsub),
                        Ok(Err(error)) => last = error,
                        Err(_) => last = timed_out(),
                    }
                }
                Err(last)
            }
            Self::Sentinel(link) => {
                let client = link.master_client().await?;
                tokio::time::timeout(timeout, client.get_async_pubsub())
                    .await
                    .map_err(|_| timed_out())?
            }
        }
    }

    /// Sends one command and returns its reply.
    pub(crate) async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Standalone(manager, _) => cmd.query_async(&mut manager.clone()).await,
            Self::Cluster(connection, _) => cmd.query_async(&mut connection.clone()).await,
            Self::Sentinel(link) => link.query(cmd).await,
        }
    }
}

/// The master of a Sentinel-monitored group, re-resolved after connection errors.
pub(crate) struct SentinelLink {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    master: Mutex<Option<MultiplexedConnection>>,
    connection_config: AsyncConnectionConfig,
    connect_timeout: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded value is a cached connection handle: replacing it is always safe.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SentinelLink {
    fn new(
        master_name: &str,
        sentinels: &[String],
        master_url: Option<&str>,
        config: &RedisStoreConfig,
    ) -> RedisResult<Self> {
        let mut addresses = Vec::with_capacity(sentinels.len());
        for sentinel in sentinels {
            addresses.push(with_scheme(sentinel).into_connection_info()?.addr().clone());
        }
        let mut builder =
            SentinelClientBuilder::new(addresses, master_name, SentinelServerType::Master)?
                .set_client_to_redis_db(config.db);
        if let Some(url) = master_url {
            let info = with_scheme(url).into_connection_info()?;
            let settings = info.redis_settings();
            if let Some(username) = settings.username() {
                builder = builder.set_client_to_redis_username(username);
            }
            if let Some(password) = settings.password() {
                builder = builder.set_client_to_redis_password(password);
            }
            if settings.db() != 0 {
                builder = builder.set_client_to_redis_db(settings.db());
            }
            if url.starts_with("rediss://") {
                builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            }
        }
        Ok(Self {
            sentinels: tokio::sync::Mutex::new(builder.build()?),
            master: Mutex::new(None),
            connection_config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            connect_timeout: config.connect_timeout,
        })
    }

    async fn master(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = lock(&self.master).clone() {
            return Ok(connection);
        }
        let timed_out = || {
            RedisError::from((
                ErrorKind::Io,
                "no sentinel named a reachable master within the connect timeout",
            ))
        };
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let mut sentinels = tokio::time::timeout_at(deadline, self.sentinels.lock())
            .await
            .map_err(|_| timed_out())?;
        // Another task may have connected while this one waited for the sentinels.
        if let Some(connection) = lock(&self.master).clone() {
            return Ok(connection);
        }
        let connection = tokio::time::timeout_at(deadline, async {
            sentinels
                .async_get_client()
                .await?
                .get_multiplexed_async_connection_with_config(&self.connection_config)
                .await
        })
        .await
        .map_err(|_| timed_out())??;
        *lock(&self.master) = Some(connection.clone());
        Ok(connection)
    }

    /// A client for the master the sentinels name now.
    async fn master_client(&self) -> RedisResult<Client> {
        let mut sentinels = tokio::time::timeout(self.connect_timeout, self.sentinels.lock())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "the sentinels are busy")))?;
        tokio::time::timeout(self.connect_timeout, sentinels.async_get_client())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "no sentinel answered in time")))?
    }

    async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut connection = self.master().await?;
        let result = cmd.query_async(&mut connection).await;
        if let Err(error) = &result
            && (error.is_io_error()
                || error.is_connection_dropped()
                || error.is_timeout()
                || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly))
        {
            // The master may have moved: ask the sentinels again on the next command.
            *lock(&self.master) = None;
        }
        result
    }
}
