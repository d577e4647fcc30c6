//! A turn over caller-given messages, with or without a conversation.

use crate::llm::{Message, Sampling};
use crate::memory::{ConversationId, ConversationKey};

/// A turn over messages the caller gives, as the OpenAI Chat Completions API sends them.
///
/// Without a conversation the turn is stateless: the agent's system prompt and tools apply
/// to exactly `messages`, and nothing is stored. With one, the stored history comes first,
/// and `messages` plus the answer are appended to it when the turn completes.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRequest {
    /// The tenant the conversation belongs to.
    pub tenant: String,
    /// The conversation to load and update; `None` for a stateless turn.
    pub conversation_id: Option<ConversationId>,
    /// The new messages, oldest first (usually ending with a user message).
    pub messages: Vec<Message>,
    /// Sampling settings that override the agent's own where set.
    pub sampling: Sampling,
    /// Correlation id passed to upstream calls.
    pub request_id: Option<String>,
    /// Makes a turn on a conversation safe to retry (see [`crate::agent::AgentInput`]).
    pub idempotency_key: Option<String>,
}

impl TurnRequest {
    /// A stateless turn in the default tenant.
    pub fn stateless(messages: Vec<Message>) -> Self {
        Self {
            tenant: ConversationKey::DEFAULT_TENANT.to_owned(),
            conversation_id: None,
            messages,
            sampling: Sampling::default(),
            request_id: None,
            idempotency_key: None,
        }
    }
}
