//! Idempotent turns: the request fingerprint, the conversation a keyed new turn starts, and
//! the receipt a retry is answered with.

use sha2::{Digest, Sha256};

use super::{AgentError, AgentOutput};
use crate::llm::Message;
use crate::memory::{ConversationId, IdempotencyKey, MemoryError, Receipt};

/// A digest of what a turn was asked (the agent and its new messages), so a key reused for
/// another request is refused instead of answered with the wrong receipt.
pub fn fingerprint(agent: &str, messages: &[Message]) -> String {
    let mut digest = Sha256::new();
    digest.update(agent.as_bytes());
    digest.update([0]);
    for message in messages {
        // Serializing a message cannot fail (plain strings and vectors).
        digest.update(serde_json::to_vec(message).unwrap_or_default());
        digest.update([0]);
    }
    let hash = digest.finalize();
    hash.iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The conversation a new turn with idempotency key `key` and no conversation id starts,
/// so its retry lands in the same conversation and finds the receipt.
pub fn conversation_for_key(key: &str) -> ConversationId {
    let mut digest = Sha256::new();
    digest.update(key.as_bytes());
    let hash = digest.finalize();
    let hex: String = hash
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // 32 hex digits always make a valid id.
    ConversationId::parse(hex).unwrap_or_else(|_| ConversationId::generate())
}

/// The idempotency key of a turn, with its fingerprint.
pub(crate) fn key_for(
    key: Option<&String>,
    agent: &str,
    messages: &[Message],
) -> Option<IdempotencyKey> {
    key.map(|key| IdempotencyKey {
        key: key.clone(),
        fingerprint: fingerprint(agent, messages),
    })
}

/// The receipt body kept for `summary`.
pub(crate) fn receipt_body(summary: &AgentOutput) -> Result<String, AgentError> {
    serde_json::to_string(summary)
        .map_err(|error| AgentError::Memory(MemoryError::Corrupt(error.to_string())))
}

/// The recorded summary of a receipt.
pub(crate) fn recorded(receipt: &Receipt) -> Result<AgentOutput, AgentError> {
    serde_json::from_str(&receipt.body)
        .map_err(|error| AgentError::Memory(MemoryError::Corrupt(format!("receipt: {error}"))))
}
