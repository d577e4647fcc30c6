//! The request of `POST /v1/chat/completions`, and the turn it asks for.

use std::collections::BTreeMap;

use arshai::agent::{AgentError, AgentInput, ConversationRef, Delivery};
use arshai::llm::{
    ImagePart, JsonSchemaFormat, LlmError, Message, ResponseFormat, Role, Sampling, ToolCall,
    ToolChoice, ToolDefinition,
};
use arshai::memory::ConversationId;
use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::error::OpenAiError;

/// The request body. Every parameter of OpenAI's Chat Completions API is either honoured
/// (forwarded to the agent's provider, which refuses what it cannot do, naming it) or
/// refused here with a 400 that names it; none is silently dropped. A parameter sent as
/// `null` counts as absent, as OpenAI treats it.
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
    /// How many completions: each an independent run of the agent (stateless requests).
    #[serde(default)]
    pub n: Option<u32>,
    /// Client-side function tools, offered to the model next to the agent's own.
    #[serde(default)]
    pub tools: Option<Vec<WireTool>>,
    /// `none`, `auto`, `required`, or `{"type":"function","function":{"name"}}`.
    #[serde(default)]
    pub tool_choice: Option<WireToolChoice>,
    /// Whether the model may call several tools at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// `text`, `json_object`, or `json_schema`.
    #[serde(default)]
    pub response_format: Option<WireResponseFormat>,
    /// Up to 4 stop sequences.
    #[serde(default)]
    pub stop: Option<StopSequences>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<i64>,
    /// -2.0 to 2.0.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// -2.0 to 2.0.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Token id → bias (-100 to 100).
    #[serde(default)]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    /// Return the output tokens' log probabilities (non-streamed requests).
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// 0 to 20 alternatives per token, with `logprobs`.
    #[serde(default)]
    pub top_logprobs: Option<u8>,
    /// The end user, passed to the provider.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether OpenAI should store the completion; only `false` is accepted (a stored
    /// conversation is `X-Conversation-Id`).
    #[serde(default)]
    pub store: Option<bool>,
    /// Every other parameter: refused unless `null`.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A client-side tool.
#[derive(Debug, Deserialize)]
pub struct WireTool {
    /// Only `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function, for a `function` tool.
    #[serde(default)]
    pub function: Option<WireFunctionDefinition>,
}

/// A client-side function.
#[derive(Debug, Deserialize)]
pub struct WireFunctionDefinition {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    /// OpenAI's strict schema adherence, forwarded as part of the schema's contract.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// A named function.
    Named {
        /// `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function.
        function: NamedFunction,
    },
}

/// The function a `tool_choice` names.
#[derive(Debug, Deserialize)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireResponseFormat {
    /// Plain text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema.
        json_schema: WireJsonSchema,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct WireJsonSchema {
    /// The schema's name.
    pub name: String,
    /// The JSON Schema (absent: any JSON object).
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// Enforce the schema strictly.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// One sequence.
    One(String),
    /// Up to four.
    Many(Vec<String>),
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
    /// Text, or an array of content parts (`text` and `image_url`).
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
    /// The part's type: `text` or `image_url`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
    /// The image of an `image_url` part.
    #[serde(default)]
    pub image_url: Option<WireImageUrl>,
}

