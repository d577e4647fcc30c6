//! Test kit for arshai.
//!
//! - [`FakeUpstream`]: a real HTTP server on an ephemeral loopback port that speaks the
//!   OpenAI Chat Completions wire format exactly, with scripted replies, latency and
//!   injectable failures. It records what it received, so tests can check what the agent
//!   sent upstream.
//! - [`RedisServer`], [`RedisCluster`], [`RedisSentinelGroup`]: real `redis-server`
//!   processes on ephemeral loopback ports, killed on drop, for memory-store tests.

mod redis;
mod upstream;

pub use redis::{RedisCluster, RedisSentinelGroup, RedisServer, redis_cli};
pub use upstream::{FakeUpstream, Reply, UpstreamOptions};
