//! Layers around any [`crate::llm::LlmClient`], each one concern:
//!
//! - `retry` — retries with backoff and a retry budget ([`crate::llm::RetryingClient`]).
//! - `circuit` — a circuit breaker per provider ([`crate::llm::CircuitClient`]).
//! - `fallback` — the next provider when one fails ([`crate::llm::FallbackClient`]).
//! - `limiter` — a bound on calls in flight, per host and in all ([`crate::llm::LimitedClient`]).

pub(super) mod circuit;
pub(super) mod fallback;
pub(super) mod limiter;
pub(super) mod retry;
