//! The response of `POST /v1/chat/completions`: a `chat.completion` object, or
//! `chat.completion.chunk` frames.

use arshai::agent::{AgentEvent, AgentOutput};
use arshai::llm::Usage;
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

/// The `chat.completion` response to a whole answer by agent `model`.
pub(super) fn completion(model: &str, output: &AgentOutput) -> Response {
    let id = completion_id();
    let body = Completion {
        id: &id,
        object: "chat.completion",
        created: unix_seconds(),
        model,
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                content: &output.reply,
                refusal: None,
            },
            logprobs: None,
            finish_reason: output.finish_reason.as_wire(),
        }],
        usage: output.usage.into(),
        system_fingerprint: None,
    };
    Json(body).into_response()
}
