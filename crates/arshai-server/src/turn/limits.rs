//! The rate-limit and budget layer of every turn: checked and reserved before the turn
//! runs, `x-ratelimit-*` headers on its response, and settled with the turn's real usage
//! when its response body ends (or is dropped).
//!
//! `docs/limits.md` describes the limits; this file is their one call point in the
//! server. A turn is estimated at `ceil(input characters / 4) + 1` tokens before it runs;
//! the estimate is corrected by the settle. A stream dropped before it finished keeps its
//! estimate charged; a cache hit is settled with 0 tokens (it called no provider).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arshai::agent::AgentInput;
use arshai::limits::FleetRedis;
use arshai::limits::{
    BudgetReservation, BudgetStatus, GateRefusal, LimitError, LimitGate, LimitStats, LimitsBackend,
    LimitsSettings, Quota, RateDecision, TokenReservation,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use crate::ApiError;
use crate::auth::Caller;

/// The limits every turn of this process goes through.
#[derive(Debug)]
pub struct TurnLimits {
    settings: LimitsSettings,
    gate: LimitGate,
}

/// The quotas a check left, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quotas {
    requests: Option<Quota>,
    tokens: Option<Quota>,
}

impl Quotas {
    /// Writes `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the quotas that
    /// apply.
    pub fn write(&self, headers: &mut HeaderMap) {
        let dimensions = [("requests", self.requests), ("tokens", self.tokens)];
        for (dimension, quota) in dimensions {
            let Some(quota) = quota else { continue };
            let values = [
                ("limit", quota.limit.to_string()),
                ("remaining", quota.remaining.to_string()),
                ("reset", quota.reset_header()),
            ];
            for (what, value) in values {
                let name = format!("x-ratelimit-{what}-{dimension}");
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// A turn refused before it ran: the error to answer and the quotas to report.
#[derive(Debug)]
pub struct Refused {
    /// 429 `rate_limited` / `budget_exceeded`, or 503 `limits_unavailable`.
    pub error: ApiError,
    /// The quotas of the check, when it ran.
    pub quotas: Quotas,
}

/// An admitted turn's reservations, to settle once its usage is known.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<TurnLimits>,
    /// The quotas left after the check.
    pub quotas: Quotas,
    rate: Option<TokenReservation>,
    budget: Option<BudgetReservation>,
}

impl TurnLimits {
    /// The limits of `settings`, in this process or (`backend = "redis"`) in `redis`. Call
    /// it inside the runtime (settles are applied by a task of their own).
    pub fn new(settings: &LimitsSettings, redis: Option<&FleetRedis>) -> Self {
        let stats = Arc::new(LimitStats::default());
        let gate = match (settings.backend, redis) {
            (LimitsBackend::Redis, Some(redis)) => LimitGate::redis(redis, settings, stats),
            _ => LimitGate::in_process(settings, stats),
        };
        Self {
            settings: settings.clone(),
            gate,
        }
    }

    /// The counters of the checks, for the metrics.
    pub fn stats(&self) -> &Arc<LimitStats> {
        self.gate.stats()
    }

    /// Waits until every queued settle is applied, at most `within` (drain).
    pub async fn flush(&self, within: Duration) -> bool {
        self.gate.flush(within).await
    }

    /// Checks `caller`'s rate limits, then reserves its budgets, for a turn estimated at
    /// `estimate` tokens (one step; one Redis script when both are in Redis).
    pub async fn admit(
        self: &Arc<Self>,
        caller: &Caller,
        estimate: u64,
    ) -> Result<Admitted, Refused> {
        let subject = caller.subject(&self.settings);
        match self.gate.admit(&subject, estimate).await {
            Ok(admission) => Ok(Admitted {
                limits: Arc::clone(self),
                quotas: quotas_of(&admission.decision),
                rate: admission.decision.reservation,
                budget: Some(admission.budget),
            }),
            Err(GateRefusal::Rate(decision)) => Err(Refused {
                error: ApiError::RateLimited {
                    retry_after: decision.retry_after.unwrap_or_default(),
                    limit: match decision.refused_by {
                        Some(arshai::limits::Refusal::KeyTokens)
                        | Some(arshai::limits::Refusal::TenantTokens) => "tokens per minute",
                        _ => "requests per minute",
                    },
                },
                quotas: quotas_of(&decision),
            }),
            Err(GateRefusal::Budget { decision, error }) => Err(Refused {
                error: unavailable(error),
                quotas: quotas_of(&decision),
            }),
            Err(GateRefusal::Unavailable(error)) => Err(Refused {
                error: unavailable(error),
                quotas: Quotas::default(),
            }),
        }
    }

    /// Reserves `caller`'s budgets for work admitted earlier (a background run's
    /// execution: its request was counted when it was submitted), without a rate check:
    /// 429 `budget_exceeded` when a budget is spent, 503 when the backend is unreachable.
    pub async fn reserve_budget(
        &self,
        caller: &Caller,
        estimate: u64,
    ) -> Result<BudgetReservation, ApiError> {
        self.gate
            .reserve_budget(&caller.subject(&self.settings), estimate)
            .await
            .map_err(unavailable)
    }

    /// Settles a [`Self::reserve_budget`] reservation with the real `tokens`, and charges
    /// them to `caller`'s tokens-per-minute limits (which may leave them in debt).
    pub async fn settle_background(
        &self,
        caller: &Caller,
        budget: BudgetReservation,
        tokens: u64,
    ) -> Result<(), ApiError> {
        self.gate
            .settle_background(&caller.subject(&self.settings), budget, tokens)
            .await
            .map_err(unavailable)
    }

    /// Every budget of `caller` this period (`GET /v1/usage`).
    pub async fn usage(&self, caller: &Caller) -> Result<Vec<BudgetStatus>, ApiError> {
        self.gate
            .usage(&caller.subject(&self.settings))
            .await
            .map_err(unavailable)
    }

    /// Queues the settle of a finished turn (applied in a batch, off the response path).
    fn settle(
        &self,
        rate: Option<TokenReservation>,
        budget: Option<BudgetReservation>,
        tokens: u64,
    ) {
        self.gate.settle(rate, budget, tokens);
    }
}

fn quotas_of(decision: &RateDecision) -> Quotas {
    Quotas {
        requests: decision.requests,
        tokens: decision.tokens,
    }
}

fn unavailable(error: LimitError) -> ApiError {
    match error {
        LimitError::BudgetExceeded(refusal) => ApiError::BudgetExceeded(refusal),
        other => ApiError::LimitsUnavailable(other.to_string()),
    }
}

/// The tokens a turn is charged at before it runs: about 4 characters a token of its
/// input, plus one.
pub fn estimate(input: &AgentInput) -> u64 {
    let characters: usize = input
        .messages
        .iter()
        .map(|message| message.content.chars().count())
        .sum();
    u64::try_from(characters.div_ceil(4)).unwrap_or(u64::MAX) + 1
}

/// The usage a turn reports for its settle: unknown (the estimate stays charged) until
/// the turn records it.
#[derive(Debug)]
pub struct TurnUsage(AtomicU64);

impl Default for TurnUsage {
    fn default() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }
}

impl TurnUsage {
    /// Records the turn's total tokens.
    pub fn record(&self, tokens: u64) {
        self.0.store(tokens.min(u64::MAX - 1), Ordering::Relaxed);
    }

    fn get(&self) -> Option<u64> {
        let tokens = self.0.load(Ordering::Relaxed);
        (tokens != u64::MAX).then_some(tokens)
    }
}

/// Settles an admitted turn when dropped, with its recorded usage (or its estimate).
struct SettleGuard {
    admitted: Admitted,
    usage: Arc<TurnUsage>,
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        let rate = self.admitted.rate.take();
        let budget = self.admitted.budget.take();
        let estimate = rate
            .as_ref()
            .map(TokenReservation::estimate)
            .or(budget.as_ref().map(BudgetReservation::estimate))
            .unwrap_or(0);
        let tokens = self.usage.get().unwrap_or(estimate);
        self.admitted.limits.settle(rate, budget, tokens);
    }
}

impl Admitted {
    /// `response` with the quota headers, settling the turn with `usage` once its body is
    /// finished or dropped.
    pub fn settle_with_body(self, mut response: Response, usage: Arc<TurnUsage>) -> Response {
        self.quotas.write(response.headers_mut());
        let guard = SettleGuard {
            admitted: self,
            usage,
        };
        super::held_body::hold_until_sent(response, guard)
    }
}
