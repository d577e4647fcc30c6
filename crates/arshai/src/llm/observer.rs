//! Hooks through which the LLM layer reports what it does (retries, circuit-breaker state),
//! so that an application can turn them into metrics without the library depending on a
//! metrics crate.

/// The state of a provider's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls flow normally.
    Closed,
    /// Calls fail fast with [`super::LlmError::CircuitOpen`].
    Open,
    /// One probe call is let through to test the provider.
    HalfOpen,
}

/// Receives events from LLM clients. Every method has an empty default; implement the ones
/// you need. Implementations must be cheap and must not block.
pub trait LlmEvents: Send + Sync + 'static {
    /// A call is being retried after an error of class `class` (see [`super::LlmError::class`]).
    fn retry(&self, provider: &'static str, class: &'static str) {
        let _ = (provider, class);
    }

    /// The provider's circuit breaker moved to `state`.
    fn circuit_state(&self, provider: &'static str, state: CircuitState) {
        let _ = (provider, state);
    }
}

/// Events that go nowhere: the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl LlmEvents for NoEvents {}
