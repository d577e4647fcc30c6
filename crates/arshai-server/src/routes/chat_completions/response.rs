//! The response of `POST /v1/chat/completions`: a `chat.completion` object, or
//! `chat.completion.chunk` frames.

use arshai::agent::{AgentEvent, AgentOutput};
use arshai::llm::{ToolCall, Usage};
use axum::Json;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ApiError;
use crate::error::OpenAiError;

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
    choices: Vec<CompletionChoice<'a>>,
    usage: WireUsage,
    system_fingerprint: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<&'a serde_json::Value>,
    finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    /// `null` when the message only calls tools, as OpenAI sends it.
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
}

/// A tool call in a message, or (with `index`) in a chunk's delta.
#[derive(Debug, Serialize)]
struct WireToolCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn tool_calls_out(calls: &[ToolCall], indexed: bool) -> Vec<WireToolCallOut<'_>> {
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| WireToolCallOut {
            index: indexed.then_some(index),
            id: &call.id,
            kind: "function",
            function: WireFunctionOut {
                name: &call.name,
                arguments: &call.arguments,
            },
        })
        .collect()
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
}

/// What every chunk of one streamed completion shares.
/// Writes the chunks of one streamed completion (what every chunk shares).
#[derive(Debug, Clone)]
pub(super) struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkWriter {
    /// The writer of a new completion answered by agent `model`.
    pub(super) fn new(model: String, include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: unix_seconds(),
            model,
            include_usage,
        }
    }

    /// The first chunk: the assistant's role and empty content, as OpenAI sends it.
    pub(super) fn opening(&self) -> Event {
        self.delta(
            Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            },
            None,
        )
    }

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
    pub(super) fn frames(&self, item: Result<AgentEvent, ApiError>) -> Vec<Event> {
        match item {
            Ok(AgentEvent::TextDelta(text)) => vec![self.delta(
                Delta {
                    content: Some(&text),
                    ..Delta::default()
                },
                None,
            )],
            // The agent runs its own tools; OpenAI clients would try to run them too. Calls
            // to the caller's tools end the turn: they are sent with the last chunk.
            Ok(AgentEvent::ToolCall(_) | AgentEvent::ToolResult { .. }) => Vec::new(),
            Ok(AgentEvent::Done(summary)) => {
                let mut frames = Vec::with_capacity(4);
                if !summary.tool_calls.is_empty() {
                    frames.push(self.delta(
                        Delta {
                            tool_calls: tool_calls_out(&summary.tool_calls, true),
                            ..Delta::default()
                        },
                        None,
                    ));
                }
                frames.push(self.delta(Delta::default(), Some(summary.finish_reason.as_wire())));
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

/// The `chat.completion` response to the whole answers by agent `model`: one choice per
/// output (`n` of them), with `usage` for all of them.
pub(super) fn completion(model: &str, outputs: &[AgentOutput], usage: Usage) -> Response {
    let id = completion_id();
    let body = Completion {
        id: &id,
        object: "chat.completion",
        created: unix_seconds(),
        model,
        choices: outputs
            .iter()
            .enumerate()
            .map(|(index, output)| CompletionChoice {
                index: index as u32,
                message: CompletionMessage {
                    role: "assistant",
                    content: (!output.reply.is_empty() || output.tool_calls.is_empty())
                        .then_some(output.reply.as_str()),
                    refusal: None,
                    tool_calls: tool_calls_out(&output.tool_calls, false),
                },
                logprobs: output.logprobs.as_ref(),
                finish_reason: output.finish_reason.as_wire(),
            })
            .collect(),
        usage: usage.into(),
        system_fingerprint: None,
    };
    Json(body).into_response()
}
