//! Test kit for arshai.
//!
//! - [`FakeUpstream`]: a real HTTP server on an ephemeral loopback port that speaks the
//!   OpenAI Chat Completions (also Azure OpenAI and OpenRouter) and Gemini wire formats
//!   exactly, as JSON and as server-sent events, with scripted replies and tool calls,
//!   latency, statuses with `Retry-After`, and stream faults. It records what it received,
//!   so tests can check what the client sent upstream.

mod upstream;
mod wire;

pub use upstream::{FakeUpstream, Recorded, Reply, ScriptedToolCall, StreamFault, UpstreamOptions};
