//! The Redis memory store: standalone, Sentinel or Cluster.
//!
//! - [`keys`]: the key layout (one hash tag per conversation, ids escaped).
//! - [`scripts`]: the Lua scripts that make each write atomic and retry-safe.
//! - [`connection`]: one multiplexed, self-reconnecting link per topology.
//! - [`store`]: [`RedisStore`], the [`super::MemoryStore`] on top, with the in-flight bound,
//!   timeouts, retries and error mapping.
//!
//! `docs/memory.md` explains what is atomic and what is eventually consistent.

mod builder;
mod commands;
mod config;
mod connection;
mod keys;
mod scripts;
mod store;

pub use builder::RedisStoreBuilder;
pub use commands::RedisCommands;
pub use config::{RedisStoreConfig, RedisTopology};
/// Shared with the fleet controls (`crate::cache`, `crate::limits`), which reuse the same
/// standalone / Sentinel / Cluster link.
pub(crate) use connection::Link;
pub use store::RedisStore;
