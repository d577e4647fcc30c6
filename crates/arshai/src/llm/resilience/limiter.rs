//! Bounds on calls in flight to LLM providers: a total across providers and one per host
//! (the scaling guide's `limit` and `limit_per_host`), each with a bounded wait for a slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, StreamEvent};

/// Slots for calls in flight, shared by every provider client of a factory.
#[derive(Debug)]
pub struct CallLimiter {
    total: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    wait: Duration,
}

/// The slots one call holds until it ends (for a stream: until it is finished or dropped).
#[derive(Debug)]
pub struct Slots {
    _total: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl CallLimiter {
    /// At most `total` calls in flight, `per_host` per host, waiting at most `wait` for a
    /// slot.
    pub fn new(total: usize, per_host: usize, wait: Duration) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_host_limit: per_host.max(1),
            per_host: Mutex::new(HashMap::new()),
            wait,
        }
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(semaphore) = hosts.get(host) {
            return Arc::clone(semaphore);
        }
        Arc::clone(
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host_limit))),
        )
    }

    /// Takes a slot for a call to `host`, or fails with [`LlmError::Timeout`] when none
    /// frees up within the wait bound.
    pub async fn acquire(&self, provider: &'static str, host: &str) -> Result<Slots, LlmError> {
        let host_semaphore = self.host_semaphore(host);
        // Fast path without a timer: both slots are free (the common case).
        if let Ok(host) = Arc::clone(&host_semaphore).try_acquire_owned()
            && let Ok(total) = Arc::clone(&self.total).try_acquire_owned()
        {
            return Ok(Slots {
                _total: total,
                _host: host,
            });
        }
        let total = Arc::clone(&self.total);
        let both = async move {
            let host = host_semaphore.acquire_owned().await;
            let total = total.acquire_owned().await;
            (host, total)
        };
        match tokio::time::timeout(self.wait, both).await {
            Ok((Ok(host), Ok(total))) => Ok(Slots {
                _total: total,
                _host: host,
            }),
            // The semaphores are never closed; treat it like no slot.
            Ok(_) | Err(_) => {
                tracing::warn!(provider, host, wait = ?self.wait,
                    "no connection slot to the provider within the wait bound");
                Err(LlmError::Timeout {
                    provider,
                    after: self.wait,
                })
            }
        }
    }
}

/// The host of `url` (`https://host:port/path` → `host:port`).
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// Holds a slot of a [`CallLimiter`] around each call of an inner client.
pub struct LimitedClient {
    inner: Arc<dyn LlmClient>,
    limiter: Arc<CallLimiter>,
    host: String,
}

impl LimitedClient {
    /// Wraps `inner`, whose calls go to `host`.
    pub fn new(inner: Arc<dyn LlmClient>, limiter: Arc<CallLimiter>, host: String) -> Self {
        Self {
            inner,
            limiter,
            host,
        }
    }
}

#[async_trait]
impl LlmClient for LimitedClient {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let _slots = self.limiter.acquire(self.provider(), &self.host).await?;
        self.inner.chat(request).await
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let opened = async move {
            match self.limiter.acquire(self.provider(), &self.host).await {
                // The slots travel with the stream and are freed when it is dropped.
                Ok(slots) => self
                    .inner
                    .stream(request)
                    .map(move |event| {
                        let _held = &slots;
                        event
                    })
                    .boxed(),
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            }
        };
        stream::once(opened).flatten().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_urls() {
        assert_eq!(host_of("https://api.openai.com/v1"), "api.openai.com");
        assert_eq!(host_of("http://127.0.0.1:8080/v1beta"), "127.0.0.1:8080");
        assert_eq!(host_of("http://h?x=1"), "h");
    }

    #[tokio::test]
    async fn a_full_host_makes_callers_wait_a_bounded_time() {
        let limiter = CallLimiter::new(10, 1, Duration::from_millis(50));
        let held = limiter.acquire("p", "a").await.unwrap();
        assert_eq!(
            limiter.acquire("p", "a").await.unwrap_err().class(),
            "timeout"
        );
        let _other_host = limiter.acquire("p", "b").await.unwrap();
        drop(held);
        limiter.acquire("p", "a").await.unwrap();
    }

    #[tokio::test]
    async fn the_total_bounds_every_host_together() {
        let limiter = CallLimiter::new(1, 5, Duration::from_millis(50));
        let _held = limiter.acquire("p", "a").await.unwrap();
        assert!(limiter.acquire("p", "b").await.is_err());
    }
}
