//! [`ResponseCache`]: where cached answers live (in process or in Redis), and the fill lock
//! that makes identical misses on different instances call the provider once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::answer::CachedAnswer;
use super::key::CacheKey;

/// Why the cache backend failed. The caching client never fails a call because of it: it
/// counts the error and calls the provider.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backend (Redis) could not be reached or answered an error.
    #[error("the cache backend failed: {0}")]
    Backend(String),
    /// A stored answer could not be encoded or decoded.
    #[error("a cached answer could not be encoded or decoded: {0}")]
    Codec(#[from] serde_json::Error),
}

/// A stored answer and its size.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The answer.
    pub answer: Arc<CachedAnswer>,
    /// Its stored size in bytes.
    pub bytes: u64,
}

/// The state of the fill lock of a missing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillLock {
    /// This caller holds the lock (with this token) and should call the provider.
    Acquired(String),
    /// Another instance holds it and is calling the provider: wait for its answer.
    HeldElsewhere,
    /// The backend is not shared with other instances: no lock is needed.
    NotShared,
}

/// A store of cached answers.
#[async_trait]
pub trait ResponseCache: Send + Sync + 'static {
    /// `memory` or `redis`, for logs and metric labels.
    fn backend(&self) -> &'static str;

    /// The answer stored under `key`, if any.
    async fn get(&self, key: &CacheKey) -> Result<Option<Stored>, CacheError>;

    /// Stores `answer` (encoded as `encoded`) under `key` for `ttl`.
    async fn put(
        &self,
        key: &CacheKey,
        answer: Arc<CachedAnswer>,
        encoded: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), CacheError>;

    /// Tries to take the fill lock of `key` for at most `ttl`.
    async fn try_lock(&self, key: &CacheKey, ttl: Duration) -> Result<FillLock, CacheError> {
        let _ = (key, ttl);
        Ok(FillLock::NotShared)
    }

    /// Releases a fill lock taken with `token` (a lock since taken by someone else is left
    /// alone).
    async fn unlock(&self, key: &CacheKey, token: &str) -> Result<(), CacheError> {
        let _ = (key, token);
        Ok(())
    }

    /// How often a caller waiting for another instance's fill should look for the value.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(20)
    }
}
