//! The server-sent events of a streamed response, in OpenAI's order, each with its
//! `sequence_number`: `response.created`, `response.in_progress`, the message item
//! (`output_item.added`, `content_part.added`, `output_text.delta`…, `output_text.done`,
//! `content_part.done`, `output_item.done`), each call to a caller's tool
//! (`output_item.added`, `function_call_arguments.delta`, `function_call_arguments.done`,
//! `output_item.done`), then `response.completed` (or `response.incomplete`) with the usage.
//! A failure after the start is `response.failed`, the stream's last event.

use arshai::agent::{AgentEvent, AgentOutput};
use axum::response::sse::Event;
use serde_json::{Value, json};

use super::response::{
    ResponseDraft, function_call_item_id, message_item, message_item_id, output_text,
};
use crate::ApiError;
use crate::error::OpenAiError;

/// Writes the events of one streamed response.
#[derive(Debug)]
pub(super) struct EventWriter {
    draft: ResponseDraft,
    sequence: u64,
    /// Whether the message item was opened (its first text delta arrived).
    message_open: bool,
}

impl EventWriter {
    /// The writer of `draft`'s response.
    pub(super) fn new(draft: ResponseDraft) -> Self {
        Self {
            draft,
            sequence: 0,
            message_open: false,
        }
    }

    fn event(&mut self, kind: &str, mut body: Value) -> Event {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        Event::default().event(kind).data(body.to_string())
    }

    /// `response.created` and `response.in_progress`.
    pub(super) fn opening(&mut self) -> Vec<Event> {
        let object = self.draft.in_progress();
        vec![
            self.event("response.created", json!({ "response": object })),
            self.event("response.in_progress", json!({ "response": object })),
        ]
    }

    /// The events one event of the turn becomes.
    pub(super) fn frames(&mut self, item: Result<AgentEvent, ApiError>) -> Vec<Event> {
        match item {
            Ok(AgentEvent::TextDelta(text)) => {
                let mut events = self.open_message();
                let item_id = message_item_id(&self.draft.id);
                events.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                        "delta": text, "logprobs": []}),
                ));
                events
            }
            // The agent runs its own tools; only calls to the caller's tools are output.
            Ok(AgentEvent::ToolCall(_) | AgentEvent::ToolResult { .. }) => Vec::new(),
            Ok(AgentEvent::Done(output)) => self.closing(&output),
            Err(error) => {
                tracing::warn!(%error, "a streamed response failed after it started");
                let (_, _, body) = OpenAiError::from(error).parts();
                let error = json!({
                    "code": body["error"]["code"],
                    "message": body["error"]["message"],
                });
                let object = self.draft.failed(error);
                vec![self.event("response.failed", json!({ "response": object }))]
            }
        }
    }

    /// `output_item.added` and `content_part.added` of the message, once.
    fn open_message(&mut self) -> Vec<Event> {
        if self.message_open {
            return Vec::new();
        }
        self.message_open = true;
        let item = message_item(&self.draft.id, "", "in_progress");
        let item_id = message_item_id(&self.draft.id);
        vec![
            self.event(
                "response.output_item.added",
                json!({"output_index": 0, "item": item}),
            ),
            self.event(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": output_text("")}),
            ),
        ]
    }

    /// The message's closing events, the function call items, and the finished response.
    fn closing(&mut self, output: &AgentOutput) -> Vec<Event> {
        let mut events = Vec::new();
        // The message item is output when text was streamed, when the answer has text, or
        // when there is nothing else (as in the whole response's `output`).
        let with_message =
            self.message_open || !output.reply.is_empty() || output.tool_calls.is_empty();
        if with_message {
            events.extend(self.open_message());
            let item_id = message_item_id(&self.draft.id);
            events.push(self.event(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "text": output.reply, "logprobs": []}),
            ));
            events.push(self.event(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": output_text(&output.reply)}),
            ));
            let item = message_item(&self.draft.id, &output.reply, "completed");
            events.push(self.event(
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            ));
        }
        let first = usize::from(with_message);
        for (index, call) in output.tool_calls.iter().enumerate() {
            let output_index = first + index;
            let item_id = function_call_item_id(&self.draft.id, index);
            let item = |status: &str, arguments: &str| {
                json!({"id": item_id, "type": "function_call", "status": status,
                    "call_id": call.id, "name": call.name, "arguments": arguments})
            };
            let added = item("in_progress", "");
            let done = item("completed", &call.arguments);
            events.push(self.event(
                "response.output_item.added",
                json!({"output_index": output_index, "item": added}),
            ));
            events.push(self.event(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": output_index,
                    "delta": call.arguments}),
            ));
            events.push(self.event(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": output_index,
                    "name": call.name, "arguments": call.arguments}),
            ));
            events.push(self.event(
                "response.output_item.done",
                json!({"output_index": output_index, "item": done}),
            ));
        }
        let mut object = self.draft.finished(output);
        if with_message && output.reply.is_empty() && !output.tool_calls.is_empty() {
            // Keep the streamed message item in the final object too.
            if let Some(items) = object["output"].as_array_mut() {
                items.insert(0, message_item(&self.draft.id, "", "completed"));
            }
        }
        let kind = if object["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push(self.event(kind, json!({ "response": object })));
        events
    }
}

#[cfg(test)]
mod tests {
    use arshai::llm::{FinishReason, ToolCall, Usage};
    use serde_json::json;

    use super::*;
    use crate::routes::responses::ResponsesRequest;

    fn writer() -> EventWriter {
        let request: ResponsesRequest =
            serde_json::from_value(json!({"model": "a", "input": "x", "stream": true})).unwrap();
        EventWriter::new(ResponseDraft::new("resp_1".into(), &request))
    }

    fn output(reply: &str, calls: &[(&str, &str)]) -> AgentOutput {
        AgentOutput {
            tool_calls: calls
                .iter()
                .map(|(id, name)| ToolCall {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    arguments: "{}".to_owned(),
                })
                .collect(),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 2,
                total_tokens: 5,
                reasoning_tokens: None,
            },
            finish_reason: if calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            ..AgentOutput::text(reply, "m")
        }
    }

    #[test]
    fn text_before_client_tool_calls_keeps_its_message_item_first() {
        let mut writer = writer();
        let mut events = writer.opening();
        events.extend(writer.frames(Ok(AgentEvent::TextDelta("Let me check.".into()))));
        events.extend(writer.frames(Ok(AgentEvent::Done(output(
            "",
            &[("c1", "f"), ("c2", "g")],
        )))));
        assert_eq!(writer.sequence, events.len() as u64);
        let completed = writer
            .draft
            .finished(&output("", &[("c1", "f"), ("c2", "g")]));
        // The whole object has only the calls; the stream's last event keeps the message
        // item it streamed, first, so its output indexes hold.
        assert_eq!(completed["output"].as_array().unwrap().len(), 2);
        let mut again = self::writer();
        again.opening();
        again.frames(Ok(AgentEvent::TextDelta("Let me check.".into())));
        let closing = again.closing(&output("", &[("c1", "f"), ("c2", "g")]));
        assert_eq!(
            closing.len(),
            3 + 4 * 2 + 1,
            "message close, two calls, completed"
        );
    }

    #[test]
    fn an_empty_answer_still_has_its_message_item() {
        let mut writer = writer();
        writer.opening();
        let events = writer.closing(&output("", &[]));
        // added, part added, text done, part done, item done, completed.
        assert_eq!(events.len(), 6);
        assert_eq!(writer.sequence, 8);
    }
}
