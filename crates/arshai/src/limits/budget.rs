//! [`Budgets`]: token budgets per tenant and per API key over UTC days and months, checked
//! and reserved atomically before a call, settled from the real usage after it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::LimitError;
use super::budget_memory::MemoryLedger;
use super::budget_redis::RedisLedger;
use super::period::{BudgetPeriod, PeriodWindow};
use super::redis_link::{FleetRedis, escape};
use super::settings::{BudgetLimits, FailMode, LimitsSettings};
use super::stats::LimitStats;
use super::subject::Subject;

/// Whose budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    /// One API key's.
    Key,
    /// The whole tenant's.
    Tenant,
}

impl BudgetScope {
    /// `key` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Tenant => "tenant",
        }
    }
}

/// One budget of a subject, as `GET /v1/usage` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    /// Key or tenant.
    pub scope: BudgetScope,
    /// Day or month.
    pub period: BudgetPeriod,
    /// The tokens the period allows.
    pub limit: u64,
    /// Tokens used (settled) this period.
    pub used: u64,
    /// Tokens reserved by calls in flight.
    pub reserved: u64,
    /// `limit − used − reserved`, at least 0.
    pub remaining: u64,
    /// When the period ends and the budget is whole again.
    pub period_end: SystemTime,
}

/// A spent budget: why a call was refused (429 `budget_exceeded`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "budget_exceeded: the {} {} budget of {} tokens is spent ({} used, {} reserved)",
    .status.scope.as_str(), .status.period.as_str(), .status.limit, .status.used, .status.reserved
)]
pub struct BudgetRefusal {
    /// The refusing budget.
    pub status: BudgetStatus,
}

impl BudgetRefusal {
    /// Time until the period ends (for `Retry-After`).
    pub fn retry_after(&self) -> Duration {
        self.status
            .period_end
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

/// One budget a call touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetCell {
    pub(crate) scope: BudgetScope,
    pub(crate) window: PeriodWindow,
    /// Unique within the tenant: scope, key, period and period id.
    pub(crate) name: String,
    pub(crate) limit: u64,
}

impl BudgetCell {
    pub(crate) fn status(&self, used: u64, reserved: u64) -> BudgetStatus {
        BudgetStatus {
            scope: self.scope,
            period: self.window.period,
            limit: self.limit,
            used,
            reserved,
            remaining: self.limit.saturating_sub(used.saturating_add(reserved)),
            period_end: self.window.end,
        }
    }
}

/// The budgets `subject` has at `now`.
pub(crate) fn cells_of(subject: &Subject, now: SystemTime) -> Vec<BudgetCell> {
    let mut cells = Vec::with_capacity(4);
    let mut push = |scope: BudgetScope, owner: String, limits: BudgetLimits| {
        for (period, limit) in [
            (BudgetPeriod::Day, limits.tokens_per_day),
            (BudgetPeriod::Month, limits.tokens_per_month),
        ] {
            if let Some(limit) = limit {
                let window = PeriodWindow::at(period, now);
                cells.push(BudgetCell {
                    scope,
                    name: format!("{owner}:{}:{}", period.as_str(), window.id),
                    window,
                    limit,
                });
            }
        }
    };
    if let Some(key) = &subject.key_id {
        push(
            BudgetScope::Key,
            format!("k:{}", escape(key)),
            subject.key_budget,
        );
    }
    push(BudgetScope::Tenant, "t".to_owned(), subject.tenant_budget);
    cells
}

/// Tokens reserved against budgets by [`Budgets::reserve`]; settle it once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "settle the reservation with the real usage"]
pub struct BudgetReservation {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) cells: Vec<BudgetCell>,
    pub(crate) estimate: u64,
    /// Admitted without a check because the backend was unreachable (`fail_open`).
    pub degraded: bool,
}

impl BudgetReservation {
    /// The tokens reserved.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }
}

/// The result of a reservation attempt on a backend.
pub(crate) enum Reserved {
    /// Reserved on every cell.
    Admitted,
    /// Refused by this cell, with its state.
    Refused(BudgetStatus),
}

// One per process, never moved after it is built: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Ledger {
    Memory(MemoryLedger),
    Redis(RedisLedger),
}

/// Token budgets of tenants and API keys.
///
/// [`Self::reserve`] checks every budget of the subject and reserves the estimate on all
/// of them in one atomic step (one Lua script on Redis: no read-then-write, so racing
/// replicas cannot overspend). By default a call is admitted while anything of the budget
/// remains, so at most one in-flight reservation crosses it; `budget_strict` admits a call
/// only if its whole estimate fits. [`Self::settle`] replaces the reservation with the real
/// usage. A reservation never settled (its instance died) is released after
/// `reservation_ttl_seconds`.
pub struct Budgets {
    ledger: Ledger,
    fail_mode: FailMode,
    strict: bool,
    reservation_ttl: Duration,
    stats: Arc<LimitStats>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("fail_mode", &self.fail_mode)
            .field("strict", &self.strict)
            .finish()
    }
}

