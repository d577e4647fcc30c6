//! The Chat Completions wire format: request and response bodies, and the usage object the
//! streamed chunks share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::llm::providers::lenient_json::null_as_default;
use crate::llm::{
    ChatRequest, ChatResponse, FinishReason, LlmError, Message, ResponseFormat, Role, ToolCall,
    ToolChoice, Usage,
};

pub(super) fn decode_response(
    provider: &'static str,
    bytes: &[u8],
) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_slice(bytes).map_err(|e| LlmError::Decode {
        provider,
        message: e.to_string(),
    })?;
    wire.into_response(provider)
}

#[derive(Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    logit_bias: &'a BTreeMap<String, f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<WireStreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionDef<'a>,
}

#[derive(Serialize)]
struct WireFunctionDef<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

#[derive(Serialize)]
struct WireResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<WireJsonSchema<'a>>,
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    schema: &'a serde_json::Value,
    strict: bool,
}

#[derive(Serialize)]
struct WireStreamOptions {
    include_usage: bool,
}

impl<'a> WireRequest<'a> {
    pub(super) fn from_request(
        request: &'a ChatRequest,
        default_model: &'a str,
        stream: bool,
    ) -> Self {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = &request.system {
            messages.push(WireMessageOut {
                role: Role::System.as_str(),
                content: WireContent::Text(Some(system)),
                tool_calls: Vec::new(),
                tool_call_id: None,
            });
        }
        let sampling = &request.sampling;
        messages.extend(request.messages.iter().map(WireMessageOut::from_message));
        Self {
            model: request.model.as_deref().unwrap_or(default_model),
            messages,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            stop: &sampling.stop,
            seed: sampling.seed,
            presence_penalty: sampling.presence_penalty,
            frequency_penalty: sampling.frequency_penalty,
            logit_bias: &sampling.logit_bias,
            logprobs: sampling.logprobs,
            top_logprobs: sampling.top_logprobs,
            tool_choice: request.tool_choice.as_ref().map(tool_choice),
            parallel_tool_calls: request.parallel_tool_calls,
            user: request.user.as_deref(),
            stream,
            stream_options: stream.then_some(WireStreamOptions {
                include_usage: true,
            }),
            tools: request
                .tools
                .iter()
                .map(|tool| WireTool {
                    kind: "function",
                    function: WireFunctionDef {
                        name: &tool.name,
                        description: &tool.description,
                        parameters: &tool.parameters,
                    },
                })
                .collect(),
            response_format: request.response_format.as_ref().map(|format| match format {
                ResponseFormat::JsonObject => WireResponseFormat {
                    kind: "json_object",
                    json_schema: None,
                },
                ResponseFormat::JsonSchema(format) => WireResponseFormat {
                    kind: "json_schema",
                    json_schema: Some(WireJsonSchema {
                        name: &format.name,
                        schema: &format.schema,
                        strict: format.strict,
                    }),
                },
            }),
        }
    }
}

/// OpenAI's `tool_choice` value.
fn tool_choice(choice: &ToolChoice) -> serde_json::Value {
    match choice {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Function(name) => {
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
    }
}

/// A message's content: text (absent for an assistant message that only calls tools), or
/// parts when it carries images.
#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(Option<&'a str>),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireMessageOut<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> WireMessageOut<'a> {
    fn from_message(message: &'a Message) -> Self {
        let only_tool_calls = message.content.is_empty() && !message.tool_calls.is_empty();
        let content = if message.images.is_empty() {
            WireContent::Text((!only_tool_calls).then_some(message.content.as_str()))
        } else {
            let text = (!message.content.is_empty()).then_some(WirePart::Text {
                text: &message.content,
            });
            WireContent::Parts(
                text.into_iter()
                    .chain(message.images.iter().map(|image| WirePart::ImageUrl {
                        image_url: WireImageUrl {
                            url: &image.url,
                            detail: image.detail.as_deref(),
                        },
                    }))
                    .collect(),
            )
        };
        Self {
            role: message.role.as_str(),
            content,
            tool_calls: message
                .tool_calls
                .iter()
                .map(|call| WireToolCallOut {
                    id: &call.id,
                    kind: "function",
                    function: WireFunctionOut {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                })
                .collect(),
            tool_call_id: message.tool_call_id.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct WireToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl WireResponse {
    fn into_response(self, provider: &'static str) -> Result<ChatResponse, LlmError> {
        let choice = self
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Decode {
                provider,
                message: "the response has no choices".to_owned(),
            })?;
        let tool_calls = choice
            .message
            .tool_calls
            .into_iter()
            .map(|call| ToolCall {
                id: call.id.unwrap_or_default(),
                name: call.function.name.unwrap_or_default(),
                arguments: call.function.arguments.unwrap_or_default(),
            })
            .collect();
        Ok(ChatResponse {
            text: choice.message.content.unwrap_or_default(),
            tool_calls,
            finish_reason: choice
                .finish_reason
                .as_deref()
                .map(FinishReason::from_wire)
                .unwrap_or(FinishReason::Stop),
            usage: self.usage.map(WireUsage::into_usage).unwrap_or_default(),
            model: self.model.unwrap_or_default(),
            request_id: self.id,
            logprobs: choice.logprobs.filter(|value| !value.is_null()),
        })
    }
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: WireMessageIn,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct WireMessageIn {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    tool_calls: Vec<WireToolCallIn>,
}

#[derive(Deserialize)]
struct WireToolCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: WireFunctionIn,
}

#[derive(Deserialize, Default)]
struct WireFunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
}

impl WireUsage {
    pub(super) fn into_usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            total_tokens: self
                .total_tokens
                .unwrap_or(self.prompt_tokens + self.completion_tokens),
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|details| details.reasoning_tokens),
        }
    }
}

#[derive(Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_lenient_about_unknown_values_and_fields() {
        let body = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","extra":{"a":1},
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},
            "finish_reason":"brand_new_reason","logprobs":null}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{}}}"#;
        let wire: WireResponse = serde_json::from_str(body).unwrap();
        let response = wire.into_response("openai").unwrap();
        assert_eq!(response.text, "hi");
        assert_eq!(
            response.finish_reason,
            FinishReason::Other("brand_new_reason".into())
        );
        assert_eq!(response.usage.total_tokens, 5);
    }
}
