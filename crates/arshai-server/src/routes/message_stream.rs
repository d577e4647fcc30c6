//! `POST /v1/agents/{agent}/messages` with `"stream": true`: the turn as server-sent events.
//!
//! ```text
//! event: delta        data: {"text":"Hel"}
//! event: tool_call    data: {"id":"call_1","name":"lookup","arguments":"{\"q\":\"x\"}"}
//! event: tool_result  data: {"id":"call_1","name":"lookup","content":"…"}
//! event: done         data: {"conversation_id":"…","reply":"Hello","usage":{…},"model":"…","finish_reason":"stop"}
//! event: error        data: {"error":{"type":"upstream_timeout","message":"…"}}
//! ```
//!
//! A stream ends with exactly one `done` or one `error` event. The conversation id is also
//! sent as the `X-Conversation-Id` response header, before any event.

use std::convert::Infallible;
use std::sync::Arc;

use arshai::agent::{Agent, AgentEvent, AgentInput, conversation_for_key};
use arshai::memory::ConversationId;
use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::sse::{self, StreamBounds};
use crate::{ApiError, AppState};

/// The response header that carries the conversation id of a streamed turn.
pub const CONVERSATION_ID_HEADER: HeaderName = HeaderName::from_static("x-conversation-id");

/// Runs `input` on `agent` as an SSE response.
pub async fn respond(
    state: &AppState,
    agent: Arc<dyn Agent>,
    mut input: AgentInput,
) -> Result<Response, ApiError> {
    // Chosen here rather than by the agent so the client has it before the first event.
    let derived = input.idempotency_key.as_deref().map(conversation_for_key);
    let id = input
        .conversation_id
        .get_or_insert_with(|| derived.unwrap_or_else(ConversationId::generate))
        .clone();
    let bounds = StreamBounds::from_settings(&state.settings);
    let turn = sse::start(agent.process_stream(input), bounds).await?;
    let frames = turn.map(|item| Ok::<_, Infallible>(frame(item)));
    let mut response = sse::response(frames, &bounds).into_response();
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(CONVERSATION_ID_HEADER, value);
    }
    Ok(response)
}

fn frame(item: Result<AgentEvent, ApiError>) -> Event {
    let (name, data) = match item {
        Ok(AgentEvent::TextDelta(text)) => ("delta", json!({"text": text})),
        Ok(AgentEvent::ToolCall(call)) => (
            "tool_call",
            json!({"id": call.id, "name": call.name, "arguments": call.arguments}),
        ),
        Ok(AgentEvent::ToolResult {
            call_id,
            name,
            content,
        }) => (
            "tool_result",
            json!({"id": call_id, "name": name, "content": content}),
        ),
        Ok(AgentEvent::Done(summary)) => (
            "done",
            json!({
                "conversation_id": summary.conversation_id,
                "reply": summary.reply,
                "usage": summary.usage,
                "model": summary.model,
                "finish_reason": summary.finish_reason.as_wire(),
            }),
        ),
        Err(error) => {
            tracing::warn!(%error, "a streamed turn failed after it started");
            ("error", error.body())
        }
    };
    Event::default().event(name).data(data.to_string())
}
