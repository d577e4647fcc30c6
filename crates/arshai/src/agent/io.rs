//! What goes into and comes out of an agent turn.

use crate::llm::Usage;
use crate::memory::ConversationId;

/// One turn's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInput {
    /// The tenant the conversation belongs to.
    pub tenant: String,
    /// The conversation to continue; a new one is started when `None`.
    pub conversation_id: Option<ConversationId>,
    /// The user's message.
    pub message: String,
    /// Correlation id passed to upstream calls.
    pub request_id: Option<String>,
    /// Makes the turn safe to retry: a turn with a key that was already committed returns
    /// the recorded answer instead of running again (see [`crate::memory::Turn::begin`]).
    pub idempotency_key: Option<String>,
}

impl AgentInput {
    /// An input in the default tenant.
    pub fn new(conversation_id: Option<ConversationId>, message: impl Into<String>) -> Self {
        Self {
            tenant: crate::memory::ConversationKey::DEFAULT_TENANT.to_owned(),
            conversation_id,
            message: message.into(),
            request_id: None,
            idempotency_key: None,
        }
    }
}

/// One turn's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOutput {
    /// The conversation the turn belongs to (generated if the input had none).
    pub conversation_id: ConversationId,
    /// The agent's answer.
    pub reply: String,
    /// Tokens used by every LLM call of the turn.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
}
