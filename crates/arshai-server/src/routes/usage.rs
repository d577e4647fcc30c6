//! `GET /v1/usage`: the caller's token budgets this period (its key's and its tenant's).

use std::time::UNIX_EPOCH;

use arshai::limits::BudgetStatus;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// The response body.
#[derive(Debug, Serialize)]
pub struct UsageResponse {
    /// The caller's tenant.
    pub tenant: String,
    /// The caller's key id (`null` when auth is off).
    pub key_id: Option<String>,
    /// Every budget that applies to the caller; empty when none is configured.
    pub budgets: Vec<BudgetView>,
}

/// One budget, as JSON.
#[derive(Debug, Serialize)]
pub struct BudgetView {
    /// `key` or `tenant`.
    pub scope: &'static str,
    /// `day` or `month` (UTC calendar periods).
    pub period: &'static str,
    /// Tokens the period allows.
    pub limit: u64,
    /// Tokens used (settled) this period.
    pub used: u64,
    /// Tokens reserved by turns in flight.
    pub reserved: u64,
    /// What is left.
    pub remaining: u64,
    /// When the period ends, in seconds since the Unix epoch.
    pub period_end: u64,
}

impl From<BudgetStatus> for BudgetView {
    fn from(status: BudgetStatus) -> Self {
        Self {
            scope: status.scope.as_str(),
            period: status.period.as_str(),
            limit: status.limit,
            used: status.used,
            reserved: status.reserved,
            remaining: status.remaining,
            period_end: status
                .period_end
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        }
    }
}

/// Answers the caller's budget status (503 when the budget backend is unreachable).
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UsageResponse>, ApiError> {
    let budgets = state.limits.usage(&caller).await?;
    Ok(Json(UsageResponse {
        tenant: caller.tenant,
        key_id: caller.key_id,
        budgets: budgets.into_iter().map(BudgetView::from).collect(),
    }))
}
