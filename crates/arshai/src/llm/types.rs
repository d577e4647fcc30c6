//! Provider-neutral request and response types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ResponseFormat, ToolDefinition};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or program) talking to the agent.
    User,
    /// The model's answers.
    Assistant,
    /// The result of a tool call, sent back to the model.
    Tool,
}

impl Role {
    /// The lowercase wire name shared by every OpenAI-compatible provider.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for this call; tool results refer to it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them: a JSON text that may be invalid.
    pub arguments: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text. Empty for an assistant message that only calls tools.
    pub content: String,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images that go with the text (user messages), for providers that accept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImagePart>,
}

/// An image in a message: an `https:` URL or a `data:` URL, as OpenAI's `image_url` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePart {
    /// `https://…` or `data:image/png;base64,…`.
    pub url: String,
    /// OpenAI's `detail` (`auto`, `low`, `high`), when the caller gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImagePart {
    /// The media type and base64 data of a `data:` URL; `None` for any other URL.
    pub fn data_url(&self) -> Option<(&str, &str)> {
        let rest = self.url.strip_prefix("data:")?;
        let (media_type, data) = rest.split_once(";base64,")?;
        Some((media_type, data))
    }
}

impl Message {
    /// A message with only text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// An assistant message that calls tools.
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The result of the tool call `call_id`, sent back to the model.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// How the model generates: sampling and decoding parameters. `None` (or empty) leaves the
/// provider's default. A provider that cannot honour a parameter that is set refuses the call
/// with [`super::LlmError::Unsupported`] naming it; none is silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// Temperature, usually 0.0 to 2.0.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer when generated (not included in it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where the provider supports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens that already appeared (-2.0 to 2.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Penalty proportional to how often a token appeared (-2.0 to 2.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Bias added to the logits of token ids (the provider's tokenizer), -100 to 100.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub logit_bias: BTreeMap<String, f32>,
    /// Return the log probabilities of the output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many most likely alternatives per token to return with `logprobs` (0 to 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u8>,
}

impl Sampling {
    /// `self`, with every parameter `overrides` sets taking its place.
    pub fn overridden_by(&self, overrides: &Sampling) -> Sampling {
        Sampling {
            temperature: overrides.temperature.or(self.temperature),
            top_p: overrides.top_p.or(self.top_p),
            max_tokens: overrides.max_tokens.or(self.max_tokens),
            stop: if overrides.stop.is_empty() {
                self.stop.clone()
            } else {
                overrides.stop.clone()
            },
            seed: overrides.seed.or(self.seed),
            presence_penalty: overrides.presence_penalty.or(self.presence_penalty),
            frequency_penalty: overrides.frequency_penalty.or(self.frequency_penalty),
            logit_bias: if overrides.logit_bias.is_empty() {
                self.logit_bias.clone()
            } else {
                overrides.logit_bias.clone()
            },
            logprobs: overrides.logprobs.or(self.logprobs),
            top_logprobs: overrides.top_logprobs.or(self.top_logprobs),
        }
    }
}

/// Which tools the model must, may or may not call (OpenAI's `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the default when tools are offered).
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this function.
    Function(String),
}

/// A request for one model completion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The model; `None` uses the client's default model.
    pub model: Option<String>,
    /// The system prompt, sent before the history.
    pub system: Option<String>,
    /// The history, oldest first, ending with the newest user message.
    pub messages: Vec<Message>,
    /// Sampling settings.
    pub sampling: Sampling,
    /// Correlation id sent upstream (as `X-Request-Id`) so logs on both sides join up.
    pub request_id: Option<String>,
    /// Tools the model may call (empty: none).
    pub tools: Vec<ToolDefinition>,
    /// The shape the answer must have (a JSON object, or JSON following a schema), if any.
    pub response_format: Option<ResponseFormat>,
    /// Which tools the model must, may or may not call; `None` is the provider's default.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may ask for several tool calls at once; `None` is the default.
    pub parallel_tool_calls: Option<bool>,
    /// The end user the request is made for (OpenAI's `user`), for the provider's abuse
    /// monitoring.
    pub user: Option<String>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model wants tool results.
    ToolCalls,
    /// The provider's content filter cut the answer.
    ContentFilter,
    /// A reason this crate does not know; kept verbatim, never an error.
    Other(String),
}

impl FinishReason {
    /// Maps a provider's wire value; unknown values become [`FinishReason::Other`].
    pub fn from_wire(value: &str) -> Self {
        match value {
            "stop" | "STOP" | "end_turn" => Self::Stop,
            "length" | "MAX_TOKENS" | "max_tokens" => Self::Length,
            "tool_calls" | "function_call" | "tool_use" => Self::ToolCalls,
            "content_filter" | "SAFETY" => Self::ContentFilter,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The OpenAI wire value.
    pub fn as_wire(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other(other) => other,
        }
    }
}

/// Token accounting for one call (or the sum of several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Input plus output, as the provider reported it.
    pub total_tokens: u64,
    /// Reasoning tokens, where the provider reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.total_tokens += rhs.total_tokens;
        self.reasoning_tokens = match (self.reasoning_tokens, rhs.reasoning_tokens) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }
}

/// A complete model answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The answer's text (empty when the model only calls tools).
    pub text: String,
    /// Tool calls the model asks for.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Token accounting.
    pub usage: Usage,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// The provider's id for this response, when it gives one.
    pub request_id: Option<String>,
    /// The log probabilities of the output tokens as the provider wrote them (OpenAI's
    /// `choices[].logprobs` object), when [`Sampling::logprobs`] asked for them.
    pub logprobs: Option<serde_json::Value>,
}
