//! The native turn as server-sent events (`"stream": true`):
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

use arshai::agent::AgentEvent;
use axum::response::sse::Event;
use serde_json::json;

use crate::ApiError;

/// The SSE frame of one event of the turn.
pub fn frame(item: Result<AgentEvent, ApiError>) -> Event {
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
        Ok(AgentEvent::Done(output)) => (
            "done",
            json!({
                "conversation_id": output.conversation_id,
                "reply": output.reply,
                "usage": output.usage,
                "model": output.model,
                "finish_reason": output.finish_reason.as_wire(),
            }),
        ),
        Err(error) => {
            tracing::warn!(%error, "a streamed turn failed after it started");
            ("error", error.body())
        }
    };
    Event::default().event(name).data(data.to_string())
}
