//! The server's [`LlmEvents`]: retries and circuit-breaker changes become metrics.

use std::sync::Arc;

use arshai::llm::{CircuitState, LlmEvents};

use super::{Metrics, ProviderLabels, UpstreamClassLabels};

/// Turns LLM-layer events into `arshai_upstream_retries_total` and
/// `arshai_upstream_circuit_state`.
#[derive(Debug, Clone)]
pub struct MetricsLlmEvents {
    metrics: Arc<Metrics>,
}

impl MetricsLlmEvents {
    /// Events recorded into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl LlmEvents for MetricsLlmEvents {
    fn retry(&self, provider: &'static str, class: &'static str) {
        self.metrics
            .upstream_retries
            .get_or_create(&UpstreamClassLabels { provider, class })
            .inc();
    }

    fn circuit_state(&self, provider: &'static str, state: CircuitState) {
        let value = match state {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        };
        self.metrics
            .upstream_circuit
            .get_or_create(&ProviderLabels { provider })
            .set(value);
    }
}
