//! The `[limits]` settings: where limits live, what happens when Redis is unreachable, and
//! the tenant and key defaults. Per-key overrides live with the API keys (the server's auth
//! settings) and are passed to each check as [`RateLimits`] / [`BudgetLimits`].

use serde::{Deserialize, Serialize};

/// Where rate-limit and budget state lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsBackend {
    /// In this process only: exact for one instance, per-instance for a fleet (the embedded
    /// default).
    #[default]
    Memory,
    /// In Redis, shared by every instance: exact fleet-wide.
    Redis,
}

/// What a check does when its backend (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse with [`super::LimitError::Unavailable`] (the server answers 503).
    #[default]
    FailClosed,
    /// Allow, mark the decision as degraded and count it.
    FailOpen,
}

/// Requests and tokens per minute; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute.
    pub tokens_per_minute: Option<u64>,
}

/// Token budgets over UTC calendar periods; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetLimits {
    /// Tokens per UTC calendar day.
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC calendar month.
    pub tokens_per_month: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// `memory` (default) or `redis` (uses the memory section's Redis connection).
    pub backend: LimitsBackend,
    /// Prefix of every Redis key; must not contain `{` or `}`.
    pub key_prefix: String,
    /// Rate limits when Redis is unreachable: `fail_closed` (default, 503) or `fail_open`.
    pub fail_mode: FailMode,
    /// Budgets when Redis is unreachable: `fail_closed` (default) or `fail_open`.
    pub budget_fail_mode: FailMode,
    /// Limits of each tenant (every key of the tenant together).
    pub tenant: RateLimits,
    /// Limits of each API key that sets none of its own.
    pub key: RateLimits,
    /// Budgets of each tenant.
    pub tenant_budget: BudgetLimits,
    /// Budgets of each API key that sets none of its own.
    pub key_budget: BudgetLimits,
    /// Budget admission: `false` (default) admits a call while anything of the budget
    /// remains (so at most one in-flight reservation crosses it); `true` admits it only if
    /// its whole estimate fits.
    pub budget_strict: bool,
    /// A budget reservation that is never settled (its instance died) is released after
    /// this many seconds.
    pub reservation_ttl_seconds: u64,
    /// Most Redis commands in flight from one instance.
    pub max_in_flight: usize,
    /// In-process backend: most subjects (keys, tenants) tracked at once; idle ones are
    /// swept first, and past the bound new subjects are refused as unavailable.
    pub max_subjects: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            backend: LimitsBackend::Memory,
            key_prefix: "arshai:limits".to_owned(),
            fail_mode: FailMode::FailClosed,
            budget_fail_mode: FailMode::FailClosed,
            tenant: RateLimits::default(),
            key: RateLimits::default(),
            tenant_budget: BudgetLimits::default(),
            key_budget: BudgetLimits::default(),
            budget_strict: false,
            reservation_ttl_seconds: 600,
            max_in_flight: 256,
            max_subjects: 100_000,
        }
    }
}

impl LimitsSettings {
    /// Checks what serde cannot: the key prefix has no hash-tag braces, bounds are positive.
    pub fn validate(&self) -> Result<(), super::LimitError> {
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(super::LimitError::Invalid(format!(
                "limits.key_prefix = {:?}: must be non-empty, without {{ or }}",
                self.key_prefix
            )));
        }
        if self.max_in_flight == 0 || self.max_subjects == 0 || self.reservation_ttl_seconds == 0 {
            return Err(super::LimitError::Invalid(
                "limits.max_in_flight, max_subjects and reservation_ttl_seconds must be above 0"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}
