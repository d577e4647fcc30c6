//! Test kit for arshai.
//!
//! - [`FakeUpstream`]: a real HTTP server on an ephemeral loopback port that speaks the
//!   OpenAI Chat Completions (also Azure OpenAI and OpenRouter) and Gemini wire formats
//!   exactly, as JSON and as server-sent events, with scripted replies and tool calls,
//!   latency, statuses with `Retry-After`, and stream faults. It records what it received,
//!   so tests can check what the client sent upstream.
//! - [`RedisServer`], [`RedisCluster`], [`RedisSentinelGroup`]: real `redis-server`
//!   processes on ephemeral loopback ports, killed on drop, for memory-store tests.

mod redis;
mod scripted;
mod upstream;
mod wire;

pub use redis::{RedisCluster, RedisSentinelGroup, RedisServer, redis_cli};
pub use scripted::ScriptedToolCall;
pub use upstream::{FakeUpstream, Recorded, Reply, StreamFault, UpstreamOptions};
