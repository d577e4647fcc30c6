//! The request of `POST /v1/chat/completions`, and the turn it asks for.

use arshai::agent::{AgentInput, ConversationRef, Delivery};
use arshai::llm::{Message, Role, Sampling, ToolCall};
use arshai::memory::ConversationId;
use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::error::OpenAiError;

/// The request body: the subset of OpenAI's parameters that applies to an agent. Unknown
/// parameters are ignored, as OpenAI-compatible servers commonly do; parameters that would
/// change the meaning of the answer and cannot be honoured are refused.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// The agent's name.
    pub model: String,
    /// The conversation so far (stateless) or the new messages (with `X-Conversation-Id`).
    pub messages: Vec<ChatMessage>,
    /// Answer with `chat.completion.chunk` server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Overrides the agent's temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Overrides the agent's nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Overrides the agent's bound on generated tokens (legacy name).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Overrides the agent's bound on generated tokens.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// How many choices; only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
    /// Client-side tools; refused when non-empty (the agent's own tools apply).
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage of the whole request.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message of the request.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or an array of content parts (only `text` parts are supported).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Tool calls of an assistant message.
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// For a `tool` message: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// The part's type; only `text` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A tool call in an assistant message.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function called.
    pub function: WireFunction,
}

/// The function of a tool call.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireFunction {
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

fn function_kind() -> String {
    "function".to_owned()
}

fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
    OpenAiError::with_param(ApiError::InvalidRequest(message.into()), param)
}

impl ChatCompletionRequest {
    /// The turn this request asks for, after checking what cannot be honoured.
    pub(super) fn to_input(
        &self,
        tenant: String,
        conversation_id: Option<ConversationId>,
        request_id: String,
    ) -> Result<AgentInput, OpenAiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(invalid("n", "only n = 1 is supported"));
        }
        if self.tools.as_ref().is_some_and(|tools| !tools.is_empty()) {
            return Err(invalid(
                "tools",
                "client-side tools are not supported; the agent's own tools apply",
            ));
        }
        if self.messages.is_empty() {
            return Err(invalid("messages", "`messages` must not be empty"));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(index, message)| message.to_message(index))
            .collect::<Result<Vec<_>, _>>()?;
        let conversation = conversation_id.map_or(ConversationRef::Stateless, ConversationRef::Id);
        Ok(AgentInput {
            tenant,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_completion_tokens.or(self.max_tokens),
            },
            request_id: Some(request_id),
            delivery: if self.streams() {
                Delivery::Streamed
            } else {
                Delivery::Whole
            },
            ..AgentInput::with_messages(conversation, messages)
        })
    }

    pub(super) fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub(super) fn includes_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }
}

impl ChatMessage {
    fn to_message(&self, index: usize) -> Result<Message, OpenAiError> {
        let text = match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(text)) => texts.push(text.as_str()),
                        (kind, _) => {
                            return Err(invalid(
                                "messages",
                                format!(
                                    "messages[{index}]: content parts of type {kind:?} are not supported; only text"
                                ),
                            ));
                        }
                    }
                }
                texts.join("\n")
            }
        };
        let role = match self.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(invalid(
                    "messages",
                    format!("messages[{index}]: unknown role {other:?}"),
                ));
            }
        };
        let tool_calls = self
            .tool_calls
            .iter()
            .flatten()
            .map(|call| ToolCall {
                id: call.id.clone(),
                name: call.function.name.clone(),
                arguments: call.function.arguments.clone(),
            })
            .collect();
        Ok(Message {
            tool_calls,
            tool_call_id: self.tool_call_id.clone(),
            ..Message::new(role, text)
        })
    }
}
