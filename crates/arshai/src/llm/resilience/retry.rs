//! Retries: exponential backoff with full jitter, `Retry-After` honoured, a retry budget, and
//! never a retry once any streamed content has reached the caller.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, LlmEvents, StreamEvent};

/// Retry settings of a provider (`[providers.retry]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Retries after the first attempt; `0` turns retries off.
    pub max_retries: u32,
    /// Backoff base, in seconds: attempt `n` waits a random time in `[0, base·2ⁿ]`.
    pub base_delay_seconds: f64,
    /// Cap of one backoff wait, in seconds.
    pub max_delay_seconds: f64,
    /// The longest `Retry-After` honoured, in seconds; a longer one is returned to the
    /// caller at once (with its value) instead of holding the request.
    pub max_retry_after_seconds: f64,
    /// Retries allowed per first attempt, on average (the budget's deposit ratio).
    pub budget_ratio: f64,
    /// Retries per second always allowed, however few calls are made.
    pub budget_min_per_second: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay_seconds: 0.25,
            max_delay_seconds: 8.0,
            max_retry_after_seconds: 5.0,
            budget_ratio: 0.2,
            budget_min_per_second: 1.0,
        }
    }
}

/// A shared allowance of retries: each first attempt deposits `ratio`, each retry withdraws
/// one, and `min_per_second` trickles in regardless. When the upstream is failing for
/// everyone, retries stop multiplying its load (a storm of retries cannot exceed
/// `ratio` × traffic + the trickle).
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: f64,
    cap: f64,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    balance: f64,
    refilled: Instant,
}

impl RetryBudget {
    /// A budget with `ratio` retries per call and `min_per_second` always allowed.
    pub fn new(ratio: f64, min_per_second: f64) -> Self {
        let ratio = ratio.max(0.0);
        let min_per_second = min_per_second.max(0.0);
        // Ten seconds' worth of the trickle (at least one retry) can be saved up.
        let cap = (min_per_second * 10.0).max(1.0) + ratio * 100.0;
        Self {
            ratio,
            min_per_second,
            cap,
            state: Mutex::new(BudgetState {
                balance: (min_per_second * 10.0).max(1.0),
                refilled: Instant::now(),
            }),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut BudgetState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.balance = (state.balance + elapsed * self.min_per_second).min(self.cap);
        state.refilled = now;
        f(&mut state)
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        let (ratio, cap) = (self.ratio, self.cap);
        self.with_state(|state| state.balance = (state.balance + ratio).min(cap));
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        self.with_state(|state| {
            if state.balance >= 1.0 {
                state.balance -= 1.0;
                true
            } else {
                false
            }
        })
    }
}

/// When and how long to wait before retrying.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    settings: RetrySettings,
    budget: Arc<RetryBudget>,
}

impl RetryPolicy {
    /// A policy from `settings`, with its own budget.
    pub fn new(settings: RetrySettings) -> Self {
        let budget = Arc::new(RetryBudget::new(
            settings.budget_ratio,
            settings.budget_min_per_second,
        ));
        Self { settings, budget }
    }

    /// Whether an error of this kind may succeed when tried again: rate limits, 5xx,
    /// connection failures and timeouts. Auth, bad requests, decode errors and an open
    /// circuit are final.
    pub fn is_retryable(error: &LlmError) -> bool {
        match error {
            LlmError::RateLimited { .. }
            | LlmError::Timeout { .. }
            | LlmError::Connection { .. } => true,
            LlmError::UpstreamStatus { status, .. } => {
                matches!(status, 408 | 409 | 425 | 500 | 502 | 503 | 504 | 529)
            }
            _ => false,
        }
    }

    /// The wait before retry number `retry` (0-based) after `error`, or `None` to give up.
    /// Does not touch the budget.
    pub fn backoff(&self, retry: u32, error: &LlmError) -> Option<Duration> {
        if retry >= self.settings.max_retries || !Self::is_retryable(error) {
            return None;
        }
        if let Some(asked) = error.retry_after() {
            return (asked.as_secs_f64() <= self.settings.max_retry_after_seconds).then_some(asked);
        }
        let ceiling = (self.settings.base_delay_seconds * 2f64.powi(retry.min(30) as i32))
            .min(self.settings.max_delay_seconds)
            .max(0.0);
        Some(Duration::from_secs_f64(fastrand::f64() * ceiling))
    }

