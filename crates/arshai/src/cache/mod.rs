//! The response cache: repeated deterministic requests answered without calling the
//! provider.
//!
//! - [`CachingClient`]: the [`crate::llm::LlmClient`] decorator (`chat` and `stream`) with
//!   the cacheability rules and single flight.
//! - [`ResponseCache`]: the store, [`InProcessCache`] (moka) or [`RedisCache`].
//! - [`CacheKey`]: SHA-256 of everything that determines an answer.
//! - [`CacheControl`]: the per-turn scope (tenant, `no-cache`) and the outcome
//!   (`hit|miss|bypass`) the server reads back for `x-arshai-cache`.
//! - [`CacheStats`]: counters for metrics.
//! - [`CacheLayer`]: the shared store, counters and settings an application wraps each
//!   caching agent's client with.
//!
//! `docs/cache.md` documents each setting.

mod answer;
mod client;
mod control;
mod flight;
mod in_process;
mod key;
mod layer;
mod redis;
mod settings;
mod stats;
mod store;

pub use answer::CachedAnswer;
pub use client::CachingClient;
pub use control::{CacheControl, CacheOutcome};
pub use in_process::InProcessCache;
pub use key::CacheKey;
pub use layer::CacheLayer;
pub use redis::RedisCache;
pub use settings::{AgentCacheSettings, CacheBackend, CacheScope, CacheSettings};
pub use stats::{CacheCounters, CacheStats};
pub use store::{CacheError, FillLock, ResponseCache, Stored};
