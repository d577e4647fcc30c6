//! A run's tokens against its submitter's limits.
//!
//! A submission is admitted like a turn (`POST /v1/runs`: rate limits checked, budgets
//! reserved at the input's estimate) and settled at once with no tokens: the request
//! counts, the tokens come when the run executes. The submitter ([`RunCaller`]: the key's
//! id and limits) is kept in the run's record, and each execution of the run
//! ([`RunCharge`]) reserves the submitter's budgets at the estimate first (atomically: a
//! spent budget fails the run with `budget_exceeded`, so a budget is overspent by at most
//! the reservations in flight, as for turns), then settles them with the run's real usage
//! and charges the same tokens to the tokens-per-minute limits (one atomic increment each;
//! no read-then-write).

use std::sync::Arc;

use arshai::limits::BudgetReservation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::executor::RunFailure;
use super::record::RunRecord;
use crate::auth::Caller;
use crate::turn::limits::TurnLimits;

/// Who submitted a run, as its limits see it: the API key's id and its own limits (the
/// tenant is the record's). Kept in the record as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCaller {
    /// The key's id; `None` when auth is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The key's requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// The key's tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// The key's tokens per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// The key's tokens per UTC month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
}

impl RunCaller {
    /// The limits part of `caller`.
    pub fn of(caller: &Caller) -> Self {
        Self {
            key_id: caller.key_id.clone(),
            requests_per_minute: caller.requests_per_minute,
            tokens_per_minute: caller.tokens_per_minute,
            tokens_per_day: caller.tokens_per_day,
            tokens_per_month: caller.tokens_per_month,
        }
    }

    /// The caller of `tenant` this describes (its agent list does not matter here).
    pub fn caller(&self, tenant: &str) -> Caller {
        Caller {
            tenant: tenant.to_owned(),
            key_id: self.key_id.clone(),
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            tokens_per_month: self.tokens_per_month,
            agents: Vec::new(),
        }
    }
}

/// The tokens a run is charged at before it executes: about 4 characters a token of its
/// input, plus one (the turns' estimate).
pub fn estimate(input: &str) -> u64 {
    u64::try_from(input.chars().count().div_ceil(4))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The total tokens a run's output reports (`output.usage.total_tokens`: an agent run's
/// turn, or every node of a workflow run, restored ones included).
pub fn output_tokens(output: &Value) -> Option<u64> {
    output.get("usage")?.get("total_tokens")?.as_u64()
}

/// One execution's charge: its budget reservation, settled once with the real usage.
#[derive(Debug)]
pub struct RunCharge {
    limits: Arc<TurnLimits>,
    caller: Caller,
    budget: BudgetReservation,
}

impl RunCharge {
    /// Reserves the budgets of `run`'s submitter at the run's estimate. A spent budget
    /// is `budget_exceeded` (final); an unreachable backend is retryable.
    pub async fn reserve(limits: &Arc<TurnLimits>, run: &RunRecord) -> Result<Self, RunFailure> {
        let caller = run.caller.clone().unwrap_or_default().caller(&run.tenant);
        let budget = limits
            .reserve_budget(&caller, estimate(&run.input))
            .await
            .map_err(RunFailure::from)?;
        Ok(Self {
            limits: Arc::clone(limits),
            caller,
            budget,
        })
    }

    /// Settles the reservation with `tokens` (the estimate when `None`: the usage of an
    /// execution that did not record an output is unknown) and charges them to the
    /// submitter's tokens-per-minute limits.
    pub async fn settle(self, tokens: Option<u64>) {
        let tokens = tokens.unwrap_or(self.budget.estimate());
        if let Err(error) = self
            .limits
            .settle_background(&self.caller, self.budget, tokens)
            .await
        {
            tracing::warn!(%error, "cannot settle a run's usage");
        }
    }
}
