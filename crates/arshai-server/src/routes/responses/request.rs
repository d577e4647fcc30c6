//! The request of `POST /v1/responses`, and the turn it asks for.

use arshai::agent::{AgentInput, ConversationRef, Delivery};
use arshai::llm::{
    ImagePart, JsonSchemaFormat, Message, ResponseFormat, Role, Sampling, ToolCall, ToolChoice,
    ToolDefinition,
};
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;
use crate::error::OpenAiError;

/// The request body. Every parameter of OpenAI's Responses API is honoured, accepted with
/// no effect where it cannot change the answer (see [`accepted_without_effect`]), or
/// refused with a 400 that names it. A parameter sent as `null` counts as absent.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    /// The agent's name.
    pub model: String,
    /// A user message as text, or a list of input items.
    pub input: Input,
    /// A system message placed before the input (after the agent's own system prompt).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Client-side function tools.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required`, or `{"type":"function","name"}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// `{"format": {...}}`: text, json_object or json_schema.
    #[serde(default)]
    pub text: Option<Value>,
    /// Overrides the agent's temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Overrides the agent's nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Overrides the agent's bound on generated tokens.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// The end user, passed to the provider.
    #[serde(default)]
    pub user: Option<String>,
    /// Keep the response (and its conversation) so it can be retrieved and continued
    /// (default true).
    #[serde(default)]
    pub store: Option<bool>,
    /// Continue the conversation of this stored response.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Echoed back on the response object.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Every other parameter: refused unless `null` or accepted without effect.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `input`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Input items.
    Items(Vec<Value>),
}

fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
    OpenAiError::with_param(ApiError::InvalidRequest(message.into()), param)
}

/// Parameters OpenAI defines that we accept with no effect when set to these values: none
/// of them changes the answer.
fn accepted_without_effect(name: &str, value: &Value) -> bool {
    match name {
        // Extra output data: only the empty list (what the openai-agents SDK sends).
        "include" => value.as_array().is_some_and(Vec::is_empty),
        // OpenAI's default: fail rather than drop input when the context overflows.
        "truncation" => value.as_str() == Some("disabled"),
        // Billing tier, prompt-cache routing and retention, abuse-monitoring id.
        "service_tier" => value
            .as_str()
            .is_some_and(|tier| tier == "auto" || tier == "default"),
        "prompt_cache_key" | "prompt_cache_retention" | "safety_identifier" => true,
        // Answers always run in the foreground.
        "background" => value.as_bool() == Some(false),
        // Stream obfuscation padding only.
        "stream_options" => true,
        _ => false,
    }
}

