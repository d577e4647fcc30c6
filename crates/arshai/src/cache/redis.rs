//! [`RedisCache`]: answers in Redis, shared by every instance, with a `SET NX PX` fill lock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::answer::CachedAnswer;
use super::key::CacheKey;
use super::settings::CacheSettings;
use super::store::{CacheError, FillLock, ResponseCache, Stored};
use crate::limits::FleetRedis;
use crate::limits::redis_link::{LuaScript, ScriptLink};

/// Deletes the lock only if it still holds our token.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Cached answers in Redis: one string per answer (`<prefix>:a:<hash>`, with its TTL) and
/// one short-lived fill lock per key being filled (`<prefix>:l:<hash>`). Each key is its
/// own slot on Cluster. Bounded by Redis' `maxmemory` and its eviction policy.
pub struct RedisCache {
    link: Arc<ScriptLink>,
    unlock: LuaScript,
    prefix: String,
    max_entry_bytes: u64,
    poll: Duration,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn backend(error: impl std::fmt::Display) -> CacheError {
    CacheError::Backend(error.to_string())
}

impl RedisCache {
    /// A cache on `redis` with the prefix and bounds of `settings`.
    pub fn new(redis: &FleetRedis, settings: &CacheSettings) -> Self {
        Self {
            link: redis.link.clone(),
            unlock: LuaScript::new(UNLOCK),
            prefix: settings.key_prefix.clone(),
            max_entry_bytes: settings.max_entry_bytes,
            poll: Duration::from_millis(settings.poll_interval_ms.max(1)),
        }
    }

    fn answer_key(&self, key: &CacheKey) -> String {
        format!("{}:a:{}", self.prefix, key.as_str())
    }

    fn lock_key(&self, key: &CacheKey) -> String {
        format!("{}:l:{}", self.prefix, key.as_str())
    }
}

#[async_trait]
impl ResponseCache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Stored>, CacheError> {
        let reply = self
            .link
            .query(redis::cmd("GET").arg(self.answer_key(key)))
            .await
            .map_err(backend)?;
        match reply {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(Stored {
                bytes: bytes.len() as u64,
                answer: Arc::new(CachedAnswer::decode(&bytes)?),
            })),
            other => Err(backend(format!("GET answered {other:?}"))),
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        _answer: Arc<CachedAnswer>,
        encoded: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if encoded.len() as u64 > self.max_entry_bytes {
            return Ok(());
        }
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.link
            .query(
                redis::cmd("SET")
                    .arg(self.answer_key(key))
                    .arg(encoded)
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn try_lock(&self, key: &CacheKey, ttl: Duration) -> Result<FillLock, CacheError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let reply = self
            .link
            .query(
                redis::cmd("SET")
                    .arg(self.lock_key(key))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64),
            )
            .await
            .map_err(backend)?;
        Ok(match reply {
            Value::Nil => FillLock::HeldElsewhere,
            _ => FillLock::Acquired(token),
        })
    }

    async fn unlock(&self, key: &CacheKey, token: &str) -> Result<(), CacheError> {
        let lock = self.lock_key(key);
        self.link
            .eval(&self.unlock, &[lock.as_str()], &[token.to_owned()])
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }
}
