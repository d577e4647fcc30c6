//! A DNS resolver that caches answers for a fixed time (the scaling guide's
//! `ttl_dns_cache`), so a busy instance does not resolve the provider's name on every new
//! connection, yet follows a provider that moves within the TTL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Most names kept; beyond that the cache is cleared (a client talks to a handful of hosts).
const MAX_NAMES: usize = 256;

/// A cached answer: when it was resolved, and the addresses.
type Entry = (Instant, Arc<[SocketAddr]>);

/// Caches the system resolver's answers for `ttl`.
#[derive(Debug)]
pub struct CachingResolver {
    ttl: Duration,
    cache: Mutex<HashMap<String, Entry>>,
    lookups: AtomicU64,
}

impl CachingResolver {
    /// A resolver whose answers live `ttl`; a zero TTL resolves every time.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
        }
    }

    /// How many times the system resolver was asked (for tests and diagnostics).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    fn cached(&self, name: &str) -> Option<Arc<[SocketAddr]>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(name)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, addrs)| Arc::clone(addrs))
    }

    /// Resolves `name` (port 0), from the cache when fresh.
    pub async fn lookup(&self, name: &str) -> std::io::Result<Arc<[SocketAddr]>> {
        if let Some(addrs) = self.cached(name) {
            return Ok(addrs);
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        // getaddrinfo runs on tokio's blocking pool, never on a runtime thread.
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((name, 0)).await?.collect();
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_NAMES {
                cache.clear();
            }
            cache.insert(name.to_owned(), (Instant::now(), Arc::clone(&addrs)));
        }
        Ok(addrs)
    }
}

/// The resolver as reqwest uses it.
#[derive(Debug, Clone)]
pub struct SharedResolver(pub Arc<CachingResolver>);

impl Resolve for SharedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = Arc::clone(&self.0);
        Box::pin(async move {
            let addrs = resolver.lookup(name.as_str()).await?;
            let addrs: Addrs = Box::new(addrs.iter().copied().collect::<Vec<_>>().into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_are_reused_within_the_ttl_only() {
        let cached = CachingResolver::new(Duration::from_secs(60));
        let first = cached.lookup("localhost").await.unwrap();
        let second = cached.lookup("localhost").await.unwrap();
        assert_eq!(first, second);
        assert_eq!(cached.lookups(), 1);

        let uncached = CachingResolver::new(Duration::ZERO);
        uncached.lookup("localhost").await.unwrap();
        uncached.lookup("localhost").await.unwrap();
        assert_eq!(uncached.lookups(), 2);
    }
}
