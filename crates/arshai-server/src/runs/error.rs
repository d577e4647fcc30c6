//! [`RunError`]: why a run could not be submitted, read, cancelled or executed.

use std::time::Duration;

use axum::http::StatusCode;

/// Why a run operation failed. Each variant has one status and one error `type`
/// ([`RunError::parts`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Runs need the Redis memory store (`memory.provider = "redis"`).
    #[error(
        "durable runs need the Redis memory store (memory.provider = \"redis\"); this server \
         uses the in-memory store"
    )]
    Unavailable,
    /// Redis did not answer, or answered with an error.
    #[error("the run queue is unavailable: {0}")]
    Backend(String),
    /// No run of the caller's tenant has this id (or it expired).
    #[error("no run has the id {0:?}")]
    NotFound(String),
    /// A request parameter is invalid; the message names it.
    #[error("{message}")]
    BadParameter {
        /// The parameter at fault (`agent`, `input`, `webhook`, …).
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The tenant already has `runs.max_queued_per_tenant` runs waiting.
    #[error("the run queue of this tenant is full ({0} runs waiting); retry later")]
    QueueFull(u64),
    /// The idempotency key was used for a different submission.
    #[error("the idempotency key was already used for a different run request")]
    IdempotencyMismatch,
    /// The run had already finished (cancelling it).
    #[error("the run already finished: {}", .0.as_str())]
    AlreadyFinished(super::RunStatus),
    /// A stored record cannot be read.
    #[error("a stored run is corrupt: {0}")]
    Corrupt(String),
}

impl RunError {
    /// The status, the error `type` and the `Retry-After`.
    pub fn parts(&self) -> (StatusCode, &'static str, Option<Duration>) {
        match self {
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "runs_unavailable", None),
            Self::Backend(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "runs_backend_unavailable",
                Some(Duration::from_secs(1)),
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "run_not_found", None),
            Self::BadParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter", None),
            Self::QueueFull(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "run_queue_full",
                Some(Duration::from_secs(1)),
            ),
            Self::IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                None,
            ),
            Self::AlreadyFinished(_) => (StatusCode::CONFLICT, "run_finished", None),
            Self::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "run_corrupt", None),
        }
    }

    /// A [`RunError::BadParameter`].
    pub fn bad(param: &'static str, message: impl Into<String>) -> Self {
        Self::BadParameter {
            param,
            message: message.into(),
        }
    }
}

impl From<redis::RedisError> for RunError {
    fn from(error: redis::RedisError) -> Self {
        Self::Backend(error.to_string())
    }
}

impl From<redis::ParsingError> for RunError {
    fn from(error: redis::ParsingError) -> Self {
        Self::Corrupt(error.to_string())
    }
}