/// The image of an `image_url` part.
#[derive(Debug, Deserialize)]
pub struct WireImageUrl {
    /// `https://…` or a `data:` URL.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default)]
    pub detail: Option<String>,
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

/// Parameters OpenAI defines that we accept with no effect when set to these values.
fn accepted_without_effect(name: &str, value: &serde_json::Value) -> bool {
    match name {
        // Billing tier and prompt-cache routing hints: they do not change the answer.
        "service_tier" => value
            .as_str()
            .is_some_and(|tier| tier == "auto" || tier == "default"),
        _ => false,
    }
}

impl ChatCompletionRequest {
    /// The turn this request asks for, after checking what cannot be honoured.
    pub(super) fn to_input(
        &self,
        tenant: String,
        conversation_id: Option<ConversationId>,
        request_id: String,
    ) -> Result<AgentInput, OpenAiError> {
        if let Some((name, _)) = self
            .other
            .iter()
            .find(|(name, value)| !value.is_null() && !accepted_without_effect(name, value))
        {
            return Err(OpenAiError::with_dynamic_param(
                ApiError::InvalidRequest(format!("the parameter `{name}` is not supported")),
                name.clone(),
            ));
        }
        let n = self.choices();
        if n == 0 || n > MAX_CHOICES {
            return Err(invalid(
                "n",
                format!("n must be between 1 and {MAX_CHOICES}"),
            ));
        }
        if n > 1 && conversation_id.is_some() {
            return Err(invalid(
                "n",
                "n > 1 is supported on stateless requests only (without X-Conversation-Id)",
            ));
        }
        if n > 1 && self.streams() {
            return Err(invalid(
                "n",
                "n > 1 is supported on non-streamed requests only",
            ));
        }
        if self.store == Some(true) {
            return Err(invalid(
                "store",
                "stored completions are not supported; send X-Conversation-Id to keep a conversation",
            ));
        }
        if self.messages.is_empty() {
            return Err(invalid("messages", "`messages` must not be empty"));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(StopSequences::One(one)) => vec![one.clone()],
            Some(StopSequences::Many(many)) if many.len() <= 4 => many.clone(),
            Some(StopSequences::Many(_)) => {
                return Err(invalid("stop", "at most 4 stop sequences"));
            }
        };
        if self.top_logprobs.is_some_and(|top| top > 20) {
            return Err(invalid(
                "top_logprobs",
                "top_logprobs must be between 0 and 20",
            ));
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
                stop,
                seed: self.seed,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                logit_bias: self.logit_bias.clone().unwrap_or_default(),
                logprobs: self.logprobs,
                top_logprobs: self.top_logprobs,
            },
            request_id: Some(request_id),
            delivery: Delivery::streamed_if(self.streams()),
            response_format: self.response_format()?,
            client_tools: self.client_tools()?,
            tool_choice: self.tool_choice()?,
            parallel_tool_calls: self.parallel_tool_calls,
            user: self.user.clone(),
            ..AgentInput::with_messages(conversation, messages)
        })
    }

    pub(super) fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// How many completions are asked for.
    pub(super) fn choices(&self) -> u32 {
        self.n.unwrap_or(1)
    }

    pub(super) fn includes_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }

    fn response_format(&self) -> Result<Option<ResponseFormat>, OpenAiError> {
        Ok(match &self.response_format {
            None | Some(WireResponseFormat::Text) => None,
            Some(WireResponseFormat::JsonObject) => Some(ResponseFormat::JsonObject),
            Some(WireResponseFormat::JsonSchema { json_schema }) => {
                if json_schema.name.is_empty() {
                    return Err(invalid(
                        "response_format",
                        "response_format.json_schema.name must not be empty",
                    ));
                }
                Some(match &json_schema.schema {
                    None => ResponseFormat::JsonObject,
                    Some(schema) => ResponseFormat::JsonSchema(JsonSchemaFormat {
                        name: json_schema.name.clone(),
                        schema: schema.clone(),
                        strict: json_schema.strict.unwrap_or(false),
                    }),
                })
            }
        })
    }

    fn client_tools(&self) -> Result<Vec<ToolDefinition>, OpenAiError> {
        let Some(tools) = &self.tools else {
            return Ok(Vec::new());
        };
        tools
            .iter()
            .enumerate()
            .map(|(index, tool)| match (tool.kind.as_str(), &tool.function) {
                ("function", Some(function)) if !function.name.is_empty() => {
                    Ok(ToolDefinition::new(
                        function.name.clone(),
                        function.description.clone().unwrap_or_default(),
                        function.parameters.clone().unwrap_or_else(
                            || serde_json::json!({"type": "object", "properties": {}}),
                        ),
                    ))
                }
                ("function", _) => Err(invalid(
                    "tools",
                    format!("tools[{index}]: a function tool needs `function.name`"),
                )),
                (kind, _) => Err(invalid(
                    "tools",
                    format!(
                        "tools[{index}]: tools of type {kind:?} are not supported; only function"
                    ),
                )),
            })
            .collect()
    }

    fn tool_choice(&self) -> Result<Option<ToolChoice>, OpenAiError> {
        Ok(match &self.tool_choice {
            None => None,
            Some(WireToolChoice::Mode(mode)) => Some(match mode.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(invalid(
                        "tool_choice",
                        format!("tool_choice {other:?} is not one of none, auto, required"),
                    ));
                }
            }),
            Some(WireToolChoice::Named { kind, function }) if kind == "function" => {
                Some(ToolChoice::Function(function.name.clone()))
            }
            Some(WireToolChoice::Named { kind, .. }) => {
                return Err(invalid(
                    "tool_choice",
                    format!("tool_choice of type {kind:?} is not supported; only function"),
                ));
            }
        })
    }
}

