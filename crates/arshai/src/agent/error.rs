//! The agent layer's error.

use crate::llm::LlmError;
use crate::memory::MemoryError;

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The LLM call failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Memory could not be read or written.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The input was refused before any call.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The agent cannot run this kind of turn (a stateless turn, say).
    #[error("the agent does not support {0}")]
    Unsupported(String),
    /// The turn's event stream ended before the model finished its answer.
    #[error("the answer ended before the model finished it")]
    Incomplete,
}
