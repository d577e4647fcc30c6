//! Layer 1: LLM clients.
//!
//! Every provider implements [`LlmClient`]. Requests and responses are provider-neutral
//! ([`ChatRequest`], [`ChatResponse`]); each provider module translates them to its own wire
//! format. Failures are a typed [`LlmError`] that keeps what a caller needs to decide
//! (retry-after, status, which provider).

mod client;
mod error;
mod events;
mod factory;
mod http_pool;
pub mod openai;
pub mod openai_stream;
pub mod sse;
mod types;

pub use client::{LlmClient, StreamEvent};
pub use error::LlmError;
pub use events::{CircuitState, LlmEvents, NoEvents};
pub use factory::ClientFactory;
pub use http_pool::{HttpPoolSettings, build_http_client};
pub use types::{
    ChatRequest, ChatResponse, FinishReason, Message, Role, Sampling, ToolCall, Usage,
};
