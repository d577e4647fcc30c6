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

impl Quota {
    /// [`Self::reset`] as OpenAI writes `x-ratelimit-reset-*`: Go's duration format
    /// (`"20ms"`, `"1s"`, `"6m0s"`, `"1h2m3s"`, fractional seconds such as `"1.5s"`).
    pub fn reset_header(&self) -> String {
        go_duration(self.reset)
    }
}

/// A duration in Go's `time.Duration.String()` format, to millisecond precision.
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1_000 {
        return format!("{millis}ms");
    }
    let hours = millis / 3_600_000;
    let minutes = (millis / 60_000) % 60;
    let seconds = (millis % 60_000) as f64 / 1_000.0;
    let seconds = format!("{seconds}s");
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
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
    /// `Retry-After` in whole seconds (rounded up, at least 1) when refused.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            .map(|seconds| seconds.max(1))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_as_openai_does() {
        let text = |ms: u64| go_duration(Duration::from_millis(ms));
        assert_eq!(text(0), "0s");
        assert_eq!(text(20), "20ms");
        assert_eq!(text(1_000), "1s");
        assert_eq!(text(1_500), "1.5s");
        assert_eq!(text(360_000), "6m0s");
        assert_eq!(text(3_723_000), "1h2m3s");
    }
}
