//! The vocabulary of token budgets, shared by the front ([`super::budget::Budgets`]) and
//! its two ledgers (in process and in Redis): scopes, cells, reservations, statuses.

use super::period::{BudgetPeriod, PeriodWindow};
use super::redis_link::escape;
use super::settings::BudgetLimits;
use super::subject::Subject;
use std::time::{Duration, SystemTime};

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
