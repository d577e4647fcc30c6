//! [`LimitStats`]: counters of the rate limiter and the budgets, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by a [`super::RateLimiter`] and [`super::Budgets`]; read them with
/// [`LimitStats::snapshot`] at scrape time and export them as Prometheus counters.
#[derive(Debug, Default)]
pub struct LimitStats {
    allowed: AtomicU64,
    refused: AtomicU64,
    fail_open: AtomicU64,
    unavailable: AtomicU64,
    budget_admitted: AtomicU64,
    budget_refused: AtomicU64,
    budget_fail_open: AtomicU64,
    tokens_settled: AtomicU64,
    settles_dropped: AtomicU64,
}

/// A copy of [`LimitStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounters {
    /// Rate-limit checks that admitted the call (including fail-open ones).
    pub allowed: u64,
    /// Rate-limit checks that refused the call (429).
    pub refused: u64,
    /// Checks admitted without a check because the backend was unreachable (rate limits).
    pub fail_open: u64,
    /// Checks that failed closed because the backend was unreachable (503), either kind.
    pub unavailable: u64,
    /// Budget reservations taken.
    pub budget_admitted: u64,
    /// Calls refused because a budget was spent.
    pub budget_refused: u64,
    /// Budget checks admitted without a check because the backend was unreachable.
    pub budget_fail_open: u64,
    /// Tokens settled against budgets (real usage).
    pub tokens_settled: u64,
    /// Settles dropped because the settlement queue was full (their reservations expire).
    pub settles_dropped: u64,
}

impl LimitStats {
    /// The counters now.
    pub fn snapshot(&self) -> LimitCounters {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LimitCounters {
            allowed: read(&self.allowed),
            refused: read(&self.refused),
            fail_open: read(&self.fail_open),
            unavailable: read(&self.unavailable),
            budget_admitted: read(&self.budget_admitted),
            budget_refused: read(&self.budget_refused),
            budget_fail_open: read(&self.budget_fail_open),
            tokens_settled: read(&self.tokens_settled),
            settles_dropped: read(&self.settles_dropped),
        }
    }

    pub(crate) fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn fail_open(&self) {
        self.fail_open.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn budget_admitted(&self) {
        self.budget_admitted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn budget_refused(&self) {
        self.budget_refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn budget_fail_open(&self) {
        self.budget_fail_open.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn settle_dropped(&self) -> u64 {
        self.settles_dropped.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub(crate) fn tokens_settled(&self, tokens: u64) {
        self.tokens_settled.fetch_add(tokens, Ordering::Relaxed);
    }
}
