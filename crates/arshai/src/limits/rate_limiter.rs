//! [`RateLimiter`]: requests and tokens per minute per API key and per tenant, in process
//! or fleet-wide in Redis.

use std::sync::Arc;
use std::time::Duration;

use super::LimitError;
use super::cells::{self, Cell};
use super::decision::{RateDecision, Refusal, TokenReservation};
use super::rate_memory::{Checked, MemoryCells};
use super::rate_redis::RedisCells;
use super::redis_link::FleetRedis;
use super::settings::{FailMode, LimitsSettings};
use super::stats::LimitStats;
use super::subject::Subject;

// One per process, never moved after it is built: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Memory(MemoryCells),
    Redis(RedisCells),
}

/// Requests-per-minute and tokens-per-minute limits of API keys and tenants.
///
/// A check is all or nothing over every limit of the subject (the key's and the tenant's,
/// requests and tokens): either each is charged or none is. On Redis a check is one Lua
/// script on the tenant's hash tag, so however many replicas check at once, the fleet
/// admits no more than one instance would. Tokens are reserved at the estimate by
/// [`Self::check`] and corrected by [`Self::settle`] once the real usage is known.
pub struct RateLimiter {
    backend: Backend,
    fail_mode: FailMode,
    stats: Arc<LimitStats>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("RateLimiter")
            .field("backend", &backend)
            .field("fail_mode", &self.fail_mode)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter of this process only (exact for one instance).
    pub fn in_process(settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self {
            backend: Backend::Memory(MemoryCells::new(settings.max_subjects)),
            fail_mode: settings.fail_mode,
            stats,
        }
    }

    /// A limiter shared by every instance that uses the same Redis and key prefix.
    pub fn redis(redis: &FleetRedis, settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self {
            backend: Backend::Redis(RedisCells::new(redis, &settings.key_prefix)),
            fail_mode: settings.fail_mode,
            stats,
        }
    }

    /// The counters this limiter updates.
    pub fn stats(&self) -> &Arc<LimitStats> {
        &self.stats
    }

    /// Checks a call by `subject` estimated at `estimated_tokens` (input + output) against
    /// every limit of the subject, and charges them if it fits.
    ///
    /// A refusal is `Ok` with `allowed == false` (nothing charged) and carries
    /// `retry_after`. `Err(Unavailable)` only when the backend is unreachable and the fail
    /// mode is `fail_closed`; with `fail_open` the call is allowed, `degraded`, and counted.
    pub async fn check(
        &self,
        subject: &Subject,
        estimated_tokens: u64,
    ) -> Result<RateDecision, LimitError> {
        let cells = cells::cells_of(subject, estimated_tokens);
        if cells.is_empty() {
            self.stats.allowed();
            return Ok(RateDecision::unlimited(false));
        }
        let checked = match &self.backend {
            Backend::Memory(memory) => memory.check(&subject.tenant, &cells).ok_or_else(|| {
                "the in-process limiter tracks max_subjects subjects already".to_owned()
            }),
            Backend::Redis(redis) => redis
                .check(&subject.tenant, &cells)
                .await
                .map_err(|error| error.to_string()),
        };
        match checked {
            Ok(checked) => Ok(self.decide(subject, &cells, checked, estimated_tokens)),
            Err(message) => self.unreachable(message),
        }
    }

    /// Whether the cells live in Redis.
    pub(crate) fn is_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// The decision when the backend could not be asked: allowed and degraded with
    /// `fail_open`, else [`LimitError::Unavailable`].
    pub(crate) fn unreachable(&self, message: String) -> Result<RateDecision, LimitError> {
        match self.fail_mode {
            FailMode::FailClosed => {
                self.stats.unavailable();
                Err(LimitError::Unavailable {
                    what: "rate limits",
                    message,
                })
            }
            FailMode::FailOpen => {
                tracing::warn!(%message, "rate limits unreachable: allowing (fail_open)");
                self.stats.fail_open();
                self.stats.allowed();
                Ok(RateDecision::unlimited(true))
            }
        }
    }