impl ChatCompletionRequest {
    /// The input of a workflow this request names in `model`: the text of the last user
    /// message. A workflow runs its own agents with their own settings, so every
    /// parameter that would change how a model answers is refused with a 400 naming it
    /// (`unsupported_parameter`), as is `n > 1`.
    pub(super) fn workflow_input(&self) -> Result<String, OpenAiError> {
        if let Some(param) = self.refused_by_workflows() {
            return Err(ApiError::Agent(AgentError::Llm(LlmError::unsupported(
                "a workflow",
                param,
                "a workflow's agents answer with their own settings; leave it out",
            )))
            .into());
        }
        if let Some((name, _)) = self
            .other
            .iter()
            .find(|(name, value)| !value.is_null() && !accepted_without_effect(name, value))
        {
            return Err(OpenAiError::with_dynamic_param(
                ApiError::InvalidRequest(format!("the parameter `{name}` is not supported")),
                name.clone(),
            ));
        }
        if self.store == Some(true) {
            return Err(invalid(
                "store",
                "stored completions are not supported; send X-Conversation-Id to keep a conversation",
            ));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(index, message)| message.to_message(index))
            .collect::<Result<Vec<_>, _>>()?;
        let last_user = messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .ok_or_else(|| {
                invalid(
                    "messages",
                    "a workflow's input is the last user message; `messages` has none",
                )
            })?;
        if !last_user.images.is_empty() {
            return Err(invalid(
                "messages",
                "a workflow's input is text; the last user message has images",
            ));
        }
        Ok(last_user.content.clone())
    }

    /// The first parameter set that a workflow cannot honour.
    fn refused_by_workflows(&self) -> Option<&'static str> {
        let set = [
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            ("max_tokens", self.max_tokens.is_some()),
            (
                "max_completion_tokens",
                self.max_completion_tokens.is_some(),
            ),
            ("n", self.n.is_some_and(|n| n != 1)),
            (
                "tools",
                self.tools.as_ref().is_some_and(|tools| !tools.is_empty()),
            ),
            ("tool_choice", self.tool_choice.is_some()),
            ("parallel_tool_calls", self.parallel_tool_calls.is_some()),
            (
                "response_format",
                !matches!(self.response_format, None | Some(WireResponseFormat::Text)),
            ),
            ("stop", self.stop.is_some()),
            ("seed", self.seed.is_some()),
            ("presence_penalty", self.presence_penalty.is_some()),
            ("frequency_penalty", self.frequency_penalty.is_some()),
            ("logit_bias", self.logit_bias.is_some()),
            ("logprobs", self.logprobs == Some(true)),
            ("top_logprobs", self.top_logprobs.is_some()),
            ("user", self.user.is_some()),
        ];
        set.into_iter()
            .find(|(_, set)| *set)
            .map(|(param, _)| param)
    }
}

/// The most completions one request may ask for.
const MAX_CHOICES: u32 = 8;

impl ChatMessage {
    fn to_message(&self, index: usize) -> Result<Message, OpenAiError> {
        let mut images = Vec::new();
        let text = match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    match (part.kind.as_str(), &part.text, &part.image_url) {
                        ("text", Some(text), _) => texts.push(text.as_str()),
                        ("image_url", _, Some(image)) if self.role == "user" => {
                            images.push(ImagePart {
                                url: image.url.clone(),
                                detail: image.detail.clone(),
                            });
                        }
                        ("image_url", _, Some(_)) => {
                            return Err(invalid(
                                "messages",
                                format!(
                                    "messages[{index}]: images are accepted in user messages only"
                                ),
                            ));
                        }
                        (kind, _, _) => {
                            return Err(invalid(
                                "messages",
                                format!(
                                    "messages[{index}]: content parts of type {kind:?} are not supported; only text and image_url"
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
        if role == Role::Tool && self.tool_call_id.is_none() {
            return Err(invalid(
                "messages",
                format!("messages[{index}]: a tool message needs `tool_call_id`"),
            ));
        }
        Ok(Message {
            tool_calls,
            tool_call_id: self.tool_call_id.clone(),
            images,
            ..Message::new(role, text)
        })
    }
}
