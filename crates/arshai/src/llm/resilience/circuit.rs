//! A per-provider circuit breaker: after N consecutive failures calls fail fast for a while,
//! then one probe is let through; its outcome closes the circuit or opens it again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::llm::{
    ChatRequest, ChatResponse, CircuitState, LlmClient, LlmError, LlmEvents, StreamEvent,
};

/// Circuit-breaker settings of a provider (`[providers.circuit]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitSettings {
    /// Whether the breaker is used at all.
    pub enabled: bool,
    /// Consecutive failed upstream attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before it lets a probe through, in seconds.
    pub open_seconds: f64,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            open_seconds: 30.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker's state machine, shared by every call to one provider.
pub struct CircuitBreaker {
    provider: &'static str,
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
    events: Arc<dyn LlmEvents>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("provider", &self.provider)
            .field("threshold", &self.threshold)
            .field("open_for", &self.open_for)
            .field("state", &self.state())
            .finish()
    }
}

/// Leave to make one call; report its outcome with [`CircuitBreaker::record`]. Dropped
/// without a verdict (the caller gave up), it frees the probe slot so another call can probe.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    settled: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut inner = self.breaker.lock();
            if let Inner::HalfOpen { probing } = &mut *inner {
                *probing = false;
            }
        }
    }
}

impl Permit<'_> {
    /// Reports the call's outcome.
    pub fn record(mut self, outcome: Result<(), &LlmError>) {
        self.settled = true;
        self.breaker
            .record(outcome.map_err(CircuitBreaker::counts_as_failure));
    }
}

impl CircuitBreaker {
    /// A closed breaker for `provider`.
    pub fn new(
        provider: &'static str,
        settings: &CircuitSettings,
        events: Arc<dyn LlmEvents>,
    ) -> Self {
        Self {
            provider,
            threshold: settings.failure_threshold.max(1),
            open_for: Duration::from_secs_f64(settings.open_seconds.max(0.0)),
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state now, for metrics and tests.
    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            Inner::Closed { .. } => CircuitState::Closed,
            Inner::Open { .. } => CircuitState::Open,
            Inner::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether an error says the provider is unhealthy (as opposed to the request being
    /// wrong): 5xx, connection failures, timeouts.
    fn counts_as_failure(error: &LlmError) -> bool {
        match error {
            LlmError::Timeout { .. } | LlmError::Connection { .. } => true,
            LlmError::UpstreamStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Asks to make a call: a permit, or [`LlmError::CircuitOpen`] while the circuit is open
    /// (or while another call is probing it).
    pub fn acquire(&self) -> Result<Permit<'_>, LlmError> {
        let mut inner = self.lock();
        let now = Instant::now();
        match *inner {
            Inner::Closed { .. } => {}
            Inner::Open { until } if now >= until => {
                *inner = Inner::HalfOpen { probing: true };
                drop(inner);
                self.events
                    .circuit_state(self.provider, CircuitState::HalfOpen);
            }
            Inner::Open { until } => {
                return Err(LlmError::CircuitOpen {
                    provider: self.provider,
                    retry_after: until - now,
                });
            }
            Inner::HalfOpen { probing: false } => *inner = Inner::HalfOpen { probing: true },
            Inner::HalfOpen { probing: true } => {
                return Err(LlmError::CircuitOpen {
                    provider: self.provider,
                    retry_after: Duration::from_secs(1).min(self.open_for),
                });
            }
        }
        Ok(Permit {
            breaker: self,
            settled: false,
        })
    }

    /// `Ok` for a success; `Err(true)` for a failure that counts, `Err(false)` for an error
    /// that says nothing about the provider's health.
    fn record(&self, outcome: Result<(), bool>) {
        let mut inner = self.lock();
        let next = match (*inner, outcome) {
            (_, Err(false)) => match *inner {
                // A probe that failed on a request error still proves the provider answers.
                Inner::HalfOpen { .. } => Inner::Closed { failures: 0 },
                other => other,
            },
            (_, Ok(())) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, Err(true)) if failures + 1 < self.threshold => {
                Inner::Closed {
                    failures: failures + 1,
                }
            }
            (Inner::Open { until }, Err(true)) => Inner::Open { until },
            (_, Err(true)) => Inner::Open {
                until: Instant::now() + self.open_for,
            },
        };
        let changed = std::mem::discriminant(&*inner) != std::mem::discriminant(&next);
        *inner = next;
        drop(inner);
        if changed {
            let state = match next {
                Inner::Closed { .. } => CircuitState::Closed,
                Inner::Open { .. } => CircuitState::Open,
                Inner::HalfOpen { .. } => CircuitState::HalfOpen,
            };
            tracing::info!(
                provider = self.provider,
                ?state,
                "circuit breaker changed state"
            );
            self.events.circuit_state(self.provider, state);
        }
    }
}

/// Guards an inner client with a [`CircuitBreaker`].
pub struct CircuitClient {
    inner: Arc<dyn LlmClient>,
    breaker: Arc<CircuitBreaker>,
}

impl CircuitClient {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LlmClient>, breaker: Arc<CircuitBreaker>) -> Self {
        Self { inner, breaker }
    }

    /// The breaker, for inspection.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

#[async_trait]
impl LlmClient for CircuitClient {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let permit = self.breaker.acquire()?;
        let result = self.inner.chat(request).await;
        permit.record(result.as_ref().map(|_| ()));
        result
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let permit = match self.breaker.acquire() {
            Ok(permit) => permit,
            Err(error) => return stream::once(future::ready(Err(error))).boxed(),
        };
        // The verdict is given when the stream finishes or fails.
        let mut permit = Some(permit);
        self.inner
            .stream(request)
            .map(move |event| {
                match &event {
                    Err(error) => {
                        if let Some(permit) = permit.take() {
                            permit.record(Err(error));
                        }
                    }
                    Ok(StreamEvent::Finish { .. }) => {
                        if let Some(permit) = permit.take() {
                            permit.record(Ok(()));
                        }
                    }
                    Ok(_) => {}
                }
                event
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::NoEvents;

    fn failing() -> LlmError {
        LlmError::Connection {
            provider: "p",
            message: "refused".into(),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once_and_closes() {
        let breaker = CircuitBreaker::new(
            "p",
            &CircuitSettings {
                enabled: true,
                failure_threshold: 2,
                open_seconds: 0.0,
            },
            Arc::new(NoEvents),
        );
        breaker.acquire().unwrap().record(Err(&failing()));
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.acquire().unwrap().record(Err(&failing()));
        assert_eq!(breaker.state(), CircuitState::Open);
        // open_seconds = 0: the next call is the probe; a second concurrent one is refused.
        let probe = breaker.acquire().unwrap();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.acquire().unwrap_err().class(), "circuit_open");
        probe.record(Ok(()));
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn a_request_error_does_not_count_and_a_success_resets_the_count() {
        let breaker = CircuitBreaker::new("p", &CircuitSettings::default(), Arc::new(NoEvents));
        for _ in 0..4 {
            breaker.acquire().unwrap().record(Err(&failing()));
        }
        let auth = LlmError::Auth {
            provider: "p",
            status: 401,
        };
        breaker.acquire().unwrap().record(Err(&auth));
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.acquire().unwrap().record(Ok(()));
        for _ in 0..4 {
            breaker.acquire().unwrap().record(Err(&failing()));
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.acquire().unwrap().record(Err(&failing()));
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.acquire().unwrap_err().class(), "circuit_open");
    }
}
