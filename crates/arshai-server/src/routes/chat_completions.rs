//! `POST /v1/chat/completions`: the OpenAI Chat Completions API over our agents, so OpenAI
//! clients and SDKs work unchanged.
//!
//! `model` names an agent; the agent's system prompt (and tools) apply. Without an
//! `X-Conversation-Id` header the turn is stateless over the given messages. With one, the
//! conversation's stored history comes first, and the given messages (send only the new
//! ones) and the answer are appended when the turn completes. Streaming follows OpenAI:
//! `chat.completion.chunk` frames, `stream_options.include_usage`, `data: [DONE]`. Errors use
//! OpenAI's error object ([`OpenAiError`]); a failure after the stream started is sent as a
//! `data: {"error":{…}}` frame and the stream ends without `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arshai::agent::{Agent, AgentEvent, TurnRequest, TurnSummary, collect_turn};
use arshai::llm::{Message, Role, Sampling, ToolCall, Usage};
use arshai::memory::ConversationId;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::message_stream::CONVERSATION_ID_HEADER;
use super::messages::{body_error, parse_json};
use super::sse::{self, StreamBounds};
use crate::auth::Tenant;
use crate::error::OpenAiError;
use crate::idempotency::IdempotencyKey;
use crate::request_id::RequestId;
use crate::{ApiError, AppState};

// ---- request -----------------------------------------------------------------------------

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
    fn to_turn(
        &self,
        tenant: String,
        conversation_id: Option<ConversationId>,
        request_id: String,
    ) -> Result<TurnRequest, OpenAiError> {
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
        Ok(TurnRequest {
            tenant,
            conversation_id,
            messages,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_completion_tokens.or(self.max_tokens),
            },
            request_id: Some(request_id),
            idempotency_key: None,
        })
    }

    fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    fn includes_usage(&self) -> bool {
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

// ---- response ----------------------------------------------------------------------------

/// `usage`, as OpenAI reports it.
#[derive(Debug, Serialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens,
            completion_tokens_details: usage
                .reasoning_tokens
                .map(|reasoning_tokens| CompletionTokensDetails { reasoning_tokens }),
        }
    }
}

/// A `chat.completion` object.
#[derive(Debug, Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: WireUsage,
    system_fingerprint: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
}

/// A `chat.completion.chunk` object.
#[derive(Debug, Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'static str>,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent without `include_usage`; `null` on every chunk but the last with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

#[derive(Debug, Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Debug, Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

/// What every chunk of one streamed completion shares.
#[derive(Debug, Clone)]
struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkWriter {
    fn chunk(&self, choice: Option<ChunkChoice<'_>>, usage: Option<Usage>) -> Event {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: None,
            choices: choice.into_iter().collect(),
            usage: self.include_usage.then(|| usage.map(WireUsage::from)),
        };
        data_event(&chunk)
    }

    fn delta(&self, delta: Delta<'_>, finish_reason: Option<&str>) -> Event {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        self.chunk(Some(choice), None)
    }

    /// The frames one event of the turn becomes.
    fn frames(&self, item: Result<AgentEvent, ApiError>) -> Vec<Event> {
        match item {
            Ok(AgentEvent::TextDelta(text)) => vec![self.delta(
                Delta {
                    content: Some(&text),
                    ..Delta::default()
                },
                None,
            )],
            // The agent runs its own tools; OpenAI clients would try to run them too.
            Ok(AgentEvent::ToolCall(_) | AgentEvent::ToolResult { .. }) => Vec::new(),
            Ok(AgentEvent::Done(summary)) => {
                let mut frames =
                    vec![self.delta(Delta::default(), Some(summary.finish_reason.as_wire()))];
                if self.include_usage {
                    frames.push(self.chunk(None, Some(summary.usage)));
                }
                frames.push(Event::default().data("[DONE]"));
                frames
            }
            Err(error) => {
                tracing::warn!(%error, "a streamed completion failed after it started");
                let (_, _, body) = OpenAiError::from(error).parts();
                vec![Event::default().data(body.to_string())]
            }
        }
    }
}

fn data_event(value: &impl Serialize) -> Event {
    match serde_json::to_string(value) {
        Ok(json) => Event::default().data(json),
        // Our own response types always serialize; keep the stream well-formed regardless.
        Err(error) => Event::default().data(
            serde_json::json!({"error": {"message": error.to_string(), "type": "server_error",
                "param": null, "code": "serialization"}})
            .to_string(),
        ),
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

// ---- handler -----------------------------------------------------------------------------

/// `POST /v1/chat/completions`.
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    request_id: RequestId,
    idempotency: IdempotencyKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body = body.map_err(|rejection| body_error(&rejection, &state))?;
    let request = parse_json::<ChatCompletionRequest>(&body)?;
    let agent = state
        .agents
        .get(&request.model)
        .cloned()
        .ok_or_else(|| ApiError::UnknownAgent(request.model.clone()))?;
    let conversation_id =
        match headers.get(CONVERSATION_ID_HEADER) {
            None => None,
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    ApiError::InvalidRequest("X-Conversation-Id is not visible ASCII".to_owned())
                })?;
                Some(ConversationId::parse(text).map_err(|error| {
                    ApiError::InvalidRequest(format!("X-Conversation-Id: {error}"))
                })?)
            }
        };
    let mut turn = request.to_turn(tenant.0, conversation_id.clone(), request_id.0)?;
    // Stateless turns record nothing, so only a conversation's turn needs the key.
    if turn.conversation_id.is_some() {
        turn.idempotency_key = idempotency.0;
    }
    let mut response = if request.streams() {
        stream_completion(&state, agent, turn, &request).await?
    } else {
        complete(&state, agent, turn, &request).await?
    };
    if let Some(id) = conversation_id
        && let Ok(value) = HeaderValue::from_str(id.as_str())
    {
        response.headers_mut().insert(CONVERSATION_ID_HEADER, value);
    }
    Ok(response)
}

async fn complete(
    state: &AppState,
    agent: Arc<dyn Agent>,
    turn: TurnRequest,
    request: &ChatCompletionRequest,
) -> Result<Response, OpenAiError> {
    let deadline = Duration::from_secs_f64(state.settings.server.request_timeout_seconds);
    let summary: TurnSummary =
        tokio::time::timeout(deadline, collect_turn(agent.turn_stream(turn)))
            .await
            .map_err(|_| ApiError::RequestTimeout(deadline))??;
    let id = completion_id();
    let body = Completion {
        id: &id,
        object: "chat.completion",
        created: unix_seconds(),
        model: &request.model,
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                content: &summary.reply,
                refusal: None,
            },
            logprobs: None,
            finish_reason: summary.finish_reason.as_wire(),
        }],
        usage: summary.usage.into(),
        system_fingerprint: None,
    };
    Ok(Json(body).into_response())
}

async fn stream_completion(
    state: &AppState,
    agent: Arc<dyn Agent>,
    turn: TurnRequest,
    request: &ChatCompletionRequest,
) -> Result<Response, OpenAiError> {
    let bounds = StreamBounds::from_settings(&state.settings);
    let events = sse::start(agent.turn_stream(turn), bounds).await?;
    let writer = ChunkWriter {
        id: completion_id(),
        created: unix_seconds(),
        model: request.model.clone(),
        include_usage: request.includes_usage(),
    };
    let opening = writer.delta(
        Delta {
            role: Some("assistant"),
            content: Some(""),
        },
        None,
    );
    let frames = stream::once(async move { opening })
        .chain(events.flat_map(move |item| stream::iter(writer.frames(item))))
        .map(Ok::<_, Infallible>);
    Ok(sse::response(frames, &bounds).into_response())
}
