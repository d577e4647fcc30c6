//! OpenAI Chat Completions, and every OpenAI-compatible endpoint (OpenRouter, vLLM, Ollama,
//! LiteLLM, …) by base URL.

use std::time::Duration;

use async_trait::async_trait;
use futures::future;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use super::client::replay;
use super::openai_stream::OpenAiStreamDecoder;
use super::sse;
use super::{
    ChatRequest, ChatResponse, FinishReason, HttpPoolSettings, LlmClient, LlmError, Message, Role,
    StreamEvent, ToolCall, Usage, build_http_client,
};

/// The public OpenAI endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How much of an error body is kept in [`LlmError::UpstreamStatus`].
const BODY_EXCERPT_CHARS: usize = 512;

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
    /// Pool and timeout settings.
    pub http: HttpPoolSettings,
}

/// A client of an OpenAI-compatible Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: String,
    authorization: Option<String>,
    config: OpenAiConfig,
}

impl OpenAiClient {
    /// Builds the client and its connection pool.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let http = build_http_client(config.provider, &config.http)?;
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::Config {
                provider: config.provider,
                message: format!("base URL {base:?} must start with http:// or https://"),
            });
        }
        Ok(Self {
            http,
            endpoint: format!("{base}/chat/completions"),
            authorization: config.api_key.as_ref().map(|key| format!("Bearer {key}")),
            config,
        })
    }

    fn post(&self, body: &WireRequest<'_>, request: &ChatRequest) -> reqwest::RequestBuilder {
        let mut builder = self.http.post(&self.endpoint).json(body);
        if let Some(auth) = &self.authorization {
            builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(id) = &request.request_id {
            builder = builder.header("x-request-id", id);
        }
        builder
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let provider = self.config.provider;
        let body = WireRequest::from_request(request, &self.config.default_model, false);
        let response = self
            .post(&body, request)
            .send()
            .await
            .map_err(|e| transport_error(provider, &e, self.config.http.request_timeout()))?;
        let response = check_status(provider, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(provider, &e, self.config.http.request_timeout()))?;
        decode_response(provider, &bytes)
    }

    /// Sends a streaming request and, once the upstream accepted it, returns its events.
    async fn open_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<BoxStream<'static, Result<StreamEvent, LlmError>>, LlmError> {
        let provider = self.config.provider;
        let deadline = self.config.http.request_timeout();
        let body = WireRequest::from_request(request, &self.config.default_model, true);
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
        let bytes = sse::response_bytes(provider, response, self.config.http.read_timeout());
        let data = sse::event_data(provider, bytes);
        Ok(sse::decode(data, OpenAiStreamDecoder::new(provider)).boxed())
    }
}

/// Turns a non-success response into its typed error; passes a success through.
pub(super) async fn check_status(
    provider: &'static str,
    response: reqwest::Response,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    Err(status_error(provider, status.as_u16(), &body, retry_after))
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
        self.config.provider
    }

    fn default_model(&self) -> &str {
        &self.config.default_model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let deadline = self.config.http.request_timeout();
        match tokio::time::timeout(deadline, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Timeout {
                provider: self.config.provider,
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

/// Parses `Retry-After` as delay-seconds or as an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn transport_error(provider: &'static str, error: &reqwest::Error, deadline: Duration) -> LlmError {
    if error.is_timeout() {
        LlmError::Timeout {
            provider,
            after: deadline,
        }
    } else if error.is_decode() || error.is_body() {
        LlmError::Decode {
            provider,
            message: error.to_string(),
        }
    } else {
        LlmError::Connection {
            provider,
            message: error_chain(error),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a non-success status and its body to the matching error class.
fn status_error(
    provider: &'static str,
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
) -> LlmError {
    let wire: Option<WireErrorBody> = serde_json::from_str(body).ok();
    let (message, code) = match wire {
        Some(WireErrorBody { error }) => (error.message, error.code.or(error.kind)),
        None => (excerpt(body), None),
    };
    match status {
        401 | 403 => LlmError::Auth { provider, status },
        429 => LlmError::RateLimited {
            provider,
            retry_after,
        },
        400 | 404 | 413 | 422
            if code.as_deref() == Some("context_length_exceeded")
                || message.contains("maximum context length") =>
        {
            LlmError::ContextLength { provider, message }
        }
        400 | 404 | 413 | 422 => LlmError::BadRequest {
            provider,
            status,
            message,
        },
        _ => LlmError::UpstreamStatus {
            provider,
            status,
            body_excerpt: excerpt(body),
            retry_after,
        },
    }
}

fn excerpt(body: &str) -> String {
    match body.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None => body.to_owned(),
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

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Deserialize)]
pub(super) struct WireError {
    #[serde(default)]
    pub(super) message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
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

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn statuses_map_to_error_classes() {
        let ctx = r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        assert_eq!(
            status_error("openai", 400, ctx, None).class(),
            "context_length"
        );
        assert_eq!(status_error("openai", 401, "", None).class(), "auth");
        assert_eq!(
            status_error("openai", 429, "", None).class(),
            "rate_limited"
        );
        assert_eq!(
            status_error("openai", 503, "busy", None).class(),
            "upstream_status"
        );
        assert_eq!(
            status_error("openai", 400, "{}", None).class(),
            "bad_request"
        );
    }
}
