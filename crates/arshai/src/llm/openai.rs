//! OpenAI Chat Completions, and every OpenAI-compatible endpoint (OpenRouter, vLLM, Ollama,
//! LiteLLM, …) by base URL.

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::client::replay;
use super::openai_stream::OpenAiStreamDecoder;
use super::sse;
pub use super::status::parse_retry_after;
use super::status::{check_status, transport_error};
use super::{
    ChatRequest, ChatResponse, FinishReason, HttpPoolSettings, LlmClient, LlmError, Message, Role,
    StreamEvent, ToolCall, Usage, build_http_client,
};

/// The public OpenAI endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Settings of an OpenAI-compatible client.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The provider's name in errors and metrics (`openai`, `openrouter`, …).
    pub provider: &'static str,
    /// Base URL up to and including the version segment, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token; `None` sends no `Authorization` header (local gateways).
    pub api_key: Option<String>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Headers sent with every request (OpenRouter's `HTTP-Referer` and `X-Title`, a
    /// gateway's routing or tenant headers).
    pub extra_headers: Vec<(String, String)>,
    /// Pool and timeout settings.
    pub http: HttpPoolSettings,
}

/// A client of an OpenAI-compatible Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
    provider: &'static str,
    default_model: String,
    settings: HttpPoolSettings,
}

impl OpenAiClient {
    /// Builds the client and its connection pool.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let base = checked_base_url(config.provider, &config.base_url)?;
        let mut headers = header_map(config.provider, &config.extra_headers)?;
        if let Some(key) = &config.api_key {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                secret_header(config.provider, &format!("Bearer {key}"))?,
            );
        }
        Self::with_endpoint(
            config.provider,
            format!("{base}/chat/completions"),
            headers,
            config.default_model,
            config.http,
        )
    }

    /// A client that posts to `endpoint` (a full URL, query included) with `headers`: for
    /// providers that speak Chat Completions under another URL scheme and auth (Azure).
    pub(super) fn with_endpoint(
        provider: &'static str,
        endpoint: String,
        headers: HeaderMap,
        default_model: String,
        settings: HttpPoolSettings,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            http: build_http_client(provider, &settings)?,
            endpoint,
            headers,
            provider,
            default_model,
            settings,
        })
    }

    fn post(&self, body: &WireRequest<'_>, request: &ChatRequest) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .json(body);
        if let Some(id) = &request.request_id {
            builder = builder.header("x-request-id", id);
        }
        super::propagation::propagate(builder)
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let provider = self.provider;
        let body = WireRequest::from_request(request, &self.default_model, false);
        let response = self
            .post(&body, request)
            .send()
            .await
            .map_err(|e| transport_error(provider, &e, self.settings.request_timeout()))?;
        let response = check_status(provider, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(provider, &e, self.settings.request_timeout()))?;
        decode_response(provider, &bytes)
    }

    /// Sends a streaming request and, once the upstream accepted it, returns its events.
    async fn open_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let provider = self.provider;
        let deadline = self.settings.request_timeout();
        let body = WireRequest::from_request(request, &self.default_model, true);
        // The total deadline bounds the wait for the response head; after that each read is
        // bounded by the read timeout, so a long answer is never cut while it still flows.
        let response = match tokio::time::timeout(deadline, self.post(&body, request).send()).await
        {
            Ok(sent) => sent.map_err(|e| transport_error(provider, &e, deadline))?,
            Err(_) => {
                return Err(LlmError::Timeout {
                    provider,
                    after: deadline,
                });
            }
        };
        let response = check_status(provider, response).await?;
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A gateway that ignores `stream: true` answers with one JSON body: replay it.
            let bytes = response
                .bytes()
                .await
                .map_err(|e| transport_error(provider, &e, deadline))?;
            let events = replay(decode_response(provider, &bytes)?);
            return Ok(stream::iter(events.into_iter().map(Ok)).boxed());
        }
        let bytes = sse::response_bytes(provider, response, self.settings.read_timeout());
        let data = sse::event_data(provider, bytes);
        Ok(sse::decode(data, OpenAiStreamDecoder::new(provider)).boxed())
    }
}

/// `base` without its trailing slash, refused unless it is an http(s) URL.
pub(super) fn checked_base_url<'a>(
    provider: &'static str,
    base: &'a str,
) -> Result<&'a str, LlmError> {
    let base = base.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        Ok(base)
    } else {
        Err(LlmError::Config {
            provider,
            message: format!("base URL {base:?} must start with http:// or https://"),
        })
    }
}

/// Headers from configured name/value pairs; a bad name or value is a configuration error.
pub(super) fn header_map(
    provider: &'static str,
    pairs: &[(String, String)],
) -> Result<HeaderMap, LlmError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| LlmError::Config {
            provider,
            message: format!("{name:?} is not a valid header name"),
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| LlmError::Config {
            provider,
            message: format!("the value of header {name} is not valid"),
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A header value holding a credential: marked sensitive so it never shows in debug output.
pub(super) fn secret_header(provider: &'static str, value: &str) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| LlmError::Config {
        provider,
        message: "the API key contains characters not allowed in a header".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn decode_response(provider: &'static str, bytes: &[u8]) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_slice(bytes).map_err(|e| LlmError::Decode {
        provider,
        message: e.to_string(),
    })?;
    wire.into_response(provider)
}

/// Deserializes `null` as the type's default, so `"tool_calls": null` decodes like a
/// missing field.
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[async_trait]
impl LlmClient for OpenAiClient {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let deadline = self.settings.request_timeout();
        match tokio::time::timeout(deadline, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout {
                provider: self.provider,
                after: deadline,
            }),
        }
    }

    fn stream<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxStream<'a, Result<StreamEvent, LlmError>> {
        stream::once(self.open_stream(request))
            .flat_map(|opened| match opened {
                Ok(events) => events,
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            })
            .boxed()
    }
}

// ---- wire format -------------------------------------------------------------------------

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
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
    json_schema: WireJsonSchema<'a>,
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
    fn from_request(request: &'a ChatRequest, default_model: &'a str, stream: bool) -> Self {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = &request.system {
            messages.push(WireMessageOut {
                role: Role::System.as_str(),
                content: Some(system),
                tool_calls: Vec::new(),
                tool_call_id: None,
            });
        }
        messages.extend(request.messages.iter().map(WireMessageOut::from_message));
        Self {
            model: request.model.as_deref().unwrap_or(default_model),
            messages,
            temperature: request.sampling.temperature,
            top_p: request.sampling.top_p,
            max_tokens: request.sampling.max_tokens,
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
            response_format: request
                .response_format
                .as_ref()
                .map(|format| WireResponseFormat {
                    kind: "json_schema",
                    json_schema: WireJsonSchema {
                        name: &format.name,
                        schema: &format.schema,
                        strict: format.strict,
                    },
                }),
        }
    }
}

#[derive(Serialize)]
struct WireMessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> WireMessageOut<'a> {
    fn from_message(message: &'a Message) -> Self {
        let only_tool_calls = message.content.is_empty() && !message.tool_calls.is_empty();
        Self {
            role: message.role.as_str(),
            content: (!only_tool_calls).then_some(message.content.as_str()),
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
        })
    }
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: WireMessageIn,
    #[serde(default)]
    finish_reason: Option<String>,
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
