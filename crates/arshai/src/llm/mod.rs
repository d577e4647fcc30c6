//! Layer 1: LLM clients.
//!
//! Every provider implements [`LlmClient`]. Requests and responses are provider-neutral
//! ([`ChatRequest`], [`ChatResponse`]); each provider module translates them to its own wire
//! format. Failures are a typed [`LlmError`] that keeps what a caller needs to decide
//! (retry-after, status, which provider).

pub mod azure;
mod circuit;
mod client;
mod dns_cache;
mod error;
mod events;
mod factory;
mod fallback;
pub mod gemini;
mod http_pool;
#[cfg(feature = "local-model")]
pub mod local;

mod limiter;
pub mod openai;
pub mod openai_stream;
pub mod openrouter;
mod propagation;
mod retry;
pub mod sse;
mod status;
mod structured;
mod tool;
mod types;

pub use circuit::{CircuitBreaker, CircuitClient, CircuitSettings, Permit};
pub use client::{LlmClient, StreamEvent};
pub use dns_cache::{CachingResolver, SharedResolver};
pub use error::LlmError;
pub use events::{CircuitState, LlmEvents, NoEvents};
pub use factory::ClientFactory;
pub use fallback::FallbackClient;
pub use http_pool::{HttpPoolSettings, build_http_client};
pub use limiter::{CallLimiter, LimitedClient, Slots, host_of};
pub use propagation::{HeaderPropagator, set_propagator};
pub use retry::{RetryBudget, RetryPolicy, RetrySettings, RetryingClient};

#[cfg(feature = "local-model")]
pub use local::LocalClient;

pub use structured::{ResponseFormat, StructuredError, chat_structured, parse_structured};
pub use tool::{ToolDefinition, schema_of};
pub use types::{
    ChatRequest, ChatResponse, FinishReason, Message, Role, Sampling, ToolCall, Usage,
};