impl ResponsesRequest {
    /// Whether the response is answered as server-sent events.
    pub(super) fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the response is stored (OpenAI's default: yes).
    pub(super) fn stores(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// The turn this request asks for over `history` (the messages of a previous response
    /// continued statelessly) in `conversation`, after checking what cannot be honoured.
    pub(super) fn to_input(
        &self,
        tenant: String,
        conversation: ConversationRef,
        history: Vec<Message>,
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
        if let Some(metadata) = &self.metadata
            && !metadata.is_object()
        {
            return Err(invalid("metadata", "metadata must be an object"));
        }
        let mut messages = history;
        if let Some(instructions) = &self.instructions {
            messages.push(Message::system(instructions.clone()));
        }
        match &self.input {
            Input::Text(text) => messages.push(Message::user(text.clone())),
            Input::Items(items) => {
                if items.is_empty() {
                    return Err(invalid("input", "`input` must not be empty"));
                }
                for (index, item) in items.iter().enumerate() {
                    push_item(&mut messages, index, item)?;
                }
            }
        }
        Ok(AgentInput {
            tenant,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_output_tokens,
                ..Sampling::default()
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

    fn response_format(&self) -> Result<Option<ResponseFormat>, OpenAiError> {
        let Some(text) = &self.text else {
            return Ok(None);
        };
        let Some(format) = text.get("format").filter(|format| !format.is_null()) else {
            return Ok(None);
        };
        let name = |key: &str| format.get(key).and_then(Value::as_str);
        match name("type") {
            Some("text") => Ok(None),
            Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
            Some("json_schema") => {
                let schema_name = name("name").unwrap_or_default();
                if schema_name.is_empty() {
                    return Err(invalid("text", "text.format.name must not be empty"));
                }
                Ok(Some(match format.get("schema").filter(|s| !s.is_null()) {
                    None => ResponseFormat::JsonObject,
                    Some(schema) => ResponseFormat::JsonSchema(JsonSchemaFormat {
                        name: schema_name.to_owned(),
                        schema: schema.clone(),
                        strict: format
                            .get("strict")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    }),
                }))
            }
            other => Err(invalid(
                "text",
                format!("text.format.type {other:?} is not one of text, json_object, json_schema"),
            )),
        }
    }

    fn client_tools(&self) -> Result<Vec<ToolDefinition>, OpenAiError> {
        let Some(tools) = &self.tools else {
            return Ok(Vec::new());
        };
        tools
            .iter()
            .enumerate()
            .map(|(index, tool)| {
                let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
                if kind != "function" {
                    return Err(invalid(
                        "tools",
                        format!(
                            "tools[{index}]: tools of type {kind:?} are not supported; only function"
                        ),
                    ));
                }
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(invalid(
                        "tools",
                        format!("tools[{index}]: a function tool needs `name`"),
                    ));
                }
                Ok(ToolDefinition::new(
                    name,
                    tool.get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    tool.get("parameters")
                        .filter(|parameters| !parameters.is_null())
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
                ))
            })
            .collect()
    }

    fn tool_choice(&self) -> Result<Option<ToolChoice>, OpenAiError> {
        let Some(choice) = &self.tool_choice else {
            return Ok(None);
        };
        if let Some(mode) = choice.as_str() {
            return Ok(Some(match mode {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    return Err(invalid(
                        "tool_choice",
                        format!("tool_choice {other:?} is not one of none, auto, required"),
                    ));
                }
            }));
        }
        let kind = choice.get("type").and_then(Value::as_str);
        match (kind, choice.get("name").and_then(Value::as_str)) {
            (Some("function"), Some(name)) => Ok(Some(ToolChoice::Function(name.to_owned()))),
            _ => Err(invalid(
                "tool_choice",
                format!("tool_choice of type {kind:?} is not supported; only function with a name"),
            )),
        }
    }
}

/// Appends the message(s) of input item `index`.
fn push_item(messages: &mut Vec<Message>, index: usize, item: &Value) -> Result<(), OpenAiError> {
    let field = |key: &str| item.get(key).and_then(Value::as_str);
    let bad = |message: String| invalid("input", format!("input[{index}]: {message}"));
    // A message may come without `type` (the easy input message).
    let kind = field("type").unwrap_or("message");
    match kind {
        "message" => {
            let role = match field("role") {
                Some("user") => Role::User,
                Some("system" | "developer") => Role::System,
                Some("assistant") => Role::Assistant,
                other => return Err(bad(format!("unknown role {other:?}"))),
            };
            let (text, images) = content(item.get("content"), role, &bad)?;
            messages.push(Message {
                images,
                ..Message::new(role, text)
            });
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (field("call_id"), field("name")) else {
                return Err(bad("a function_call needs `call_id` and `name`".to_owned()));
            };
            let call = ToolCall {
                id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: field("arguments").unwrap_or("{}").to_owned(),
            };
            // Calls made together (and the text before them) are one assistant message, as the
            // model made them.
            match messages.last_mut() {
                Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                _ => messages.push(Message::tool_calls("", vec![call])),
            }
        }
        "function_call_output" => {
            let Some(call_id) = field("call_id") else {
                return Err(bad("a function_call_output needs `call_id`".to_owned()));
            };
            let output = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(parts @ Value::Array(_)) => content(Some(parts), Role::Tool, &bad)?.0,
                _ => return Err(bad("a function_call_output needs `output`".to_owned())),
            };
            messages.push(Message::tool_result(call_id, output));
        }
        other => {
            return Err(bad(format!(
                "input items of type {other:?} are not supported; only message, function_call and function_call_output"
            )));
        }
    }
    Ok(())
}

/// The text and images of a message's `content`: a string or a list of parts.
fn content(
    content: Option<&Value>,
    role: Role,
    bad: &dyn Fn(String) -> OpenAiError,
) -> Result<(String, Vec<ImagePart>), OpenAiError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok((String::new(), Vec::new())),
        Some(Value::String(text)) => return Ok((text.clone(), Vec::new())),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(bad("content must be a string or a list of parts".to_owned())),
    };
    let mut texts = Vec::with_capacity(parts.len());
    let mut images = Vec::new();
    for part in parts {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "input_text" | "output_text" | "text" => {
                texts.push(
                    part.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            "refusal" => texts.push(
                part.get("refusal")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "input_image" if role == Role::User => {
                let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                    return Err(bad(
                        "an input_image needs `image_url` (file_id is not supported)".to_owned(),
                    ));
                };
                images.push(ImagePart {
                    url: url.to_owned(),
                    detail: part
                        .get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
            "input_image" => {
                return Err(bad("images are accepted in user messages only".to_owned()));
            }
            other => {
                return Err(bad(format!(
                    "content parts of type {other:?} are not supported; only input_text, output_text and input_image"
                )));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(body: Value) -> ResponsesRequest {
        serde_json::from_value(body).unwrap()
    }

    fn input_of(body: Value) -> Result<AgentInput, OpenAiError> {
        request(body).to_input(
            "default".into(),
            ConversationRef::Stateless,
            Vec::new(),
            "r1".into(),
        )
    }

    #[test]
    fn parallel_function_calls_are_one_assistant_message_after_its_text() {
        let input = input_of(json!({"model": "a", "input": [
            {"role": "user", "content": "hi"},
            {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2",
                "output": [{"type": "input_text", "text": "two"}]},
        ]}))
        .unwrap();
        let roles: Vec<Role> = input.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool]);
        assert_eq!(input.messages[1].content, "Let me look.");
        let ids: Vec<&str> = input.messages[1]
            .tool_calls
            .iter()
            .map(|call| call.id.as_str())
            .collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert_eq!(input.messages[3].content, "two");
        assert_eq!(input.messages[3].tool_call_id.as_deref(), Some("c2"));
    }

    #[test]
    fn images_go_with_user_messages_only() {
        let image = json!({"type": "input_image", "image_url": "https://x/y.png", "detail": "low"});
        let input = input_of(json!({"model": "a", "input": [{"role": "user",
            "content": [{"type": "input_text", "text": "what is it?"}, image]}]}))
        .unwrap();
        assert_eq!(input.messages[0].images[0].url, "https://x/y.png");
        assert_eq!(input.messages[0].images[0].detail.as_deref(), Some("low"));
        let refused =
            input_of(json!({"model": "a", "input": [{"role": "system", "content": [image]}]}))
                .unwrap_err();
        assert_eq!(refused.param.as_deref(), Some("input"));
    }

    #[test]
    fn bad_items_and_formats_name_their_parameter() {
        for (body, param) in [
            (json!({"model": "a", "input": []}), "input"),
            (
                json!({"model": "a", "input": [{"type": "reasoning", "summary": []}]}),
                "input",
            ),
            (
                json!({"model": "a", "input": [{"role": "robot", "content": "x"}]}),
                "input",
            ),
            (
                json!({"model": "a", "input": [{"type": "function_call_output", "output": "x"}]}),
                "input",
            ),
            (
                json!({"model": "a", "input": "x", "text": {"format": {"type": "yaml"}}}),
                "text",
            ),
            (
                json!({"model": "a", "input": "x", "tool_choice": {"type": "file_search"}}),
                "tool_choice",
            ),
            (
                json!({"model": "a", "input": "x", "metadata": "m"}),
                "metadata",
            ),
        ] {
            let error = input_of(body.clone()).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn sampling_format_and_tools_reach_the_input() {
        let input = input_of(json!({"model": "a", "input": "x", "temperature": 0.2,
            "top_p": 0.9, "max_output_tokens": 7, "user": "u", "parallel_tool_calls": false,
            "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": null}],
            "text": {"format": {"type": "json_object"}}, "stream": true}))
        .unwrap();
        assert_eq!(input.sampling.temperature, Some(0.2));
        assert_eq!(input.sampling.top_p, Some(0.9));
        assert_eq!(input.sampling.max_tokens, Some(7));
        assert_eq!(input.user.as_deref(), Some("u"));
        assert_eq!(input.parallel_tool_calls, Some(false));
        assert_eq!(input.tool_choice, Some(ToolChoice::Function("f".into())));
        assert_eq!(input.client_tools[0].name, "f");
        assert_eq!(input.response_format, Some(ResponseFormat::JsonObject));
        assert_eq!(input.delivery, Delivery::Streamed);
    }
}
