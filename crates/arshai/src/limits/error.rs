//! [`LimitError`]: why a limit or budget check could not admit a call.

use super::budget::BudgetRefusal;

/// Why a limit or budget check failed. A rate-limit refusal is not an error (it is a
/// [`super::RateDecision`] with `allowed == false`, which carries the headers).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The backend (Redis) could not be reached and the fail mode is `fail_closed`: the
    /// server answers 503.
    #[error("the {what} backend is unavailable: {message}")]
    Unavailable {
        /// `rate limits` or `budgets`.
        what: &'static str,
        /// Details.
        message: String,
    },
    /// A token budget is spent: the server answers 429 `budget_exceeded`.
    #[error("{0}")]
    BudgetExceeded(BudgetRefusal),
    /// A setting is out of range.
    #[error("invalid limits setting: {0}")]
    Invalid(String),
}
