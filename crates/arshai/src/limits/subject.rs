//! [`Subject`]: who a check is for, and the limits that apply to it.

use super::settings::{BudgetLimits, LimitsSettings, RateLimits};

/// The caller of one turn: its tenant, its API key, and the limits of each.
///
/// `key_id` must identify the key without being the secret (the key's configured name or
/// id): it becomes part of Redis key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The tenant.
    pub tenant: String,
    /// The API key's id, when the caller authenticated with one.
    pub key_id: Option<String>,
    /// Rate limits of the key (each key separately).
    pub key_limits: RateLimits,
    /// Rate limits of the tenant (all its keys together).
    pub tenant_limits: RateLimits,
    /// Budgets of the key.
    pub key_budget: BudgetLimits,
    /// Budgets of the tenant.
    pub tenant_budget: BudgetLimits,
}

impl Subject {
    /// A subject with the defaults of `settings`; a key's own limits (from the auth
    /// settings) then replace [`Self::key_limits`] / [`Self::key_budget`].
    pub fn new(
        tenant: impl Into<String>,
        key_id: Option<String>,
        settings: &LimitsSettings,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            key_id,
            key_limits: settings.key,
            tenant_limits: settings.tenant,
            key_budget: settings.key_budget,
            tenant_budget: settings.tenant_budget,
        }
    }
}
