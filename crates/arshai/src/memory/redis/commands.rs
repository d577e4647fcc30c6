//! [`RedisCommands`]: the memory store's standalone / Sentinel / Cluster link, open to any
//! command, for server features that keep their own data in the same Redis (the durable run
//! queue of `arshai-server`).

use redis::{Cmd, RedisResult, Value};

use super::config::RedisStoreConfig;
use super::connection::Link;
use crate::memory::MemoryError;

/// A multiplexed, self-reconnecting link to the Redis that a [`RedisStoreConfig`] describes
/// (its topology, database and timeouts), sending any command.
///
/// Commands share one connection per server, so a blocking command (`XREAD BLOCK`) holds up
/// every other command of the same link: open a dedicated link for blocking reads, with a
/// response timeout longer than the block.
pub struct RedisCommands {
    link: Link,
}

impl std::fmt::Debug for RedisCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisCommands")
    }
}

impl RedisCommands {
    /// Opens the link. Standalone and Sentinel connect on the first command; Cluster reads
    /// the slot map now, within the connect timeout.
    pub async fn open(config: &RedisStoreConfig) -> Result<Self, MemoryError> {
        let link = Link::open(config)
            .await
            .map_err(|error| MemoryError::Unavailable {
                backend: "redis",
                message: format!("cannot open the redis link: {error}"),
            })?;
        Ok(Self { link })
    }

    /// Sends one command and returns its reply (bounded by the configuration's response
    /// timeout, on standalone and Sentinel links).
    pub async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.link.query(cmd).await
    }

    /// Whether keys of different slots may live on different servers (a multi-key command
    /// must then keep its keys in one hash slot).
    pub fn is_cluster(&self) -> bool {
        self.link.is_cluster()
    }
}