impl Budgets {
    /// Budgets of this process only.
    pub fn in_process(settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self::with(
            Ledger::Memory(MemoryLedger::new(settings.max_subjects)),
            settings,
            stats,
        )
    }

    /// Budgets shared by every instance that uses the same Redis and key prefix.
    pub fn redis(redis: &FleetRedis, settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self::with(
            Ledger::Redis(RedisLedger::new(redis, &settings.key_prefix)),
            settings,
            stats,
        )
    }

    fn with(ledger: Ledger, settings: &LimitsSettings, stats: Arc<LimitStats>) -> Self {
        Self {
            ledger,
            fail_mode: settings.budget_fail_mode,
            strict: settings.budget_strict,
            reservation_ttl: Duration::from_secs(settings.reservation_ttl_seconds.max(1)),
            stats,
        }
    }

    /// Checks every budget of `subject` and reserves `estimated_tokens` on each, or fails
    /// with [`LimitError::BudgetExceeded`] (nothing reserved). Backend unreachable:
    /// [`LimitError::Unavailable`] with `fail_closed` (the default), else admitted and
    /// marked `degraded`.
    pub async fn reserve(
        &self,
        subject: &Subject,
        estimated_tokens: u64,
    ) -> Result<BudgetReservation, LimitError> {
        let cells = cells_of(subject, SystemTime::now());
        let reservation = BudgetReservation {
            id: uuid::Uuid::new_v4().simple().to_string(),
            tenant: subject.tenant.clone(),
            cells,
            estimate: estimated_tokens,
            degraded: false,
        };
        if reservation.cells.is_empty() {
            return Ok(reservation);
        }
        let outcome = match &self.ledger {
            Ledger::Memory(memory) => {
                memory.reserve(&reservation, self.strict, self.reservation_ttl)
            }
            Ledger::Redis(redis) => redis
                .reserve(&reservation, self.strict, self.reservation_ttl)
                .await
                .map_err(|error| error.to_string()),
        };
        match outcome {
            Ok(Reserved::Admitted) => {
                self.stats.budget_admitted();
                Ok(reservation)
            }
            Ok(Reserved::Refused(status)) => {
                self.stats.budget_refused();
                Err(LimitError::BudgetExceeded(BudgetRefusal { status }))
            }
            Err(message) => match self.fail_mode {
                FailMode::FailClosed => {
                    self.stats.unavailable();
                    Err(LimitError::Unavailable {
                        what: "budgets",
                        message,
                    })
                }
                FailMode::FailOpen => {
                    tracing::warn!(%message, "budgets unreachable: allowing (fail_open)");
                    self.stats.budget_fail_open();
                    Ok(BudgetReservation {
                        degraded: true,
                        cells: Vec::new(),
                        ..reservation
                    })
                }
            },
        }
    }

    /// Releases the reservation and charges `actual_tokens` (the real input + output) to
    /// every budget it was taken on. Not retried: a settle whose reply was lost may or may
    /// not have been applied.
    pub async fn settle(
        &self,
        reservation: BudgetReservation,
        actual_tokens: u64,
    ) -> Result<(), LimitError> {
        if reservation.cells.is_empty() {
            return Ok(());
        }
        let result = match &self.ledger {
            Ledger::Memory(memory) => {
                memory.settle(&reservation, actual_tokens);
                Ok(())
            }
            Ledger::Redis(redis) => {
                redis
                    .settle(&reservation, actual_tokens)
                    .await
                    .map_err(|error| LimitError::Unavailable {
                        what: "budgets",
                        message: error.to_string(),
                    })
            }
        };
        if result.is_ok() {
            self.stats.tokens_settled(actual_tokens);
        } else {
            self.stats.unavailable();
        }
        result
    }

    /// Every budget of `subject` this period: used, reserved, remaining and period end.
    pub async fn usage(&self, subject: &Subject) -> Result<Vec<BudgetStatus>, LimitError> {
        let cells = cells_of(subject, SystemTime::now());
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        match &self.ledger {
            Ledger::Memory(memory) => Ok(memory.read(&subject.tenant, &cells)),
            Ledger::Redis(redis) => {
                redis
                    .read(&subject.tenant, &cells)
                    .await
                    .map_err(|error| LimitError::Unavailable {
                        what: "budgets",
                        message: error.to_string(),
                    })
            }
        }
    }
}
