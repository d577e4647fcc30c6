//! Layer 1: LLM clients.
//!
//! Every provider implements [`LlmClient`]. Requests and responses are provider-neutral
//! ([`ChatRequest`], [`ChatResponse`]); each provider module translates them to its own wire
//! format. Failures are a typed [`LlmError`] that keeps what a caller needs to decide
//! (retry-after, status, which provider).
//!
//! # Map
//!
//! The core types, at this level:
//!
//! - `client` — the [`LlmClient`] trait and its [`StreamEvent`]s.
//! - `types` — [`ChatRequest`], [`ChatResponse`], [`Message`], [`Usage`] and friends.
//! - `error` — [`LlmError`], the one error type of every provider.
//! - `observer` — [`LlmEvents`], what the resilience layers report (retries, circuit states).
//! - `tool_definition` — [`ToolDefinition`], a tool as the model sees it.
//! - `structured` — typed answers from a JSON schema ([`chat_structured`]).
//! - `status` — HTTP statuses and transport failures mapped to [`LlmError`].
//! - `factory` — [`ClientFactory`]: one client per provider, composed from the settings.
//! - `settings` — [`ProvidersSettings`], the `[providers]` section, and [`ProviderChoice`].
//!
//! And three folders:
//!
//! - [`providers`] — one module per provider: [`openai`] (and every OpenAI-compatible
//!   endpoint), [`azure`], [`gemini`], [`openrouter`], and `local`, the embedded model
//!   (its settings, [`LocalProviderSettings`], in `local_settings`, built with or without it).
//! - `resilience` — layers around any client: [`RetryingClient`], [`CircuitClient`],
//!   [`FallbackClient`], [`LimitedClient`].
//! - `transport` — what the HTTP providers share: the pooled client ([`build_http_client`]),
//!   the DNS cache, `sse` decoding, and header propagation ([`set_propagator`]).

mod client;
mod error;
mod factory;
mod observer;
pub mod providers;
mod resilience;
mod settings;
mod status;
mod structured;
mod tool_definition;
mod transport;
mod types;

pub use client::{LlmClient, StreamEvent};
pub use error::LlmError;
pub use factory::ClientFactory;
pub use observer::{CircuitState, LlmEvents, NoEvents};
pub use providers::local_settings::{
    DEFAULT_MODEL_PATH, LocalProviderSettings, MAX_CONTEXT_TOKENS,
};
pub use resilience::circuit::{CircuitBreaker, CircuitClient, CircuitSettings, Permit};
pub use resilience::fallback::FallbackClient;
pub use resilience::limiter::{CallLimiter, LimitedClient, Slots, host_of};
pub use resilience::retry::{RetryBudget, RetryPolicy, RetrySettings, RetryingClient};
pub use settings::{OpenAiProviderSettings, ProviderChoice, ProvidersSettings};
pub use structured::{
    JsonSchemaFormat, ResponseFormat, StructuredError, chat_structured, parse_structured,
};
pub use tool_definition::{ToolDefinition, schema_of};
pub use transport::dns_cache::{CachingResolver, SharedResolver};
pub use transport::http_pool::{HttpPoolSettings, build_http_client};
pub use transport::propagation::{HeaderPropagator, set_propagator};
#[doc(hidden)] // The benchmark decodes streams directly; clients do it for an application.
pub use transport::sse;
pub use types::{
    ChatRequest, ChatResponse, FinishReason, ImagePart, Message, Role, Sampling, ToolCall,
    ToolChoice, Usage,
};

// The providers, at the paths they have always had (`arshai::llm::openai::OpenAiClient`, …).
#[doc(hidden)]
pub use providers::openai::stream_decoder as openai_stream;
pub use providers::{azure, gemini, openai, openrouter};

#[cfg(feature = "local-model")]
pub use providers::local;
#[cfg(feature = "local-model")]
pub use providers::local::LocalClient;
