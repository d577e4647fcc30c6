//! [`Budgets`]: token budgets per tenant and per API key over UTC days and months, checked
//! and reserved atomically before a call, settled from the real usage after it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::LimitError;
use super::budget_memory::MemoryLedger;
use super::budget_redis::RedisLedger;
pub use super::budget_terms::{BudgetRefusal, BudgetReservation, BudgetScope, BudgetStatus};
use super::budget_terms::{Reserved, cells_of};
use super::redis_link::FleetRedis;
use super::settings::{FailMode, LimitsSettings};
use super::stats::LimitStats;
use super::subject::Subject;

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
        let reservation = self.prepare(subject, estimated_tokens);
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
        self.conclude(reservation, outcome)
    }

    /// The reservation of `estimated_tokens` on every budget `subject` has now (not taken
    /// yet).
    pub(crate) fn prepare(&self, subject: &Subject, estimated_tokens: u64) -> BudgetReservation {
        BudgetReservation {
            id: uuid::Uuid::new_v4().simple().to_string(),
            tenant: subject.tenant.clone(),
            cells: cells_of(subject, SystemTime::now()),
            estimate: estimated_tokens,
            degraded: false,
        }
    }

    /// Whether the budgets live in Redis.
    pub(crate) fn is_redis(&self) -> bool {
        matches!(self.ledger, Ledger::Redis(_))
    }

    /// Whether a call is admitted only if its whole estimate fits.
    pub(crate) fn strict(&self) -> bool {
        self.strict
    }

    /// How long an unsettled reservation holds its tokens.
    pub(crate) fn reservation_ttl(&self) -> Duration {
        self.reservation_ttl
    }

    /// The reservation once a backend answered `outcome` (`Err`: it was unreachable),
    /// counted, with the fail mode applied.
    pub(crate) fn conclude(
        &self,
        reservation: BudgetReservation,
        outcome: Result<Reserved, String>,
    ) -> Result<BudgetReservation, LimitError> {
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

    /// Counts settles applied elsewhere (the settlement queue's batches) for the metrics:
    /// `tokens` settled, or a failure.
    pub(crate) fn count_settled(&self, outcome: Result<u64, ()>) {
        match outcome {
            Ok(tokens) => self.stats.tokens_settled(tokens),
            Err(()) => self.stats.unavailable(),
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