    /// The decision of a backend's `checked` answer over `cells`, counted.
    pub(crate) fn decide(
        &self,
        subject: &Subject,
        cells: &[Cell],
        checked: Checked,
        estimate: u64,
    ) -> RateDecision {
        let (requests, tokens) = cells::quotas(cells, &checked.states);
        let allowed = checked.refused.is_none();
        if allowed {
            self.stats.allowed();
        } else {
            self.stats.refused();
        }
        let tpm = |refusal: Refusal| cells.iter().find(|c| c.refusal == refusal).map(|c| c.limit);
        RateDecision {
            allowed,
            requests,
            tokens,
            retry_after: (!allowed).then(|| {
                Duration::from_micros(checked.wait_us.ceil() as u64).max(Duration::from_millis(1))
            }),
            refused_by: checked.refused.map(|i| cells[i].refusal),
            degraded: false,
            reservation: allowed.then(|| TokenReservation {
                tenant: subject.tenant.clone(),
                key_id: subject.key_id.clone(),
                key_tpm: tpm(Refusal::KeyTokens),
                tenant_tpm: tpm(Refusal::TenantTokens),
                estimate,
            }),
        }
    }

    /// Charges `tokens` used without a check of their own to `subject`'s tokens-per-minute
    /// limits: the real usage of work admitted earlier (a background run, admitted when it
    /// was submitted and executed later). One atomic increment per limit (no
    /// read-then-write); like a settle beyond its estimate it may leave the limits in debt,
    /// so later calls wait until it is repaid.
    pub async fn charge(&self, subject: &Subject, tokens: u64) -> Result<(), LimitError> {
        let reservation = TokenReservation {
            tenant: subject.tenant.clone(),
            key_id: subject.key_id.clone(),
            key_tpm: subject
                .key_id
                .as_ref()
                .and(subject.key_limits.tokens_per_minute)
                .map(|limit| limit.max(1)),
            tenant_tpm: subject
                .tenant_limits
                .tokens_per_minute
                .map(|limit| limit.max(1)),
            estimate: 0,
        };
        self.settle(reservation, tokens).await
    }

    /// Settles a reservation with the real usage: refunds what was reserved and not used,
    /// or charges what was used beyond it (which may leave the key in debt: later calls
    /// wait until it is repaid). Not retried: a settle whose reply is lost may or may not
    /// have been applied.
    pub async fn settle(
        &self,
        reservation: TokenReservation,
        actual_tokens: u64,
    ) -> Result<(), LimitError> {
        let moves = moves(&reservation, actual_tokens);
        if moves.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Memory(memory) => {
                memory.adjust(&reservation.tenant, &moves);
                Ok(())
            }
            Backend::Redis(redis) => match redis.adjust(&reservation.tenant, &moves).await {
                Ok(()) => Ok(()),
                Err(error) => match self.fail_mode {
                    FailMode::FailOpen => {
                        tracing::warn!(%error, "rate limits unreachable: settle dropped");
                        self.stats.fail_open();
                        Ok(())
                    }
                    FailMode::FailClosed => {
                        self.stats.unavailable();
                        Err(LimitError::Unavailable {
                            what: "rate limits",
                            message: error.to_string(),
                        })
                    }
                },
            },
        }
    }
}

/// The token cells' moves that settle `reservation` at `actual_tokens`: `(cell, limit,
/// actual − estimate)` of the key's and the tenant's tokens-per-minute cells (none when
/// the usage matched the estimate).
pub(crate) fn moves(reservation: &TokenReservation, actual_tokens: u64) -> Vec<(String, u64, i64)> {
    let delta = i64::try_from(actual_tokens)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(reservation.estimate).unwrap_or(i64::MAX));
    let mut moves = Vec::with_capacity(2);
    if delta == 0 {
        return moves;
    }
    if let (Some(key), Some(limit)) = (&reservation.key_id, reservation.key_tpm) {
        moves.push((cells::key_cell(key, "tpm"), limit, delta));
    }
    if let Some(limit) = reservation.tenant_tpm {
        moves.push(("tpm".to_owned(), limit, delta));
    }
    moves
}
