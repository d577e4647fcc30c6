//! [`LimitGate`]: the rate limits and the budgets of a call together — admitted in one
//! step, settled off the response path.
//!
//! With both in Redis an admission is one script (rate check, then budget reservation, on
//! the tenant's hash tag) instead of two round trips, and settles go through the
//! settlement queue, which applies a batch of one tenant's settles in one script.

use std::sync::Arc;
use std::time::Duration;

use super::LimitError;
use super::budget::{BudgetReservation, BudgetStatus, Budgets};
use super::cells::cells_of;
use super::decision::{RateDecision, TokenReservation};
use super::rate_limiter::RateLimiter;
use super::redis_gate::RedisGate;
use super::redis_link::FleetRedis;
use super::settings::LimitsSettings;
use super::settlement::{Settlement, SettlementQueue, Settler};
use super::stats::LimitStats;
use super::subject::Subject;

/// An admitted call's decision and budget reservation; hand both back to
/// [`LimitGate::settle`] once its usage is known.
#[derive(Debug)]
pub struct Admission {
    /// The rate-limit decision (allowed), with the quotas left and the token reservation.
    pub decision: RateDecision,
    /// The budget reservation.
    pub budget: BudgetReservation,
}

/// Why a call was not admitted.
#[derive(Debug)]
pub enum GateRefusal {
    /// A rate limit refused it (nothing charged); the decision has the quotas and the
    /// wait.
    Rate(RateDecision),
    /// The rate limits admitted it (it counts as a request, its tokens were not charged)
    /// but a budget is spent ([`LimitError::BudgetExceeded`]) or could not be checked.
    Budget {
        /// The rate-limit decision, for the quota headers.
        decision: RateDecision,
        /// Why the budget refused.
        error: LimitError,
    },
    /// The rate limits could not be checked and fail closed.
    Unavailable(LimitError),
}

/// The rate limits and budgets of every call of one process.
pub struct LimitGate {
    limiter: Arc<RateLimiter>,
    budgets: Arc<Budgets>,
    redis: Option<Arc<RedisGate>>,
    settlements: SettlementQueue,
    stats: Arc<LimitStats>,
}

impl std::fmt::Debug for LimitGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitGate")
            .field("limiter", &self.limiter)
            .field("budgets", &self.budgets)
            .field("combined", &self.redis.is_some())
            .finish()
    }
}

impl LimitGate {
    /// Limits of this process only. Call it inside a tokio runtime (the settlement task
    /// runs on it).
    pub fn in_process(settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self::with(
            RateLimiter::in_process(settings, Arc::clone(&stats)),
            Budgets::in_process(settings, Arc::clone(&stats)),
            None,
            stats,
        )
    }

    /// Limits shared by every instance on `redis` (same key prefix). Call it inside a
    /// tokio runtime.
    pub fn redis(redis: &FleetRedis, settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self::with(
            RateLimiter::redis(redis, settings, Arc::clone(&stats)),
            Budgets::redis(redis, settings, Arc::clone(&stats)),
            Some(Arc::new(RedisGate::new(redis, &settings.key_prefix))),
            stats,
        )
    }

    fn with(
        limiter: RateLimiter,
        budgets: Budgets,
        redis: Option<Arc<RedisGate>>,
        stats: Arc<LimitStats>,
    ) -> Self {
        let limiter = Arc::new(limiter);
        let budgets = Arc::new(budgets);
        let redis = redis.filter(|_| limiter.is_redis() && budgets.is_redis());
        let settlements = SettlementQueue::start(
            Settler {
                limiter: Arc::clone(&limiter),
                budgets: Arc::clone(&budgets),
                redis: redis.clone(),
            },
            Arc::clone(&stats),
        );
        Self {
            limiter,
            budgets,
            redis,
            settlements,
            stats,
        }
    }

    /// The counters of the checks, for the metrics.
    pub fn stats(&self) -> &Arc<LimitStats> {
        &self.stats
    }

    /// Checks `subject`'s rate limits and reserves its budgets for a call estimated at
    /// `estimate` tokens: all of it or none of it (a call the budget refuses still counts
    /// as a request).
    pub async fn admit(&self, subject: &Subject, estimate: u64) -> Result<Admission, GateRefusal> {
        match &self.redis {
            Some(redis) => self.admit_on_redis(redis, subject, estimate).await,
            None => self.admit_in_two_steps(subject, estimate).await,
        }
    }