    /// The wait before retry number `retry`, taking it from the budget; `None` to give up.
    pub fn next_retry(&self, retry: u32, error: &LlmError) -> Option<Duration> {
        let delay = self.backoff(retry, error)?;
        self.budget.withdraw().then_some(delay)
    }

    /// Records a first attempt in the budget.
    pub fn record_call(&self) {
        self.budget.deposit();
    }
}

/// Retries calls of an inner client according to a [`RetryPolicy`].
pub struct RetryingClient {
    inner: Arc<dyn LlmClient>,
    policy: RetryPolicy,
    events: Arc<dyn LlmEvents>,
}

impl RetryingClient {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LlmClient>, policy: RetryPolicy, events: Arc<dyn LlmEvents>) -> Self {
        Self {
            inner,
            policy,
            events,
        }
    }

    async fn wait_before_retry(&self, retry: u32, error: &LlmError) -> bool {
        match self.policy.next_retry(retry, error) {
            Some(delay) => {
                tracing::debug!(
                    provider = self.inner.provider(),
                    class = error.class(),
                    ?delay,
                    retry,
                    "retrying an LLM call"
                );
                self.events.retry(self.inner.provider(), error.class());
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl LlmClient for RetryingClient {
    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn default_model(&self) -> &str {
        self.inner.default_model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.policy.record_call();
        let mut retry = 0;
        loop {
            match self.inner.chat(request).await {
                Ok(response) => return Ok(response),
                Err(error) => {
                    if !self.wait_before_retry(retry, &error).await {
                        return Err(error);
                    }
                    retry += 1;
                }
            }
        }
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        let opened = async move {
            self.policy.record_call();
            let mut retry = 0;
            loop {
                let mut events = self.inner.stream(request);
                match events.next().await {
                    // Nothing reached the caller yet: trying again cannot duplicate anything.
                    Some(Err(error)) => {
                        if !self.wait_before_retry(retry, &error).await {
                            return stream::once(future::ready(Err(error))).boxed();
                        }
                        retry += 1;
                    }
                    // From the first event on, errors go to the caller as they are.
                    Some(Ok(first)) => {
                        return stream::once(future::ready(Ok(first))).chain(events).boxed();
                    }
                    None => return stream::empty().boxed(),
                }
            }
        };
        stream::once(opened).flatten().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> LlmError {
        LlmError::UpstreamStatus {
            provider: "p",
            status: 503,
            body_excerpt: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_ceiling() {
        let policy = RetryPolicy::new(RetrySettings {
            max_retries: 10,
            base_delay_seconds: 0.1,
            max_delay_seconds: 1.0,
            ..RetrySettings::default()
        });
        for retry in 0..10 {
            let ceiling = (0.1 * 2f64.powi(retry as i32)).min(1.0);
            for _ in 0..50 {
                let delay = policy.backoff(retry, &unavailable()).unwrap();
                assert!(delay.as_secs_f64() <= ceiling, "{retry}: {delay:?}");
            }
        }
        assert_eq!(policy.backoff(10, &unavailable()), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_and_final_errors_are_not_retried() {
        let policy = RetryPolicy::new(RetrySettings::default());
        let limited = |secs| LlmError::RateLimited {
            provider: "p",
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(policy.backoff(0, &limited(2)), Some(Duration::from_secs(2)));
        assert_eq!(policy.backoff(0, &limited(7)), None);
        let auth = LlmError::Auth {
            provider: "p",
            status: 401,
        };
        assert_eq!(policy.backoff(0, &auth), None);
        let bad = LlmError::UpstreamStatus {
            provider: "p",
            status: 501,
            body_excerpt: String::new(),
            retry_after: None,
        };
        assert_eq!(policy.backoff(0, &bad), None);
    }

    #[test]
    fn the_budget_runs_out_and_refills_from_calls() {
        let budget = RetryBudget::new(0.5, 0.0);
        assert!(budget.withdraw(), "one retry is always saved up");
        assert!(!budget.withdraw());
        budget.deposit();
        assert!(!budget.withdraw(), "half a retry is not a retry");
        budget.deposit();
        assert!(budget.withdraw());
    }
}
