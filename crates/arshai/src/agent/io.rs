//! What goes into and comes out of an agent turn.

use crate::llm::{
    FinishReason, Message, ResponseFormat, Sampling, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use crate::memory::{ConversationId, ConversationKey};

use super::idempotency::conversation_for_key;

/// Which conversation a turn belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConversationRef {
    /// No conversation: the agent's system prompt and tools apply to exactly the input's
    /// messages, and nothing is loaded or stored.
    Stateless,
    /// A new conversation. Its id is derived from the idempotency key when there is one (so
    /// a retry lands in the same conversation and finds the receipt), generated otherwise.
    #[default]
    New,
    /// This conversation: its stored history comes first, and the input's messages and the
    /// answer are appended when the turn completes (it is created when absent).
    Id(ConversationId),
}

/// How the agent should call its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// The provider's streaming API: text deltas are forwarded as the model writes them.
    #[default]
    Streamed,
    /// The provider's non-streaming API: each call's text arrives whole, as one delta. For
    /// callers that want the whole answer anyway ([`crate::agent::Agent::respond`]).
    Whole,
}

impl Delivery {
    /// [`Delivery::Streamed`] when the caller asked for a stream, [`Delivery::Whole`]
    /// otherwise.
    pub fn streamed_if(stream: bool) -> Self {
        if stream { Self::Streamed } else { Self::Whole }
    }
}

/// One turn's input: the one type every agent and every route uses.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInput {
    /// The tenant the conversation belongs to.
    pub tenant: String,
    /// The conversation the turn belongs to.
    pub conversation: ConversationRef,
    /// The new messages, oldest first (usually one user message).
    pub messages: Vec<Message>,
    /// Sampling settings that override the agent's own where set.
    pub sampling: Sampling,
    /// Correlation id passed to upstream calls.
    pub request_id: Option<String>,
    /// Makes a turn on a conversation safe to retry: a turn with a key that was already
    /// committed returns the recorded answer instead of running again (see
    /// [`crate::memory::Turn::begin`]). Ignored by stateless turns, which record nothing.
    pub idempotency_key: Option<String>,
    /// How the model is called.
    pub delivery: Delivery,
    /// The shape the answer must have, overriding the agent's (none: text).
    pub response_format: Option<ResponseFormat>,
    /// The caller's own tools (OpenAI's client-side function tools): offered to the model
    /// next to the agent's tools; a call to one ends the turn with
    /// [`FinishReason::ToolCalls`] and the calls in [`AgentOutput::tool_calls`], for the
    /// caller to run and answer with [`crate::llm::Role::Tool`] messages in its next turn.
    pub client_tools: Vec<ToolDefinition>,
    /// Which tools the model must, may or may not call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may ask for several tool calls at once.
    pub parallel_tool_calls: Option<bool>,
    /// The end user, passed to the provider (OpenAI's `user`).
    pub user: Option<String>,
}

impl AgentInput {
    /// One user message in the default tenant: in conversation `conversation_id`, or in a
    /// new conversation when `None`.
    ///
    /// ```
    /// use arshai::agent::{AgentInput, ConversationRef};
    ///
    /// let input = AgentInput::new(None, "Hello!");
    /// assert_eq!(input.conversation, ConversationRef::New);
    /// ```
    pub fn new(conversation_id: Option<ConversationId>, message: impl Into<String>) -> Self {
        let conversation = conversation_id.map_or(ConversationRef::New, ConversationRef::Id);
        Self::with_messages(conversation, vec![Message::user(message)])
    }

    /// A stateless turn over `messages` in the default tenant (as OpenAI's Chat Completions
    /// API sends them: the whole exchange so far).
    pub fn stateless(messages: Vec<Message>) -> Self {
        Self::with_messages(ConversationRef::Stateless, messages)
    }

    /// A turn over `messages` in `conversation`, in the default tenant.
    pub fn with_messages(conversation: ConversationRef, messages: Vec<Message>) -> Self {
        Self {
            tenant: ConversationKey::DEFAULT_TENANT.to_owned(),
            conversation,
            messages,
            sampling: Sampling::default(),
            request_id: None,
            idempotency_key: None,
            delivery: Delivery::default(),
            response_format: None,
            client_tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            user: None,
        }
    }

    /// Chooses the id of a [`ConversationRef::New`] conversation now (derived from the
    /// idempotency key, or generated) and returns the turn's conversation id, `None` for a
    /// stateless turn. A server calls this before the turn so it can name the conversation
    /// in its response headers before the first event.
    pub fn pin_conversation(&mut self) -> Option<ConversationId> {
        if self.conversation == ConversationRef::New {
            let id = self
                .idempotency_key
                .as_deref()
                .map_or_else(ConversationId::generate, conversation_for_key);
            self.conversation = ConversationRef::Id(id);
        }
        match &self.conversation {
            ConversationRef::Id(id) => Some(id.clone()),
            _ => None,
        }
    }
}

impl AgentOutput {
    /// A stateless answer `reply` from `model` that stopped naturally, with no usage
    /// recorded: what a custom agent usually returns (set the other fields as needed).
    pub fn text(reply: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            conversation_id: None,
            reply: reply.into(),
            usage: Usage::default(),
            model: model.into(),
            finish_reason: FinishReason::Stop,
            tool_calls: Vec::new(),
            logprobs: None,
        }
    }
}

/// One turn's output: the last event of a successful turn ([`crate::agent::AgentEvent::Done`])
/// and, serialized, the receipt an idempotent retry is answered with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentOutput {
    /// The conversation the turn was recorded in; `None` for a stateless turn.
    pub conversation_id: Option<ConversationId>,
    /// The answer: the text of the model's last call (with tools, text the model wrote
    /// before calling them was streamed as deltas but is not part of the answer).
    pub reply: String,
    /// Tokens used by every LLM call of the turn.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Calls to the caller's own tools ([`AgentInput::client_tools`]) the turn ended with,
    /// for the caller to run; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The log probabilities of the answer's tokens, as the provider wrote them, when the
    /// input's sampling asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<serde_json::Value>,
}