    async fn admit_in_two_steps(
        &self,
        subject: &Subject,
        estimate: u64,
    ) -> Result<Admission, GateRefusal> {
        let decision = self
            .limiter
            .check(subject, estimate)
            .await
            .map_err(GateRefusal::Unavailable)?;
        if !decision.allowed {
            return Err(GateRefusal::Rate(decision));
        }
        match self.budgets.reserve(subject, estimate).await {
            Ok(budget) => Ok(Admission { decision, budget }),
            Err(error) => {
                let mut decision = decision;
                // The request counts; its tokens come back.
                self.settle(decision.reservation.take(), None, 0);
                Err(GateRefusal::Budget { decision, error })
            }
        }
    }

    async fn admit_on_redis(
        &self,
        redis: &RedisGate,
        subject: &Subject,
        estimate: u64,
    ) -> Result<Admission, GateRefusal> {
        let cells = cells_of(subject, estimate);
        let reservation = self.budgets.prepare(subject, estimate);
        if cells.is_empty() && reservation.cells.is_empty() {
            self.stats.allowed();
            return Ok(Admission {
                decision: RateDecision::unlimited(false),
                budget: reservation,
            });
        }
        let answer = redis
            .admit(
                &subject.tenant,
                &cells,
                &reservation,
                self.budgets.strict(),
                self.budgets.reservation_ttl(),
            )
            .await;
        let (checked, reserved) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                // Unreachable: each half follows its own fail mode.
                let message = error.to_string();
                let decision = self
                    .limiter
                    .unreachable(message.clone())
                    .map_err(GateRefusal::Unavailable)?;
                return match self.budgets.conclude(reservation, Err(message)) {
                    Ok(budget) => Ok(Admission { decision, budget }),
                    Err(error) => Err(GateRefusal::Budget { decision, error }),
                };
            }
        };
        let mut decision = self.limiter.decide(subject, &cells, checked, estimate);
        let Some(reserved) = reserved.filter(|_| decision.allowed) else {
            return Err(GateRefusal::Rate(decision));
        };
        match self.budgets.conclude(reservation, Ok(reserved)) {
            Ok(budget) => Ok(Admission { decision, budget }),
            Err(error) => {
                // The script charged the request but not its tokens: nothing to settle.
                decision.reservation = None;
                Err(GateRefusal::Budget { decision, error })
            }
        }
    }

    /// Settles a finished call with its real usage (`actual_tokens`, input + output),
    /// without waiting: the settle is queued and applied shortly, in a batch.
    pub fn settle(
        &self,
        rate: Option<TokenReservation>,
        budget: Option<BudgetReservation>,
        actual_tokens: u64,
    ) {
        if rate.is_none() && budget.as_ref().is_none_or(|b| b.cells.is_empty()) {
            return;
        }
        self.settlements.push(Settlement {
            rate,
            budget,
            actual: actual_tokens,
        });
    }

    /// Waits until every queued settle is applied, at most `within` (a draining instance
    /// calls it before it exits); whether they all were.
    pub async fn flush(&self, within: Duration) -> bool {
        self.settlements.flush(within).await
    }

    /// Reserves `subject`'s budgets for work admitted earlier (a background run's
    /// execution: its request was counted when it was submitted), without a rate check.
    pub async fn reserve_budget(
        &self,
        subject: &Subject,
        estimate: u64,
    ) -> Result<BudgetReservation, LimitError> {
        self.budgets.reserve(subject, estimate).await
    }

    /// Settles a [`Self::reserve_budget`] reservation with the real `tokens` and charges
    /// them to `subject`'s tokens-per-minute limits (which may leave them in debt), now —
    /// the caller waits for both.
    pub async fn settle_background(
        &self,
        subject: &Subject,
        budget: BudgetReservation,
        tokens: u64,
    ) -> Result<(), LimitError> {
        let settled = self.budgets.settle(budget, tokens).await;
        self.limiter.charge(subject, tokens).await?;
        settled
    }

    /// Every budget of `subject` this period (`GET /v1/usage`).
    pub async fn usage(&self, subject: &Subject) -> Result<Vec<BudgetStatus>, LimitError> {
        self.budgets.usage(subject).await
    }
}
