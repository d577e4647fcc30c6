//! [`RateDecision`]: the outcome of one rate-limit check, with what the server needs for
//! OpenAI-style `x-ratelimit-*` headers and `Retry-After`.

use std::time::Duration;

/// One dimension's state after a check (the tightest of the key's and the tenant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The limit per minute (`x-ratelimit-limit-*`).
    pub limit: u64,
    /// What is left now (`x-ratelimit-remaining-*`).
    pub remaining: u64,
    /// Time until the quota is full again (`x-ratelimit-reset-*`).
    pub reset: Duration,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key's requests per minute.
    KeyRequests,
    /// The key's tokens per minute.
    KeyTokens,
    /// The tenant's requests per minute.
    TenantRequests,
    /// The tenant's tokens per minute.
    TenantTokens,
}

/// The outcome of [`super::RateLimiter::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RateDecision {
    /// Whether the call may proceed. When it is refused nothing was charged.
    pub allowed: bool,
    /// Requests per minute, when a requests limit applies.
    pub requests: Option<Quota>,
    /// Tokens per minute, when a tokens limit applies.
    pub tokens: Option<Quota>,
    /// When refused: how long until the same call would be admitted (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// When refused: the first limit that refused it.
    pub refused_by: Option<Refusal>,
    /// Allowed without a check because the backend was unreachable (`fail_open`).
    pub degraded: bool,
    /// When allowed: the tokens reserved, to settle with [`super::RateLimiter::settle`].
    pub reservation: Option<TokenReservation>,
}

impl RateDecision {
    /// An allowed decision with no limit applied (no limits configured, or fail-open).
    pub(crate) fn unlimited(degraded: bool) -> Self {
        Self {
            allowed: true,
            requests: None,
            tokens: None,
            retry_after: None,
            refused_by: None,
            degraded,
            reservation: None,
        }
    }
}

/// Tokens reserved by an allowed check; settle it once with the real usage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "settle the reservation with the real usage"]
pub struct TokenReservation {
    pub(crate) tenant: String,
    pub(crate) key_id: Option<String>,
    /// The tokens-per-minute limits of the key and the tenant the reservation was taken on.
    pub(crate) key_tpm: Option<u64>,
    pub(crate) tenant_tpm: Option<u64>,
    /// The tokens reserved.
    pub(crate) estimate: u64,
}

impl TokenReservation {
    /// The tokens reserved.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }
}
