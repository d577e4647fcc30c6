//! The one error type of the memory layer.

use std::time::Duration;

/// Why a memory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// An append named an expected version that is no longer current.
    #[error("version conflict: expected version {expected}, the conversation is at {actual}")]
    Conflict {
        /// The version the caller expected.
        expected: u64,
        /// The version found.
        actual: u64,
    },
    /// Another turn holds the conversation's lease.
    #[error("the conversation is busy with another turn")]
    Busy,
    /// The turn's lease expired and may now belong to another turn: the commit was refused
    /// and nothing was recorded (fencing).
    #[error("the turn lost its lease on the conversation (it expired); nothing was recorded")]
    LeaseLost,
    /// An idempotency key was reused for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// The backend cannot be reached or refused the operation.
    #[error("the {backend} memory store is unavailable: {message}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Details (never credentials).
        message: String,
    },
    /// The backend did not answer in time.
    #[error("the {backend} memory store did not answer within {after:?}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// The bound that passed.
        after: Duration,
    },
    /// Stored data could not be decoded.
    #[error("stored conversation data is corrupt: {0}")]
    Corrupt(String),
}

impl MemoryError {
    /// A short, stable name of the error class, for metrics labels and error bodies.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::Busy => "busy",
            Self::LeaseLost => "lease_lost",
            Self::IdempotencyMismatch => "idempotency_mismatch",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout { .. } => "timeout",
            Self::Corrupt(_) => "corrupt",
        }
    }
}
